#!/usr/bin/python3
"""Integration tests of the registry's KV config store (Consul's /v1/kv):
the answer shapes, ?raw, ?recurse, ?keys&separator, flags, CAS (cas=0,
cas=N, a race of 20 writers), DELETE ?recurse and ?cas, blocking reads,
X-Registry-Index, "kv" events, durability across SIGKILL, --kv-seed, the
ACL rule for config/<service>/ and bad input.

Each test starts its own registry on 127.0.0.1 with an ephemeral port and a
SQLite file in a fresh temporary directory. A blocking read is known to be
parked by the registry's gauge (registry_kv_reads_parked in /metrics).

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_kv.py
"""

import base64
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout

OPS = "ops-kv-s3cr3t"
MSG = "msg-kv-s3cr3t"


class KVTestCase(svctest.ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="registry-kv-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db_path = os.path.join(self.tmp, "registry.db")

    def start_registry(self, *args, check=True):
        svc = Service()
        self.addCleanup(svc.close)
        if check:
            self.addCleanup(self.finish_service, svc)
        svc.start("registry", ["--port", "0", "--bind", "127.0.0.1",
                               "--data", self.db_path] + list(args))
        return svc

    def raw(self, svc, method, path, body=None, headers=None):
        """(status, headers, bytes) with the path sent as it is."""
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=T(30))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.msg, resp.read()
        finally:
            conn.close()

    def put(self, svc, key, value=b"", query="", headers=None):
        """PUT: the JSON literal answered (True/False), checking its type."""
        status, hdrs, body = self.raw(svc, "PUT", "/v1/kv/" + key + query, value, headers)
        self.assertEqual(status, 200, body)
        self.assertEqual(hdrs.get("Content-Type"), "application/json")
        self.assertIn(body, (b"true", b"false"))
        self.assertTrue(hdrs.get("X-Registry-Index").isdigit())
        return body == b"true"

    def delete(self, svc, key, query=""):
        status, hdrs, body = self.raw(svc, "DELETE", "/v1/kv/" + key + query)
        self.assertEqual(status, 200, body)
        self.assertIn(body, (b"true", b"false"))
        return body == b"true"

    def get(self, svc, key, query=""):
        """(status, X-Registry-Index, parsed JSON) of a GET."""
        status, hdrs, body = self.raw(svc, "GET", "/v1/kv/" + key + query)
        self.assertJsonContentType(hdrs, body)
        return status, int(hdrs.get("X-Registry-Index")), json.loads(body)

    def entry(self, svc, key):
        status, index, body = self.get(svc, key)
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body), 1)
        self.assertEqual(index, body[0]["ModifyIndex"])
        return body[0]

    def metric(self, svc, name):
        _, _, text = svc.request("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
        raise AssertionError("no %s in /metrics" % name)

    # --- shapes --------------------------------------------------------------

    def test_put_get_shapes_raw_flags(self):
        """Consul's shapes: a list of one object with LockIndex, Key, Flags,
        Value (base64; null when empty), CreateIndex, ModifyIndex."""
        reg = self.start_registry()
        self.assertTrue(self.put(reg, "config/app/name", b"hello", "?flags=42"))
        e = self.entry(reg, "config/app/name")
        self.assertEqual(set(e), {"LockIndex", "Key", "Flags", "Value", "CreateIndex",
                                  "ModifyIndex"})
        self.assertEqual((e["LockIndex"], e["Key"], e["Flags"]), (0, "config/app/name", 42))
        self.assertEqual(base64.b64decode(e["Value"]), b"hello")
        self.assertEqual(e["CreateIndex"], e["ModifyIndex"])
        # any bytes, NUL included; ?raw gives them back as they are
        blob = bytes(range(256)) * 3
        self.assertTrue(self.put(reg, "config/app/name", blob, "?flags=18446744073709551615"))
        e2 = self.entry(reg, "config/app/name")
        self.assertEqual(base64.b64decode(e2["Value"]), blob)
        self.assertEqual(e2["Flags"], 18446744073709551615)
        self.assertEqual(e2["CreateIndex"], e["CreateIndex"])
        self.assertGreater(e2["ModifyIndex"], e["ModifyIndex"])
        status, hdrs, body = self.raw(reg, "GET", "/v1/kv/config/app/name?raw")
        self.assertEqual((status, body), (200, blob))
        self.assertEqual(hdrs.get("Content-Type"), "application/octet-stream")
        self.assertEqual(int(hdrs.get("X-Registry-Index")), e2["ModifyIndex"])
        # an empty value is null
        self.assertTrue(self.put(reg, "empty"))
        self.assertIsNone(self.entry(reg, "empty")["Value"])
        status, _, body = self.raw(reg, "GET", "/v1/kv/empty?raw")
        self.assertEqual((status, body), (200, b""))
        # a missing key: 404 with the JSON error, the registry index
        status, hdrs, body = self.raw(reg, "GET", "/v1/kv/nope")
        self.assertEqual(status, 404)
        self.assertIs(json.loads(body)["success"], False)
        self.assertEqual(int(hdrs.get("X-Registry-Index")), e2["ModifyIndex"] + 1)

    def test_recurse_and_keys_with_separator(self):
        reg = self.start_registry()
        for k in ("a/b/c", "a/b/d", "a/bz", "a/x", "b/y", "a"):
            self.assertTrue(self.put(reg, k, k.encode()))
        status, index, body = self.get(reg, "a/", "?recurse")
        self.assertEqual(status, 200)
        self.assertEqual([e["Key"] for e in body], ["a/b/c", "a/b/d", "a/bz", "a/x"])
        self.assertEqual(index, max(e["ModifyIndex"] for e in body))
        self.assertEqual(self.get(reg, "a/", "?keys")[2], ["a/b/c", "a/b/d", "a/bz", "a/x"])
        # Consul's separator: cut at the first one after the prefix
        self.assertEqual(self.get(reg, "a/", "?keys&separator=/")[2], ["a/b/", "a/bz", "a/x"])
        self.assertEqual(self.get(reg, "", "?keys&separator=/")[2], ["a", "a/", "b/"])
        self.assertEqual(len(self.get(reg, "", "?recurse")[2]), 6)
        self.assertEqual(self.get(reg, "zz/", "?recurse")[0], 404)
        self.assertEqual(self.get(reg, "zz/", "?keys")[0], 404)

    def test_cas(self):
        reg = self.start_registry()
        self.assertFalse(self.put(reg, "lock", b"x", "?cas=7"))  # missing key: false
        self.assertEqual(self.get(reg, "lock")[0], 404)
        self.assertTrue(self.put(reg, "lock", b"a", "?cas=0"))
        self.assertFalse(self.put(reg, "lock", b"b", "?cas=0"))
        mi = self.entry(reg, "lock")["ModifyIndex"]
        self.assertFalse(self.put(reg, "lock", b"c", "?cas=%d" % (mi + 100)))
        self.assertTrue(self.put(reg, "lock", b"d", "?cas=%d" % mi))
        self.assertFalse(self.put(reg, "lock", b"e", "?cas=%d" % mi))
        self.assertEqual(base64.b64decode(self.entry(reg, "lock")["Value"]), b"d")

    def test_cas_race_has_one_winner(self):
        """20 threads PUT the same key with the same cas at once: one true."""
        reg = self.start_registry()
        self.assertTrue(self.put(reg, "race", b"start"))
        mi = self.entry(reg, "race")["ModifyIndex"]
        for cas in (mi, 0):
            if cas == 0:
                self.assertTrue(self.delete(reg, "race"))
            results = []
            barrier = threading.Barrier(20)

            def writer(n):
                barrier.wait()
                st, _, body = self.raw(reg, "PUT", "/v1/kv/race?cas=%d" % cas, b"w%d" % n)
                results.append((st, body))
            threads = [threading.Thread(target=writer, args=(n,)) for n in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(T(30))
            self.assertEqual(len(results), 20)
            self.assertTrue(all(st == 200 for st, _ in results), results)
            self.assertEqual([b for _, b in results].count(b"true"), 1, (cas, results))

    def test_delete_recurse_and_cas(self):
        reg = self.start_registry()
        for k in ("d/1", "d/2", "d/3/x", "dd"):
            self.assertTrue(self.put(reg, k, b"v"))
        mi = self.entry(reg, "d/1")["ModifyIndex"]
        self.assertFalse(self.delete(reg, "d/1", "?cas=0"))
        self.assertFalse(self.delete(reg, "d/1", "?cas=%d" % (mi + 1)))
        self.assertTrue(self.delete(reg, "d/1", "?cas=%d" % mi))
        self.assertEqual(self.get(reg, "d/1")[0], 404)
        self.assertTrue(self.delete(reg, "d/", "?recurse"))
        self.assertEqual(self.get(reg, "d/", "?recurse")[0], 404)
        self.assertEqual(self.get(reg, "", "?keys")[2], ["dd"])
        self.assertTrue(self.delete(reg, "nothing"))  # Consul: true
        status, _, body = self.raw(reg, "DELETE", "/v1/kv/d/?recurse&cas=1")
        self.assertEqual(status, 400, body)

    def test_events_and_index(self):
        """Each committed write takes the next registry index and makes a
        "kv" event (?type=kv filters them)."""
        reg = self.start_registry()
        self.assertTrue(self.put(reg, "k1", b"v"))
        self.assertTrue(self.delete(reg, "k1"))
        _, _, body = reg.request("GET", "/v1/events?index=0")
        self.assertEqual(body["index"], 2)
        _, _, body = reg.request("GET", "/v1/events?index=1&type=kv&wait=0s")
        self.assertEqual([(e["type"], e["index"], e["data"]) for e in body["events"]],
                         [("kv", 2, {"key": "k1", "op": "delete", "modify_index": 2})])
        st, _, body = reg.request("POST", "/v1/services",
                                  {"name": "web", "host": "127.0.0.1", "port": 80})
        self.assertEqual(st, 201)
        self.assertTrue(self.put(reg, "k2", b"v"))
        self.assertEqual(self.entry(reg, "k2")["ModifyIndex"], 4)

    def test_blocking_read(self):
        """A read with ?index= of the key's ModifyIndex parks; a write of
        another key does not wake it, a write of its key does; with no write
        it answers when its wait ends."""
        reg = self.start_registry()
        self.assertTrue(self.put(reg, "watch/me", b"1"))
        mi = self.entry(reg, "watch/me")["ModifyIndex"]
        result = {}

        def reader():
            result["r"] = self.get(reg, "watch/me", "?index=%d&wait=30s" % mi)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        wait_until(lambda: self.metric(reg, "registry_kv_reads_parked") == 1, T(10))
        self.assertTrue(self.put(reg, "watch/other", b"x"))
        self.assertTrue(self.put(reg, "watchX", b"x"))
        self.assertEqual(self.metric(reg, "registry_kv_reads_parked"), 1)
        self.assertTrue(self.put(reg, "watch/me", b"2"))
        t.join(T(10))
        status, index, body = result["r"]
        self.assertEqual(status, 200)
        self.assertEqual(base64.b64decode(body[0]["Value"]), b"2")
        self.assertGreater(index, mi)
        # the wait ends: the same state again
        st, idx2, body = self.get(reg, "watch/me", "?index=%d&wait=1s" % index)
        self.assertEqual((st, idx2), (200, index))
        # a prefix read is woken by a key under it, and by its deletion
        result.clear()

        def preader():
            result["r"] = self.get(reg, "watch/", "?recurse&index=%d&wait=30s" % index)
        t = threading.Thread(target=preader, daemon=True)
        t.start()
        wait_until(lambda: self.metric(reg, "registry_kv_reads_parked") == 1, T(10))
        self.assertTrue(self.put(reg, "other", b"x"))
        self.assertEqual(self.metric(reg, "registry_kv_reads_parked"), 1)
        self.assertTrue(self.delete(reg, "watch/other"))
        t.join(T(10))
        status, pindex, body = result["r"]
        self.assertEqual([e["Key"] for e in body], ["watch/me"])
        self.assertGreater(pindex, index)
        # a read parked at shutdown is answered
        result.clear()

        def late():
            result["r"] = self.get(reg, "watch/", "?recurse&index=%d&wait=5m" % pindex)
        t = threading.Thread(target=late, daemon=True)
        t.start()
        wait_until(lambda: self.metric(reg, "registry_kv_reads_parked") == 1, T(10))
        self.assertEqual(reg.stop(signal.SIGTERM), 0)
        t.join(T(10))
        self.assertEqual(result["r"][0], 200)

    def test_survives_sigkill(self):
        reg = self.start_registry(check=False)
        self.assertTrue(self.put(reg, "durable/k", b"kept", "?flags=3"))
        e = self.entry(reg, "durable/k")
        reg.kill()
        reg2 = self.start_registry()
        self.assertEqual(self.entry(reg2, "durable/k"), e)
        # the index goes on past every index before
        self.assertTrue(self.put(reg2, "durable/k", b"new", "?cas=%d" % e["ModifyIndex"]))
        self.assertGreater(self.entry(reg2, "durable/k")["ModifyIndex"], e["ModifyIndex"])

    def test_seed_does_not_overwrite(self):
        reg = self.start_registry()
        self.assertTrue(self.put(reg, "config/messages-service/message", b"mine"))
        self.assertEqual(reg.stop(signal.SIGTERM), 0)
        seed = os.path.join(self.tmp, "seed.json")
        with open(seed, "w") as f:
            json.dump({"config/messages-service/message": "seeded",
                       "config/facade-service/replicas": "3"}, f)
        reg2 = self.start_registry("--kv-seed", seed)
        self.assertEqual(base64.b64decode(self.entry(reg2, "config/messages-service/message")
                                          ["Value"]), b"mine")
        self.assertEqual(base64.b64decode(self.entry(reg2, "config/facade-service/replicas")
                                          ["Value"]), b"3")
        self.assertTrue(reg2.wait_for_log(r"--kv-seed .*: 1 keys written"))
        # a bad file exits 2 with one line
        for content in ("{", '{"a": 1}', '{"../x": "v"}', "[]"):
            with open(seed, "w") as f:
                f.write(content)
            res = svctest.run_cli("registry", ["--port", "0", "--data", ":memory:",
                                               "--kv-seed", seed], cwd=self.tmp)
            err = res.stderr if isinstance(res.stderr, str) else res.stderr.decode()
            self.assertEqual(res.returncode, 2, (content, err))
            self.assertEqual(len([ln for ln in err.splitlines() if "kv-seed" in ln]), 1, err)

    def test_acl_service_token_writes_its_config(self):
        tokens = os.path.join(self.tmp, "tokens.json")
        with open(tokens, "w") as f:
            json.dump({OPS: "write", MSG: "service:messages-service"}, f)
        reg = self.start_registry("--acl-tokens", tokens)
        h = {"X-Consul-Token": MSG}
        self.assertTrue(self.put(reg, "config/messages-service/x", b"1", headers=h))
        status, _, body = self.raw(reg, "PUT", "/v1/kv/config/facade-service/x", b"1", h)
        self.assertEqual(status, 403, body)
        self.assertIs(json.loads(body)["success"], False)
        status, _, body = self.raw(reg, "PUT", "/v1/kv/config/facade-service/x", b"1")
        self.assertEqual(status, 403, body)
        # reads need the read right; the service token has it
        status, _, _ = self.raw(reg, "GET", "/v1/kv/config/messages-service/x", headers=h)
        self.assertEqual(status, 200)
        status, _, _ = self.raw(reg, "GET", "/v1/kv/config/messages-service/x")
        self.assertEqual(status, 403)
        self.assertTrue(self.put(reg, "config/facade-service/x", b"1",
                                 headers={"X-Registry-Token": OPS}))

    def test_bad_input_changes_nothing(self):
        reg = self.start_registry()
        self.assertTrue(self.put(reg, "ok", b"v"))
        before = self.get(reg, "", "?recurse")
        cases = [
            ("PUT", "/v1/kv/a%00b", b"v", 400),
            ("PUT", "/v1/kv/a/../b", b"v", 400),
            ("PUT", "/v1/kv/..", b"v", 400),
            ("PUT", "/v1/kv//lead", b"v", 400),
            ("PUT", "/v1/kv/" + "k" * 513, b"v", 400),
            ("PUT", "/v1/kv/big", b"x" * (512 * 1024 + 1), 413),
            ("PUT", "/v1/kv/f?flags=-1", b"v", 400),
            ("PUT", "/v1/kv/f?flags=18446744073709551616", b"v", 400),
            ("PUT", "/v1/kv/f?flags=abc", b"v", 400),
            ("PUT", "/v1/kv/f?cas=x", b"v", 400),
            ("PUT", "/v1/kv/f?acquire=abc", b"v", 400),
            ("PUT", "/v1/kv/", b"v", 400),
            ("GET", "/v1/kv/ok?index=abc", None, 400),
            ("GET", "/v1/kv/ok?index=1&wait=11m", None, 400),
            ("GET", "/v1/kv/ok?index=1&wait=10parsecs", None, 400),
            ("GET", "/v1/kv/a?separator=/", None, 400),
            ("DELETE", "/v1/kv/ok?cas=no", None, 400),
            ("DELETE", "/v1/kv/a/../ok", None, 400),
            ("POST", "/v1/kv/ok", b"v", 405),
        ]
        for method, path, body, want in cases:
            status, hdrs, text = self.raw(reg, method, path, body)
            self.assertEqual(status, want, (method, path[:80], text[:200]))
            self.assertJsonContentType(hdrs, path[:80])
            if status != 405 and "%00" not in path:  # those the server answers itself
                self.assertTrue(hdrs.get("X-Registry-Index", "").isdigit(), path[:80])
            doc = json.loads(text)
            self.assertIs(doc["success"], False, path[:80])
            self.assertTrue(doc["error"], path[:80])
        self.assertEqual(self.get(reg, "", "?recurse"), before)
        # the limits themselves are allowed
        self.assertTrue(self.put(reg, "k" * 512, b"v"))
        self.assertTrue(self.put(reg, "big", b"x" * (512 * 1024)))


    def test_messages_service_follows_its_key(self):
        """messages-service answers config/messages-service/message when it
        exists (a PUT shows without a restart), --message when it does not."""
        reg = self.start_registry()
        msg = Service()
        self.addCleanup(msg.close)
        self.addCleanup(self.finish_service, msg)
        msg.start("messages-service", ["--port", "0", "--registry", reg.url, "--ttl", "2s",
                                       "--message", "from the flag"])

        def text():
            status, _, body = msg.request("GET", "/messages")
            self.assertEqual(status, 200, body)
            return body["message"]
        self.assertEqual(text(), "from the flag")
        # its blocking read is parked at the registry
        wait_until(lambda: self.metric(reg, "registry_kv_reads_parked") == 1, T(10))
        self.assertTrue(self.put(reg, "config/messages-service/message", "héllo".encode()))
        wait_until(lambda: text() == "héllo", T(10), message="the PUT did not show")
        self.assertTrue(self.put(reg, "config/messages-service/message", b"again"))
        wait_until(lambda: text() == "again", T(10))
        self.assertTrue(self.delete(reg, "config/messages-service/message"))
        wait_until(lambda: text() == "from the flag", T(10))
        # a value it cannot answer is ignored
        self.assertTrue(self.put(reg, "config/messages-service/message", b"\xff\xfe"))
        msg.wait_for_log(r"ignored: not UTF-8")
        self.assertEqual(text(), "from the flag")


if __name__ == "__main__":
    unittest.main()
