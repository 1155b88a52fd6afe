"""W3C traces across the services, and the /metrics series of the patterns,
through the real executables on loopback: a registry, two logging-service
instances (one registered with an http check every 200 ms), messages-service
and a facade at --replicas 2.

- A traceparent sent to the facade (as curl -H 'traceparent: ...' would)
  names the trace of the answer's traceparent (the facade's own span), of
  the facade's log line for that POST, of both logging instances' "stored"
  lines for that message, and of the message in GET /logging on both.
- A request without a traceparent, or with an invalid one (the W3C
  examples: an all-zero trace id, version ff, upper-case hex), gets a new,
  valid trace; the invalid id is not used anywhere.
- GET /facade answers with a traceparent too and still lists the messages.
- After a logging instance is SIGKILLed (still listed by the registry, its
  port refuses), a POST retries: facade_retries_total{reason="connect"},
  the breaker gauge per upstream, messages replicated; logging's stored
  and duplicate counters; the registry's check runs by result and events
  streamed.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_trace.py
"""

import http.client
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from svctest import Service, ServiceTestCase, request, wait_until  # noqa: E402

TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
GIVEN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GIVEN_SPAN = "00f067aa0ba902b7"
GIVEN = "00-%s-%s-01" % (GIVEN_TRACE, GIVEN_SPAN)
INVALID = [
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "garbage",
]


def trace_of(headers):
    """The (trace id, span id) of a response's traceparent; fails if none."""
    value = headers.get("traceparent")
    if value is None:
        raise AssertionError("no traceparent header in %s" % dict(headers))
    m = TRACEPARENT_RE.match(value)
    if not m:
        raise AssertionError("not a valid traceparent: %r" % value)
    if m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        raise AssertionError("all-zero id in %r" % value)
    return m.group(1), m.group(2)


def metric(text, name, labels=None):
    """The value of series name{labels} in an exposition, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if labels is None:
            if series == name:
                return float(value)
            continue
        if not series.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', series[len(name):]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


class TraceTest(ServiceTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="trace-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.registry = Service().start("registry", [
            "--port", "0", "--backend", "memory", "--cleanup-interval", "100ms"])
        self.addCleanup(self.registry.close)
        self.reg_url = "http://127.0.0.1:%d" % self.registry.port
        self.loggings = []
        for i in range(2):
            # the first is probed by the registry (check runs to count); the
            # second, SIGKILLed later, is not, so it stays listed (ttl 30 s)
            # while its port refuses, until its breaker opens
            check = ["--check", "http", "--check-interval", "200ms"] if i == 0 else [
                "--check", "ttl"]
            svc = Service().start("logging-service", [
                "--port", "0", "--registry", self.reg_url, "--ttl", "30s",
                "--data-dir", os.path.join(self.tmp, "log%d" % i)] + check)
            self.addCleanup(svc.close)
            self.loggings.append(svc)
        self.messages = Service().start("messages-service", [
            "--port", "0", "--registry", self.reg_url])
        self.addCleanup(self.messages.close)
        self.facade = Service().start("facade-service", [
            "--port", "0", "--registry", self.reg_url, "--replicas", "2",
            "--retry-deadline", "3s", "--repair-interval", "0"])
        self.addCleanup(self.facade.close)
        self.addCleanup(self.finish_service, self.facade)
        self.wait_passing("logging-service", 2)
        self.wait_passing("messages-service", 1)
        wait_until(lambda: len(self.discovered("logging-service")) == 2, timeout=15,
                   message="the facade discovers both logging instances")

    def wait_passing(self, name, count):
        def passing():
            status, _, body = request(
                "GET", self.reg_url + "/v1/services?name=%s&health=passing" % name)
            return status == 200 and len(body["services"]) == count
        wait_until(passing, timeout=15, message="%d passing %s" % (count, name))

    def discovered(self, name):
        status, _, body = self.facade.request("GET", "/stats")
        return body["discovered"][name] if status == 200 else []

    def post(self, msg, headers=None):
        status, hdrs, body = self.facade.request("POST", "/facade", {"msg": msg},
                                                 headers=headers, timeout=30)
        self.assertEqual(status, 200, body)
        return body["uuid"], hdrs

    def logging_trace(self, svc, uuid):
        """The "trace" GET /logging of svc gives the message uuid ('' none)."""
        status, _, body = svc.request("GET", "/logging")
        self.assertEqual(status, 200, body)
        for m in body["messages"]:
            if m["uuid"] == uuid:
                return m.get("trace", "")
        raise AssertionError("%s not in GET /logging of %s" % (uuid, svc))

    def assert_traced_everywhere(self, uuid, trace):
        """trace is on the facade's line about uuid, on both logging
        instances' stored line for it, and with it in their GET /logging."""
        self.facade.wait_for_log(r"INFO facade-service POST %s answered 200 .* trace=%s$" % (
                                     uuid, trace),
                                 timeout=5)
        for svc in self.loggings:
            svc.wait_for_log(r"INFO logging-service stored %s: .* trace=%s$" % (uuid, trace),
                             timeout=5)
            self.assertEqual(self.logging_trace(svc, uuid), trace)

    def test_given_trace_is_followed(self):
        uuid, hdrs = self.post("traced hello", {"traceparent": GIVEN})
        trace, span = trace_of(hdrs)
        self.assertEqual(trace, GIVEN_TRACE)
        self.assertNotEqual(span, GIVEN_SPAN, "the facade answers with its own span")
        self.assert_traced_everywhere(uuid, GIVEN_TRACE)
        # no line of another trace claims this message
        for svc in [self.facade] + self.loggings:
            for line in svc.log_lines():
                if uuid in line:
                    self.assertTrue(line.endswith(" trace=" + GIVEN_TRACE), line)
        # GET /facade: its own traceparent, and the message still listed
        status, hdrs, body = self.facade.request(
            "GET", "/facade", headers={"traceparent": GIVEN}, timeout=30)
        self.assertEqual(status, 200, body)
        self.assertIn("traced hello", body["logs"])
        self.assertEqual(trace_of(hdrs)[0], GIVEN_TRACE)
        # messages-service logs the trace of the call the facade made for it
        self.messages.wait_for_log(r"GET /messages answered .* trace=%s$" % GIVEN_TRACE,
                                   timeout=5)

    def test_absent_or_invalid_trace_is_replaced(self):
        uuid1, hdrs1 = self.post("no trace given")
        uuid2, hdrs2 = self.post("no trace given either")
        t1, t2 = trace_of(hdrs1)[0], trace_of(hdrs2)[0]
        self.assertNotEqual(t1, t2, "each request starts its own trace")
        self.assert_traced_everywhere(uuid1, t1)
        self.assert_traced_everywhere(uuid2, t2)
        for i, bad in enumerate(INVALID):
            uuid, hdrs = self.post("invalid trace %d" % i, {"traceparent": bad})
            trace = trace_of(hdrs)[0]
            self.assertNotIn(trace, bad.lower(), "invalid %r was kept" % bad)
            self.assert_traced_everywhere(uuid, trace)
        # a GET without one gets one too
        status, hdrs, _ = self.facade.request("GET", "/facade", timeout=30)
        self.assertEqual(status, 200)
        trace_of(hdrs)

    def test_logging_refuses_a_bad_trace_item_and_takes_none(self):
        svc = self.loggings[0]
        status, _, body = svc.request("POST", "/logging", {
            "uuid": "00000000-0000-4000-8000-00000000000a", "msg": "x", "trace": "nope"})
        self.assertEqual(status, 400, body)
        self.assertIn("field 'trace' must be a W3C trace id", body["error"])
        # in a batch: that item's result says it, the others are stored
        status, _, body = svc.request("POST", "/logging", [
            {"uuid": "00000000-0000-4000-8000-00000000000a", "msg": "x", "trace": 7},
            {"uuid": "00000000-0000-4000-8000-00000000000c", "msg": "y", "trace": GIVEN_TRACE}])
        self.assertEqual(status, 200, body)
        self.assertEqual([r["status"] for r in body["results"]], [400, 201])
        self.assertIn("field 'trace'", body["results"][0]["error"])
        self.assertEqual(self.logging_trace(svc, "00000000-0000-4000-8000-00000000000c"),
                         GIVEN_TRACE)
        status, _, body = svc.request("POST", "/logging", {
            "uuid": "00000000-0000-4000-8000-00000000000b", "msg": "an old client"})
        self.assertIn(status, (200, 201), body)
        self.assertEqual(self.logging_trace(svc, "00000000-0000-4000-8000-00000000000b"), "")

    def test_metrics_after_a_retry_and_checks(self):
        self.post("before the kill", {"traceparent": GIVEN})
        victim = self.loggings[1]
        victim_key = "127.0.0.1:%d" % victim.port
        victim.kill()  # SIGKILL: still listed (ttl 30 s), its port refuses
        uuid, hdrs = self.post("after the kill")
        trace = trace_of(hdrs)[0]
        # the refused copy is not owed (the survivor's is enough): the line
        # saying so is in the message's trace
        self.facade.wait_for_log(
            r"WARN facade-service message %s has 1 of 2 copies .*connection refused trace=%s$" % (
                uuid, trace), timeout=5)

        _, _, text = self.facade.request("GET", "/metrics")
        self.assertGreaterEqual(metric(text, "facade_retries_total", {"reason": "connect"}), 1)
        self.assertEqual(metric(text, "facade_retries_total", {"reason": "timeout"}), 0)
        self.assertIsNotNone(metric(text, "facade_retries_total", {"reason": "5xx"}))
        self.assertGreaterEqual(metric(text, "facade_messages_replicated_total"), 2)
        self.assertGreaterEqual(metric(text, "facade_copies_stored_total"), 3)
        alive = "127.0.0.1:%d" % self.loggings[0].port
        self.assertEqual(metric(text, "facade_breaker_state",
                                {"service": "logging-service", "upstream": alive}), 0)
        self.assertIn(metric(text, "facade_breaker_state",
                             {"service": "logging-service", "upstream": victim_key}), (0, 1, 2))
        self.assertIn("# TYPE facade_breaker_state gauge", text)
        self.assertIn("# TYPE facade_retries_total counter", text)
        # enough refusals open the victim's breaker (5 consecutive failures)
        for i in range(6):
            self.post("breaker %d" % i)
        _, _, text = self.facade.request("GET", "/metrics")
        self.assertEqual(metric(text, "facade_breaker_state",
                                {"service": "logging-service", "upstream": victim_key}), 2)
        self.assertGreaterEqual(metric(text, "facade_retries_total",
                                       {"reason": "breaker_open"}), 1)

        _, _, text = self.loggings[0].request("GET", "/metrics")
        self.assertGreaterEqual(metric(text, "logging_messages_stored_total"), 8)
        self.assertIsNotNone(metric(text, "logging_duplicates_total"))

        def checks_ran():
            _, _, t = self.registry.request("GET", "/metrics")
            v = metric(t, "registry_check_runs_total", {"result": "passing"})
            return v is not None and v >= 1
        wait_until(checks_ran, timeout=10, message="a check run counted as passing")
        status, _, body = self.registry.request("GET", "/v1/events?index=1")
        self.assertEqual(status, 200, body)
        self.assertGreater(len(body["events"]), 0)
        _, _, text = self.registry.request("GET", "/metrics")
        self.assertGreaterEqual(metric(text, "registry_events_streamed_total", {"via": "json"}),
                                len(body["events"]))
        # an event stream from index 1: the history is written to it at once
        conn = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=10)
        try:
            conn.request("GET", "/v1/events?index=1", headers={"Accept": "text/event-stream"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertTrue(resp.readline().startswith(b"id: "))
        finally:
            conn.close()
        _, _, text = self.registry.request("GET", "/metrics")
        self.assertGreaterEqual(metric(text, "registry_events_streamed_total", {"via": "sse"}), 1)
        self.assertIsNotNone(metric(text, "registry_check_runs_total", {"result": "critical"}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
