#!/usr/bin/python3
"""Integration tests of two registry replicas A and B on one etcd prefix
over a real 3-member etcd cluster on loopback (etcdcluster.py): what one
replica commits the other reads with the same index (native and Consul
views, KV and CAS), blocking reads wake across replicas, an event watcher
failing over from a killed replica continues without gap or repeat, a
service registered through --registry A,B survives the loss of A, quorum
loss turns both replicas stale (X-Registry-Stale, X-Consul-KnownLeader:
false, writes 503) and the quorum's return heals them, and a restart of
every process brings everything back with its ids and indexes.

Exits 77 (skipped) when etcd is not installed.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_replicas.py
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from etcdcluster import skip_without_etcd  # noqa: E402
from etcdreplicas import ReplicaTestCase  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout


def index_of(headers):
    return int(headers.get("X-Registry-Index"))


class ReplicasTest(ReplicaTestCase):
    """One cluster for the class; each test its own prefix and replicas."""

    PREFIX_NAME = "replicas"

    def register(self, svc, name, expect=201, ttl=600, **extra):
        body = {"name": name, "host": "10.0.0.1", "port": 8080, "ttl": ttl}
        body.update(extra)
        status, headers, answer = svc.request("POST", "/v1/services", body)
        if expect is not None:
            self.assertEqual(status, expect, answer)
        return status, answer

    def get(self, svc, sid):
        status, headers, body = svc.request("GET", "/v1/services/" + sid)
        return status, headers, body

    def kv(self, svc, key):
        """(status, ModifyIndex or None) of key."""
        status, _, body = svc.request("GET", "/v1/kv/" + key)
        if status != 200:
            return status, None
        return status, body[0]["ModifyIndex"]

    def wait_seen(self, svc, sid, present=True, timeout=1.0):
        """Poll svc until sid is (or is no longer) there, within timeout s."""
        def seen():
            return (self.get(svc, sid)[0] == 200) == present
        wait_until(seen, timeout=T(timeout), interval=0.02,
                   message="%s %s on %s" % (sid, "seen" if present else "gone", svc.url))

    def same_index(self, a, b, timeout=1.0):
        """Both replicas answer the same X-Registry-Index; returns it."""
        got = []

        def same():
            ia = index_of(a.request("GET", "/v1/services")[1])
            ib = index_of(b.request("GET", "/v1/services")[1])
            got[:] = [ia, ib]
            return ia == ib
        wait_until(same, timeout=T(timeout), interval=0.02,
                   message="the same index on both replicas (%r)" % got)
        return got[0]

    # ------------------------------------------------------------------

    def test_writes_on_one_are_read_on_the_other(self):
        """Registration, deregistration, maintenance and KV (with CAS) made
        on either replica are read on the other with the same indexes."""
        a, b = self.start_replica(), self.start_replica()
        _, body = self.register(a, "shared")
        sid = body["service_id"]
        self.wait_seen(b, sid, timeout=1.0)
        index = self.same_index(a, b)
        status, headers, _ = b.request("GET", "/v1/catalog/service/shared")
        self.assertEqual(status, 200)
        self.assertEqual(int(headers.get("X-Consul-Index")), index)
        self.assertEqual(headers.get("X-Consul-KnownLeader"), "true")
        self.assertIsNone(headers.get("X-Registry-Stale"))
        _, headers, _ = a.request("GET", "/v1/catalog/service/shared")
        self.assertEqual(int(headers.get("X-Consul-Index")), index)

        # maintenance on A shows on B
        status, _, answer = a.request("PUT", "/v1/services/%s/maintenance" % sid,
                                      {"enable": True, "reason": "replica test"})
        self.assertEqual(status, 200, answer)
        wait_until(lambda: "maintenance" in (self.get(b, sid)[2].get("service") or {}),
                   timeout=T(1.0), interval=0.02, message="maintenance seen on B")
        self.same_index(a, b)

        # a deregistration on B is gone on A
        _, body = self.register(a, "leaving")
        other = body["service_id"]
        self.wait_seen(b, other)
        status, _, answer = b.request("DELETE", "/v1/services/" + other)
        self.assertEqual(status, 200, answer)
        self.wait_seen(a, other, present=False)
        self.same_index(a, b)

        # KV: a put on B is read on A with the same ModifyIndex; CAS on it
        status, _, answer = b.request("PUT", "/v1/kv/conf/x", b"one")
        self.assertEqual((status, answer), (200, True))
        _, on_b = self.kv(b, "conf/x")
        wait_until(lambda: self.kv(a, "conf/x") == (200, on_b), timeout=T(1.0),
                   interval=0.02, message="conf/x at ModifyIndex %s on A" % on_b)
        status, _, answer = a.request("PUT", "/v1/kv/conf/x?cas=%d" % on_b, b"two")
        self.assertEqual((status, answer), (200, True))
        _, on_a = self.kv(a, "conf/x")
        self.assertGreater(on_a, on_b)
        wait_until(lambda: self.kv(b, "conf/x") == (200, on_a), timeout=T(1.0),
                   interval=0.02, message="conf/x at ModifyIndex %s on B" % on_a)
        status, _, answer = b.request("PUT", "/v1/kv/conf/x?cas=%d" % on_b, b"three")
        self.assertEqual((status, answer), (200, False))
        status, _, value = b.request("GET", "/v1/kv/conf/x?raw")
        self.assertEqual((status, value), (200, "two"))

    def test_blocking_read_on_b_woken_by_a(self):
        """A blocking list on B at the current index is answered by a
        registration on A, with the new index."""
        a, b = self.start_replica(), self.start_replica()
        self.register(a, "first")
        index = self.same_index(a, b)
        result = {}

        def block():
            result["answer"] = b.request("GET", "/v1/services?index=%d&wait=10s" % index,
                                         timeout=20)
            result["at"] = time.monotonic()

        t = threading.Thread(target=block)
        t.start()
        time.sleep(0.3)  # parked on B (a wake before parking would answer at once too)
        self.assertNotIn("answer", result, "the read must wait for a change")
        sent = time.monotonic()
        _, body = self.register(a, "wakes")
        t.join(T(15))
        self.assertIn("answer", result)
        status, headers, listing = result["answer"]
        self.assertEqual(status, 200)
        self.assertGreater(index_of(headers), index)
        self.assertIn(body["service_id"], {s["id"] for s in listing["services"]})
        self.assertLess(result["at"] - sent, T(5.0), "woken by the change, not the wait")
        self.assertEqual(index_of(headers), self.same_index(a, b))

    def test_event_watch_continues_on_b_after_a_is_killed(self):
        """Follow /v1/events on A, kill A, continue on B from the last
        index seen on A: every change arrives once, in order."""
        a, b = self.start_replica(), self.start_replica()
        start = self.same_index(a, b)
        written = []  # (type, id) in the order of their acknowledgement
        seen = []     # (index, type, id) as the watcher got them
        last = start

        def follow(svc, after, until_count):
            nonlocal last
            deadline = time.monotonic() + T(10)
            while len(seen) < until_count and time.monotonic() < deadline:
                status, _, body = svc.request("GET", "/v1/events?index=%d&wait=2s" % after,
                                              timeout=10)
                self.assertEqual(status, 200, body)
                for ev in body["events"]:
                    ident = ev["data"].get("service_id") or ev["data"].get("key")
                    seen.append((ev["index"], ev["type"], ident))
                after = body["index"]
                last = after
            return after

        for n in range(3):
            _, body = self.register(a if n % 2 == 0 else b, "watched-%d" % n)
            written.append(("register", body["service_id"]))
        sid = written[0][1]
        status, _, _ = b.request("DELETE", "/v1/services/" + sid)
        self.assertEqual(status, 200)
        written.append(("deregister", sid))
        after = follow(a, start, len(written))
        self.assertEqual(len(seen), len(written), seen)

        a.kill()
        for n in range(2):
            _, body = self.register(b, "after-kill-%d" % n)
            written.append(("register", body["service_id"]))
        follow(b, after, len(written))
        self.assertEqual([(t, i) for _, t, i in seen], written)
        indexes = [i for i, _, _ in seen]
        self.assertEqual(indexes, sorted(set(indexes)), "strictly increasing, no repeat")
        self.assertEqual(last, indexes[-1])
        # nothing more than what was written
        status, _, body = b.request("GET", "/v1/events?index=%d&wait=1s" % last)
        self.assertEqual((status, body["events"]), (200, []))

    def test_service_fails_over_from_a_to_b(self):
        """logging-service with --registry A,B: A killed, it stays
        registered and its renewals reach B (B's heartbeat time moves past
        several ttls)."""
        a, b = self.start_replica(), self.start_replica()
        tmp = self.tmp_dir()
        lg = Service()
        self.addCleanup(lg.close)
        lg.start("logging-service", ["--port", "0", "--bind", "127.0.0.1", "--registry",
                                     "%s,%s" % (a.url, b.url), "--ttl", "2s", "--check", "ttl",
                                     "--data-dir", tmp], cwd=tmp)
        sid = []

        def registered():
            status, _, body = b.request("GET", "/v1/services?name=logging-service")
            sid[:] = [s["id"] for s in body.get("services", [])]
            return status == 200 and len(sid) == 1
        wait_until(registered, timeout=T(5), message="logging-service registered, seen on B")
        a.kill()
        beats = set()
        deadline = time.monotonic() + T(8)  # four ttls
        while time.monotonic() < deadline:
            status, _, body = self.get(b, sid[0])
            self.assertEqual(status, 200, "the instance must stay registered on B")
            self.assertEqual(body["service"]["health"], "passing", body)
            beats.add(body["service"]["last_heartbeat"])
            time.sleep(0.25)
        self.assertGreaterEqual(len(beats), 4, "renewals reach B: %r" % sorted(beats))
        self.assertTrue(lg.running())

    def tmp_dir(self):
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="replicas-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_quorum_loss_and_return(self):
        """Two members killed: writes on either replica 503 naming the
        store, reads stale on both APIs. Members back: the header goes,
        writes are acknowledged, and a write committed while B's watch was
        down reaches B."""
        a, b = self.start_replica(), self.start_replica()
        _, body = self.register(a, "before")
        sid = body["service_id"]
        self.wait_seen(b, sid)

        self.cluster.kill(1)
        self.cluster.kill(2)
        for svc in (a, b):
            wait_until(lambda: svc.request("GET", "/v1/services")[1].get("X-Registry-Stale")
                       == "true", timeout=T(5), interval=0.05,
                       message="%s says its reads are stale" % svc.url)
            status, answer = self.register(svc, "no-quorum", expect=None)
            self.assertEqual(status, 503, answer)
            self.assertIs(answer["success"], False)
            self.assertIn("etcd", answer["error"])
            self.assertIn("no quorum", answer["error"])
            status, headers, listing = svc.request("GET", "/v1/services")
            self.assertEqual(status, 200)
            self.assertIn(sid, {s["id"] for s in listing["services"]})
            self.assertEqual(headers.get("X-Registry-Stale"), "true")
            status, headers, _ = svc.request("GET", "/v1/catalog/service/before")
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("X-Consul-KnownLeader"), "false")
            status, headers, health = svc.request("GET", "/health")
            self.assertEqual(status, 200)
            self.assertEqual(health["status"], "stale")
            self.assertEqual(health["store"]["backend"], "etcd")
            self.assertIs(health["store"]["writable"], False)
            status, headers, _ = self.get(svc, sid)
            self.assertEqual((status, headers.get("X-Registry-Stale")), (200, "true"))
            # the KV reads say it too (a key never written: 404, still stale)
            status, headers, _ = svc.request("GET", "/v1/kv/never/written")
            self.assertEqual((status, headers.get("X-Registry-Stale")), (404, "true"))

        self.cluster.start(1)
        self.cluster.start(2)
        self.cluster.wait_healthy()

        def acked():
            return self.register(a, "after", expect=None)[0] == 201
        wait_until(acked, timeout=T(20), interval=0.3,
                   message="writes acknowledged again once the quorum is back")
        for svc in (a, b):
            wait_until(lambda: svc.request("GET", "/v1/services")[1].get("X-Registry-Stale")
                       is None, timeout=T(5), message="%s not stale any more" % svc.url)
            _, headers, _ = svc.request("GET", "/v1/catalog/service/before")
            self.assertEqual(headers.get("X-Consul-KnownLeader"), "true")
            status, _, health = svc.request("GET", "/health")
            self.assertEqual((health["status"], health["store"]["writable"]), ("ok", True))
        self.assertEqual(self.register(b, "after-on-b")[0], 201)
        self.same_index(a, b, timeout=2.0)

    def test_watch_catches_up_after_quorum_returns(self):
        """A replica that stays up through the quorum loss catches up from
        its revision: a write made through the other replica as soon as the
        quorum is back reaches it, and it stops saying stale."""
        a, b = self.start_replica(), self.start_replica()
        self.register(a, "before")
        self.same_index(a, b)
        self.cluster.kill(1)
        self.cluster.kill(2)
        wait_until(lambda: b.request("GET", "/v1/services")[1].get("X-Registry-Stale")
                   == "true", timeout=T(5), message="B stale")
        self.cluster.start(1)
        self.cluster.start(2)
        self.cluster.wait_healthy()
        sids = []

        def acked():
            status, body = self.register(a, "during", expect=None)
            if status == 201:
                sids.append(body["service_id"])
            return status == 201
        wait_until(acked, timeout=T(20), interval=0.3, message="A acknowledges again")
        self.wait_seen(b, sids[0], timeout=T(10))
        wait_until(lambda: b.request("GET", "/v1/services")[1].get("X-Registry-Stale") is None,
                   timeout=T(5), message="B not stale any more")
        self.same_index(a, b, timeout=2.0)

    def test_everything_restarted_comes_back(self):
        """Every replica and every etcd member restarted: registrations and
        keys are back with their ids and indexes."""
        a, b = self.start_replica(), self.start_replica()
        sids = [self.register(a if n % 2 else b, "kept-%d" % n)[1]["service_id"]
                for n in range(4)]
        self.assertEqual(b.request("PUT", "/v1/kv/kept/key", b"v")[0], 200)
        index = self.same_index(a, b)
        before = {sid: self.get(a, sid)[2]["service"] for sid in sids}
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)
        for i in range(3):
            self.cluster.stop(i)
        for i in range(3):
            self.cluster.start(i)
        self.cluster.wait_healthy()
        a, b = self.start_replica(), self.start_replica()
        for svc in (a, b):
            for sid in sids:
                status, _, body = self.get(svc, sid)
                self.assertEqual(status, 200, "%s is gone from %s" % (sid, svc.url))
                for field in ("id", "name", "host", "port", "ttl"):
                    self.assertEqual(body["service"][field], before[sid][field], field)
            status, _, value = svc.request("GET", "/v1/kv/kept/key?raw")
            self.assertEqual((status, value), (200, "v"))
        # the index is etcd's revision: it did not go back
        self.assertGreaterEqual(self.same_index(a, b), index)

    def test_key_modify_index_survives_restart(self):
        """A key's ModifyIndex is the same after every process restarted:
        the etcd store's load gives each record its mod_revision as
        store_revision (store.h), so the loaded key keeps its index."""
        a = self.start_replica()
        self.assertEqual(a.request("PUT", "/v1/kv/kept/index", b"v")[0], 200)
        _, modify = self.kv(a, "kept/index")
        self.assertGreater(modify, 0)
        self.assertEqual(a.stop(), 0)
        for i in range(3):
            self.cluster.stop(i)
        for i in range(3):
            self.cluster.start(i)
        self.cluster.wait_healthy()
        b = self.start_replica()
        self.assertEqual(self.kv(b, "kept/index"), (200, modify))


if __name__ == "__main__":
    skip_without_etcd()
    unittest.main(verbosity=2)
