"""Integration tests of access control: the registry's --acl-tokens (who
may register, deregister, renew and read), the explicit ?replace=true a
known id needs to move to another address (with or without tokens), the
services' --token/--token-file, and logging-service's --peer-token that
lets only the facade store messages. Tokens must never reach a log.

Run by ctest with the system interpreter; SVC_BIN_DIR points at the
build's executables."""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from svctest import (Service, ServiceTestCase, request, run_cli,  # noqa: E402
                     wait_until)

OPS = "ops-s3cr3t-0f9e8d"          # write
DASH = "dash-s3cr3t-7a6b5c"        # read
LG = "lg-s3cr3t-1c2d3e"            # service:logging-service
FC = "fc-s3cr3t-4f5a6b"            # service:facade-service
PEER = "peer-s3cr3t-9z8y7x"        # logging-service --peer-token
WRONG = "wrong-s3cr3t-guess"       # in no table
SECRETS = (OPS, DASH, LG, FC, PEER, WRONG)
TOKENS = {OPS: "write", DASH: "read", LG: "service:logging-service",
          FC: ["service:facade-service", "service:other"]}


def tok(token):
    return {"X-Registry-Token": token}


def new_id(name):
    return "%s-%s" % (name, uuid.uuid4())


class AclBase(ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="svctest-acl-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.tokens = self.write("tokens.json", json.dumps(TOKENS))

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, binary, *args):
        svc = Service().start(binary, ["--port", "0", "--log-level", "debug"]
                              + list(args))
        self.addCleanup(self.assertNoSecrets, svc)
        self.addCleanup(self.finish_service, svc)
        return svc

    def start_registry(self, *args, acl=True):
        extra = ["--acl-tokens", self.tokens] if acl else []
        return self.start("registry", "--backend", "memory",
                          "--cleanup-interval", "100ms", *(extra + list(args)))

    def assertNoSecrets(self, svc):
        """No token appears anywhere in svc's log (run after it stopped)."""
        text = svc.log_text()
        for secret in SECRETS:
            self.assertNotIn(secret, text, "%s logged a token" % svc.name)

    def register(self, reg, status, token=None, query="", **fields):
        payload = {"name": "web", "host": "127.0.0.1", "port": 9000}
        payload.update(fields)
        reply = reg.request("POST", "/v1/services" + query, payload,
                            headers=tok(token) if token else None)
        if status >= 300:
            return self.assertJsonError(reply, status, "register %r" % payload)
        return self.assertJsonOk(reply, status, "register %r" % payload)["service_id"]

    def ids(self, reg, token=OPS, **query):
        q = "&".join("%s=%s" % kv for kv in query.items())
        body = self.assertJsonOk(
            reg.request("GET", "/v1/services" + ("?" + q if q else ""),
                        headers=tok(token)), 200, "list")
        return {s["id"] for s in body["services"]}

    def instance(self, reg, sid):
        return self.assertJsonOk(reg.request("GET", "/v1/services/" + sid,
                                             headers=tok(OPS)), 200)["service"]


class RegistryAclTest(AclBase):

    def test_without_a_token_nothing_changes_and_nothing_is_read(self):
        """With --acl-tokens an unauthenticated register, deregister and
        renew get 403 with the JSON error and change nothing; every read
        (list, get, discover, /metrics) needs a token; /health is open."""
        reg = self.start_registry()
        reg.wait_for_log(r"INFO registry ACLs on: 4 tokens from .*tokens\.json; "
                         r"callers without a token may do nothing")
        sid = self.register(reg, 201, OPS, name="web")
        body = self.register(reg, 403, name="web", port=9001)
        self.assertEqual(body["error"], "permission denied: no token (send one in "
                         "X-Registry-Token, X-Consul-Token or Authorization: Bearer)")
        for method, path in (("DELETE", "/v1/services/" + sid),
                             ("PUT", "/v1/services/%s/renew" % sid),
                             ("GET", "/v1/services"),
                             ("GET", "/v1/services/" + sid),
                             ("GET", "/v1/discover?name=web"),
                             ("GET", "/metrics")):
            with self.subTest(method=method, path=path):
                self.assertJsonError(reg.request(method, path), 403, path)
                body = self.assertJsonError(
                    reg.request(method, path, headers=tok(WRONG)), 403, path)
                self.assertEqual(body["error"], "permission denied: unknown token")
        self.assertJsonOk(reg.request("GET", "/health"), 200)
        self.assertEqual(self.ids(reg), {sid})
        self.assertEqual(self.instance(reg, sid)["port"], 9000)
        status, _, text = reg.request("GET", "/metrics", headers=tok(DASH))
        self.assertEqual(status, 200)
        self.assertIn('registry_instances{health="passing"} 1', text)

    def test_read_token_reads_and_cannot_write(self):
        reg = self.start_registry()
        sid = self.register(reg, 201, OPS)
        self.assertEqual(self.ids(reg, token=DASH), {sid})
        self.assertJsonOk(reg.request("GET", "/v1/discover?name=web",
                                      headers=tok(DASH)), 200)
        body = self.register(reg, 403, DASH, name="web", port=9001)
        self.assertEqual(body["error"],
                         "permission denied: the token may not write service 'web'")
        self.assertJsonError(reg.request("DELETE", "/v1/services/" + sid,
                                         headers=tok(DASH)), 403)
        self.assertJsonError(reg.request("PUT", "/v1/services/%s/renew" % sid,
                                         headers=tok(DASH)), 403)
        # an unknown id is a 404 for a reader, as without tokens
        self.assertJsonError(reg.request("DELETE", "/v1/services/" + new_id("web"),
                                         headers=tok(DASH)), 404)
        self.assertEqual(self.ids(reg), {sid})

    def test_service_token_writes_only_its_service(self):
        """service:logging-service registers, renews and deregisters
        logging-service instances, in any of the three headers, and nothing
        of facade-service; a token with two service rules has both."""
        reg = self.start_registry()
        lg = self.register(reg, 201, LG, name="logging-service")
        body = self.register(reg, 403, LG, name="facade-service")
        self.assertIn("may not write service 'facade-service'", body["error"])
        fc = self.register(reg, 201, FC, name="facade-service")
        self.register(reg, 201, FC, name="other")
        self.assertJsonError(reg.request("DELETE", "/v1/services/" + fc,
                                         headers=tok(LG)), 403)
        self.assertJsonError(reg.request("PUT", "/v1/services/%s/renew" % fc,
                                         headers=tok(LG)), 403)
        self.assertJsonOk(reg.request("PUT", "/v1/services/%s/renew" % lg,
                                      headers={"X-Consul-Token": LG}), 200)
        self.assertJsonOk(reg.request("GET", "/v1/services/" + fc,
                                      headers={"Authorization": "Bearer " + LG}), 200)
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + lg,
                                      headers={"Authorization": "Bearer " + LG}), 200)
        # X-Registry-Token wins over the others
        self.assertJsonError(reg.request(
            "DELETE", "/v1/services/" + fc,
            headers={"X-Registry-Token": LG, "X-Consul-Token": FC}), 403)
        self.assertIn(fc, self.ids(reg))

    def test_anonymous_read(self):
        """--acl-anonymous read: reads without a token, never writes; an
        unknown token is still refused."""
        reg = self.start_registry("--acl-anonymous", "read")
        reg.wait_for_log(r"callers without a token may read")
        sid = self.register(reg, 201, OPS)
        self.assertJsonOk(reg.request("GET", "/v1/services/" + sid), 200)
        self.assertJsonOk(reg.request("GET", "/v1/services"), 200)
        status, _, _ = reg.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.register(reg, 403, name="web", port=9001)
        self.assertJsonError(reg.request("DELETE", "/v1/services/" + sid), 403)
        self.assertJsonError(reg.request("GET", "/v1/services", headers=tok(WRONG)),
                             403)
        self.assertEqual(self.ids(reg), {sid})

    def test_hijack_needs_replace_and_the_right_token(self):
        """Re-registering a known id at another port: 409 without
        ?replace=true (the original untouched), 403 with replace=true and a
        token for another service, 200 with the instance's own token, and
        a log line says it moved. Same address: a plain re-registration."""
        reg = self.start_registry()
        sid = new_id("logging-service")
        self.register(reg, 201, LG, id=sid, name="logging-service", port=9000)
        body = self.register(reg, 409, OPS, id=sid, name="logging-service",
                             port=9001)
        self.assertEqual(body["error"], "instance %s is registered at 127.0.0.1:9000; "
                         "to move it, re-register with ?replace=true" % sid)
        self.assertEqual(self.instance(reg, sid)["port"], 9000)
        self.register(reg, 403, FC, query="?replace=true", id=sid,
                      name="logging-service", port=9001)
        self.register(reg, 400, LG, query="?replace=yes", id=sid,
                      name="logging-service", port=9001)
        self.assertEqual(self.instance(reg, sid)["port"], 9000)
        self.register(reg, 200, LG, id=sid, name="logging-service", port=9000,
                      tags=["same-address"])
        self.register(reg, 200, LG, query="?replace=true", id=sid,
                      name="logging-service", port=9001)
        self.assertEqual(self.instance(reg, sid)["port"], 9001)
        reg.wait_for_log(r"INFO registry instance %s moved from 127.0.0.1:9000 to "
                         r"127.0.0.1:9001" % sid)

    def test_bad_token_file_exits_2(self):
        long_token = "x" * 257
        cases = [
            ("missing", None, "cannot open"),
            ("not json", "{", "not valid JSON"),
            ("array", '["read"]', "must be a JSON object"),
            ("empty", "{}", "holds no token"),
            ("unknown rule", json.dumps({OPS: "admin"}), "unknown rule 'admin'"),
            ("bad service", json.dumps({OPS: "service:a b"}), "service name"),
            ("empty token", json.dumps({"": "read"}), "token #1: the token is empty"),
            ("long token", json.dumps({long_token: "read"}), "longer than 256 bytes"),
            ("space", json.dumps({"a b": "read"}), "printable ASCII"),
            ("number", json.dumps({OPS: 1}), "string or a non-empty array"),
        ]
        for label, text, want in cases:
            with self.subTest(label):
                path = os.path.join(self.dir, "bad-%s.json" % label.replace(" ", "-"))
                if text is not None:
                    with open(path, "w") as f:
                        f.write(text)
                res = run_cli("registry", ["--port", "0", "--backend", "memory",
                                           "--acl-tokens", path], cwd=self.dir)
                self.assertEqual(res.returncode, 2, res.stderr)
                lines = res.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, res.stderr)
                self.assertIn("registry: --acl-tokens: " + path, lines[0])
                self.assertIn(want, lines[0])
                self.assertNotIn(OPS, lines[0])
                self.assertNotIn(long_token, lines[0])
        res = run_cli("registry", ["--port", "0", "--backend", "memory",
                                   "--acl-anonymous", "write"], cwd=self.dir)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("--acl-anonymous", res.stderr)


class OpenRegistryTest(AclBase):

    def test_without_tokens_open_with_one_warning_and_still_no_hijack(self):
        """No --acl-tokens: one WARN line at start, writes and reads need no
        token, and a known id still moves only with ?replace=true."""
        reg = self.start_registry(acl=False)
        sid = new_id("web")
        self.register(reg, 201, id=sid, port=9000)
        self.assertJsonOk(reg.request("GET", "/v1/services/" + sid), 200)
        self.register(reg, 409, id=sid, port=9001)
        self.register(reg, 200, query="?replace=true", id=sid, port=9001)
        self.assertJsonOk(reg.request("PUT", "/v1/services/%s/renew" % sid), 200)
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + sid), 200)
        warns = [l for l in reg.log_lines() if " WARN " in l]
        self.assertEqual(len(warns), 1, warns)
        self.assertIn("ACLs off: anyone who can reach the registry may register", warns[0])


class ServicesAclTest(AclBase):

    def wait_ids(self, reg, name, count):
        wait_until(lambda: len(self.ids(reg, name=name, health="passing")) == count,
                   timeout=15, message="%d passing %s" % (count, name))

    def test_only_the_facade_stores_messages(self):
        """logging-service --token --peer-token and facade-service
        --token-file --peer-token-file register with the registry's
        tokens; POST /facade stores a message, a direct POST /logging
        without the peer token (or with another) gets 403 and stores
        nothing, GET /logging stays open."""
        reg = self.start_registry()
        peer_file = self.write("peer-token", PEER + "\n")
        fc_file = self.write("fc-token", FC + " \n")
        lg = self.start("logging-service", "--registry", reg.url, "--ttl", "2s",
                        "--in-memory", "--token", LG, "--peer-token", PEER)
        lg.wait_for_log(r"POST /logging needs a token with the write right \(1 tokens\)")
        fc = self.start("facade-service", "--registry", reg.url, "--ttl", "2s",
                        "--token-file", fc_file, "--peer-token-file", peer_file)
        self.wait_ids(reg, "logging-service", 1)
        self.wait_ids(reg, "facade-service", 1)
        time.sleep(1.5)  # the facade's discovery cache refreshes every second
        status, _, body = request("POST", fc.url + "/facade", {"msg": "hello"}, timeout=30)
        self.assertEqual((status, body.get("status")), (200, "success"), body)
        stored = body["uuid"]
        refused = str(uuid.uuid4())
        for headers in (None, tok(WRONG), tok(LG), {"X-Consul-Token": FC}):
            with self.subTest(headers=headers):
                reply = lg.request("POST", "/logging", {"uuid": refused, "msg": "forged"},
                                   headers=headers)
                body = self.assertJsonError(reply, 403, "direct POST")
                self.assertTrue(body["error"].startswith("permission denied: "), body)
        reply = lg.request("POST", "/logging", [{"uuid": refused, "msg": "forged"}])
        self.assertJsonError(reply, 403, "direct batch")
        status, _, page = lg.request("GET", "/logging")
        self.assertEqual(status, 200)
        text = json.dumps(page)
        self.assertIn("hello", text)
        self.assertNotIn("forged", text)
        self.assertNotIn(refused, text)
        self.assertIn(stored, text)
        self.assertJsonOk(lg.request("POST", "/logging", {"uuid": refused, "msg": "ok"},
                                     headers=tok(PEER)), 201, "with the peer token")

    def test_acl_file_write_rule_on_logging(self):
        """logging-service --acl-tokens: a token with the write rule may
        POST, a service or read token may not."""
        lg = self.start("logging-service", "--registry", "http://127.0.0.1:1",
                        "--in-memory", "--acl-tokens", self.tokens)
        msg = {"uuid": str(uuid.uuid4()), "msg": "m"}
        body = self.assertJsonError(lg.request("POST", "/logging", msg, headers=tok(LG)),
                                    403)
        self.assertEqual(body["error"], "permission denied: the token may not write")
        self.assertJsonError(lg.request("POST", "/logging", msg, headers=tok(DASH)), 403)
        self.assertJsonOk(lg.request("POST", "/logging", msg,
                                     headers={"Authorization": "Bearer " + OPS}), 201)

    def test_wrong_token_logs_the_403_and_keeps_serving(self):
        reg = self.start_registry()
        lg = self.start("logging-service", "--registry", reg.url, "--ttl", "2s",
                        "--in-memory", "--token", WRONG)
        lg.wait_for_log(r"ERROR logging-service registry http://\S+ refused our token for "
                        r"logging-service-\S+: HTTP 403: permission denied: unknown token")
        time.sleep(1)
        self.assertEqual(self.ids(reg), set())
        errors = [l for l in lg.log_lines() if " ERROR " in l]
        self.assertEqual(len(errors), 1, errors)
        self.assertJsonOk(lg.request("GET", "/health"), 200)

    def test_bad_token_options_exit_2(self):
        missing = os.path.join(self.dir, "none")
        for binary, args, want in (
                ("logging-service", ["--token-file", missing], "--token-file: "),
                ("logging-service", ["--token", "a b"], "--token: "),
                ("logging-service", ["--token", "a", "--token-file", missing],
                 "give one of them"),
                ("logging-service", ["--peer-token-file", missing], "--peer-token-file: "),
                ("logging-service", ["--acl-tokens", missing], "--acl-tokens: "),
                ("facade-service", ["--peer-token-file", missing], "--peer-token-file: "),
                ("facade-service", ["--peer-token", "a\tb"], "--peer-token: ")):
            with self.subTest(binary=binary, args=args):
                res = run_cli(binary, ["--port", "0", "--in-memory"] + args
                              if binary == "logging-service" else ["--port", "0"] + args,
                              cwd=self.dir)
                self.assertEqual(res.returncode, 2, res.stderr)
                self.assertIn(want, res.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
