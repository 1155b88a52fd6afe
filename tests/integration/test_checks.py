#!/usr/bin/python3
"""Integration tests of the registry's health checks: an http check that
turns an instance critical when /health fails or hangs and back when it
recovers, honouring its thresholds; 429 as warning and the ?health=
filters; a tcp check; GET /v1/services/{id}/checks; health and
maintenance events; maintenance leaving discovery and surviving a
restart; bad check definitions and maintenance bodies answered 400.

Each test starts its own registry on 127.0.0.1 (ephemeral port, SQLite in
a fresh temporary directory) and a target HTTP server in this process whose
answers the test sets: ok (200), busy (429), fail (500), hang (no answer
until released), or a number of failures before it is ok again.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_checks.py
"""

import http.server
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout


class Target:
    """A /health endpoint whose answer the test decides; counts the probes."""

    def __init__(self):
        self.mode = "ok"
        self.fail_next = 0
        self.hits = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with target.lock:
                    target.hits += 1
                    mode = target.mode
                    if target.fail_next > 0:
                        target.fail_next -= 1
                        mode = "fail"
                if mode == "hang":
                    target.release.wait(T(30))
                    return
                code = {"ok": 200, "busy": 429, "fail": 500}[mode]
                body = b"{}"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/health" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, mode, fail_next=0):
        with self.lock:
            self.mode = mode
            self.fail_next = fail_next
            if mode != "hang":
                self.release.set()
            else:
                self.release.clear()

    def count(self):
        with self.lock:
            return self.hits

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class ChecksTest(svctest.ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="registry-checks-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db_path = os.path.join(self.tmp, "registry.db")
        self.target = Target()
        self.addCleanup(self.target.close)

    def start_registry(self, *args):
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("registry", ["--port", "0", "--bind", "127.0.0.1",
                               "--data", self.db_path] + list(args))
        return svc

    def register(self, reg, status=201, **fields):
        payload = {"name": "web", "host": "127.0.0.1", "port": self.target.port}
        payload.update(fields)
        body = self.assertJsonOk(reg.request("POST", "/v1/services", payload), status,
                                 "register %r" % payload)
        return body["service_id"]

    def info(self, reg, sid):
        return self.assertJsonOk(reg.request("GET", "/v1/services/" + sid))["service"]

    def health(self, reg, sid):
        return self.info(reg, sid)["health"]

    def check(self, reg, sid, kind):
        for c in self.info(reg, sid)["checks"]:
            if c["type"] == kind:
                return c
        raise AssertionError("no %s check on %s" % (kind, sid))

    def wait_health(self, reg, sid, want, timeout=10.0):
        wait_until(lambda: self.health(reg, sid) == want, timeout=T(timeout),
                   message="%s did not turn %s: %r" % (sid, want, self.info(reg, sid)))

    def events(self, reg, index, **query):
        query["index"] = index
        query.setdefault("wait", "0s")
        status, _, body = reg.request("GET", "/v1/events?" + urllib.parse.urlencode(query))
        self.assertEqual(status, 200, body)
        return body["events"], body["index"]

    def discover(self, reg, **query):
        return reg.request("GET", "/v1/discover?" + urllib.parse.urlencode(query))

    # --- tests -------------------------------------------------------------

    def test_http_check_fails_hangs_and_recovers(self):
        """A failing /health turns the instance critical (out of discovery,
        the status line as output) and a passing one brings it back; a hang
        is a timeout, critical too, and costs only its own timeout."""
        reg = self.start_registry()
        sid = self.register(reg, ttl=60, check={"http": self.target.url, "interval": "200ms",
                                                "timeout": "150ms"})
        self.assertEqual(self.discover(reg, name="web")[0], 200)
        c = self.check(reg, sid, "http")
        self.assertEqual(c["id"], sid + ":1")
        self.assertEqual(c["status"], "passing")

        self.target.set("fail")
        self.wait_health(reg, sid, "critical")
        c = self.check(reg, sid, "http")
        self.assertIn("500 Internal Server Error", c["output"])
        self.assertEqual(self.discover(reg, name="web")[0], 404)
        # the TTL check is still passing: the http check alone decided
        self.assertEqual(self.check(reg, sid, "ttl")["status"], "passing")

        self.target.set("ok")
        self.wait_health(reg, sid, "passing")
        self.assertEqual(self.discover(reg, name="web")[0], 200)

        self.target.set("hang")
        self.wait_health(reg, sid, "critical")
        self.assertIn("timeout", self.check(reg, sid, "http")["output"])
        # the registry itself answers at once meanwhile
        started = time.monotonic()
        self.assertEqual(reg.request("GET", "/health")[0], 200)
        self.assertLess(time.monotonic() - started, T(2))
        self.target.set("ok")
        self.wait_health(reg, sid, "passing")

    def test_thresholds_keep_health_from_flapping(self):
        """failures_before_critical=3: one failed probe among passes changes
        nothing (no health event); three in a row turn it critical, and
        successes_before_passing=2 needs two passes to come back."""
        reg = self.start_registry()
        sid = self.register(reg, ttl=60, check={
            "http": self.target.url, "interval": "100ms", "timeout": "90ms",
            "failures_before_critical": 3, "successes_before_passing": 2})
        _, start = self.events(reg, 0)
        before = self.target.count()
        self.target.set("ok", fail_next=1)
        wait_until(lambda: self.target.count() >= before + 6, timeout=T(10))
        self.assertEqual(self.health(reg, sid), "passing")
        evs, _ = self.events(reg, start, type="health")
        self.assertEqual(evs, [], "one failure must not flap the check")

        self.target.set("fail")
        self.wait_health(reg, sid, "critical")
        evs, now = self.events(reg, start, type="health")
        self.assertEqual(len(evs), 1, evs)
        data = evs[0]["data"]
        self.assertEqual((data["check_id"], data["status"], data["previous"]),
                         (sid + ":1", "critical", "passing"))
        self.assertEqual(data["service_id"], sid)
        self.target.set("ok")
        self.wait_health(reg, sid, "passing")
        evs, _ = self.events(reg, now, type="health")
        self.assertEqual([(e["data"]["status"], e["data"]["previous"]) for e in evs],
                         [("passing", "critical")])

    def test_busy_is_warning_and_health_filters(self):
        """429 is warning: out of discovery and of ?health=passing, in
        ?health=warning (which also lists passing ones), not in
        ?health=critical."""
        reg = self.start_registry()
        other = self.register(reg, name="web", port=1, ttl=60)
        sid = self.register(reg, ttl=60, check={"http": self.target.url, "interval": "150ms"})
        self.target.set("busy")
        self.wait_health(reg, sid, "warning")
        self.assertIn("429", self.check(reg, sid, "http")["output"])

        def ids(health):
            body = self.assertJsonOk(reg.request(
                "GET", "/v1/services?name=web&health=" + health))
            return sorted(s["id"] for s in body["services"])
        self.assertEqual(ids("passing"), [other])
        self.assertEqual(ids("warning"), sorted([other, sid]))
        self.assertEqual(ids("critical"), [])
        for _ in range(10):
            status, _, body = self.discover(reg, name="web")
            self.assertEqual(status, 200, body)
            self.assertEqual(body["service"]["id"], other)
        self.assertJsonError(reg.request("GET", "/v1/services?health=sick"), 400)

    def test_tcp_check(self):
        """A tcp check passes while something listens and fails once the
        port is closed, with the reason as output."""
        reg = self.start_registry()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        port = lsock.getsockname()[1]
        sid = self.register(reg, ttl=60, checks=[{"tcp": "127.0.0.1:%d" % port,
                                                  "interval": "150ms", "id": "web-tcp"}])
        wait_until(lambda: self.check(reg, sid, "tcp")["output"] != "", timeout=T(10))
        c = self.check(reg, sid, "tcp")
        self.assertEqual((c["id"], c["status"]), ("web-tcp", "passing"), c)
        lsock.close()
        self.wait_health(reg, sid, "critical")
        self.assertIn("refused", self.check(reg, sid, "tcp")["output"])

    def test_checks_route_and_checks_after_restart(self):
        """GET /v1/services/{id}/checks lists them with the instance's
        health; after a restart the checks are there again (from the store)
        and running; an unknown id is 404."""
        reg = self.start_registry()
        sid = self.register(reg, ttl=60, checks=[
            {"http": self.target.url, "interval": "150ms"},
            {"ttl": "60s", "id": "beat"}])
        body = self.assertJsonOk(reg.request("GET", "/v1/services/%s/checks" % sid))
        self.assertEqual(body["service_id"], sid)
        self.assertEqual(body["health"], "passing")
        self.assertEqual([(c["id"], c["type"]) for c in body["checks"]],
                         [(sid + ":1", "http"), ("beat", "ttl")])
        for c in body["checks"]:
            self.assertEqual(set(c), {"id", "type", "status", "output", "last_change"})
        self.assertJsonError(reg.request("GET", "/v1/services/web-nope/checks"), 404)
        self.assertEqual(reg.stop(), 0)

        reg = self.start_registry()
        self.target.set("fail")
        self.wait_health(reg, sid, "critical")
        self.assertEqual([c["id"] for c in self.info(reg, sid)["checks"]], [sid + ":1", "beat"])
        # renewing passes the ttl check; the http one keeps it critical
        self.assertJsonOk(reg.request("PUT", "/v1/services/%s/renew" % sid))
        self.assertEqual(self.health(reg, sid), "critical")

    def test_maintenance_drains_and_survives_a_restart(self):
        """Maintenance takes the instance out of discovery without
        deregistering it (a critical "maintenance" check with the reason),
        makes a maintenance event, survives a restart and ends with
        enable: false."""
        reg = self.start_registry()
        sid = self.register(reg, ttl=60)
        _, start = self.events(reg, 0)
        path = "/v1/services/%s/maintenance" % sid
        body = self.assertJsonOk(reg.request("PUT", path, {"enable": True, "reason": "deploy 7"}))
        self.assertEqual(body["service"]["health"], "critical")
        self.assertEqual(body["service"]["maintenance"]["reason"], "deploy 7")
        maint = [c for c in body["service"]["checks"] if c["type"] == "maintenance"]
        self.assertEqual(len(maint), 1, body)
        self.assertEqual((maint[0]["status"], maint[0]["output"]), ("critical", "deploy 7"))
        self.assertEqual(self.discover(reg, name="web")[0], 404)
        evs, _ = self.events(reg, start)
        self.assertEqual([(e["type"], e["data"]["enable"]) for e in evs],
                         [("maintenance", True)])
        # renewals do not end it
        self.assertJsonOk(reg.request("PUT", "/v1/services/%s/renew" % sid))
        self.assertEqual(self.health(reg, sid), "critical")

        self.assertEqual(reg.stop(), 0)
        reg = self.start_registry()
        self.assertEqual(self.info(reg, sid)["maintenance"]["reason"], "deploy 7")
        self.assertEqual(self.health(reg, sid), "critical")
        self.assertEqual(self.discover(reg, name="web")[0], 404)

        body = self.assertJsonOk(reg.request("PUT", path, {"enable": False}))
        self.assertEqual(body["service"]["health"], "passing")
        self.assertNotIn("maintenance", body["service"])
        self.assertEqual(self.discover(reg, name="web")[0], 200)

    def test_millisecond_ttl_lapses_at_its_deadline_not_at_the_tick(self):
        # the regular tick once an hour: only the deadline timer can turn
        # these critical within the wait below
        reg = self.start_registry("--cleanup-interval", "1h")
        fast = self.register(reg, check={"ttl": "300ms"})
        real = self.register(reg, ttl=0.25)
        slow = self.register(reg, ttl=60)
        self.assertEqual(self.info(reg, fast)["ttl"], 0.3)
        self.assertEqual(self.info(reg, real)["ttl"], 0.25)
        for sid in (fast, real):
            self.wait_health(reg, sid, "critical", timeout=5)
        self.assertEqual(self.health(reg, slow), "passing")
        # a renewal revives it, and it lapses again on its own deadline
        self.assertJsonOk(reg.request("PUT", "/v1/services/%s/renew" % fast))
        self.assertEqual(self.health(reg, fast), "passing")
        self.wait_health(reg, fast, "critical", timeout=5)
        # a fraction finer than a millisecond, or under 100 ms, is refused
        for ttl in (0.0005, 0.05, 1.2345):
            reply = reg.request("POST", "/v1/services", {
                "name": "web", "host": "127.0.0.1", "port": 1, "ttl": ttl})
            self.assertIn("whole milliseconds", self.assertJsonError(reply, 400, ttl)["error"])
        # and it is stored so: a restart keeps the 300 ms
        reg.stop()
        reg = self.start_registry("--cleanup-interval", "1h")
        self.assertEqual(self.info(reg, fast)["ttl"], 0.3)

    def test_bad_checks_and_maintenance_bodies_are_400(self):
        """Every bad check definition is a 400 naming what is wrong, and
        nothing is registered."""
        reg = self.start_registry()
        url = self.target.url
        bad = [
            ({"http": url, "interval": "50ms"}, "interval"),
            ({"http": url, "interval": "1s", "timeout": "2s"}, "timeout"),
            ({"http": url, "interval": "10 parsecs"}, "duration"),
            ({"http": url, "interval": 10}, "duration"),
            ({"grpc": "127.0.0.1:1"}, "exactly one of"),
            ({"http": url, "tcp": "h:1"}, "exactly one of"),
            ({"http": "ftp://127.0.0.1/health"}, "http:// or https://"),
            ({"http": "http:///nohost"}, "http:// or https://"),
            ({"tcp": "nohostport"}, "HOST:PORT"),
            ({"tcp": "h:70000"}, "HOST:PORT"),
            ({"ttl": "50ms"}, "ttl"),
            ({"ttl": "10s", "interval": "1s"}, "ttl check"),
            ({"http": url, "failures_before_critical": 0}, "failures_before_critical"),
            ({"http": url, "status": "fine"}, "status"),
            ({"http": url, "id": "bad id"}, "id"),
            ({"http": url, "deregister_critical_after": "1ms"}, "deregister_critical_after"),
        ]
        for check, words in bad:
            reply = reg.request("POST", "/v1/services", {
                "name": "web", "host": "127.0.0.1", "port": 1, "check": check})
            body = self.assertJsonError(reply, 400, repr(check))
            self.assertIn(words, body["error"], check)
        for extra, words in [
                ({"checks": {"http": url}}, "array"),
                ({"checks": [{"http": url}] * 9}, "at most 8"),
                ({"check": {"http": url}, "checks": []}, "not both"),
                ({"checks": [{"ttl": "5s"}, {"ttl": "6s"}]}, "second ttl"),
                ({"checks": [{"ttl": "5s"}], "ttl": 6}, "disagree"),
                ({"checks": [{"http": url, "id": "x"}, {"tcp": "h:1", "id": "x"}]}, "twice"),
                ({"ttl": 0}, "ttl")]:
            payload = {"name": "web", "host": "127.0.0.1", "port": 1}
            payload.update(extra)
            body = self.assertJsonError(reg.request("POST", "/v1/services", payload), 400,
                                        repr(extra))
            self.assertIn(words, body["error"], extra)
        self.assertEqual(self.assertJsonOk(reg.request("GET", "/v1/services"))["services"], [])

        sid = self.register(reg, ttl=60)
        path = "/v1/services/%s/maintenance" % sid
        for body in [b"", b"{", {"enable": "yes"}, {"reason": "x"}, [],
                     {"enable": True, "reason": "r" * 257}, {"enable": True, "reason": 7}]:
            self.assertJsonError(reg.request("PUT", path, body), 400, repr(body))
        self.assertNotIn("maintenance", self.info(reg, sid))
        self.assertJsonError(reg.request("PUT", "/v1/services/web-nope/maintenance",
                                         {"enable": True}), 404)
        # no ttl and "checks": [] has nothing to renew
        bare = self.register(reg, checks=[])
        self.assertEqual(self.info(reg, bare)["checks"], [])
        self.assertJsonError(reg.request("PUT", "/v1/services/%s/renew" % bare), 400)


if __name__ == "__main__":
    unittest.main(verbosity=2)
