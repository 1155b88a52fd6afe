#!/usr/bin/python3
"""Integration tests of PUT /v1/txn, Consul's transaction endpoint, for KV
operations: several sets seen together, a failed check (cas, check-index)
answering 409 with nothing written, delete-tree, get and get-tree in a
transaction, the results' shapes, the index and the "kv" events, a
blocking read woken by a transaction seeing all of it, the
rights of every key (one refusal is a 403 for all), ?dc=, and bad bodies
(400 naming the op).

Debian's python3-consul (0.7.1) has no Txn class, so the transactions go
as raw HTTP; the keys they write are read back through python3-consul's
KV API, as a Consul user would.

Each test starts its own registry on 127.0.0.1 with an ephemeral port and a
SQLite file in a fresh temporary directory.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_txn.py
"""

import base64
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import consul  # noqa: E402  Debian's python3-consul (scripts/deps.sh --test)
import svctest  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout

OPS = "ops-txn-s3cr3t"
MSG = "msg-txn-s3cr3t"


def b64(s):
    return base64.b64encode(s).decode()


def kv(verb, key, value=None, **kw):
    op = {"Verb": verb, "Key": key}
    if value is not None:
        op["Value"] = b64(value)
    op.update(kw)
    return {"KV": op}


class TxnTestCase(svctest.ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="registry-txn-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start_registry(self, *args):
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("registry", ["--port", "0", "--bind", "127.0.0.1",
                               "--data", os.path.join(self.tmp, "registry.db")] + list(args))
        return svc

    def raw(self, svc, method, path, body=None, headers=None):
        """(status, headers, bytes) with the body sent as it is."""
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=T(30))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.msg, resp.read()
        finally:
            conn.close()

    def txn(self, svc, ops, query="", headers=None):
        """(status, X-Consul-Index, parsed JSON) of a PUT /v1/txn of ops
        (a list, sent as JSON; bytes sent as they are)."""
        body = ops if isinstance(ops, bytes) else json.dumps(ops).encode()
        status, hdrs, data = self.raw(svc, "PUT", "/v1/txn" + query, body, headers)
        self.assertJsonContentType(hdrs, data)
        self.assertEqual(hdrs.get("X-Consul-Index"), hdrs.get("X-Registry-Index"))
        return status, int(hdrs.get("X-Consul-Index")), json.loads(data)

    def client(self, svc, token=None):
        c = consul.Consul(host="127.0.0.1", port=svc.port, token=token)
        self.addCleanup(c.http.session.close)
        return c

    def test_sets_seen_together(self):
        """Three sets in one transaction: 200 with one result per set (the
        entry as written, Value null), each key readable through the Consul
        client, consecutive indexes ending at X-Consul-Index, one "kv" event
        per key."""
        reg = self.start_registry()
        c = self.client(reg)
        self.assertTrue(c.kv.put("before", "x"))
        _, before = c.kv.get("before")
        start = before["ModifyIndex"]
        status, index, body = self.txn(reg, [
            kv("set", "app/a", b"alpha", Flags=7),
            kv("set", "app/b", b"\x00\x01bin"),
            kv("set", "app/c", b""),
        ])
        self.assertEqual(status, 200, body)
        self.assertIsNone(body["Errors"])
        self.assertEqual([r["KV"]["Key"] for r in body["Results"]], ["app/a", "app/b", "app/c"])
        for r in body["Results"]:
            self.assertEqual(set(r["KV"]), {"LockIndex", "Key", "Flags", "Value",
                                            "CreateIndex", "ModifyIndex"})
            self.assertIsNone(r["KV"]["Value"])
        self.assertEqual(body["Results"][0]["KV"]["Flags"], 7)
        self.assertEqual([r["KV"]["ModifyIndex"] for r in body["Results"]],
                         [start + 1, start + 2, start + 3])
        self.assertEqual(index, start + 3)
        _, a = c.kv.get("app/a")
        self.assertEqual((a["Value"], a["Flags"], a["ModifyIndex"]), (b"alpha", 7, start + 1))
        _, b = c.kv.get("app/b")
        self.assertEqual(b["Value"], b"\x00\x01bin")
        _, keys = c.kv.get("app/", keys=True)
        self.assertEqual(keys, ["app/a", "app/b", "app/c"])
        _, _, ev = reg.request("GET", "/v1/events?index=%d&type=kv&wait=0s" % start)
        self.assertEqual([(e["index"], e["data"]["key"], e["data"]["op"]) for e in ev["events"]],
                         [(start + 1, "app/a", "set"), (start + 2, "app/b", "set"),
                          (start + 3, "app/c", "set")])

    def test_blocking_read_sees_the_whole_transaction(self):
        """A blocking read of the prefix, parked before the transaction, is
        woken once it is applied whole: it answers every key of it."""
        reg = self.start_registry()
        c = self.client(reg)
        self.assertTrue(c.kv.put("w/0", "x"))
        index, _ = c.kv.get("w/", recurse=True)
        answer = {}

        def read():
            answer["status"], _, answer["body"] = self.raw(
                reg, "GET", "/v1/kv/w/?recurse&index=%s&wait=30s" % index)

        reader = threading.Thread(target=read)
        reader.start()
        self.addCleanup(reader.join, T(30))
        wait_until(lambda: self.metric(reg, "registry_kv_reads_parked") == 1, T(10))
        status, _, body = self.txn(reg, [kv("set", "w/a", b"1"), kv("set", "w/b", b"2"),
                                         kv("delete", "w/0")])
        self.assertEqual(status, 200, body)
        reader.join(T(30))
        self.assertEqual(answer["status"], 200)
        self.assertEqual([e["Key"] for e in json.loads(answer["body"])], ["w/a", "w/b"])

    def metric(self, svc, name):
        _, _, text = svc.request("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
        raise AssertionError("no %s in /metrics" % name)

    def test_failed_check_is_409_and_writes_nothing(self):
        """A stale cas or check-index (or a check-not-exists of a key that
        is there) rolls the whole transaction back: 409 with Results null
        and Errors naming the op; no key changed, no index taken."""
        reg = self.start_registry()
        c = self.client(reg)
        self.assertTrue(c.kv.put("cfg/k", "old"))
        _, e = c.kv.get("cfg/k")
        mi = e["ModifyIndex"]
        for bad, what in ((kv("cas", "cfg/k", b"new", Index=mi + 5), "index is stale"),
                          (kv("check-index", "cfg/k", Index=mi + 5), "modify index"),
                          (kv("check-not-exists", "cfg/k"), "exists"),
                          (kv("get", "cfg/missing"), "doesn't exist"),
                          (kv("delete-cas", "cfg/k", Index=mi + 5), "index is stale")):
            status, index, body = self.txn(reg, [kv("set", "cfg/new", b"1"), bad,
                                                 kv("delete", "cfg/k")])
            self.assertEqual(status, 409, body)
            self.assertIsNone(body["Results"])
            self.assertEqual(len(body["Errors"]), 1)
            self.assertEqual(body["Errors"][0]["OpIndex"], 1)
            self.assertIn(what, body["Errors"][0]["What"])
            self.assertEqual(index, mi)
        _, e2 = c.kv.get("cfg/k")
        self.assertEqual((e2["Value"], e2["ModifyIndex"]), (b"old", mi))
        self.assertIsNone(c.kv.get("cfg/new")[1])
        _, _, ev = reg.request("GET", "/v1/events?index=%d&type=kv&wait=0s" % mi)
        self.assertEqual(ev["events"], [])
        # the same with the right index goes through
        status, index, body = self.txn(reg, [kv("cas", "cfg/k", b"new", Index=mi),
                                             kv("check-not-exists", "cfg/other")])
        self.assertEqual(status, 200, body)
        self.assertEqual(index, mi + 1)
        self.assertEqual(c.kv.get("cfg/k")[1]["Value"], b"new")

    def test_delete_tree_and_reads(self):
        """delete-tree removes every key under the prefix and gives no
        result; get and get-tree give the entries with their values as they
        are at that op; a transaction of reads only is answered from the
        committed state with the registry index."""
        reg = self.start_registry()
        c = self.client(reg)
        for k in ("t/a", "t/b/c", "t/b/d", "u/x"):
            self.assertTrue(c.kv.put(k, k.upper()))
        status, index, body = self.txn(reg, [kv("get-tree", "t/b/"), kv("get", "u/x")])
        self.assertEqual(status, 200, body)
        self.assertEqual([(r["KV"]["Key"], base64.b64decode(r["KV"]["Value"]))
                          for r in body["Results"]],
                         [("t/b/c", b"T/B/C"), ("t/b/d", b"T/B/D"), ("u/x", b"U/X")])
        self.assertEqual(index, c.kv.get("u/x")[1]["ModifyIndex"])
        status, index, body = self.txn(reg, [kv("get", "t/a"), kv("delete-tree", "t/"),
                                             kv("check-not-exists", "t/b/c"),
                                             kv("get-tree", "t/")])
        self.assertEqual(status, 200, body)
        # the get before the delete-tree; the tree after it is empty
        self.assertEqual(len(body["Results"]), 1)
        self.assertEqual(base64.b64decode(body["Results"][0]["KV"]["Value"]), b"T/A")
        _, keys = c.kv.get("", keys=True)
        self.assertEqual(keys, ["u/x"])
        # deletes only: Results null, as Consul answers
        status, _, body = self.txn(reg, [kv("delete", "u/x"), kv("delete", "never")])
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"Results": None, "Errors": None})
        self.assertIsNone(c.kv.get("u/x")[1])

    def test_rights_of_every_key(self):
        """With ACLs, every key of every op needs its right before anything
        is done: one key outside the token's config/<service>/ is a 403 for
        the whole transaction."""
        tokens = os.path.join(self.tmp, "tokens.json")
        with open(tokens, "w") as f:
            json.dump({OPS: "write", MSG: "service:messages-service"}, f)
        reg = self.start_registry("--acl-tokens", tokens)
        h = {"X-Consul-Token": MSG}
        ops = [kv("set", "config/messages-service/a", b"1"),
               kv("set", "config/facade-service/a", b"1")]
        status, _, body = self.txn(reg, ops, headers=h)
        self.assertEqual(status, 403, body)
        self.assertIs(body["success"], False)
        status, _, body = self.txn(reg, ops[:1] + [kv("delete-tree", "config/")], headers=h)
        self.assertEqual(status, 403, body)
        status, _, body = self.txn(reg, [kv("get", "config/messages-service/a")])
        self.assertEqual(status, 403, body)  # no token: not even a read
        admin = self.client(reg, token=OPS)
        _, keys = admin.kv.get("config/", keys=True)
        self.assertIsNone(keys)
        status, _, body = self.txn(reg, ops[:1], headers=h)
        self.assertEqual(status, 200, body)
        status, _, body = self.txn(reg, ops, headers={"X-Consul-Token": OPS})
        self.assertEqual(status, 200, body)
        self.assertEqual(admin.kv.get("config/", keys=True)[1],
                         ["config/facade-service/a", "config/messages-service/a"])

    def test_bad_bodies_are_400(self):
        """Not JSON, not an array, an op without KV, an unknown or session
        verb, bad base64, a bad key, a bad Flags, over 64 ops: 400 with a
        JSON error naming the op, and nothing written; another datacenter
        is Consul's 500."""
        reg = self.start_registry()
        c = self.client(reg)
        ok = kv("set", "ok", b"1")
        status, _, body = self.txn(reg, b"{not json")
        self.assertEqual(status, 400, body)
        self.assertIn("JSON", body["error"])
        status, _, body = self.txn(reg, {"KV": {"Verb": "set", "Key": "k"}})
        self.assertEqual(status, 400, body)
        self.assertIn("array", body["error"])
        status, _, body = self.txn(reg, [ok] * 65)
        self.assertEqual(status, 400, body)
        self.assertIn("64", body["error"])
        cases = [
            ({"Node": {"Verb": "set"}}, "only KV"),
            ({"kv": {}}, "no \"KV\""),
            ("set", "object"),
            (kv("frobnicate", "k"), "unknown verb"),
            (kv("lock", "k", b"1", Session="abc"), "sessions"),
            (kv("check-session", "k"), "sessions"),
            (kv("get-or-empty", "k"), "not supported"),
            ({"KV": {"Verb": "set", "Key": "k", "Value": "@@not base64@@"}}, "base64"),
            (kv("set", "/abs", b"1"), "must not start with '/'"),
            (kv("set", "a/../b", b"1"), ".."),
            (kv("set", "k", b"1", Flags=-1), "Flags"),
            (kv("cas", "k", b"1", Index="3"), "Index"),
            ({"KV": {"Key": "k"}}, "Verb"),
        ]
        for bad, what in cases:
            status, _, body = self.txn(reg, [ok, bad])
            self.assertEqual(status, 400, (bad, body))
            self.assertIs(body["success"], False)
            self.assertEqual(body["Errors"][0]["OpIndex"], 1, bad)
            self.assertIn(what, body["Errors"][0]["What"], bad)
            self.assertTrue(body["error"].startswith("op 1: "), body)
        self.assertIsNone(c.kv.get("ok")[1])
        status, _, data = self.raw(reg, "PUT", "/v1/txn?dc=elsewhere",
                                   json.dumps([ok]).encode())
        self.assertEqual((status, data), (500, b"No path to datacenter"))
        status, _, body = self.txn(reg, [ok], query="?dc=dc1")
        self.assertEqual(status, 200, body)
        self.assertEqual(c.kv.get("ok")[1]["Value"], b"1")

    def test_survives_restart(self):
        """A committed transaction is durable: its keys and indexes come
        back after a restart on the same file."""
        reg = self.start_registry()
        status, index, body = self.txn(reg, [kv("set", "d/a", b"1"), kv("set", "d/b", b"2")])
        self.assertEqual(status, 200, body)
        reg.stop()
        reg2 = self.start_registry()
        c = self.client(reg2)
        _, a = c.kv.get("d/a")
        _, b = c.kv.get("d/b")
        self.assertEqual((a["Value"], b["Value"]), (b"1", b"2"))
        self.assertEqual(b["ModifyIndex"], index)
        self.assertEqual(a["ModifyIndex"], index - 1)


if __name__ == "__main__":
    unittest.main()
