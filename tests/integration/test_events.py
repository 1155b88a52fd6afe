#!/usr/bin/python3
"""Integration tests of the registry's change events and watches
(GET /v1/events: long-poll and Server-Sent Events; the registry index).

Each test starts its own registry on 127.0.0.1 with an ephemeral port and a
database in a fresh temporary directory. A test knows a watch is parked by
the registry's own gauge (registry_watchers in /metrics), never by sleeping.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_events.py
"""

import http.client
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout


class SSE:
    """One Server-Sent Events stream of GET /v1/events."""

    def __init__(self, svc, path="/v1/events", headers=None):
        self.conn = http.client.HTTPConnection(svc.host if svc.host not in ("0.0.0.0", "") else "127.0.0.1",
                                               svc.port, timeout=T(10))
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()

    def next(self):
        """The next event as a dict of its fields (comments skipped)."""
        fields = {}
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("the stream ended")
            line = line.decode("utf-8").rstrip("\n")
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = fields.get(key, "") + value

    def close(self):
        self.conn.close()


class EventsTestCase(svctest.ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="registry-ev-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db_path = os.path.join(self.tmp, "registry.db")

    def start_registry(self, *args):
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("registry", ["--port", "0", "--bind", "127.0.0.1",
                               "--data", self.db_path] + list(args))
        return svc

    def register(self, svc, name="web", port=8080, **fields):
        payload = {"name": name, "host": "127.0.0.1", "port": port}
        payload.update(fields)
        body = self.assertJsonOk(svc.request("POST", "/v1/services", payload), 201,
                                 "register %r" % payload)
        return body["service_id"]

    def events(self, svc, index, **query):
        """GET /v1/events?index=...: (events, index) of a 200 answer."""
        query["index"] = index
        status, headers, body = svc.request(
            "GET", "/v1/events?" + urllib.parse.urlencode(query), timeout=T(30))
        self.assertEqual(status, 200, body)
        self.assertEqual(int(headers.get("X-Registry-Index")), body["index"], body)
        return body["events"], body["index"]

    def index(self, svc):
        return self.events(svc, 0)[1]

    def get_info(self, reg, sid):
        return self.assertJsonOk(reg.request("GET", "/v1/services/" + sid))["service"]

    def watchers(self, svc):
        status, _, text = svc.request("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith("registry_watchers "):
                return int(line.split()[1])
        raise AssertionError("no registry_watchers in /metrics")

    def poll_in_thread(self, svc, index, **query):
        """Start a long-poll in a thread; returns (thread, result dict)."""
        result = {}

        def run():
            try:
                result["reply"] = self.events(svc, index, **query)
            except BaseException as e:  # reported by the test
                result["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, result

    # --- tests -------------------------------------------------------------

    def test_index_zero_answers_at_once_with_the_index(self):
        """A client starts with no index (or 0): no events, the current index,
        also as X-Registry-Index, which GET /v1/services and GET
        /v1/services/{id} carry too."""
        reg = self.start_registry()
        self.assertEqual(self.events(reg, 0), ([], 0))
        sid = self.register(reg)
        status, headers, body = reg.request("GET", "/v1/events")
        self.assertEqual((status, body["events"], body["index"]), (200, [], 1))
        self.assertEqual(headers.get("X-Registry-Index"), "1")
        for path in ("/v1/services", "/v1/services/" + sid):
            status, headers, _ = reg.request("GET", path)
            self.assertEqual((status, headers.get("X-Registry-Index")), (200, "1"), path)

    def test_bad_index_wait_type_name_are_400(self):
        reg = self.start_registry()
        for query in ("index=abc", "index=-1", "index=1.5", "index=", "index=99999999999999999999999",
                      "index=1&wait=10parsecs", "index=1&wait=11m", "index=1&wait=-1s",
                      "index=1&type=bogus", "index=1&name=no%20spaces"):
            reply = reg.request("GET", "/v1/events?" + query)
            self.assertJsonError(reply, 400, query)
            self.assertIsNotNone(reply[1].get("X-Registry-Index"), query)
        reply = reg.request("GET", "/v1/events", headers={"Accept": "text/event-stream",
                                                           "Last-Event-ID": "x"})
        self.assertJsonError(reply, 400, "Last-Event-ID x")

    def test_long_poll_answers_at_once_when_events_exist(self):
        reg = self.start_registry()
        a = self.register(reg, "a")
        b = self.register(reg, "b")
        events, index = self.events(reg, 1, wait="10m")
        self.assertEqual(index, 2)
        self.assertEqual([(e["type"], e["index"], e["data"]["service_id"]) for e in events],
                         [("register", 2, b)])
        events, _ = self.events(reg, 1, name="a", wait="0s")
        self.assertEqual(events, [])  # a's registration is index 1, not after it
        events, _ = self.events(reg, 1, name="b", wait="0s")
        self.assertEqual([e["data"]["service_id"] for e in events], [b])
        self.assertNotEqual(a, b)

    def test_parked_long_poll_wakes_on_a_matching_change_only(self):
        """A parked long-poll is answered with the matching event; one
        filtered on another name stays parked until its wait ends (then an
        empty list with the current index)."""
        reg = self.start_registry()
        self.register(reg, "seed")
        start = self.index(reg)
        t_match, r_match = self.poll_in_thread(reg, start, wait="5m", name="web")
        t_other, r_other = self.poll_in_thread(reg, start, wait="1s", name="other")
        wait_until(lambda: self.watchers(reg) == 2, T(10), message="two parked watches")
        sid = self.register(reg, "web")
        t_match.join(T(10))
        self.assertNotIn("error", r_match)
        events, index = r_match["reply"]
        self.assertEqual([(e["type"], e["data"]["service_id"]) for e in events],
                         [("register", sid)])
        self.assertEqual(index, start + 1)
        info = events[0]["data"]["service_info"]
        self.assertEqual((info["id"], info["name"], info["port"], info["health"]),
                         (sid, "web", 8080, "passing"))
        # the other one is still parked after the change was answered
        self.assertTrue(t_other.is_alive() or r_other.get("reply", (None,))[0] == [])
        t_other.join(T(10))
        self.assertNotIn("error", r_other)
        self.assertEqual(r_other["reply"], ([], start + 1))
        self.assertEqual(self.watchers(reg), 0)

    def test_type_filter(self):
        reg = self.start_registry()
        sid = self.register(reg)
        t, r = self.poll_in_thread(reg, 1, wait="5m", type="deregister")
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        self.register(reg, "other")  # a register: does not wake it
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + sid))
        t.join(T(10))
        events, _ = r["reply"]
        self.assertEqual([(e["type"], e["index"]) for e in events], [("deregister", 3)])

    def test_events_in_index_order_with_their_types(self):
        """register, health critical (TTL lapsed), health passing (renewal),
        deregister; and for an instance left critical: health, expire."""
        reg = self.start_registry("--cleanup-interval", "100ms", "--deregister-after", "2s")
        a = self.register(reg, "a", ttl=1)
        wait_until(lambda: self.get_info(reg, a)["health"] == "critical", T(10))
        self.assertJsonOk(reg.request("PUT", "/v1/services/%s/renew" % a))
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + a))
        b = self.register(reg, "b", ttl=1)
        wait_until(lambda: reg.request("GET", "/v1/services/" + b)[0] == 404, T(15))
        self.assertEqual(self.events(reg, 0), ([], 7))  # index 0: no events
        events, index = self.events(reg, 1)  # after a's registration (index 1)
        self.assertEqual(index, 7)
        seen = [(e["type"], e["index"], e["data"]["service_id"]) for e in events]
        self.assertEqual(seen, [("health", 2, a), ("health", 3, a), ("deregister", 4, a),
                                ("register", 5, b), ("health", 6, b), ("expire", 7, b)])
        health = [e["data"] for e in events if e["type"] == "health"]
        self.assertEqual([(d["check_id"], d["status"], d["previous"]) for d in health],
                         [(a + ":ttl", "critical", "passing"), (a + ":ttl", "passing", "critical"),
                          (b + ":ttl", "critical", "passing")])
        self.assertEqual(health[0]["service_info"]["health"], "critical")
        for e in events:
            self.assertIsInstance(e["timestamp"], int)

    def test_sse_sees_changes_in_order_and_resumes_without_gap_or_repeat(self):
        reg = self.start_registry("--cleanup-interval", "100ms")
        stream = SSE(reg)
        self.addCleanup(stream.close)
        self.assertEqual(stream.resp.status, 200)
        self.assertIn("text/event-stream", stream.resp.getheader("Content-Type"))
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        a = self.register(reg, "a", ttl=1)
        got = [stream.next()]
        got.append(stream.next())  # health critical when the ttl lapses
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + a))
        got.append(stream.next())
        self.assertEqual([(e["id"], e["event"]) for e in got],
                         [("1", "register"), ("2", "health"), ("3", "deregister")])
        data = [json.loads(e["data"]) for e in got]
        self.assertEqual([(d["index"], d["type"], d["data"]["service_id"]) for d in data],
                         [(1, "register", a), (2, "health", a), (3, "deregister", a)])
        self.assertEqual(data[1]["data"]["status"], "critical")
        stream.close()
        b = self.register(reg, "b")
        c = self.register(reg, "c")
        # resume after event 2: 3 (not 2 again), then 4 and 5 made meanwhile
        again = SSE(reg, headers={"Last-Event-ID": "2"})
        self.addCleanup(again.close)
        resumed = [again.next() for _ in range(3)]
        self.assertEqual([(e["id"], e["event"]) for e in resumed],
                         [("3", "deregister"), ("4", "register"), ("5", "register")])
        self.assertEqual([json.loads(e["data"])["data"]["service_id"] for e in resumed],
                         [a, b, c])
        d = self.register(reg, "d")
        nxt = again.next()
        self.assertEqual((nxt["id"], json.loads(nxt["data"])["data"]["service_id"]), ("6", d))
        # ?index= works the same as Last-Event-ID; a name filter too
        named = SSE(reg, "/v1/events?index=0&name=c")
        self.addCleanup(named.close)
        wait_until(lambda: self.watchers(reg) >= 2, T(10))
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + b))
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + c))
        ev = named.next()
        self.assertEqual((ev["id"], ev["event"]), ("8", "deregister"))

    def test_index_older_than_the_history_is_410_and_sse_reset(self):
        reg = self.start_registry("--events-history", "3")
        for i in range(5):
            self.register(reg, "s%d" % i)
        reply = reg.request("GET", "/v1/events?index=1")
        body = self.assertJsonError(reply, 410, "index 1")
        self.assertEqual((body["oldest_index"], body["index"]), (3, 5))
        self.assertEqual(reply[1].get("X-Registry-Index"), "5")
        events, _ = self.events(reg, 2)  # 3, 4, 5 are held
        self.assertEqual([e["index"] for e in events], [3, 4, 5])
        stream = SSE(reg, headers={"Last-Event-ID": "1"})
        self.addCleanup(stream.close)
        reset = stream.next()
        self.assertEqual((reset["event"], reset["id"]), ("reset", "5"))
        self.assertEqual(json.loads(reset["data"]), {"oldest_index": 3, "index": 5})
        self.register(reg, "s5")
        self.assertEqual(stream.next()["id"], "6")

    def test_index_survives_restarts_and_never_goes_back(self):
        reg = self.start_registry()
        ids = [self.register(reg, "r%d" % i) for i in range(3)]
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + ids[-1]))
        before = self.index(reg)
        self.assertEqual(before, 4)
        self.assertEqual(reg.stop(signal.SIGTERM), 0)
        reg = self.start_registry()
        after = self.index(reg)
        self.assertGreaterEqual(after, before)
        # the history of the old process is gone: its indexes answer 410
        self.assertJsonError(reg.request("GET", "/v1/events?index=%d" % before), 410)
        sid = self.register(reg, "r9")
        self.assertEqual(self.index(reg), after + 1)
        events, _ = self.events(reg, after)
        self.assertEqual([(e["index"], e["data"]["service_id"]) for e in events],
                         [(after + 1, sid)])
        # the instance with the highest index leaves; a kill -9 after it
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + sid))
        last = self.index(reg)
        reg.kill()
        reg = self.start_registry()
        self.assertGreater(self.index(reg) + 1, last)
        self.assertGreater(self.register(reg, "r10") and self.index(reg), last)

    def test_sse_client_that_never_reads_is_dropped_at_the_output_cap(self):
        reg = self.start_registry()
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", reg.port))
        s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        meta = {"k%d" % i: "v" * 1000 for i in range(50)}  # events of about 100 KB
        for i in range(150):  # 15 MB of events, more than the cap and the socket buffers
            self.register(reg, "big", port=1000 + i, metadata=meta)
            if self.watchers(reg) == 0:
                break
        wait_until(lambda: self.watchers(reg) == 0, T(10), message="the stream dropped")
        reg.wait_for_log(r"an event stream was dropped", T(5))
        # the registry goes on serving
        self.assertEqual(self.index(reg), i + 1)

    def test_sigterm_with_many_open_watches_exits_0(self):
        """1,000 parked long-polls and 100 SSE streams: SIGTERM answers the
        long-polls (an empty list) and ends the streams; the exit code is 0."""
        reg = self.start_registry()
        self.register(reg, "seed")
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for i in range(1100):
            s = socket.create_connection(("127.0.0.1", reg.port), timeout=T(30))
            socks.append(s)
            if i < 1000:
                req = "GET /v1/events?index=1&wait=5m HTTP/1.1\r\nHost: x\r\n\r\n"
            else:
                req = ("GET /v1/events HTTP/1.1\r\nHost: x\r\n"
                       "Accept: text/event-stream\r\n\r\n")
            s.sendall(req.encode())
        wait_until(lambda: self.watchers(reg) == 1100, T(30), message="1,100 watches open")
        self.assertEqual(reg.stop(signal.SIGTERM, timeout=T(30)), 0)
        # the long-polls were answered with an empty list
        answered = 0
        for s in socks[:1000]:
            try:
                data = s.recv(4096)
            except OSError:
                continue
            if b"200 OK" in data and b'"events":[]' in data:
                answered += 1
        self.assertGreater(answered, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
