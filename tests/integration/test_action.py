"""Integration tests of the registry's JSON action protocol (POST
/v1/registry, registry/api/action.c): every action's answer, that it is the
same catalog as the native routes (a registration made one way is seen the
other way), renewal and deregistration, every bad request with its status
and error body, the native refusals (409, 413, 429) and access control with
--acl-tokens.

Run by ctest with the system interpreter; SVC_BIN_DIR points at the
build's executables."""

import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from svctest import Service, ServiceTestCase, timeout, wait_until  # noqa: E402

PATH = "/v1/registry"

OPS = "ops-s3cr3t-a1b2c3"      # write
DASH = "dash-s3cr3t-d4e5f6"    # read
WEB = "web-s3cr3t-0a9b8c"      # service:web
TOKENS = {OPS: "write", DASH: "read", WEB: "service:web"}


def tok(token):
    return {"X-Registry-Token": token}


class ActionBase(ServiceTestCase):

    def start_registry(self, *args):
        reg = Service().start("registry", ["--port", "0", "--backend", "memory",
                                           "--cleanup-interval", "100ms"]
                              + list(args))
        self.addCleanup(self.finish_service, reg)
        return reg

    def act(self, reg, body, token=None, query=""):
        return reg.request("POST", PATH + query, body,
                           headers=tok(token) if token else None)

    def ok(self, reg, body, token=None, query=""):
        return self.assertJsonOk(self.act(reg, body, token, query), 200,
                                 "action %r" % (body,))

    def err(self, reg, body, status, token=None, query=""):
        return self.assertJsonError(self.act(reg, body, token, query), status,
                                    "action %r" % (body,))

    def register(self, reg, token=None, query="", ttl=None, **info):
        service_info = {"name": "web", "host": "127.0.0.1", "port": 9000}
        service_info.update(info)
        body = {"action": "register", "service_info": service_info}
        if ttl is not None:
            body["ttl"] = ttl
        reply = self.ok(reg, body, token, query)
        self.assertEqual(set(reply), {"success", "service_id", "message"})
        self.assertEqual(reply["message"], "Service registered successfully")
        return reply["service_id"]

    def native(self, reg, sid, token=None):
        return reg.request("GET", "/v1/services/" + sid,
                           headers=tok(token) if token else None)


class ActionTest(ActionBase):

    def test_every_action_answers_in_its_shape_on_the_native_catalog(self):
        reg = self.start_registry()
        sid = self.register(reg, name="logging-service", type="logging",
                            tags=["v1"], metadata={"zone": "a"}, ttl=10)
        self.assertTrue(sid.startswith("logging-service-"), sid)

        # the native routes see that instance, with the ttl of the top level
        native = self.assertJsonOk(self.native(reg, sid), 200)["service"]
        self.assertEqual((native["name"], native["host"], native["port"],
                          native["type"], native["tags"], native["metadata"],
                          native["ttl"], native["health"]),
                         ("logging-service", "127.0.0.1", 9000, "logging",
                          ["v1"], {"zone": "a"}, 10, "passing"))
        listed = self.assertJsonOk(reg.request("GET", "/v1/services"), 200)
        self.assertEqual([s["id"] for s in listed["services"]], [sid])

        # get: the native instance object
        got = self.ok(reg, {"action": "get", "service_id": sid})
        self.assertEqual(set(got), {"success", "service"})
        self.assertEqual(got["service"], native)

        # and the other way round: a native registration seen by the protocol
        status, _, body = reg.request("POST", "/v1/services", {
            "name": "messages-service", "host": "127.0.0.1", "port": 5002,
            "type": "messages"})
        self.assertEqual(status, 201, body)
        other = body["service_id"]

        everything = self.ok(reg, {"action": "list"})
        self.assertEqual(set(everything), {"success", "services"})
        self.assertEqual([s["id"] for s in everything["services"]], [sid, other])
        by_type = self.ok(reg, {"action": "list", "service_type": "messages"})
        self.assertEqual([s["id"] for s in by_type["services"]], [other])
        none = self.ok(reg, {"action": "list", "service_type": "nothing"})
        self.assertEqual(none["services"], [])

        found = self.ok(reg, {"action": "discover", "service_type": "logging"})
        self.assertEqual(set(found), {"success", "service"})
        self.assertEqual(found["service"]["id"], sid)
        found = self.ok(reg, {"action": "discover", "name": "messages-service"})
        self.assertEqual(found["service"]["id"], other)
        found = self.ok(reg, {"action": "discover", "name": "logging-service",
                              "service_type": "logging"})
        self.assertEqual(found["service"]["id"], sid)
        body = self.err(reg, {"action": "discover", "service_type": "nothing"}, 404)
        self.assertEqual(body["error"], "No healthy service of type 'nothing' found")
        body = self.err(reg, {"action": "discover", "name": "nobody"}, 404)
        self.assertEqual(body["error"], "No healthy service named 'nobody' found")
        body = self.err(reg, {"action": "discover", "name": "logging-service",
                              "service_type": "messages"}, 404)
        self.assertEqual(body["error"], "No healthy service named 'logging-service' "
                         "of type 'messages' found")

        before = int(time.time())
        health = self.ok(reg, {"action": "health"})
        self.assertEqual(set(health), {"success", "status", "timestamp"})
        self.assertEqual(health["status"], "ok")
        self.assertIsInstance(health["timestamp"], int)
        self.assertLessEqual(before - 1, health["timestamp"])
        self.assertLessEqual(health["timestamp"], int(time.time()) + 1)

    def test_re_registering_its_id_answers_200_and_keeps_one_instance(self):
        reg = self.start_registry()
        sid = self.register(reg, ttl=30)
        again = self.register(reg, id=sid, ttl=30, tags=["new"])
        self.assertEqual(again, sid)
        listed = self.ok(reg, {"action": "list"})["services"]
        self.assertEqual([(s["id"], s["tags"]) for s in listed], [(sid, ["new"])])

    def test_renew_keeps_it_passing_and_revives_it(self):
        reg = self.start_registry()
        sid = self.register(reg, ttl=1)
        # renewed every 0.3 s for three ttls: never critical
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            reply = self.ok(reg, {"action": "renew", "service_id": sid})
            self.assertEqual(reply, {"success": True,
                                     "message": "Service renewed successfully"})
            health = self.ok(reg, {"action": "get", "service_id": sid})["service"]["health"]
            self.assertEqual(health, "passing")
            time.sleep(0.3)
        # left alone it turns critical and leaves discovery ...
        wait_until(lambda: self.ok(reg, {"action": "get", "service_id": sid})
                   ["service"]["health"] == "critical", timeout=timeout(5),
                   message="instance never turned critical")
        self.err(reg, {"action": "discover", "name": "web"}, 404)
        # ... and a renewal brings it back
        self.ok(reg, {"action": "renew", "service_id": sid})
        found = self.ok(reg, {"action": "discover", "name": "web"})
        self.assertEqual((found["service"]["id"], found["service"]["health"]),
                         (sid, "passing"))

    def test_deregister_removes_it(self):
        reg = self.start_registry()
        sid = self.register(reg)
        reply = self.ok(reg, {"action": "deregister", "service_id": sid})
        self.assertEqual(reply, {"success": True,
                                 "message": "Service deregistered successfully"})
        self.assertJsonError(self.native(reg, sid), 404)
        self.assertEqual(self.ok(reg, {"action": "list"})["services"], [])
        body = self.err(reg, {"action": "get", "service_id": sid}, 404)
        self.assertEqual(body["error"], "service '%s' not found" % sid)
        self.err(reg, {"action": "discover", "name": "web"}, 404)
        body = self.err(reg, {"action": "deregister", "service_id": sid}, 404)
        self.assertEqual(body["error"], "service '%s' not found" % sid)
        body = self.err(reg, {"action": "renew", "service_id": sid}, 404)
        self.assertEqual(body["error"], "service '%s' not found; register again" % sid)

    def test_bad_requests_get_400_with_what_was_wrong(self):
        reg = self.start_registry()
        info = {"name": "web", "host": "127.0.0.1", "port": 9000}
        cases = [
            ({"action": "frob"}, "unknown action 'frob' (register, deregister, renew, "
             "get, list, discover or health)"),
            ({"action": "Register", "service_info": info},
             "unknown action 'Register' (register, deregister, renew, get, list, "
             "discover or health)"),
            ({}, "missing required field 'action'"),
            ({"service_info": info}, "missing required field 'action'"),
            ({"action": 1}, "field 'action' must be a string"),
            ({"action": None}, "field 'action' must be a string"),
            ({"action": ["register"]}, "field 'action' must be a string"),
            ([], "request body must be a JSON object"),
            ("\"register\"", "request body must be a JSON object"),
            ({"action": "register"}, "missing required field 'service_info'"),
            ({"action": "register", "service_info": "web"},
             "field 'service_info' must be an object"),
            ({"action": "register", "service_info": [info]},
             "field 'service_info' must be an object"),
            ({"action": "register", "service_info": dict(info, port=70000)},
             "field 'port' must be between 1 and 65535, got 70000"),
            ({"action": "register", "service_info": dict(info, port="9000")},
             "field 'port' must be an integer"),
            ({"action": "register", "service_info": {"host": "h", "port": 1}},
             "missing required field 'name'"),
            ({"action": "register", "service_info": info, "ttl": "10"},
             "field 'ttl' must be a number of seconds (10, or 0.5)"),
            ({"action": "register", "service_info": info, "ttl": 86401},
             "field 'ttl' must be between 0 and 86400, got 86401"),
            ({"action": "get"}, "missing required field 'service_id'"),
            ({"action": "renew"}, "missing required field 'service_id'"),
            ({"action": "deregister"}, "missing required field 'service_id'"),
            ({"action": "deregister", "service_id": 7},
             "field 'service_id' must be a string"),
            ({"action": "get", "service_id": ""},
             "field 'service_id' must be 1 to 165 characters, without NUL"),
            ({"action": "get", "service_id": "x" * 166},
             "field 'service_id' must be 1 to 165 characters, without NUL"),
            ({"action": "list", "service_type": 3},
             "field 'service_type' must be a string"),
            ({"action": "discover"},
             "give a service type (field 'service_type') or name (field 'name')"),
            ({"action": "discover", "name": False}, "field 'name' must be a string"),
        ]
        for body, error in cases:
            with self.subTest(body=body):
                got = self.err(reg, body, 400)
                self.assertEqual(got["error"], error)
        # bodies that are not JSON at all, in the native texts
        for raw, error in (
                ('{"action":"get"} x',
                 "request body is not valid JSON: text after the value (line 1, column 18)"),
                ('{"action":"health","action":"get"}', None),
                ('{"action":"get","service_id":"a\\u0000b"}', None),
                ('', None),
                (b'{"action":"\xff"}', None)):
            with self.subTest(raw=raw):
                got = self.err(reg, raw, 400)
                if error:
                    self.assertEqual(got["error"], error)
                else:
                    self.assertTrue(got["error"].startswith("request body "), got)
        # nothing of it was registered
        self.assertEqual(self.ok(reg, {"action": "list"})["services"], [])

    def test_refusals_are_the_native_ones(self):
        reg = self.start_registry("--max-per-name", "1")
        sid = self.register(reg)
        # a second instance of the name: 429, nothing changed
        body = self.err(reg, {"action": "register", "service_info": {
            "name": "web", "host": "127.0.0.1", "port": 9001}}, 429)
        self.assertIn("web", body["error"])
        # the known id at another address: 409 without ?replace=true
        body = self.err(reg, {"action": "register", "service_info": {
            "name": "web", "id": sid, "host": "127.0.0.1", "port": 9001}}, 409)
        self.assertEqual(body["error"], "instance %s is registered at 127.0.0.1:9000; "
                         "to move it, re-register with ?replace=true" % sid)
        self.err(reg, {"action": "register", "service_info": {
            "name": "web", "id": sid, "host": "127.0.0.1", "port": 9001}}, 400,
            query="?replace=yes")
        self.assertEqual(self.register(reg, id=sid, port=9001, query="?replace=true"), sid)
        self.assertEqual(self.assertJsonOk(self.native(reg, sid), 200)["service"]["port"],
                         9001)
        # a registration whose stored document would pass 64 KiB: 413
        metadata = {"k%02d" % i: "v" * 1024 for i in range(64)}
        body = self.err(reg, {"action": "register", "service_info": {
            "name": "big", "host": "127.0.0.1", "port": 1, "metadata": metadata}}, 413)
        self.assertEqual([s["id"] for s in self.ok(reg, {"action": "list"})["services"]],
                         [sid])

    def test_list_of_many_is_the_streamed_native_list(self):
        """list answers every instance, streamed (chunked) like the unpaged
        GET /v1/services, the same instances in the same order."""
        reg = self.start_registry()
        want = [self.register(reg, name="s%d" % (i % 7), port=1000 + i,
                              type="t%d" % (i % 3)) for i in range(300)]
        conn = http.client.HTTPConnection("127.0.0.1", int(reg.url.rsplit(":", 1)[1]),
                                          timeout=timeout(10))
        try:
            conn.request("POST", PATH, json.dumps({"action": "list"}))
            resp = conn.getresponse()
            raw = resp.read()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
            self.assertIsNotNone(resp.getheader("X-Registry-Index"))
        finally:
            conn.close()
        body = json.loads(raw)
        self.assertEqual([s["id"] for s in body["services"]], want)
        native = self.assertJsonOk(reg.request("GET", "/v1/services"), 200)
        self.assertEqual(body["services"], native["services"])
        t1 = self.ok(reg, {"action": "list", "service_type": "t1"})["services"]
        self.assertEqual([s["id"] for s in t1], want[1::3])


class ActionAclTest(ActionBase):

    def setUp(self):
        super().setUp()
        d = tempfile.mkdtemp(prefix="svctest-action-")
        self.addCleanup(shutil.rmtree, d, True)
        self.tokens = os.path.join(d, "tokens.json")
        with open(self.tokens, "w") as f:
            json.dump(TOKENS, f)

    def test_rights_are_the_native_routes_rights(self):
        reg = self.start_registry("--acl-tokens", self.tokens)
        sid = self.register(reg, OPS, name="web")
        other = self.register(reg, OPS, name="db", port=5432)
        actions = [
            {"action": "health"},
            {"action": "list"},
            {"action": "get", "service_id": sid},
            {"action": "discover", "name": "web"},
            {"action": "renew", "service_id": sid},
            {"action": "deregister", "service_id": sid},
            {"action": "register", "service_info": {"name": "web", "host": "h", "port": 1}},
            {"action": "frob"},
            "not json",
        ]
        # without a token (or with an unknown one) nothing is read, done or
        # even parsed: 403 before the body
        for body in actions:
            with self.subTest(body=body, token=None):
                got = self.err(reg, body, 403)
                self.assertTrue(got["error"].startswith("permission denied: no token"), got)
                got = self.err(reg, body, 403, token="wrong-token")
                self.assertEqual(got["error"], "permission denied: unknown token")
        # GET /health stays open
        self.assertJsonOk(reg.request("GET", "/health"), 200)

        # read: reads, no writes
        self.ok(reg, {"action": "health"}, DASH)
        self.assertEqual({s["id"] for s in self.ok(reg, {"action": "list"}, DASH)["services"]},
                         {sid, other})
        self.ok(reg, {"action": "get", "service_id": sid}, DASH)
        self.ok(reg, {"action": "discover", "name": "web"}, DASH)
        for body in ({"action": "renew", "service_id": sid},
                     {"action": "deregister", "service_id": sid},
                     {"action": "register",
                      "service_info": {"name": "web", "host": "h", "port": 1}}):
            with self.subTest(body=body, token="read"):
                got = self.err(reg, body, 403, DASH)
                self.assertEqual(got["error"],
                                 "permission denied: the token may not write service 'web'")
        # an unknown id is a 404 for a reader, as on the native routes
        self.err(reg, {"action": "renew", "service_id": "web-%s" % uuid.uuid4()}, 404, DASH)

        # service:web: its own name only
        self.ok(reg, {"action": "renew", "service_id": sid}, WEB)
        mine = self.register(reg, WEB, name="web", port=9100)
        got = self.err(reg, {"action": "renew", "service_id": other}, 403, WEB)
        self.assertEqual(got["error"], "permission denied: the token may not write service 'db'")
        self.err(reg, {"action": "deregister", "service_id": other}, 403, WEB)
        self.err(reg, {"action": "register",
                       "service_info": {"name": "db", "host": "h", "port": 2}}, 403, WEB)
        # nor take over db's id under its own name
        got = self.err(reg, {"action": "register", "service_info": {
            "name": "web", "id": other, "host": "127.0.0.1", "port": 5432}}, 400, WEB)
        self.assertEqual(got["error"], "field 'id' must be '<name>-<uuid>' for name 'web'")
        self.ok(reg, {"action": "deregister", "service_id": mine}, WEB)

        # write: everything
        self.ok(reg, {"action": "deregister", "service_id": other}, OPS)
        self.assertEqual({s["id"] for s in self.ok(reg, {"action": "list"}, OPS)["services"]},
                         {sid})


if __name__ == "__main__":
    unittest.main(verbosity=2)
