#!/usr/bin/python3
"""Integration tests of the service registry (build/bin/registry).

Each test starts its own registry on 127.0.0.1 with an ephemeral port
("--port 0"; the real port comes from its "listening on" log line) and a
database in a fresh temporary directory, speaks HTTP to it, and stops it.
A test that passes ends by stopping its registries with SIGTERM and expects
exit code 0, so crashes, hangs on shutdown and sanitizer reports at exit fail
the test that caused them. A failing test prints the registries' logs.

Read the docstrings top to bottom for the behaviour the registry promises.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_registry.py
      (SVC_TEST_TIMEOUT_SCALE=3 for slow builds such as AddressSanitizer)
"""

import collections
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout  # scale a deadline for slow builds

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
BODY_MAX = 1024 * 1024  # LIM_BODY_MAX in common/limits.h
REGISTERED = "Service registered successfully"
DEREGISTERED = "Service deregistered successfully"
RENEWED = "Service renewed successfully"
# Fields of an instance that are its registration (not its health).
REGISTRATION_FIELDS = ("id", "name", "host", "port", "type", "tags",
                       "metadata", "ttl")


def new_id(name):
    """A valid instance id for name, as the registry would make one."""
    return "%s-%s" % (name, uuid.uuid4())


def epoch_seconds(value):
    """last_heartbeat as Unix seconds. The API does not pin its form, so
    accept Unix seconds, Unix milliseconds or an ISO 8601 text."""
    if isinstance(value, bool):
        raise AssertionError("last_heartbeat is a boolean: %r" % (value,))
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = datetime.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return moment.timestamp()
    raise AssertionError("last_heartbeat has an unexpected form: %r" % (value,))


def registration(instance):
    """The registration part of an instance (without health/heartbeat)."""
    return {k: instance.get(k) for k in REGISTRATION_FIELDS}


def run_cli(args, cwd, timeout=10):
    """Run the registry with args to completion (svctest.run_cli)."""
    return svctest.run_cli("registry", args, cwd, timeout_s=timeout)


class RegistryTestCase(svctest.ServiceTestCase):
    """Starts registries and gives assertions on the JSON API."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="registry-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db_path = os.path.join(self.tmp, "registry.db")

    # --- processes -----------------------------------------------------------

    def start_registry(self, *args, data="default", env=None):
        """Start a registry on 127.0.0.1:0 with --data in this test's
        temporary directory (data=None: no --data; data=PATH: that path) and
        extra args. Stopped (and checked) or killed when the test ends."""
        argv = ["--port", "0", "--bind", "127.0.0.1"]
        if data == "default":
            argv += ["--data", self.db_path]
        elif data is not None:
            argv += ["--data", data]
        argv += list(args)
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("registry", argv, env=env)
        return svc

    # --- API helpers ----------------------------------------------------------

    def register(self, svc, status=201, replace=False, **fields):
        """POST /v1/services with host/port defaults (?replace=true with
        replace: a known id moved to another address); returns service_id."""
        payload = {"host": "10.0.0.1", "port": 8080}
        payload.update(fields)
        path = "/v1/services?replace=true" if replace else "/v1/services"
        body = self.assertJsonOk(svc.request("POST", path, payload),
                                 status, "register %r" % (payload,))
        self.assertIsInstance(body.get("service_id"), str, body)
        return body["service_id"]

    def get(self, svc, sid):
        """GET /v1/services/{id}: the instance (asserts 200)."""
        body = self.assertJsonOk(svc.request("GET", "/v1/services/" + sid),
                                 200, "get " + sid)
        self.assertIsInstance(body.get("service"), dict, body)
        return body["service"]

    def list_services(self, svc, **query):
        """GET /v1/services?query: the list of instances (asserts 200)."""
        path = "/v1/services"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        body = self.assertJsonOk(svc.request("GET", path), 200, "list %r" % query)
        self.assertIsInstance(body.get("services"), list, body)
        return body["services"]

    def list_ids(self, svc, **query):
        return {s["id"] for s in self.list_services(svc, **query)}

    def discover(self, svc, **query):
        """GET /v1/discover?query: the raw reply."""
        return svc.request("GET", "/v1/discover?" + urllib.parse.urlencode(query))

    def discover_id(self, svc, **query):
        """The id of the instance /v1/discover picks (asserts 200)."""
        body = self.assertJsonOk(self.discover(svc, **query), 200,
                                 "discover %r" % query)
        self.assertIsInstance(body.get("service"), dict, body)
        self.assertEqual(body["service"].get("health"), "passing", body)
        return body["service"]["id"]

    def renew(self, svc, sid):
        return svc.request("PUT", "/v1/services/%s/renew" % sid)


# ---------------------------------------------------------------------------


class CommandLineTest(RegistryTestCase):
    """Options, environment variables, signals."""

    def test_version_prints_name_and_version(self):
        """--version prints the program name and a version number to stdout
        and exits 0 without starting a server."""
        done = run_cli(["--version"], cwd=self.tmp)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("registry", done.stdout)
        self.assertRegex(done.stdout, r"\d+\.\d+\.\d+")

    def test_help_lists_every_option(self):
        """--help describes every option on stdout and exits 0."""
        done = run_cli(["--help"], cwd=self.tmp)
        self.assertEqual(done.returncode, 0, done.stderr)
        for option in ("--port", "--bind", "--data", "--backend",
                       "--cleanup-interval", "--deregister-after",
                       "--log-level", "--help", "--version"):
            self.assertIn(option, done.stdout)

    def test_unknown_option_exits_2_with_one_error_line(self):
        """An unknown option exits with code 2 and a single error line on
        stderr naming the option; nothing is served."""
        done = run_cli(["--no-such-option", "--data", self.db_path],
                       cwd=self.tmp)
        self.assertEqual(done.returncode, 2, done.stderr)
        lines = [l for l in done.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertIn("no-such-option", lines[0])
        self.assertNotIn("listening on", done.stderr)

    def test_invalid_option_values_are_refused(self):
        """A malformed or out-of-range option value, or a positional argument,
        makes the registry exit non-zero with a message on stderr."""
        cases = [
            ("port above 65535", ["--port", "70000"]),
            ("port not a number", ["--port", "eighty"]),
            ("negative port", ["--port", "-1"]),
            ("unknown backend", ["--backend", "papyrus"]),
            ("malformed duration", ["--cleanup-interval", "soon"]),
            ("negative duration", ["--deregister-after", "-5s"]),
            ("unknown log level", ["--log-level", "loud"]),
            ("positional argument", ["extra"]),
        ]
        for label, args in cases:
            with self.subTest(label, args=args):
                done = run_cli(args + ["--data", self.db_path], cwd=self.tmp)
                self.assertNotEqual(done.returncode, 0, done.stderr)
                self.assertTrue(done.stderr.strip(), "no message on stderr")
                self.assertNotIn("listening on", done.stderr)

    def test_sigterm_and_sigint_exit_zero(self):
        """SIGTERM and SIGINT each shut the registry down cleanly with exit
        code 0."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name):
                svc = self.start_registry()
                self.register(svc, name="before-" + sig.name.lower())
                self.assertEqual(svc.stop(sig), 0, svc.describe())

    def test_sigterm_with_idle_keepalive_connection_exits_promptly(self):
        """An idle keep-alive connection does not hold up shutdown: after
        SIGTERM the registry exits 0 within its grace period."""
        svc = self.start_registry()
        sock = socket.create_connection(("127.0.0.1", svc.port), timeout=T(10))
        self.addCleanup(sock.close)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:200])
        started = time.monotonic()
        self.assertEqual(svc.stop(signal.SIGTERM, timeout=15), 0, svc.describe())
        self.assertLess(time.monotonic() - started, T(10), svc.describe())

    def test_configuration_from_environment(self):
        """Every option can come from its environment variable (PORT, BIND,
        DATA_PATH, STORE_BACKEND, CLEANUP_INTERVAL, DEREGISTER_AFTER,
        LOG_LEVEL): here the database lands at DATA_PATH and an expired
        instance is removed on the CLEANUP_INTERVAL/DEREGISTER_AFTER
        schedule."""
        env_db = os.path.join(self.tmp, "from-env.db")
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("registry", [], env={
            "PORT": "0", "BIND": "127.0.0.1", "DATA_PATH": env_db,
            "STORE_BACKEND": "sqlite", "CLEANUP_INTERVAL": "100ms",
            "DEREGISTER_AFTER": "1s", "LOG_LEVEL": "info"})
        self.assertEqual(svc.host, "127.0.0.1")
        sid = self.register(svc, name="env-configured", ttl=1)
        self.assertTrue(os.path.exists(env_db), "no database at DATA_PATH")
        wait_until(lambda: svc.request("GET", "/v1/services/" + sid)[0] == 404,
                   timeout=10, interval=0.1,
                   message="instance removed after ttl + DEREGISTER_AFTER")

    def test_flags_win_over_environment(self):
        """A command-line flag overrides the environment variable of the
        same meaning."""
        env_db = os.path.join(self.tmp, "from-env.db")
        flag_db = os.path.join(self.tmp, "from-flag.db")
        svc = self.start_registry(data=flag_db, env={
            "PORT": "1", "DATA_PATH": env_db, "BIND": "0.0.0.0"})
        self.assertNotEqual(svc.port, 1)
        self.assertEqual(svc.host, "127.0.0.1")
        self.register(svc, name="flag-configured")
        self.assertTrue(os.path.exists(flag_db), "no database at --data")
        self.assertFalse(os.path.exists(env_db), "DATA_PATH used over --data")


# ---------------------------------------------------------------------------


class RegistrationTest(RegistryTestCase):
    """Registering, reading, renewing and deregistering instances."""

    def test_register_get_list_deregister_roundtrip(self):
        """POST /v1/services answers 201 with a fresh id "<name>-<uuid4>";
        GET /v1/services/{id} returns every field as registered, passing,
        with a current heartbeat; the instance is listed; DELETE answers 200
        and afterwards GET, DELETE and renew answer 404 and the list no
        longer has it."""
        svc = self.start_registry()
        payload = {"name": "orders", "host": "orders.internal", "port": 8443,
                   "type": "http", "tags": ["v1", "eu"],
                   "metadata": {"version": "1.2.3", "zone": "a"}, "ttl": 45}
        before = time.time()
        body = self.assertJsonOk(svc.request("POST", "/v1/services", payload),
                                 201, "register")
        after = time.time()
        self.assertEqual(body.get("message"), REGISTERED)
        sid = body.get("service_id")
        self.assertRegex(sid, "^orders-" + UUID4 + "$")

        inst = self.get(svc, sid)
        expected = dict(payload, id=sid)
        self.assertEqual(registration(inst), expected)
        self.assertEqual(inst["health"], "passing")
        heartbeat = epoch_seconds(inst["last_heartbeat"])
        self.assertGreaterEqual(heartbeat, before - 1.0)
        self.assertLessEqual(heartbeat, after + 1.0)

        listed = self.list_services(svc)
        self.assertEqual([s["id"] for s in listed], [sid])
        self.assertEqual(registration(listed[0]), expected)
        self.assertEqual(listed[0]["health"], "passing")

        body = self.assertJsonOk(svc.request("DELETE", "/v1/services/" + sid),
                                 200, "deregister")
        self.assertEqual(body.get("message"), DEREGISTERED)
        self.assertJsonError(svc.request("GET", "/v1/services/" + sid), 404,
                             "get after deregister")
        self.assertJsonError(svc.request("DELETE", "/v1/services/" + sid), 404,
                             "second deregister")
        self.assertJsonError(self.renew(svc, sid), 404, "renew after deregister")
        self.assertEqual(self.list_services(svc), [])

    def test_each_registration_gets_a_distinct_id(self):
        """Two registrations of the same name and address are two instances
        with two different ids."""
        svc = self.start_registry()
        first = self.register(svc, name="twin")
        second = self.register(svc, name="twin")
        self.assertNotEqual(first, second)
        self.assertEqual(self.list_ids(svc, name="twin"), {first, second})

    def test_optional_fields_have_defaults(self):
        """Only name, host and port are required: type defaults to
        "service", tags to [], metadata to {} and ttl to 30 seconds."""
        svc = self.start_registry()
        sid = self.register(svc, name="minimal", host="10.1.2.3", port=80)
        inst = self.get(svc, sid)
        self.assertEqual(inst["tags"], [])
        self.assertEqual(inst["metadata"], {})
        self.assertEqual(inst["ttl"], 30)
        self.assertEqual(inst["type"], "service")

    def test_reregister_with_existing_id_updates_in_place(self):
        """POST with the "id" of an existing instance re-registers it: 200,
        the same service_id, the new fields, still one instance."""
        svc = self.start_registry()
        sid = self.register(svc, name="web", host="10.0.0.1", port=8080,
                            tags=["blue"])
        update = {"id": sid, "name": "web", "host": "10.0.0.2", "port": 9090,
                  "type": "http", "tags": ["green"], "metadata": {"rev": "2"},
                  "ttl": 60}
        body = self.assertJsonOk(svc.request("POST", "/v1/services?replace=true",
                                             update), 200, "re-register")
        self.assertEqual(body.get("service_id"), sid)
        inst = self.get(svc, sid)
        self.assertEqual(registration(inst), update)
        self.assertEqual(inst["health"], "passing")
        self.assertEqual(self.list_ids(svc, name="web"), {sid})

    def test_register_with_unknown_valid_id_keeps_that_id(self):
        """An instance coming back after the registry forgot it registers
        with its old id: an unknown "id" of the form "<name>-<uuid>" for the
        same name is accepted with 201 under that id; posting it again is
        then a re-registration (200)."""
        svc = self.start_registry()
        sid = new_id("adopt-me")
        payload = {"id": sid, "name": "adopt-me", "host": "10.0.0.9",
                   "port": 7000}
        body = self.assertJsonOk(svc.request("POST", "/v1/services", payload),
                                 201, "register with own id")
        self.assertEqual(body.get("service_id"), sid)
        self.assertEqual(self.get(svc, sid)["port"], 7000)
        self.assertEqual(self.list_ids(svc), {sid})
        payload["port"] = 7001
        body = self.assertJsonOk(svc.request("POST", "/v1/services?replace=true",
                                             payload),
                                 200, "register the same id again")
        self.assertEqual(body.get("service_id"), sid)
        self.assertEqual(self.get(svc, sid)["port"], 7001)

    def test_renew_known_instance_and_unknown_id(self):
        """PUT /v1/services/{id}/renew answers 200 and moves last_heartbeat
        forward; renewing an id the registry does not know answers 404."""
        svc = self.start_registry()
        sid = self.register(svc, name="renewer")
        first = epoch_seconds(self.get(svc, sid)["last_heartbeat"])

        body = self.assertJsonOk(self.renew(svc, sid), 200, "renew")
        self.assertEqual(body.get("message"), RENEWED)

        def heartbeat_moved():
            self.assertJsonOk(self.renew(svc, sid), 200, "renew")
            return epoch_seconds(self.get(svc, sid)["last_heartbeat"]) > first
        wait_until(heartbeat_moved, timeout=5, interval=0.2,
                   message="last_heartbeat to advance on renew")

        self.assertJsonError(self.renew(svc, new_id("renewer")), 404,
                             "renew unknown id")
        self.assertJsonError(self.renew(svc, "no-such-thing"), 404,
                             "renew malformed id")

    def test_concurrent_registrations_all_succeed_with_distinct_ids(self):
        """100 clients registering at the same moment each get 201 and their
        own id, and all 100 instances are listed."""
        svc = self.start_registry()
        count = 100
        barrier = threading.Barrier(count, timeout=T(30))
        results = [None] * count

        def client(i):
            try:
                barrier.wait()
                results[i] = svc.request(
                    "POST", "/v1/services",
                    {"name": "crowd", "host": "10.0.%d.%d" % (i // 250, i % 250 + 1),
                     "port": 10000 + i}, timeout=30)
            except Exception as exc:  # reported below
                results[i] = exc

        threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T(60))
        ids = []
        for i, reply in enumerate(results):
            self.assertIsInstance(reply, tuple, "client %d: %r" % (i, reply))
            body = self.assertJsonOk(reply, 201, "client %d" % i)
            ids.append(body["service_id"])
        self.assertEqual(len(set(ids)), count)
        listed = self.list_services(svc, name="crowd")
        self.assertEqual({s["id"] for s in listed}, set(ids))
        self.assertEqual(sorted(s["port"] for s in listed),
                         list(range(10000, 10000 + count)))


class LimitsTest(RegistryTestCase):
    """Finding "unbounded registrations" (harden issue): the instances in
    all, per name, and the bytes of one registration are capped."""

    def test_instance_caps_answer_429_and_reregistration_does_not_count(self):
        """With --max-instances 5 --max-per-name 3: a fourth instance of one
        name answers 429, a sixth in all 429, each with the JSON error and
        nothing changed; re-registering a known id at the cap succeeds
        (200), and a deregistration makes room for one more (201). The caps
        hold after a restart that loads the registrations."""
        svc = self.start_registry("--max-instances", "5", "--max-per-name", "3")
        a = [self.register(svc, name="capped", port=1000 + i) for i in range(3)]
        body = self.assertJsonError(
            svc.request("POST", "/v1/services",
                        {"name": "capped", "host": "10.0.0.1", "port": 1003}),
            429, "fourth of one name")
        self.assertIn("at most 3 per name", body["error"])
        others = [self.register(svc, name="other%d" % i) for i in range(2)]
        body = self.assertJsonError(
            svc.request("POST", "/v1/services",
                        {"name": "third", "host": "10.0.0.1", "port": 1}),
            429, "sixth in all")
        self.assertIn("maximum of 5", body["error"])
        self.assertEqual(self.list_ids(svc), set(a + others))
        # re-registration of a known id at both caps
        self.register(svc, status=200, replace=True, id=a[0], name="capped",
                      port=2000)
        self.assertEqual(self.get(svc, a[0])["port"], 2000)
        self.assertJsonOk(svc.request("DELETE", "/v1/services/" + a[1]), 200)
        self.register(svc, name="capped", port=1004)
        svc.stop()
        svc = self.start_registry("--max-instances", "5", "--max-per-name", "3")
        self.assertEqual(len(self.list_ids(svc)), 5)
        self.assertJsonError(
            svc.request("POST", "/v1/services",
                        {"name": "capped", "host": "10.0.0.1", "port": 1005}),
            429, "after a restart")

    def test_registration_over_64_kib_answers_413(self):
        """A registration whose stored document passes 64 KiB
        (LIM_REG_DOC_MAX) answers 413 with the JSON error; one just
        under it is accepted."""
        svc = self.start_registry()
        big = {"k%02d" % i: "v" * 1024 for i in range(64)}  # about 66 KiB
        body = self.assertJsonError(
            svc.request("POST", "/v1/services",
                        {"name": "big", "host": "10.0.0.1", "port": 1,
                         "metadata": big}), 413, "66 KiB registration")
        self.assertIn("over the limit of 65536 bytes", body["error"])
        self.assertEqual(self.list_ids(svc), set())
        fits = {"k%02d" % i: "v" * 1024 for i in range(60)}  # about 62 KiB
        self.register(svc, name="big", metadata=fits)


class ListingTest(RegistryTestCase):
    """Finding "unbounded registrations" (harden issue), the list: pages in
    id order, and the full list streamed in pieces with today's bytes."""

    def raw_get(self, svc, path):
        """GET path: (status, headers, raw body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=T(30))
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.msg, resp.read()
        finally:
            conn.close()

    def test_pages_follow_id_order_with_next(self):
        """GET /v1/services?limit=N&after=ID answers at most N instances
        with ids after ID in byte order, and "next" (the last id) while
        more follow: walking the pages lists every instance once, in id
        order. Filters apply; an after= id that is gone still works; a bad
        limit or after answers 400 with the JSON error."""
        svc = self.start_registry()
        ids = [self.register(svc, name="p%d" % (i % 3), port=1000 + i)
               for i in range(25)]
        seen, after, pages = [], None, 0
        while True:
            query = {"limit": 10}
            if after:
                query["after"] = after
            body = self.assertJsonOk(svc.request(
                "GET", "/v1/services?" + urllib.parse.urlencode(query)), 200)
            got = [s["id"] for s in body["services"]]
            self.assertLessEqual(len(got), 10)
            seen += got
            pages += 1
            if "next" not in body:
                break
            self.assertEqual(body["next"], got[-1])
            after = body["next"]
        self.assertEqual(pages, 3)
        self.assertEqual(seen, sorted(ids))
        # filters, and a default limit
        body = self.assertJsonOk(svc.request("GET", "/v1/services?name=p1&after=p"), 200)
        self.assertEqual([s["id"] for s in body["services"]],
                         sorted(i for i in ids if i.startswith("p1-")))
        self.assertNotIn("next", body)
        # after= an id that is gone: the page after where it was
        first = sorted(ids)[0]
        self.assertJsonOk(svc.request("DELETE", "/v1/services/" + first), 200)
        body = self.assertJsonOk(svc.request(
            "GET", "/v1/services?limit=2&after=" + first), 200)
        self.assertEqual([s["id"] for s in body["services"]], sorted(ids)[1:3])
        for bad in ("limit=0", "limit=1001", "limit=x", "limit=", "limit=-1",
                    "after=", "after=" + "a" * 200, "limit=5&health=sick"):
            with self.subTest(bad):
                self.assertJsonError(svc.request("GET", "/v1/services?" + bad), 400, bad)

    def test_full_list_is_streamed_with_the_same_bytes(self):
        """The unpaged list of about 900 KB comes chunked, and its bytes are
        {"success":true,"services":[...]} with each instance exactly as
        GET /v1/services/{id} writes it, in registration order."""
        svc = self.start_registry()
        tags = ["t%03d-" % i + "x" * 250 for i in range(8)]
        ids = [self.register(svc, name="big", port=1 + i, tags=tags, ttl=86400)
               for i in range(400)]
        status, headers, raw = self.raw_get(svc, "/v1/services")
        self.assertEqual(status, 200)
        self.assertEqual((headers.get("Transfer-Encoding") or "").lower(), "chunked")
        self.assertJsonContentType(headers)
        parts = []
        for sid in ids:
            st, _, one = self.raw_get(svc, "/v1/services/" + sid)
            self.assertEqual(st, 200)
            prefix, suffix = b'{"success":true,"service":', b"}"
            self.assertTrue(one.startswith(prefix) and one.endswith(suffix), one[:80])
            parts.append(one[len(prefix):-len(suffix)])
        self.assertGreater(len(raw), 800000)  # several 256 KiB pieces
        self.assertEqual(raw, b'{"success":true,"services":[' + b",".join(parts) + b"]}")
        # a filter streams too
        status, _, raw = self.raw_get(svc, "/v1/services?name=none")
        self.assertEqual((status, raw), (200, b'{"success":true,"services":[]}'))


# ---------------------------------------------------------------------------


class ValidationTest(RegistryTestCase):
    """Bad input is refused with a JSON error and changes nothing."""

    def test_bad_registrations_are_refused_and_change_nothing(self):
        """Each malformed registration is answered 4xx (400; 413 for a body
        over 1 MiB) with {"success": false, "error": ...} as JSON, and the
        list of instances is the same before and after."""
        svc = self.start_registry()
        existing = self.register(svc, name="bad-input", host="10.0.0.1",
                                 port=8080, tags=["keep"],
                                 metadata={"keep": "me"})
        baseline = sorted(self.list_services(svc), key=lambda s: s["id"])

        good = {"name": "bad-input", "host": "10.0.0.2", "port": 8081}

        def with_(**changes):
            body = dict(good)
            body.update(changes)
            return body

        def without(key):
            body = dict(good)
            del body[key]
            return body

        big_pad = b" " * (BODY_MAX + 1 - len(b'{"name":"bad-input","host":"h","port":1}'))
        cases = [
            # the body as a whole
            ("empty body", b"", 400),
            ("invalid JSON", b'{"name": "bad-input", "host": ', 400),
            ("trailing garbage after JSON",
             b'{"name":"bad-input","host":"h","port":1} x', 400),
            ("body is an array", b"[]", 400),
            ("body is a string", b'"bad-input"', 400),
            ("body is a number", b"42", 400),
            ("body is null", b"null", 400),
            ("body over 1 MiB",
             b'{"name":"bad-input","host":"h","port":1}' + big_pad, 413),
            # required fields
            ("missing name", without("name"), 400),
            ("missing host", without("host"), 400),
            ("missing port", without("port"), 400),
            ("name null", with_(name=None), 400),
            # wrong types
            ("name not a string", with_(name=5), 400),
            ("host not a string", with_(host=10), 400),
            ("port as a string", with_(port="80"), 400),
            ("port not an integer", with_(port=80.5), 400),
            ("port a boolean", with_(port=True), 400),
            ("ttl not a number", with_(ttl="x"), 400),
            ("type not a string", with_(type=7), 400),
            ("tags not an array", with_(tags="v1"), 400),
            ("tag not a string", with_(tags=["v1", 2]), 400),
            ("metadata not an object", with_(metadata=["a"]), 400),
            ("metadata a string", with_(metadata="a=b"), 400),
            ("metadata value not a string", with_(metadata={"k": 1}), 400),
            ("metadata value null", with_(metadata={"k": None}), 400),
            # names and types: [A-Za-z0-9._-]{1,128}
            ("name with a space", with_(name="a b"), 400),
            ("empty name", with_(name=""), 400),
            ("name of 129 characters", with_(name="n" * 129), 400),
            ("name with a slash", with_(name="a/b"), 400),
            ("type with a space", with_(type="a b"), 400),
            ("type of 129 characters", with_(type="t" * 129), 400),
            # hosts: DNS name, IPv4 or IPv6 literal, at most 253 characters
            ("host with a space and !", with_(host="bad host!"), 400),
            ("empty host", with_(host=""), 400),
            ("host of 254 characters",
             with_(host=".".join(["a" * 63] * 3 + ["b" * 62])), 400),
            ("host label of 64 characters", with_(host="x" * 64 + ".example"), 400),
            ("host with an empty label", with_(host="a..b"), 400),
            ("host with a port", with_(host="10.0.0.1:80"), 400),
            ("host with a scheme", with_(host="http://x"), 400),
            # finding "validation" (harden issue): a host that looks like
            # IPv4 must be one; a name or type of only dots is refused
            ("host 999.1.1.1", with_(host="999.1.1.1"), 400),
            ("host 1.2.3", with_(host="1.2.3"), 400),
            ("host 1.2.3.4.5", with_(host="1.2.3.4.5"), 400),
            ("name ..", with_(name=".."), 400),
            ("name .", with_(name="."), 400),
            ("type ..", with_(type=".."), 400),
            # ranges
            ("port 0", with_(port=0), 400),
            ("port 65536", with_(port=65536), 400),
            ("negative port", with_(port=-1), 400),
            ("ttl 0", with_(ttl=0), 400),
            ("ttl 86401", with_(ttl=86401), 400),
            ("negative ttl", with_(ttl=-5), 400),
            ("65 tags", with_(tags=["t%d" % i for i in range(65)]), 400),
            ("tag of 257 characters", with_(tags=["t" * 257]), 400),
            ("65 metadata keys",
             with_(metadata={"k%d" % i: "v" for i in range(65)}), 400),
            ("metadata key of 129 characters",
             with_(metadata={"k" * 129: "v"}), 400),
            ("metadata value of 1025 characters",
             with_(metadata={"k": "v" * 1025}), 400),
            # ids: "<name>-<uuid>" for the same name
            ("id not a string", with_(id=5), 400),
            ("id of another name", with_(id=new_id("other")), 400),
            ("id without a uuid", with_(id="bad-input-not-a-uuid"), 400),
            ("id that is the bare name", with_(id="bad-input"), 400),
            ("id that is a bare uuid", with_(id=str(uuid.uuid4())), 400),
            ("id with text after the uuid", with_(id=new_id("bad-input") + "x"), 400),
            # a rejected re-registration leaves the instance as it was
            ("re-registration with port 0",
             {"id": existing, "name": "bad-input", "host": "10.0.0.3",
              "port": 0}, 400),
            ("re-registration without host",
             {"id": existing, "name": "bad-input", "port": 9999}, 400),
            ("re-registration under another name",
             {"id": existing, "name": "other", "host": "10.0.0.3",
              "port": 9999}, 400),
        ]
        state = baseline
        for label, body, status in cases:
            with self.subTest(label):
                before, reply = state, svc.request("POST", "/v1/services", body)
                # Judge each case against the list just before it, so one
                # case that wrongly registers does not fail all later ones.
                state = sorted(self.list_services(svc), key=lambda s: s["id"])
                self.assertJsonError(reply, status, label)
                self.assertEqual(state, before, "%s changed the list" % label)

    def test_boundary_values_are_accepted(self):
        """Values at the limits are valid: 128-character names, 253-character
        DNS names, IPv4 and IPv6 literals, ports 1 and 65535, ttl 1 and
        86400, 64 tags, 256-character tags, 64 metadata keys, 128-character
        keys, 1024-character values, and a body of exactly 1 MiB. Each is
        stored as sent."""
        svc = self.start_registry()
        base = {"name": "edge", "host": "10.0.0.1", "port": 8080}

        def with_(**changes):
            body = dict(base)
            body.update(changes)
            return body

        cases = [
            ("name of 128 characters", with_(name="n" * 128)),
            ("name using the whole alphabet", with_(name="Az09._-zA")),
            ("type of 128 characters", with_(type="t" * 128)),
            ("host of 253 characters",
             with_(host=".".join(["a" * 63] * 3 + ["b" * 61]))),
            ("host label of 63 characters", with_(host="x" * 63 + ".example")),
            ("host with hyphens and digits", with_(host="db-1.eu-west-2.example")),
            ("single-label host", with_(host="localhost")),
            ("IPv4 literal", with_(host="192.168.10.254")),
            ("IPv6 loopback", with_(host="::1")),
            ("IPv6 literal", with_(host="2001:db8::8a2e:370:7334")),
            ("port 1", with_(port=1)),
            ("port 65535", with_(port=65535)),
            ("ttl 1", with_(ttl=1)),
            ("ttl 86400", with_(ttl=86400)),
            ("no tags, no metadata", with_(tags=[], metadata={})),
            ("64 tags", with_(tags=["t%d" % i for i in range(64)])),
            ("tag of 256 characters", with_(tags=["t" * 256])),
            ("64 metadata keys",
             with_(metadata={"k%d" % i: "v" for i in range(64)})),
            ("metadata key of 128 characters", with_(metadata={"k" * 128: "v"})),
            ("metadata value of 1024 characters",
             with_(metadata={"k": "v" * 1024})),
        ]
        for label, payload in cases:
            with self.subTest(label):
                sid = self.register(svc, **payload)
                inst = self.get(svc, sid)
                for key, value in payload.items():
                    self.assertEqual(inst[key], value, "%s: field %s" % (label, key))

        with self.subTest("body of exactly 1 MiB"):
            core = b'{"name":"edge","host":"10.0.0.1","port":8080}'
            body = core[:-1] + b" " * (BODY_MAX - len(core)) + b"}"
            self.assertEqual(len(body), BODY_MAX)
            reply = svc.request("POST", "/v1/services", body,
                                headers={"Content-Type": "application/json"})
            self.assertJsonOk(reply, 201, "1 MiB body")

    def test_unknown_routes_404_and_wrong_methods_405(self):
        """A path the API does not have answers 404 and a known path with a
        method it does not take answers 405, both with a JSON error."""
        svc = self.start_registry()
        sid = self.register(svc, name="routes")
        not_found = [
            ("GET", "/ui/nope.js"),  # "/" redirects to the dashboard (test_ui)
            ("GET", "/nope"),
            ("GET", "/v1"),
            ("GET", "/v1/nope"),
            ("GET", "/v1/servicesx"),
            ("POST", "/v2/services"),
            ("GET", "/v1/services/%s/renew/extra" % sid),
            ("GET", "/v1/services/%s/other" % sid),
        ]
        wrong_method = [
            ("POST", "/"),
            ("PATCH", "/v1/services"),
            ("DELETE", "/v1/services"),
            ("PUT", "/v1/services"),
            ("POST", "/v1/services/" + sid),
            ("PATCH", "/v1/services/" + sid),
            ("GET", "/v1/services/%s/renew" % sid),
            ("POST", "/v1/services/%s/renew" % sid),
            ("DELETE", "/v1/services/%s/renew" % sid),
            ("POST", "/v1/discover"),
            ("DELETE", "/v1/discover"),
            ("POST", "/health"),
            ("DELETE", "/metrics"),
        ]
        for method, path in not_found:
            with self.subTest("404", method=method, path=path):
                self.assertJsonError(svc.request(method, path), 404,
                                     "%s %s" % (method, path))
        for method, path in wrong_method:
            with self.subTest("405", method=method, path=path):
                self.assertJsonError(svc.request(method, path), 405,
                                     "%s %s" % (method, path))
        self.assertEqual(self.list_ids(svc), {sid})

    def test_json_replies_say_application_json(self):
        """Every JSON reply, success or error, carries Content-Type
        application/json and a body that parses as a JSON object."""
        svc = self.start_registry()
        sid = self.register(svc, name="ctype")
        replies = [
            ("POST register", svc.request("POST", "/v1/services",
                                          {"name": "ctype", "host": "h", "port": 1})),
            ("GET instance", svc.request("GET", "/v1/services/" + sid)),
            ("GET list", svc.request("GET", "/v1/services")),
            ("GET discover", svc.request("GET", "/v1/discover?name=ctype")),
            ("PUT renew", self.renew(svc, sid)),
            ("GET /health", svc.request("GET", "/health")),
            ("400 invalid JSON", svc.request("POST", "/v1/services", b"{")),
            ("404 unknown instance", svc.request("GET", "/v1/services/" + new_id("x"))),
            ("404 unknown route", svc.request("GET", "/nope")),
            ("405 wrong method", svc.request("PATCH", "/v1/services")),
            ("DELETE instance", svc.request("DELETE", "/v1/services/" + sid)),
        ]
        for label, (status, headers, body) in replies:
            with self.subTest(label):
                self.assertJsonContentType(headers, "%s: %s" % (label, status))
                self.assertIsInstance(body, dict, "%s: %r" % (label, body))


# ---------------------------------------------------------------------------


class QueryTest(RegistryTestCase):
    """Listing with filters and discovering one instance."""

    def test_list_filters_combine(self):
        """GET /v1/services filters by name, type, tag and health
        (passing or critical); filters combine with AND; no match is an
        empty list; any other health value is a 400."""
        svc = self.start_registry("--cleanup-interval", "100ms",
                                  "--deregister-after", "10m")
        a = self.register(svc, name="orders", type="http", tags=["v1", "eu"])
        b = self.register(svc, name="orders", type="grpc", tags=["v2", "eu"])
        c = self.register(svc, name="billing", type="http", tags=["v1"])
        d = self.register(svc, name="orders", type="http", tags=["v1"], ttl=1)
        wait_until(lambda: self.get(svc, d)["health"] == "critical",
                   timeout=10, interval=0.1, message="ttl=1 instance critical")

        expectations = [
            ({}, {a, b, c, d}),
            ({"name": "orders"}, {a, b, d}),
            ({"type": "http"}, {a, c, d}),
            ({"tag": "eu"}, {a, b}),
            ({"tag": "v1"}, {a, c, d}),
            ({"health": "passing"}, {a, b, c}),
            ({"health": "critical"}, {d}),
            ({"name": "orders", "type": "http"}, {a, d}),
            ({"name": "orders", "type": "http", "tag": "v1"}, {a, d}),
            ({"name": "orders", "type": "http", "tag": "v1",
              "health": "passing"}, {a}),
            ({"name": "orders", "health": "critical"}, {d}),
            ({"type": "http", "tag": "eu"}, {a}),
            ({"name": "billing", "tag": "eu"}, set()),
            ({"name": "nosuch"}, set()),
            ({"tag": "v"}, set()),
        ]
        for query, expected in expectations:
            with self.subTest(query=query):
                self.assertEqual(self.list_ids(svc, **query), expected)
        for bad in ("ok", "warn", "PASSING_"):
            with self.subTest(health=bad):
                self.assertJsonError(
                    svc.request("GET", "/v1/services?health=" + bad), 400,
                    "health=%r" % bad)
        # Query values are form-decoded (%XX and '+'), the first of a
        # repeated key counts, and empty or valueless parameters are ignored.
        for raw, expected in (("name=%6Frders&tag=%65u", {a, b}),
                              ("name=orders&name=billing", {a, b, d}),
                              ("&&name=billing&flag", {c}),
                              ("tag=no+such", set())):
            with self.subTest(raw=raw):
                status, _, body = svc.request("GET", "/v1/services?" + raw)
                self.assertEqual(status, 200, body)
                self.assertEqual({x["id"] for x in body["services"]}, expected)

    def test_discover_by_name_and_by_type(self):
        """GET /v1/discover?name=X or ?type=Y answers one passing instance
        of that name or type; 404 when there is none; 400 without name and
        type or with an unknown strategy."""
        svc = self.start_registry()
        pay = self.register(svc, name="payments", type="http")
        auth = self.register(svc, name="auth", type="grpc")
        self.assertEqual(self.discover_id(svc, name="payments"), pay)
        self.assertEqual(self.discover_id(svc, type="grpc"), auth)
        self.assertEqual(self.discover_id(svc, type="http"), pay)
        body = self.assertJsonOk(self.discover(svc, name="payments"), 200)
        self.assertEqual(registration(body["service"]),
                         registration(self.get(svc, pay)))

        self.assertJsonError(self.discover(svc, name="nosuch"), 404, "no such name")
        self.assertJsonError(self.discover(svc, type="nosuch"), 404, "no such type")
        self.assertJsonError(svc.request("GET", "/v1/discover"), 400, "no query")
        self.assertJsonError(self.discover(svc, strategy="random"), 400,
                             "strategy only")
        self.assertJsonError(self.discover(svc, name="payments",
                                           strategy="fastest"),
                             400, "unknown strategy")

    def test_discover_round_robin_is_even(self):
        """strategy=round_robin over 3 passing instances picks each exactly
        10 times in 30 calls."""
        svc = self.start_registry()
        ids = {self.register(svc, name="rr", port=9000 + i) for i in range(3)}
        picks = collections.Counter(
            self.discover_id(svc, name="rr", strategy="round_robin")
            for _ in range(30))
        self.assertEqual(set(picks), ids)
        self.assertEqual(sorted(picks.values()), [10, 10, 10], picks)

    def test_discover_random_reaches_every_instance(self):
        """strategy=random over 3 passing instances picks each of them at
        least once in 60 calls (a miss has a chance below 1e-10)."""
        svc = self.start_registry()
        ids = {self.register(svc, name="rnd", port=9100 + i) for i in range(3)}
        picks = collections.Counter(
            self.discover_id(svc, name="rnd", strategy="random")
            for _ in range(60))
        self.assertEqual(set(picks), ids, picks)


# ---------------------------------------------------------------------------


class HealthExpiryTest(RegistryTestCase):
    """Instances that stop renewing turn critical, then are removed."""

    def test_expired_instance_turns_critical_and_renew_revives_it(self):
        """An instance not renewed within its ttl turns critical: it is
        still readable and listed under health=critical, but discover and
        health=passing leave it out. A renew makes it passing and
        discoverable again."""
        svc = self.start_registry("--cleanup-interval", "100ms",
                                  "--deregister-after", "10m")
        flaky = self.register(svc, name="flaky", ttl=1)
        steady = self.register(svc, name="steady")
        wait_until(lambda: self.get(svc, flaky)["health"] == "critical",
                   timeout=5, interval=0.1, message="ttl=1 instance critical")

        self.assertJsonError(self.discover(svc, name="flaky"), 404,
                             "discover critical-only name")
        self.assertEqual(self.list_ids(svc, health="passing"), {steady})
        self.assertEqual(self.list_ids(svc, health="critical"), {flaky})
        self.assertEqual(self.get(svc, steady)["health"], "passing")

        def renewed_and_passing():
            self.assertJsonOk(self.renew(svc, flaky), 200, "renew")
            return self.get(svc, flaky)["health"] == "passing"
        wait_until(renewed_and_passing, timeout=5, interval=0.1,
                   message="renewed instance passing")

        def renewed_and_discoverable():
            self.assertJsonOk(self.renew(svc, flaky), 200, "renew")
            return self.discover_id(svc, name="flaky") == flaky
        wait_until(renewed_and_discoverable, timeout=5, interval=0.1,
                   message="renewed instance discoverable")

    def test_critical_instance_is_removed_after_deregister_after(self):
        """With --deregister-after 1s an instance critical for a second is
        removed entirely: GET, renew and discover answer 404 and it is not
        listed; instances that renew in time stay."""
        svc = self.start_registry("--cleanup-interval", "100ms",
                                  "--deregister-after", "1s")
        victim = self.register(svc, name="victim", ttl=1)
        keeper = self.register(svc, name="keeper", ttl=30)
        wait_until(lambda: svc.request("GET", "/v1/services/" + victim)[0] == 404,
                   timeout=10, interval=0.1, message="expired instance removed")
        self.assertJsonError(svc.request("GET", "/v1/services/" + victim), 404)
        self.assertJsonError(self.renew(svc, victim), 404, "renew removed")
        self.assertJsonError(self.discover(svc, name="victim"), 404)
        self.assertEqual(self.list_ids(svc), {keeper})
        self.assertEqual(self.get(svc, keeper)["health"], "passing")

    def test_long_deregister_after_keeps_critical_instances(self):
        """--deregister-after also lengthens the wait: with 1m a critical
        ttl=1 instance is still there (critical) after the 3 x ttl the
        default would allow."""
        svc = self.start_registry("--cleanup-interval", "100ms",
                                  "--deregister-after", "1m")
        registered = time.monotonic()
        sid = self.register(svc, name="lingering", ttl=1)
        wait_until(lambda: self.get(svc, sid)["health"] == "critical",
                   timeout=5, interval=0.1, message="ttl=1 instance critical")
        # Default removal would come 1 s (ttl) + 3 s (3 x ttl) after the
        # registration; look again well after that.
        time.sleep(max(0.0, registered + 6.0 - time.monotonic()))
        self.assertEqual(self.get(svc, sid)["health"], "critical")
        self.assertEqual(self.list_ids(svc, health="critical"), {sid})

    def test_default_deregister_after_is_three_ttls(self):
        """Without --deregister-after an expired instance stays critical for
        about 3 x ttl before it is removed (ttl=1: seen critical for well
        over a second, gone within a few seconds)."""
        svc = self.start_registry("--cleanup-interval", "100ms")
        sid = self.register(svc, name="slow-fade", ttl=1)
        critical_since = []

        def gone():
            status, _, body = svc.request("GET", "/v1/services/" + sid)
            if status == 200:
                if body["service"]["health"] == "critical" and not critical_since:
                    critical_since.append(time.monotonic())
                return False
            self.assertEqual(status, 404, body)
            return True
        wait_until(gone, timeout=15, interval=0.1,
                   message="instance removed after 3 x ttl")
        self.assertTrue(critical_since, "removed without being seen critical")
        self.assertGreater(time.monotonic() - critical_since[0], 1.5,
                           "removed too soon after turning critical")


# ---------------------------------------------------------------------------


class PersistenceTest(RegistryTestCase):
    """What survives a restart."""

    def assertRestoredFresh(self, inst, restarted_at):
        self.assertEqual(inst["health"], "passing", inst)
        heartbeat = epoch_seconds(inst["last_heartbeat"])
        self.assertGreaterEqual(heartbeat, restarted_at - 1.0,
                                "heartbeat not refreshed on restart: %r" % inst)
        self.assertLessEqual(heartbeat, time.time() + 1.0, inst)

    def test_restart_on_same_sqlite_file_keeps_registrations(self):
        """After SIGTERM and a start on the same --data file, every
        registration is back with its id and fields unchanged (including
        re-registrations and adopted ids), deregistered ones stay gone, and
        each is passing with a heartbeat from the restart."""
        svc = self.start_registry()
        full = self.register(svc, name="orders", host="orders.internal",
                             port=8443, type="http", tags=["v1", "eu"],
                             metadata={"version": "1.2.3"}, ttl=120)
        minimal = self.register(svc, name="billing")
        updated = self.register(svc, name="web", port=80)
        self.register(svc, status=200, replace=True, id=updated, name="web",
                      host="10.9.9.9", port=8081, tags=["new"])
        adopted = new_id("returning")
        self.register(svc, id=adopted, name="returning", port=7000)
        gone = self.register(svc, name="gone")
        self.assertJsonOk(svc.request("DELETE", "/v1/services/" + gone), 200)
        before = {s["id"]: registration(s) for s in self.list_services(svc)}
        self.assertEqual(set(before), {full, minimal, updated, adopted})
        self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())

        restarted_at = time.time()
        again = self.start_registry()
        after = {s["id"]: s for s in self.list_services(again)}
        self.assertEqual(set(after), set(before))
        for sid, fields in before.items():
            with self.subTest(id=sid):
                self.assertEqual(registration(after[sid]), fields)
                self.assertRestoredFresh(after[sid], restarted_at)
                self.assertEqual(registration(self.get(again, sid)), fields)
        self.assertJsonError(again.request("GET", "/v1/services/" + gone), 404)
        self.assertEqual(self.discover_id(again, name="orders"), full)

    def stored_doc(self, sid):
        """The stored document of sid as JSON (None when absent), read by
        another connection to the registry's SQLite file."""
        db = sqlite3.connect(self.db_path, timeout=T(10))
        try:
            rows = db.execute("SELECT doc FROM services WHERE id = ?",
                              (sid,)).fetchall()
        finally:
            db.close()
        return json.loads(rows[0][0]) if rows else None

    def test_critical_instance_stays_critical_across_restart(self):
        """Finding "health across restarts" (harden issue): an instance
        critical when the registry is killed (SIGKILL) is critical after a
        start on the same file, with the same last_heartbeat (so it is
        removed on time), and not discoverable; one that kept renewing is
        passing. The stored document carries the health once it changed."""
        args = ("--cleanup-interval", "100ms", "--deregister-after", "1h")
        svc = self.start_registry(*args)
        dead = self.register(svc, name="logging-service", port=5001, ttl=1)
        alive = self.register(svc, name="logging-service", port=5003, ttl=30)
        wait_until(lambda: self.get(svc, dead)["health"] == "critical",
                   timeout=T(20), message="instance never turned critical")
        wait_until(lambda: "critical_since" in (self.stored_doc(dead) or {}),
                   timeout=T(20), message="critical health never stored")
        self.assertNotIn("critical_since", self.stored_doc(alive))
        heartbeat = self.get(svc, dead)["last_heartbeat"]
        svc.kill()

        again = self.start_registry(*args)
        inst = self.get(again, dead)
        self.assertEqual(inst["health"], "critical", inst)
        self.assertEqual(inst["last_heartbeat"], heartbeat, inst)
        self.assertEqual(self.get(again, alive)["health"], "passing")
        self.assertEqual(self.list_ids(again, health="critical"), {dead})
        for _ in range(5):
            self.assertEqual(self.discover_id(again, name="logging-service"), alive)
        # a renewal brings it back, and that is stored too (renewing on
        # each look: its ttl is 1 s)
        def revived_and_stored():
            self.assertJsonOk(self.renew(again, dead), 200, "renew")
            return "critical_since" not in self.stored_doc(dead)
        wait_until(revived_and_stored, timeout=T(20), interval=0.1,
                   message="revival never stored")

    def test_registrations_survive_sigkill(self):
        """A registration (or deregistration) the registry has answered is
        durable: after the process is killed with SIGKILL and started again
        on the same file it is there (or stays gone)."""
        svc = self.start_registry()
        kept = self.register(svc, name="durable", port=9001)
        dropped = self.register(svc, name="dropped")
        self.assertJsonOk(svc.request("DELETE", "/v1/services/" + dropped), 200)
        self.assertJsonOk(svc.request("GET", "/health"), 200)
        svc.kill()
        self.assertEqual(svc.returncode, -signal.SIGKILL)

        again = self.start_registry()
        self.assertEqual(self.list_ids(again), {kept})
        self.assertEqual(self.get(again, kept)["port"], 9001)

    def test_acknowledged_registration_is_on_disk(self):
        """A 201 is sent only once the registration is committed: another
        connection to the file reads it as soon as the reply arrives, and a
        registry killed with SIGKILL right after the reply has it on restart
        (the same for a deregistration's 200)."""
        svc = self.start_registry()
        sids = []
        for i in range(5):
            sid = self.register(svc, name="acked", port=9100 + i,
                                tags=["t%d" % i], metadata={"i": str(i)})
            sids.append(sid)
            db = sqlite3.connect(self.db_path)
            try:
                row = db.execute("SELECT doc FROM services WHERE id = ?",
                                 (sid,)).fetchall()
            finally:
                db.close()
            self.assertEqual(len(row), 1, "%s not on disk at its 201" % sid)
        self.assertJsonOk(svc.request("DELETE", "/v1/services/" + sids[0]), 200)
        last = self.register(svc, name="last", port=9200)
        svc.kill()
        self.assertEqual(svc.returncode, -signal.SIGKILL)

        again = self.start_registry()
        self.assertEqual(self.list_ids(again), set(sids[1:]) | {last})
        inst = self.get(again, sids[3])
        self.assertEqual((inst["port"], inst["tags"], inst["metadata"]),
                         (9103, ["t3"], {"i": "3"}))

    def test_failed_commit_answers_503_and_changes_nothing(self):
        """While another process holds the SQLite write lock the registry's
        commit fails (after its 1 s busy timeout, off the event loop): a
        registration, a re-registration and a deregistration answer 503
        with the JSON error and change nothing, in memory or on disk; reads
        and renewals go on meanwhile; once the lock is gone writes work."""
        svc = self.start_registry()
        keeper = self.register(svc, name="keeper", port=7001, tags=["a"])
        locker = sqlite3.connect(self.db_path, isolation_level=None)
        self.addCleanup(locker.close)
        locker.execute("BEGIN IMMEDIATE")

        body = self.assertJsonError(svc.request(
            "POST", "/v1/services",
            {"name": "refused", "host": "10.0.0.1", "port": 1}), 503, "new")
        self.assertIn("could not register", body["error"])
        self.assertIn("locked", body["error"])
        self.assertJsonError(svc.request(
            "POST", "/v1/services?replace=true",
            {"id": keeper, "name": "keeper", "host": "10.9.9.9", "port": 7002}),
            503, "re-registration")
        body = self.assertJsonError(svc.request("DELETE", "/v1/services/" + keeper),
                                    503, "deregistration")
        self.assertIn("could not deregister", body["error"])
        self.assertJsonOk(self.renew(svc, keeper), 200, "renew needs no commit")

        self.assertEqual(self.list_ids(svc), {keeper})
        inst = self.get(svc, keeper)
        self.assertEqual((inst["host"], inst["port"], inst["tags"]),
                         ("10.0.0.1", 7001, ["a"]))
        self.assertJsonError(self.discover(svc, name="refused"), 404)
        self.assertEqual(self.discover_id(svc, name="keeper"), keeper)

        locker.execute("ROLLBACK")
        later = self.register(svc, name="later")
        svc.kill()
        again = self.start_registry()
        self.assertEqual(self.list_ids(again), {keeper, later})
        self.assertEqual(self.get(again, keeper)["port"], 7001)

    def test_shutdown_answers_writes_waiting_for_their_commit(self):
        """A SIGTERM while a registration waits for its commit (the file
        locked by another process) lets it finish: the client gets its
        answer (503 here, the commit failed) before the registry exits 0."""
        svc = self.start_registry("--log-level", "debug")
        locker = sqlite3.connect(self.db_path, isolation_level=None)
        self.addCleanup(locker.close)
        locker.execute("BEGIN IMMEDIATE")
        replies = []

        def post():
            replies.append(svc.request(
                "POST", "/v1/services",
                {"name": "late", "host": "10.0.0.1", "port": 1}))

        worker = threading.Thread(target=post)
        worker.start()
        svc.wait_for_log(r"late-\S+ waits for its commit", timeout=5)
        self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())
        worker.join(T(10))
        self.assertEqual(len(replies), 1)
        body = self.assertJsonError(replies[0], 503, "write at shutdown")
        self.assertIn("locked", body["error"])

    def test_removal_after_expiry_is_persisted(self):
        """An instance removed for being critical too long does not come
        back after a restart."""
        svc = self.start_registry("--cleanup-interval", "100ms",
                                  "--deregister-after", "1s")
        victim = self.register(svc, name="victim", ttl=1)
        keeper = self.register(svc, name="keeper", ttl=600)
        wait_until(lambda: svc.request("GET", "/v1/services/" + victim)[0] == 404,
                   timeout=10, interval=0.1, message="expired instance removed")
        self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())

        again = self.start_registry()
        self.assertEqual(self.list_ids(again), {keeper})

    def test_memory_backend_forgets_on_restart(self):
        """With --backend memory (or --data :memory:) nothing is written to
        disk and a restarted registry starts empty."""
        for label, args in (("--backend memory", ("--backend", "memory")),
                            ("--data :memory:", ("--data", ":memory:"))):
            with self.subTest(label):
                svc = self.start_registry(*args, data=None)
                sid = self.register(svc, name="ephemeral")
                self.assertEqual(self.list_ids(svc), {sid})
                self.assertEqual(svc.stop(signal.SIGTERM), 0, svc.describe())
                self.assertEqual(os.listdir(svc.cwd), [],
                                 "files written to the working directory")

                again = self.start_registry(*args, data=None)
                self.assertEqual(self.list_services(again), [])
                self.assertJsonError(again.request("GET", "/v1/services/" + sid),
                                     404, "after restart")
                self.assertEqual(again.stop(signal.SIGTERM), 0, again.describe())
                self.assertEqual(os.listdir(again.cwd), [],
                                 "files written to the working directory")


# ---------------------------------------------------------------------------


SAMPLE_RE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


def parse_metrics(text):
    """Prometheus text exposition -> list of (name, {label: value}, float).
    Raises AssertionError on a line that is not a comment or a sample."""
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = SAMPLE_RE.match(line)
        if not match:
            raise AssertionError("line %d is not a sample: %r" % (number, line))
        name, label_text, value = match.groups()
        labels = {}
        if label_text:
            consumed = 0
            for lm in LABEL_RE.finditer(label_text):
                if lm.start() != consumed:
                    break
                labels[lm.group(1)] = lm.group(2)
                consumed = lm.end()
            if consumed != len(label_text):
                raise AssertionError("line %d has malformed labels: %r"
                                     % (number, line))
        samples.append((name, labels, float(value)))
    return samples


class ObservabilityTest(RegistryTestCase):
    """GET /health and GET /metrics."""

    def test_health_reports_ok_and_the_time(self):
        """GET /health answers 200 {"success": true, "status": "ok",
        "timestamp": <current Unix time in whole seconds>}."""
        svc = self.start_registry()
        before = time.time()
        body = self.assertJsonOk(svc.request("GET", "/health"), 200, "health")
        after = time.time()
        self.assertEqual(body.get("status"), "ok")
        stamp = body.get("timestamp")
        self.assertIsInstance(stamp, int, body)
        self.assertNotIsInstance(stamp, bool, body)
        self.assertGreaterEqual(stamp, int(before) - 1)
        self.assertLessEqual(stamp, int(after) + 1)

    def test_metrics_exposition(self):
        """GET /metrics answers text/plain in the Prometheus format with
        http_requests_total{route,method,status} counting each request, a
        cumulative http_request_duration_seconds histogram and
        process_resident_memory_bytes."""
        svc = self.start_registry()
        self.register(svc, name="metered")
        svc.request("GET", "/nope")
        self.assertJsonOk(svc.request("GET", "/health"), 200)

        def scrape():
            status, headers, text = svc.request("GET", "/metrics")
            self.assertEqual(status, 200, text)
            ctype = (headers.get("Content-Type") or "").lower()
            self.assertTrue(ctype.startswith("text/plain"), ctype)
            self.assertIsInstance(text, str)
            return parse_metrics(text)

        def health_count(samples):
            return sum(v for n, l, v in samples
                       if n == "http_requests_total" and l.get("route") == "/health"
                       and l.get("method") == "GET" and l.get("status") == "200")

        samples = scrape()
        requests = [(l, v) for n, l, v in samples if n == "http_requests_total"]
        self.assertTrue(requests, "no http_requests_total samples")
        for labels, _ in requests:
            for key in ("route", "method", "status"):
                self.assertIn(key, labels, labels)
        self.assertTrue(any(l["method"] == "POST" and l["status"] == "201"
                            and v >= 1 for l, v in requests),
                        "the registration is not counted: %r" % requests)
        self.assertTrue(any(l["status"] == "404" and v >= 1 for l, v in requests),
                        "the 404 is not counted: %r" % requests)
        self.assertGreaterEqual(health_count(samples), 1, requests)

        buckets = collections.defaultdict(list)
        for name, labels, value in samples:
            if name == "http_request_duration_seconds_bucket":
                self.assertIn("le", labels)
                key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                buckets[key].append((float(labels["le"]), value))
        self.assertTrue(buckets, "no http_request_duration_seconds_bucket")
        counts = {tuple(sorted(l.items())): v for n, l, v in samples
                  if n == "http_request_duration_seconds_count"}
        for key, series in buckets.items():
            series.sort()
            values = [v for _, v in series]
            self.assertEqual(values, sorted(values), "buckets not cumulative")
            self.assertEqual(series[-1][0], float("inf"), "no le=\"+Inf\" bucket")
            if key in counts:
                self.assertEqual(series[-1][1], counts[key])
        self.assertTrue(counts, "no http_request_duration_seconds_count")

        rss = [v for n, l, v in samples if n == "process_resident_memory_bytes"]
        self.assertEqual(len(rss), 1, "process_resident_memory_bytes: %r" % rss)
        self.assertGreater(rss[0], 0)

        first = health_count(samples)
        self.assertJsonOk(svc.request("GET", "/health"), 200)
        self.assertEqual(health_count(scrape()), first + 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
