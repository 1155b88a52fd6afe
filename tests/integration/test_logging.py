#!/usr/bin/python3
"""Integration tests of the logging-service (build/bin/logging-service).

Each test starts its own logging-service on 127.0.0.1 with an ephemeral port
("--port 0") and a data directory in a fresh temporary directory, speaks
HTTP to it, and stops it. The services register with one real registry
("registry --port 0 --backend memory") started for the whole module, or
with a closed port when a test wants the registry down. A test that passes
ends by stopping its services with SIGTERM and expects exit code 0, so
crashes, hangs on shutdown and sanitizer reports at exit fail the test that
caused them. A failing test prints the services' logs.

Read the docstrings top to bottom for the behaviour the service promises.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_logging.py
      (SVC_TEST_TIMEOUT_SCALE=3 for slow builds such as AddressSanitizer)
"""

import errno
import http.client
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout  # scale a deadline for slow builds

NAME = "logging-service"
BODY_MAX = 1024 * 1024  # LIM_BODY_MAX in common/core/limits.h
MSG_MAX = 64 * 1024     # LG_MSG_MAX in logging-service/lg_limits.h
BATCH_MAX = 1024        # LG_BATCH_MAX in logging-service/lg_limits.h
_registry = None  # the module's registry Service, see setUpModule


def setUpModule():
    global _registry
    _registry = Service().start("registry", ["--port", "0", "--backend", "memory",
                                             "--cleanup-interval", "100ms"])


def tearDownModule():
    if _registry is not None:
        code = _registry.stop(signal.SIGTERM)
        _registry.close()
        if code != 0:
            raise AssertionError("registry exited with code %s\n%s"
                                 % (code, _registry.describe()))


def new_uuid():
    return str(uuid.uuid4())


closed_port = svctest.closed_port


def run_cli(args, cwd, env=None, timeout=10):
    """Run the logging-service with args to completion (svctest.run_cli)."""
    return svctest.run_cli(NAME, args, cwd, env=env, timeout_s=timeout)


class LoggingTestCase(svctest.ServiceTestCase):
    """Starts logging-services and gives assertions on the JSON API."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="logging-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data_dir = os.path.join(self.tmp, "data")

    # --- processes -----------------------------------------------------------

    def start_logging(self, *args, port=0, data="default", registry=None,
                      env=None, binary=NAME, prefix=()):
        """Start a logging-service on 127.0.0.1:port with --data-dir in this
        test's temporary directory (data=None: no --data-dir; data=PATH:
        that), registering with the module's registry (registry=URL: that
        one), plus extra args. Stopped (and checked) or killed at the end.
        prefix: a wrapper command (binary is then its first word)."""
        argv = list(prefix) + ["--port", str(port), "--bind", "127.0.0.1",
                               "--registry", registry or _registry.url,
                               "--ttl", "2s"]
        if data == "default":
            argv += ["--data-dir", self.data_dir]
        elif data is not None:
            argv += ["--data-dir", data]
        argv += list(args)
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start(binary, argv, env=env, cwd=self.tmp)
        return svc

    def restart(self, svc, *args, sig=signal.SIGTERM, **kw):
        """Stop svc with sig and start it again on the same port and data."""
        code = svc.stop(sig)
        if sig == signal.SIGTERM:
            self.assertEqual(code, 0, svc.describe())
        else:
            self.assertEqual(code, -sig, svc.describe())
        return self.start_logging(*args, port=svc.port, **kw)

    def journal_path(self, svc):
        return os.path.join(self.data_dir, "logging-%d.jsonl" % svc.port)

    # --- API helpers ----------------------------------------------------------

    def post(self, svc, body):
        return svc.request("POST", "/logging", body)

    def store(self, svc, uid, msg, status=201, **extra):
        """POST one message and assert the success answer (201 stored, 200
        duplicate)."""
        payload = {"uuid": uid, "msg": msg}
        payload.update(extra)
        got, headers, body = self.post(svc, payload)
        what = "POST %r: got %s %r" % (payload, got, body)
        self.assertEqual(got, status, what)
        self.assertJsonContentType(headers, what)
        self.assertEqual(body, {"success": True, "uuid": uid.lower(),
                                "duplicate": status == 200}, what)
        return body

    def messages(self, svc):
        """GET /logging: the list of messages (asserts 200)."""
        got, headers, body = svc.request("GET", "/logging")
        self.assertEqual(got, 200, body)
        self.assertJsonContentType(headers)
        self.assertIsInstance(body, dict, body)
        self.assertIsInstance(body.get("messages"), list, body)
        return body["messages"]

    def pairs(self, svc):
        return [(m["uuid"], m["msg"]) for m in self.messages(svc)]

    def metric(self, svc, name):
        got, _, text = svc.request("GET", "/metrics")
        self.assertEqual(got, 200)
        match = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        self.assertIsNotNone(match, "%s not in /metrics:\n%s" % (name, text))
        return float(match.group(1))

    def instances(self, **query):
        """The registry's list of logging-service instances."""
        query.setdefault("name", NAME)
        got, _, body = _registry.request(
            "GET", "/v1/services?" + urllib.parse.urlencode(query))
        self.assertEqual(got, 200, body)
        return body["services"]


# ---------------------------------------------------------------------------


class StoreTest(LoggingTestCase):
    """POST and GET /logging: storing, deduplication, conflicts, order."""

    def test_post_stores_and_prints_the_message(self):
        """A new uuid answers 201 {"success": true, "uuid", "duplicate":
        false}, the service logs "stored <uuid>: <msg>" at INFO, and GET
        /logging lists it with a timestamp in ms."""
        svc = self.start_logging()
        uid = new_uuid()
        before = int(time.time() * 1000)
        self.store(svc, uid, "hello, world")
        after = int(time.time() * 1000)
        svc.wait_for_log(r"INFO %s stored %s: hello, world$" % (NAME, uid))
        msgs = self.messages(svc)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0]["uuid"], uid)
        self.assertEqual(msgs[0]["msg"], "hello, world")
        self.assertIsInstance(msgs[0]["ts"], int)
        self.assertGreaterEqual(msgs[0]["ts"], before - 1000)
        self.assertLessEqual(msgs[0]["ts"], after + 1000)

    def test_given_ts_is_kept(self):
        """An integer "ts" (the facade's time in ms) is stored as given."""
        svc = self.start_logging()
        uid = new_uuid()
        self.store(svc, uid, "from the facade", ts=1700000000123)
        self.assertEqual(self.messages(svc)[0]["ts"], 1700000000123)

    def test_same_uuid_same_msg_is_a_duplicate(self):
        """The same uuid and msg again answer 200 with "duplicate": true and
        are stored once, whatever the ts; the first ts stays."""
        svc = self.start_logging()
        uid = new_uuid()
        self.store(svc, uid, "once", ts=1)
        self.store(svc, uid, "once", status=200, ts=2)
        self.store(svc, uid, "once", status=200)
        self.assertEqual(self.messages(svc), [{"uuid": uid, "msg": "once", "ts": 1}])
        self.assertEqual(self.metric(svc, "logging_duplicates_total"), 2)

    def test_same_uuid_other_msg_is_a_conflict(self):
        """A known uuid with another msg answers 409 with a JSON error and
        changes nothing."""
        svc = self.start_logging()
        uid = new_uuid()
        self.store(svc, uid, "original")
        self.assertJsonError(self.post(svc, {"uuid": uid, "msg": "changed"}), 409,
                             "conflicting msg")
        self.assertEqual(self.pairs(svc), [(uid, "original")])
        self.assertEqual(self.metric(svc, "logging_conflicts_total"), 1)
        self.store(svc, uid, "original", status=200)

    def test_uuid_is_case_insensitive(self):
        """UUIDs are case-insensitive: an upper-case uuid is stored and
        answered in lower case, and the lower-case form is the same key."""
        svc = self.start_logging()
        uid = new_uuid()
        self.store(svc, uid.upper(), "shouting")
        self.store(svc, uid, "shouting", status=200)
        self.assertEqual(self.pairs(svc), [(uid, "shouting")])

    def test_get_lists_messages_in_the_order_first_stored(self):
        """GET /logging returns {"messages": [{uuid, msg, ts}...]} in the
        order the messages were first stored (not sorted by uuid or ts)."""
        svc = self.start_logging()
        expected = []
        for i in range(30):
            uid = new_uuid()
            self.store(svc, uid, "message %d" % i, ts=1000 - i)
            expected.append((uid, "message %d" % i))
        self.store(svc, expected[3][0], expected[3][1], status=200)
        self.assertEqual(self.pairs(svc), expected)
        self.assertEqual(self.metric(svc, "logging_messages_stored"), 30)

    def test_get_pages_in_the_order_first_stored(self):
        """GET /logging?after=N&limit=L answers the messages at positions
        N..N+L-1 of the order first stored, with the store's epoch, the
        position to continue from and whether more remain; the pages put
        together are the plain GET's list."""
        svc = self.start_logging()
        for i in range(7):
            self.store(svc, new_uuid(), "paged \"%d\"" % i, ts=100 - i)
        whole = self.messages(svc)
        pages, after, epochs = [], 0, set()
        while True:
            got, _, body = svc.request("GET", "/logging?after=%d&limit=3" % after)
            self.assertEqual(got, 200, body)
            self.assertEqual(set(body), {"success", "epoch", "messages", "next", "more"})
            self.assertEqual(body["next"], after + len(body["messages"]))
            epochs.add(body["epoch"])
            pages.append(body["messages"])
            after = body["next"]
            if not body["more"]:
                break
        self.assertEqual([len(p) for p in pages], [3, 3, 1])
        self.assertEqual([m for p in pages for m in p], whole)
        self.assertEqual(len(epochs), 1)
        # Past the end: nothing, the same position, no more.
        got, _, body = svc.request("GET", "/logging?after=7")
        self.assertEqual((got, body["messages"], body["next"], body["more"]),
                         (200, [], 7, False))
        # Without limit a page holds up to the default (all 7 here).
        got, _, body = svc.request("GET", "/logging?after=2")
        self.assertEqual(body["messages"], whole[2:])
        # A new message is found after the last position.
        uid = new_uuid()
        self.store(svc, uid, "late")
        got, _, body = svc.request("GET", "/logging?after=7&limit=10")
        self.assertEqual([m["uuid"] for m in body["messages"]], [uid])
        self.assertEqual((body["next"], body["more"]), (8, False))

    def test_page_query_errors_are_400(self):
        """after and limit must be decimal integers: after >= 0, limit
        1..10000; anything else is 400 with the JSON error."""
        svc = self.start_logging()
        for query in ("after=-1", "after=x", "after=", "after=1.5", "limit=0",
                      "limit=10001", "limit=abc", "after=0&limit=-3",
                      "after=99999999999999999999"):
            self.assertJsonError(svc.request("GET", "/logging?" + query), 400, query)
        got, _, body = svc.request("GET", "/logging?limit=10000")
        self.assertEqual((got, body["messages"], body["more"]), (200, [], False))

    def test_epoch_changes_with_a_restart(self):
        """A restarted instance replays the same messages in the same order
        but answers under a new epoch, so that no reader applies an old
        position to it without noticing."""
        svc = self.start_logging()
        self.store(svc, new_uuid(), "one")
        _, _, first = svc.request("GET", "/logging?after=0")
        again = self.restart(svc)
        _, _, second = again.request("GET", "/logging?after=0")
        self.assertEqual(first["messages"], second["messages"])
        self.assertNotEqual(first["epoch"], second["epoch"])
        uuid.UUID(second["epoch"])

    def test_text_survives_exactly(self):
        """Quotes, backslashes, newlines, control characters and non-ASCII
        text come back byte for byte."""
        svc = self.start_logging()
        text = 'line1\nline2\t"quoted" \\ back\x01slash h\u00e9llo \u2713 \U0001F600 {}[]'
        uid = new_uuid()
        self.store(svc, uid, text)
        self.assertEqual(self.pairs(svc), [(uid, text)])

    def test_msg_limit(self):
        """A msg of MSG_MAX bytes (UTF-8) is accepted; one byte more is 400."""
        svc = self.start_logging()
        self.store(svc, new_uuid(), "x" * MSG_MAX)
        self.store(svc, new_uuid(), "\u00e9" * (MSG_MAX // 2))
        self.assertJsonError(self.post(svc, {"uuid": new_uuid(), "msg": "x" * (MSG_MAX + 1)}),
                             400, "msg too long")
        self.assertEqual(len(self.messages(svc)), 2)

    def test_invalid_messages_are_400_and_store_nothing(self):
        """Missing or invalid uuid or msg, wrong types, a bad ts, a body that
        is not a JSON object or array, malformed JSON and an empty body all
        answer 400 with a JSON error; nothing is stored."""
        svc = self.start_logging()
        uid = new_uuid()
        cases = [
            ("no uuid", {"msg": "x"}),
            ("no msg", {"uuid": uid}),
            ("uuid null", {"uuid": None, "msg": "x"}),
            ("uuid number", {"uuid": 12345, "msg": "x"}),
            ("uuid not canonical", {"uuid": "not-a-uuid", "msg": "x"}),
            ("uuid without hyphens", {"uuid": uid.replace("-", ""), "msg": "x"}),
            ("uuid in braces", {"uuid": "{%s}" % uid, "msg": "x"}),
            ("uuid with a non-hex digit", {"uuid": "g" + uid[1:], "msg": "x"}),
            ("uuid with trailing space", {"uuid": uid + " ", "msg": "x"}),
            ("msg empty", {"uuid": uid, "msg": ""}),
            ("msg null", {"uuid": uid, "msg": None}),
            ("msg number", {"uuid": uid, "msg": 42}),
            ("msg object", {"uuid": uid, "msg": {"text": "x"}}),
            ("msg list", {"uuid": uid, "msg": ["x"]}),
            ("ts string", {"uuid": uid, "msg": "x", "ts": "1700000000000"}),
            ("ts float", {"uuid": uid, "msg": "x", "ts": 1.5}),
            ("ts negative", {"uuid": uid, "msg": "x", "ts": -1}),
            ("ts bool", {"uuid": uid, "msg": "x", "ts": True}),
            ("body a string", "\"just text\""),
            ("body a number", "42"),
            ("body null", "null"),
            ("malformed JSON", '{"uuid": "%s", "msg": ' % uid),
            ("trailing garbage", '{"uuid": "%s", "msg": "x"} extra' % uid),
            ("duplicate key", '{"uuid": "%s", "msg": "x", "msg": "y"}' % uid),
            ("empty body", b""),
        ]
        for label, body in cases:
            with self.subTest(label):
                self.assertJsonError(self.post(svc, body), 400, label)
        self.assertEqual(self.messages(svc), [])
        self.store(svc, uid, "the valid one")

    def test_unknown_members_are_ignored(self):
        """Members other than uuid, msg, ts and trace are ignored (newer
        facades work with this service); trace is checked, see test_trace."""
        svc = self.start_logging()
        uid = new_uuid()
        self.store(svc, uid, "x", span="abc", level="info")
        self.assertEqual(sorted(self.messages(svc)[0]), ["msg", "ts", "uuid"])


class BatchTest(LoggingTestCase):
    """POST /logging with a JSON array."""

    def test_batch_results_one_per_item_in_order(self):
        """An array answers 200 {"success": true, "results": [...]} with one
        {uuid, status, duplicate, error?} per item in order: 201 stored, 200
        duplicate (also of an earlier item of the same batch), 409 conflict,
        400 invalid; the valid ones are stored in array order."""
        svc = self.start_logging()
        known, a, b = new_uuid(), new_uuid(), new_uuid()
        self.store(svc, known, "already here")
        batch = [
            {"uuid": a, "msg": "first", "ts": 10},
            {"uuid": known, "msg": "already here"},
            {"uuid": known, "msg": "something else"},
            {"uuid": "bad", "msg": "x"},
            {"uuid": a, "msg": "first"},
            {"uuid": a, "msg": "not first"},
            "not an object",
            {"uuid": b, "msg": "second"},
            {"uuid": b.upper(), "msg": "second"},
        ]
        got, headers, body = self.post(svc, batch)
        self.assertEqual(got, 200, body)
        self.assertJsonContentType(headers)
        self.assertIs(body.get("success"), True, body)
        results = body["results"]
        self.assertEqual([r["status"] for r in results],
                         [201, 200, 409, 400, 200, 409, 400, 201, 200], results)
        self.assertEqual([r["duplicate"] for r in results],
                         [False, True, False, False, True, False, False, False, True])
        self.assertEqual([r["uuid"] for r in results],
                         [a, known, known, "bad", a, a, None, b, b])
        for i in (2, 3, 5, 6):
            self.assertIsInstance(results[i].get("error"), str, results[i])
            self.assertTrue(results[i]["error"])
        for i in (0, 1, 4, 7, 8):
            self.assertNotIn("error", results[i])
        self.assertEqual(self.pairs(svc), [(known, "already here"), (a, "first"),
                                           (b, "second")])
        for uid, msg in ((a, "first"), (b, "second")):
            svc.wait_for_log(r"stored %s: %s$" % (uid, msg))

    def test_both_readers_answer_alike(self):
        """A body in the fast reader's subset (raw UTF-8, no escapes) and the
        same body with escapes (read by jansson) get the same answers and
        store the same messages, for batches and single objects."""
        answers = []
        for escaped in (False, True):
            svc = self.start_logging()
            known, a, one = new_uuid(), new_uuid(), new_uuid()
            self.store(svc, known, "caf\u00e9")
            batch = [
                {"uuid": a, "msg": "caf\u00e9 \U0001f600", "ts": 10},
                {"uuid": known, "msg": "caf\u00e9"},
                {"uuid": known, "msg": "other"},
                {"uuid": a.upper(), "msg": "caf\u00e9 \U0001f600", "extra": [1, {"k": None}]},
            ]
            raw = json.dumps(batch, ensure_ascii=escaped).encode()
            self.assertEqual(b"\\u" in raw, escaped)
            got, _, body = svc.request("POST", "/logging", raw,
                                       headers={"Content-Type": "application/json"})
            self.assertEqual(got, 200, body)
            results = [(r["uuid"] == a, r["uuid"] == known, r["status"], r["duplicate"],
                        "error" in r) for r in body["results"]]
            raw = json.dumps({"uuid": one, "msg": "\u00fcber"}, ensure_ascii=escaped).encode()
            single = [svc.request("POST", "/logging", raw,
                                  headers={"Content-Type": "application/json"})[0]
                      for _ in range(2)]
            stored = [(m["msg"], m["ts"] if m["uuid"] == a else None)
                      for m in self.messages(svc)]
            answers.append((results, single, stored))
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0][0], [(True, False, 201, False, False),
                                         (False, True, 200, True, False),
                                         (False, True, 409, False, True),
                                         (True, False, 200, True, False)])
        self.assertEqual(answers[0][1], [201, 200])

    def test_batch_is_one_journal_write(self):
        """The new lines of a batch reach the journal in one write(2)."""
        svc = self.start_logging()
        before = self.metric(svc, "logging_journal_writes_total")
        batch = [{"uuid": new_uuid(), "msg": "m%d" % i} for i in range(100)]
        got, _, body = self.post(svc, batch)
        self.assertEqual(got, 200, body)
        self.assertEqual(self.metric(svc, "logging_journal_writes_total"), before + 1)
        with open(self.journal_path(svc)) as f:
            self.assertEqual(len(f.read().splitlines()), 100)

    def test_batch_limits(self):
        """An empty array is 400; BATCH_MAX items are accepted; one more is
        413 with a JSON error and nothing of it is stored."""
        svc = self.start_logging()
        self.assertJsonError(self.post(svc, []), 400, "empty batch")
        too_many = [{"uuid": new_uuid(), "msg": "m"} for _ in range(BATCH_MAX + 1)]
        self.assertJsonError(self.post(svc, too_many), 413, "batch too large")
        self.assertEqual(self.messages(svc), [])
        got, _, body = self.post(svc, too_many[:BATCH_MAX])
        self.assertEqual(got, 200)
        self.assertEqual(len(body["results"]), BATCH_MAX)
        self.assertEqual(len(self.messages(svc)), BATCH_MAX)

    def test_batch_of_only_invalid_items(self):
        """A batch with nothing valid still answers 200 with its 400s."""
        svc = self.start_logging()
        got, _, body = self.post(svc, [{"uuid": "x"}, 5, None])
        self.assertEqual(got, 200, body)
        self.assertEqual([r["status"] for r in body["results"]], [400, 400, 400])
        self.assertEqual(self.messages(svc), [])


def rss_kib(pid, field="VmRSS"):
    """A memory figure of process pid from /proc/PID/status, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def reset_peak_rss(pid):
    """Reset VmHWM (the peak RSS) of pid to its RSS now; False when the
    kernel does not let us (then the peak cannot be measured)."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class StreamedListTest(LoggingTestCase):
    """A plain GET /logging is streamed: pieces are made as the client
    takes the previous ones, so the service's memory does not grow with the
    size of the answer, and the answer is the list as it was when the GET
    began."""

    COUNT = 20000        # messages
    MSG_BYTES = 1024     # bytes of each msg
    PER_POST = 800       # messages per batch POST (under the 1 MiB body)
    MIB = 1024           # KiB

    def load(self, svc):
        """Store COUNT messages of MSG_BYTES; return the list as the pages
        (GET /logging?after=&limit=) read it."""
        for start in range(0, self.COUNT, self.PER_POST):
            batch = [{"uuid": new_uuid(),
                      "msg": ("%06d " % i).ljust(self.MSG_BYTES, "x")}
                     for i in range(start, min(start + self.PER_POST, self.COUNT))]
            got, _, body = self.post(svc, batch)
            self.assertEqual(got, 200, body)
            self.assertTrue(all(r["status"] == 201 for r in body["results"]))
        paged, after = [], 0
        while True:
            got, _, page = svc.request("GET", "/logging?after=%d" % after)
            self.assertEqual(got, 200, page)
            paged += page["messages"]
            after = page["next"]
            if not page["more"]:
                break
        self.assertEqual(len(paged), self.COUNT)
        return paged

    @staticmethod
    def encoded(messages):
        """The bytes GET /logging answers for messages (jansson's compact
        text: the same as Python's with these separators, ASCII text)."""
        return ('{"success":true,"messages":[' +
                ",".join(json.dumps(m, separators=(",", ":")) for m in messages) +
                "]}").encode()

    def test_large_list_is_streamed_whole_without_holding_it(self):
        """20,000 messages of 1 KiB (a 21 MB answer): GET /logging answers
        200 application/json, chunked, and its bytes are exactly the list
        the pages give, written as jansson would; the service's peak RSS
        during the GET stays far below the answer's size, and its RSS after
        is near the level before."""
        svc = self.start_logging("--fsync", "no")
        paged = self.load(svc)
        want = self.encoded(paged)
        before = rss_kib(svc.pid)
        peak_known = reset_peak_rss(svc.pid)

        conn = http.client.HTTPConnection(svc.host, svc.port, timeout=T(30))
        self.addCleanup(conn.close)
        conn.request("GET", "/logging")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertJsonContentType(resp.msg)
        self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
        got = resp.read()
        conn.close()
        self.assertEqual(len(got), len(want))
        self.assertTrue(got == want, "the streamed list differs from the pages")

        after = rss_kib(svc.pid)
        self.assertLess(after, before + 30 * self.MIB,
                        "RSS %d KiB after the GET, %d KiB before" % (after, before))
        if peak_known:
            peak = rss_kib(svc.pid, "VmHWM")
            self.assertLess(peak - before, len(want) // 1024 // 2,
                            "peak RSS grew by %d KiB for a %d KiB answer"
                            % (peak - before, len(want) // 1024))
        # a small list is one piece, and still the same bytes
        self.assertEqual(self.messages(svc)[:3], paged[:3])

    def test_stream_is_the_list_when_the_get_began_and_a_stalled_client_is_capped(self):
        """A client that reads nothing pins no more than the stream's output
        cap (4 MiB, LIM_STREAM_OUT_MAX) plus a piece, while the service goes
        on serving others; a message stored meanwhile is not in that answer
        (it is the list as it was when the GET began) but is in the next
        one. A client that leaves in the middle ends its stream."""
        svc = self.start_logging("--fsync", "no")
        paged = self.load(svc)
        before = rss_kib(svc.pid)

        stalled = http.client.HTTPConnection(svc.host, svc.port, timeout=T(30))
        self.addCleanup(stalled.close)
        stalled.request("GET", "/logging")
        resp = stalled.getresponse()
        self.assertEqual(resp.status, 200)
        head = resp.read(64)
        self.assertTrue(head.startswith(b'{"success":true,"messages":[{"uuid":'), head)
        time.sleep(0.3)  # let the service write all it will for a stalled client
        stalled_rss = rss_kib(svc.pid)
        self.assertLess(stalled_rss - before, 4 * self.MIB + 1 * self.MIB,
                        "RSS grew by %d KiB for a client that reads nothing"
                        % (stalled_rss - before))

        late = new_uuid()
        self.store(svc, late, "stored while the list was being sent")
        got = head + resp.read()
        self.assertTrue(got == self.encoded(paged), "the streamed list differs from the pages")
        self.assertNotIn(late.encode(), got)
        stalled.close()
        listed = self.messages(svc)
        self.assertEqual(len(listed), self.COUNT + 1)
        self.assertEqual(listed[-1]["uuid"], late)

        # a client that leaves in the middle: the service notices and goes on
        gone = http.client.HTTPConnection(svc.host, svc.port, timeout=T(30))
        gone.request("GET", "/logging")
        resp = gone.getresponse()
        self.assertEqual(resp.status, 200)
        resp.read(1000)
        gone.sock.shutdown(2)
        gone.close()
        got, _, body = svc.request("GET", "/health")
        self.assertEqual(got, 200, body)
        self.assertEqual(len(self.messages(svc)), self.COUNT + 1)


    def test_sigterm_ends_an_open_stream(self):
        """SIGTERM while a client is stalled in the middle of a GET /logging:
        the service ends that stream at once (its client gets an answer cut
        short, not a complete list) and exits 0 well within the drain."""
        svc = self.start_logging("--fsync", "no")
        self.load(svc)
        stalled = http.client.HTTPConnection(svc.host, svc.port, timeout=T(30))
        self.addCleanup(stalled.close)
        stalled.request("GET", "/logging")
        resp = stalled.getresponse()
        self.assertEqual(resp.status, 200)
        head = resp.read(64)
        started = time.monotonic()
        code = svc.stop(signal.SIGTERM)
        self.assertEqual(code, 0, svc.describe())
        self.assertLess(time.monotonic() - started, T(4))
        try:
            rest = resp.read()
        except http.client.IncompleteRead as cut:
            rest = cut.partial
        got = head + rest
        self.assertLess(len(got), self.COUNT * self.MSG_BYTES)
        self.assertFalse(got.endswith(b"]}"), got[-64:])


class HttpTest(LoggingTestCase):
    """What the shared server does: 404, 405, 413, /health, /metrics."""

    def test_unknown_route_wrong_method_oversized_body(self):
        """Unknown paths answer 404, other methods on /logging 405, a body
        over 1 MiB 413, all with JSON errors; nothing is stored."""
        svc = self.start_logging()
        self.assertJsonError(svc.request("GET", "/nope"), 404, "unknown path")
        self.assertJsonError(svc.request("GET", "/logging/extra"), 404, "sub path")
        for method in ("PUT", "DELETE", "PATCH"):
            self.assertJsonError(svc.request(method, "/logging", {}), 405, method)
        huge = json.dumps({"uuid": new_uuid(), "msg": "x" * BODY_MAX})
        self.assertJsonError(self.post(svc, huge), 413, "oversized body")
        self.assertEqual(self.messages(svc), [])

    def test_health_and_metrics(self):
        """GET /health is 200; /metrics has the service's series."""
        svc = self.start_logging()
        got, _, body = svc.request("GET", "/health")
        self.assertEqual(got, 200)
        self.assertEqual(body.get("status"), "ok")
        uid = new_uuid()
        self.store(svc, uid, "counted")
        self.store(svc, uid, "counted", status=200)
        self.post(svc, {"uuid": uid, "msg": "conflict"})
        self.assertEqual(self.metric(svc, "logging_messages_stored"), 1)
        self.assertEqual(self.metric(svc, "logging_duplicates_total"), 1)
        self.assertEqual(self.metric(svc, "logging_conflicts_total"), 1)
        _, headers, text = svc.request("GET", "/metrics")
        self.assertIn("# TYPE logging_messages_stored gauge", text)
        self.assertIn("# TYPE logging_duplicates_total counter", text)
        self.assertIn("# TYPE logging_conflicts_total counter", text)


class DurabilityTest(LoggingTestCase):
    """The journal: restarts, crashes, torn tails, memory-only mode."""

    def test_restart_keeps_messages(self):
        """After SIGTERM (exit 0), an instance started again on the same
        port and data directory answers with everything it had, in order,
        and logs how many messages it replayed."""
        svc = self.start_logging()
        expected = []
        for i in range(5):
            uid = new_uuid()
            self.store(svc, uid, "single %d" % i, ts=i)
            expected.append((uid, "single %d" % i))
        batch = [{"uuid": new_uuid(), "msg": "batched %d" % i} for i in range(10)]
        self.assertEqual(self.post(svc, batch)[0], 200)
        expected += [(m["uuid"], m["msg"]) for m in batch]
        before = self.messages(svc)
        self.assertTrue(os.path.isfile(self.journal_path(svc)))

        again = self.restart(svc)
        again.wait_for_log(r"replayed 15 messages from .*logging-%d\.jsonl" % svc.port)
        self.assertEqual(self.messages(again), before)
        self.assertEqual(self.pairs(again), expected)
        # Deduplication holds across the restart.
        self.store(again, expected[0][0], expected[0][1], status=200)
        self.assertJsonError(self.post(again, {"uuid": expected[0][0], "msg": "other"}),
                             409, "conflict after restart")

    def test_sigkill_keeps_every_acknowledged_message(self):
        """A message is in the journal (written to the OS) before it is
        acknowledged: after SIGKILL every acknowledged message is back, even
        with --fsync no."""
        svc = self.start_logging("--fsync", "no")
        expected = []
        for i in range(50):
            uid = new_uuid()
            self.store(svc, uid, "acked %d" % i)
            expected.append((uid, "acked %d" % i))
        batch = [{"uuid": new_uuid(), "msg": "acked batch %d" % i} for i in range(50)]
        self.assertEqual(self.post(svc, batch)[0], 200)
        expected += [(m["uuid"], m["msg"]) for m in batch]
        again = self.restart(svc, sig=signal.SIGKILL)
        self.assertEqual(self.pairs(again), expected)

    def test_torn_tail_is_skipped_on_restart(self):
        """A journal ending in half a line (a crash mid-write) starts fine:
        the tail is skipped with a WARN and cut off, the good messages are
        served, and later writes and restarts are clean."""
        svc = self.start_logging()
        expected = []
        for i in range(3):
            uid = new_uuid()
            self.store(svc, uid, "good %d" % i)
            expected.append((uid, "good %d" % i))
        self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())
        path = self.journal_path(svc)
        good_size = os.path.getsize(path)
        with open(path, "ab") as f:
            f.write(b'{"uuid":"%s","msg":"torn in the mid' % new_uuid().encode())

        again = self.start_logging(port=svc.port)
        again.wait_for_log(r"WARN .*line 4: skipped")
        again.wait_for_log(r"replayed 3 messages")
        self.assertEqual(self.pairs(again), expected)
        self.assertEqual(os.path.getsize(path), good_size)
        uid = new_uuid()
        self.store(again, uid, "after the repair")
        expected.append((uid, "after the repair"))

        third = self.restart(again)
        third.wait_for_log(r"replayed 4 messages")
        self.assertFalse([l for l in third.log_lines() if " WARN " in l and "skipped" in l],
                         third.describe())
        self.assertEqual(self.pairs(third), expected)

    def test_corrupt_middle_line_is_skipped(self):
        """A corrupt line between good ones is skipped with a WARN; the
        messages after it are served."""
        svc = self.start_logging()
        first, last = new_uuid(), new_uuid()
        self.store(svc, first, "before")
        self.assertEqual(svc.stop(signal.SIGTERM), 0)
        with open(self.journal_path(svc), "ab") as f:
            f.write(b"garbage that is not JSON\n")
            f.write(b'{"uuid":"%s","msg":"after","ts":1}\n' % last.encode())
        again = self.start_logging(port=svc.port)
        again.wait_for_log(r"WARN .*line 2: skipped")
        self.assertEqual(self.pairs(again), [(first, "before"), (last, "after")])

    def test_fsync_always_and_everysec(self):
        """--fsync always and everysec both keep messages across a restart."""
        for policy in ("always", "everysec"):
            with self.subTest(policy):
                data = os.path.join(self.tmp, "data-" + policy)
                svc = self.start_logging("--fsync", policy, data=data)
                uid = new_uuid()
                self.store(svc, uid, policy)
                svc.wait_for_log("fsync %s" % policy)
                again = self.restart(svc, "--fsync", policy, data=data)
                self.assertEqual(self.pairs(again), [(uid, policy)])
                self.assertEqual(again.stop(signal.SIGTERM), 0)

    def test_memory_only_modes(self):
        """--in-memory and --data-dir '' keep nothing on disk: a restart
        starts empty and the data directory is not even created."""
        for label, args, data in (("--in-memory", ["--in-memory"], "default"),
                                  ("--data-dir ''", [], "")):
            with self.subTest(label):
                svc = self.start_logging(*args, data=data)
                svc.wait_for_log("memory only")
                self.store(svc, new_uuid(), "fleeting")
                self.assertEqual(len(self.messages(svc)), 1)
                again = self.restart(svc, *args, data=data)
                self.assertEqual(self.messages(again), [])
                self.assertFalse(os.path.exists(self.data_dir))
                self.assertFalse([f for f in os.listdir(self.tmp) if f.endswith(".jsonl")])
                self.assertEqual(again.stop(signal.SIGTERM), 0)

    def test_data_dir_is_created(self):
        """A missing data directory (and its parents) is created."""
        nested = os.path.join(self.tmp, "a", "b", "data")
        svc = self.start_logging(data=nested)
        self.store(svc, new_uuid(), "x")
        self.assertTrue(os.path.isfile(os.path.join(nested, "logging-%d.jsonl" % svc.port)))

    def test_default_data_dir_is_dot_data(self):
        """Without --data-dir the journal is ./data/logging-PORT.jsonl."""
        svc = self.start_logging(data=None)
        self.store(svc, new_uuid(), "x")
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, "data",
                                                    "logging-%d.jsonl" % svc.port)))

    def test_unusable_data_dir_is_one_error_line_and_exit_1(self):
        """A data directory that cannot be created or written is one clear
        error line on stderr and exit code 1, before anything listens."""
        blocker = os.path.join(self.tmp, "a-file")
        with open(blocker, "w") as f:
            f.write("not a directory\n")
        for data in (blocker, os.path.join(blocker, "sub")):
            with self.subTest(data=data):
                done = run_cli(["--port", "0", "--data-dir", data,
                                "--registry", "http://127.0.0.1:%d" % closed_port()],
                               cwd=self.tmp)
                self.assertEqual(done.returncode, 1, done.stderr)
                lines = [l for l in done.stderr.splitlines() if l.strip()]
                self.assertEqual(len(lines), 1, done.stderr)
                self.assertIn("a-file", lines[0])
                self.assertNotIn("listening on", done.stderr)

    def test_journal_write_failure_is_503_and_keeps_memory_and_disk_equal(self):
        """When the journal write fails (here a file size limit stands in
        for a full disk) the POST answers 503 with a JSON error and the
        message is not kept in memory either; smaller writes that fit still
        work, and a restart shows exactly the acknowledged messages."""
        limit = 4096
        wrapper = ["-c", "import os, resource, sys; "
                   "resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d)); "
                   "os.execv(sys.argv[1], sys.argv[1:])" % (limit, limit),
                   svctest.binary_path(NAME)]
        svc = self.start_logging(binary="/usr/bin/python3", prefix=wrapper)
        small = new_uuid()
        self.store(svc, small, "fits")
        big = new_uuid()
        self.assertJsonError(self.post(svc, {"uuid": big, "msg": "x" * (2 * limit)}),
                             503, "write over the file size limit")
        self.assertJsonError(self.post(svc, [{"uuid": new_uuid(), "msg": "y" * limit},
                                             {"uuid": new_uuid(), "msg": "y" * limit}]),
                             503, "batch over the file size limit")
        self.assertEqual(self.pairs(svc), [(small, "fits")])
        later = new_uuid()
        self.store(svc, later, "still fits")
        self.assertEqual(self.metric(svc, "logging_store_failures_total"), 2)
        again = self.restart(svc)
        self.assertEqual(self.pairs(again), [(small, "fits"), (later, "still fits")])


class JournalHardeningTest(LoggingTestCase):
    """The issue "Harden what exists: faults, hostile input and who may
    write": bad journal lines are never destroyed (finding 1), a deleted
    journal is written again (finding 2), /health reports a journal that
    cannot be written (finding 3)."""

    def rejected_path(self, svc):
        return self.journal_path(svc) + ".rejected"

    def limited_logging(self, limit, *args, **kw):
        """A logging-service whose files may not grow past limit bytes
        (RLIMIT_FSIZE, set by a python3 wrapper before exec; the service
        ignores SIGXFSZ, so a write over it fails with EFBIG)."""
        wrapper = ["-c", "import os, resource, sys; "
                   "resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d)); "
                   "os.execv(sys.argv[1], sys.argv[1:])" % (limit, limit),
                   svctest.binary_path(NAME)]
        return self.start_logging(*args, binary="/usr/bin/python3", prefix=wrapper, **kw)

    def assertHealthy(self, svc, what=""):
        got, headers, body = svc.request("GET", "/health")
        msg = "%s: got %s %r" % (what, got, body)
        self.assertEqual(got, 200, msg)
        self.assertJsonContentType(headers, msg)
        self.assertIs(body.get("success"), True, msg)
        self.assertEqual(body.get("status"), "ok", msg)

    def assertDegraded(self, svc, needle, what=""):
        body = self.assertJsonError(svc.request("GET", "/health"), 503, what)
        self.assertEqual(body.get("status"), "degraded", body)
        self.assertTrue(body["error"].startswith("journal: "), body)
        self.assertIn(needle, body["error"])
        return body

    def test_complete_bad_lines_are_copied_to_rejected_not_cut(self):
        """Finding 1: complete lines a POST could not have stored (no ts, a
        ts of -5 or 10^17, a 70,000-byte msg, not JSON) at the end of the
        journal used to be cut off. They are kept out of memory, copied as
        they were to logging-PORT.jsonl.rejected, counted in one WARN, and
        the good messages are served; the next start is clean."""
        svc = self.start_logging()
        good = [(new_uuid(), "good %d" % i) for i in range(2)]
        for uid, msg in good:
            self.store(svc, uid, msg)
        self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())
        bad = [json.dumps({"uuid": new_uuid(), "msg": "no ts"}),
               json.dumps({"uuid": new_uuid(), "msg": "before 1970", "ts": -5}),
               json.dumps({"uuid": new_uuid(), "msg": "far ahead", "ts": 10 ** 17}),
               json.dumps({"uuid": new_uuid(), "msg": "m" * 70000, "ts": 1}),
               "not JSON at all"]
        data = "".join(line + "\n" for line in bad).encode()
        with open(self.journal_path(svc), "ab") as f:
            f.write(data)

        again = self.start_logging(port=svc.port)
        again.wait_for_log(r"WARN .*5 bad lines kept out of memory")
        self.assertEqual(self.pairs(again), good)
        with open(self.rejected_path(svc), "rb") as f:
            self.assertEqual(f.read(), data)
        third = self.restart(again)
        third.wait_for_log(r"replayed 2 messages")
        self.assertFalse([l for l in third.log_lines() if " WARN " in l
                          and ("skipped" in l or "bad lines" in l or "cutting" in l)],
                         third.describe())
        with open(self.rejected_path(svc), "rb") as f:
            self.assertEqual(f.read(), data)  # not copied twice

    def test_nul_run_does_not_swallow_the_next_line(self):
        """Finding 1: 4 KiB of NUL bytes right before a good line (zeroed
        blocks after a crash) no longer hide that line."""
        svc = self.start_logging()
        first = new_uuid()
        self.store(svc, first, "before")
        self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())
        after = new_uuid()
        with open(self.journal_path(svc), "ab") as f:
            f.write(b"\0" * 4096)
            f.write(b'{"uuid":"%s","msg":"after the zeros","ts":1}\n' % after.encode())
        again = self.start_logging(port=svc.port)
        again.wait_for_log(r"replayed 2 messages")
        self.assertEqual(self.pairs(again), [(first, "before"), (after, "after the zeros")])

    def test_deleted_journal_is_written_again(self):
        """Finding 2: a journal deleted while the instance runs used to take
        writes that vanished on restart. The next POST notices it and
        writes every stored message to a new file at the path before it
        answers; /health says degraded until then; a restart has them all."""
        svc = self.start_logging()
        expected = []
        for i in range(5):
            uid = new_uuid()
            self.store(svc, uid, "before %d" % i)
            expected.append((uid, "before %d" % i))
        os.unlink(self.journal_path(svc))
        self.assertDegraded(svc, "deleted", "after the unlink")
        for i in range(5):
            uid = new_uuid()
            self.store(svc, uid, "after %d" % i)
            expected.append((uid, "after %d" % i))
        self.assertTrue(os.path.isfile(self.journal_path(svc)))
        svc.wait_for_log(r"created again with the 6 messages held")
        self.assertHealthy(svc, "after the rewrite")
        again = self.restart(svc)
        again.wait_for_log(r"replayed 10 messages")
        self.assertEqual(self.pairs(again), expected)

    def test_health_is_degraded_while_the_journal_cannot_be_written(self):
        """Finding 3: /health answered 200 while the journal's writes failed.
        With a file size limit standing in for a full disk, a failed write
        makes /health 503 {"status": "degraded", "error": "journal: ..."}
        naming the cause (EFBIG), until a write succeeds again."""
        svc = self.limited_logging(4096)
        self.assertHealthy(svc, "at start")
        self.assertEqual(self.metric(svc, "logging_journal_degraded"), 0)
        self.store(svc, new_uuid(), "fits")
        self.assertJsonError(self.post(svc, {"uuid": new_uuid(), "msg": "x" * 8192}),
                             503, "write over the file size limit")
        self.assertDegraded(svc, os.strerror(errno.EFBIG), "after the failed write")
        self.assertEqual(self.metric(svc, "logging_journal_degraded"), 1)
        got, _, _ = svc.request("HEAD", "/health")
        self.assertEqual(got, 503)
        self.store(svc, new_uuid(), "fits again")
        self.assertHealthy(svc, "after a write that worked")
        self.assertEqual(self.metric(svc, "logging_journal_degraded"), 0)


class RegistrationTest(LoggingTestCase):
    """Self-registration with the registry."""

    def test_registers_and_deregisters_on_sigterm(self):
        """The service registers itself (name logging-service, its port,
        passing) and deregisters on SIGTERM, exiting 0."""
        svc = self.start_logging()

        def listed():
            return [s for s in self.instances() if s["port"] == svc.port]

        found = wait_until(listed, timeout=10, message="instance in the registry")
        self.assertEqual(len(found), 1, found)
        self.assertEqual(found[0]["name"], NAME)
        self.assertEqual(found[0]["health"], "passing")
        self.assertEqual(found[0]["ttl"], 2)
        self.assertIn(found[0], [s for s in self.instances(health="passing")])
        self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())
        self.assertEqual(listed(), [], "still registered after SIGTERM")

    def test_stays_passing_by_renewing(self):
        """With a 2 s ttl the instance is still passing after several ttls."""
        svc = self.start_logging()
        wait_until(lambda: [s for s in self.instances(health="passing")
                            if s["port"] == svc.port], timeout=10)
        time.sleep(T(5))
        self.assertTrue([s for s in self.instances(health="passing")
                         if s["port"] == svc.port], svc.describe())

    def test_serves_when_the_registry_is_down(self):
        """With the registry unreachable the service starts, stores and
        answers all the same, and still exits 0 on SIGTERM."""
        svc = self.start_logging(registry="http://127.0.0.1:%d" % closed_port())
        uid = new_uuid()
        self.store(svc, uid, "no registry needed")
        self.assertEqual(self.pairs(svc), [(uid, "no registry needed")])
        self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())


class CommandLineTest(LoggingTestCase):
    """Options and environment variables."""

    def test_help_lists_every_option(self):
        done = run_cli(["--help"], cwd=self.tmp)
        self.assertEqual(done.returncode, 0, done.stderr)
        for option in ("--port", "--bind", "--registry", "--advertise", "--log-level",
                       "--ttl", "--data-dir", "--in-memory", "--fsync", "--help",
                       "--version"):
            self.assertIn(option, done.stdout)
        self.assertIn("5001", done.stdout)

    def test_invalid_options_exit_2(self):
        cases = [
            ("unknown fsync policy", ["--fsync", "sometimes"]),
            ("malformed ttl", ["--ttl", "soon"]),
            ("ttl zero", ["--ttl", "0s"]),
            ("unknown log level", ["--log-level", "loud"]),
            ("unknown option", ["--no-such-option"]),
        ]
        for label, args in cases:
            with self.subTest(label):
                done = run_cli(args + ["--data-dir", self.data_dir], cwd=self.tmp)
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertTrue(done.stderr.strip())
                self.assertNotIn("listening on", done.stderr)
        done = run_cli(["--port", "0"], cwd=self.tmp, env={"FSYNC": "bogus"})
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("bogus", done.stderr)

    def test_configuration_from_environment(self):
        """DATA_DIR and FSYNC come from the environment too."""
        env_dir = os.path.join(self.tmp, "from-env")
        svc = self.start_logging(data=None, env={"DATA_DIR": env_dir, "FSYNC": "always"})
        svc.wait_for_log("fsync always")
        self.store(svc, new_uuid(), "x")
        self.assertTrue(os.path.isfile(os.path.join(env_dir, "logging-%d.jsonl" % svc.port)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
