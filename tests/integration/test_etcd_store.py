#!/usr/bin/python3
"""Integration tests of the registry on the etcd store backend
(--backend etcd) over a real 3-member etcd cluster on loopback
(etcdcluster.py): what is acknowledged survives a restart of the registry
and of every etcd member; one member down changes nothing; without a
quorum a write answers 503, never 200/201, and reads still answer.

Exits 77 (skipped) when etcd is not installed.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_etcd_store.py
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from etcdcluster import skip_without_etcd  # noqa: E402
from etcdreplicas import ReplicaTestCase  # noqa: E402
from svctest import wait_until  # noqa: E402

T = svctest.timeout


class EtcdStoreTest(ReplicaTestCase):
    """One cluster for the class; each test its own key prefix; registries
    with the default cleanup interval."""

    PREFIX_NAME = "test"
    REPLICA_ARGS = ()

    def start_registry(self):
        return self.start_replica()

    def register(self, svc, name, expect=201):
        status, _, body = svc.request("POST", "/v1/services",
                                      {"name": name, "host": "10.0.0.1", "port": 8080,
                                       "ttl": 600})
        if expect is not None:
            self.assertEqual(status, expect, body)
        return status, body

    def kv_put(self, svc, key, value):
        status, _, body = svc.request("PUT", "/v1/kv/" + key, value.encode())
        return status, body

    def kv_get(self, svc, key):
        status, _, body = svc.request("GET", "/v1/kv/%s?raw" % key)
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        return status, body

    def instance(self, svc, sid):
        status, _, body = svc.request("GET", "/v1/services/" + sid)
        return status, body

    def assert_all_back(self, svc, sids, keys):
        for sid in sids:
            status, body = self.instance(svc, sid)
            self.assertEqual(status, 200, "%s is gone: %r" % (sid, body))
            self.assertEqual(body["service"]["id"] if "service" in body else body.get("id"),
                             sid, body)
        for key, value in keys.items():
            self.assertEqual(self.kv_get(svc, key), (200, value), key)

    def test_bad_etcd_options_refused(self):
        """--backend etcd needs endpoints that are http(s) URLs; a registry
        whose endpoints all refuse does not start (it cannot load)."""
        cwd = tempfile.mkdtemp(prefix="etcd-opts-")
        self.addCleanup(shutil.rmtree, cwd, True)
        cases = [
            ([], 2, "needs --etcd-endpoints"),
            (["--etcd-endpoints", "ftp://127.0.0.1:1"], 1, "not an http(s) URL"),
            (["--etcd-endpoints", self.cluster.urls[0], "--etcd-prefix", ""], 1,
             "prefix must be non-empty"),
            (["--etcd-endpoints", "http://127.0.0.1:%d" % svctest.closed_port()], 1,
             "cannot load"),
        ]
        for extra, code, text in cases:
            with self.subTest(extra=extra):
                done = svctest.run_cli("registry", ["--port", "0", "--backend", "etcd"] + extra,
                                       cwd)
                self.assertEqual(done.returncode, code, done.stderr)
                self.assertIn(text, done.stderr)

    def test_restart_brings_everything_back(self):
        """Registrations and KV keys acknowledged before a SIGTERM are back,
        with the same id and value, in a new registry on the same prefix."""
        reg = self.start_registry()
        _, body = self.register(reg, "persisted")
        sid = body["service_id"]
        self.assertEqual(self.kv_put(reg, "config/a", "one")[0], 200)
        self.assertEqual(reg.stop(), 0)
        reg2 = self.start_registry()
        self.assertRegex(reg2.log_text(), r"1 registrations and 1 KV keys loaded")
        self.assert_all_back(reg2, [sid], {"config/a": "one"})

    def test_member_loss_quorum_loss_and_full_restart(self):
        """One member down (once the other two have a leader): writes still
        acknowledged (the registry fails over from the dead endpoint, the
        first it was given). Two down: a
        registration answers 503 within a few seconds, reads answer from
        memory. Both back: writes acknowledged again. Every process
        restarted: everything acknowledged is back."""
        reg = self.start_registry()
        acked, keys = [], {}
        for n in range(3):
            acked.append(self.register(reg, "before")[1]["service_id"])
        self.assertEqual(self.kv_put(reg, "k/before", "b")[0], 200)
        keys["k/before"] = "b"

        self.cluster.kill(0)
        # a write during the election that may follow can fail (503, never
        # a false yes); once the two have a leader, every write is acked
        self.cluster.wait_healthy([1, 2])
        for n in range(5):
            acked.append(self.register(reg, "one-down")[1]["service_id"])
        self.assertEqual(self.kv_put(reg, "k/one-down", "1")[0], 200)
        keys["k/one-down"] = "1"

        self.cluster.kill(1)
        start = time.monotonic()
        status, body = self.register(reg, "no-quorum", expect=None)
        took = time.monotonic() - start
        self.assertEqual(status, 503, body)
        self.assertIs(body.get("success"), False, body)
        self.assertTrue(body.get("error"), body)
        self.assertLess(took, T(8.0), "a write without quorum must fail fast")
        status, _ = self.kv_put(reg, "k/no-quorum", "x")
        self.assertEqual(status, 503)
        # reads answer from memory, with everything acknowledged
        status, _, listing = reg.request("GET", "/v1/services")
        self.assertEqual(status, 200)
        listed = {s["id"] for s in listing["services"]}
        self.assertTrue(set(acked) <= listed, listed)
        self.assertEqual(self.kv_get(reg, "k/one-down"), (200, "1"))

        self.cluster.start(0)
        self.cluster.start(1)
        self.cluster.wait_healthy()
        seen = []

        def write_acked():
            status, body = self.register(reg, "after", expect=None)
            seen.append(status)
            if status == 201:
                acked.append(body["service_id"])
            return status == 201

        wait_until(write_acked, timeout=T(20), interval=0.3,
                   message="writes acknowledged again once the quorum is back")
        self.assertTrue(all(s in (201, 503) for s in seen), seen)
        self.assertEqual(self.kv_put(reg, "k/after", "a")[0], 200)
        keys["k/after"] = "a"

        self.assertEqual(reg.stop(), 0)
        for i in range(3):
            self.cluster.stop(i)
        for i in range(3):
            self.cluster.start(i)
        self.cluster.wait_healthy()
        reg2 = self.start_registry()
        self.assert_all_back(reg2, acked, keys)
        # The writes answered 503 had an unknown outcome (sent, then timed
        # out): the member that took them may commit them once the others
        # are back, so they may or may not be there; either way whole.
        status, _, listing = reg2.request("GET", "/v1/services")
        self.assertEqual(status, 200)
        for s in listing["services"]:
            if s["name"] == "no-quorum":
                self.assertEqual((s["host"], s["port"]), ("10.0.0.1", 8080), s)
        status, value = self.kv_get(reg2, "k/no-quorum")
        self.assertIn(status, (200, 404))
        if status == 200:
            self.assertEqual(value, "x")


if __name__ == "__main__":
    skip_without_etcd()
    unittest.main(verbosity=2)
