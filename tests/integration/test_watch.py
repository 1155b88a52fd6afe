#!/usr/bin/python3
"""Integration tests of blocking reads of the registry's catalog
(GET /v1/services?index=&wait=, GET /v1/services/{id}?index=&wait=), of the
discovery client that follows them (through the facade), and of the
facade's settings followed from the KV store.

Each test starts its own processes on 127.0.0.1 with ephemeral ports. A test
knows a read is parked by the registry's own gauge (registry_watchers in
/metrics), never by sleeping.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_watch.py
"""

import os
import resource
import shutil
import signal
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


class WatchBase(svctest.ServiceTestCase):
    """Processes and helpers the tests share."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="registry-watch-")
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

    def index_of(self, svc, path="/v1/services"):
        status, headers, _ = svc.request("GET", path)
        self.assertEqual(status, 200, path)
        return int(headers["X-Registry-Index"])

    def watchers(self, svc):
        _, _, text = svc.request("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith("registry_watchers "):
                return int(line.split()[1])
        raise AssertionError("no registry_watchers in /metrics")

    def read_in_thread(self, svc, path, **query):
        """GET path?query in a thread; result gets reply (status, headers,
        body) and seconds (how long the answer took)."""
        result = {}
        url = path + "?" + urllib.parse.urlencode(query)

        def run():
            start = time.monotonic()
            try:
                result["reply"] = svc.request("GET", url, timeout=T(60))
            except BaseException as e:  # reported by the test
                result["error"] = e
            result["seconds"] = time.monotonic() - start
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, result

    def joined(self, t, result):
        t.join(T(60))
        self.assertFalse(t.is_alive(), "the read was not answered")
        self.assertNotIn("error", result)
        return result["reply"]



class CatalogWatchTestCase(WatchBase):
    """Blocking reads of GET /v1/services and GET /v1/services/{id}."""

    def test_no_index_answers_at_once(self):
        reg = self.start_registry()
        sid = self.register(reg)
        for path in ("/v1/services?wait=5m", "/v1/services/" + sid + "?wait=5m",
                     "/v1/services?index=0&wait=5m"):
            status, headers, body = reg.request("GET", path, timeout=T(5))
            self.assertEqual((status, headers.get("X-Registry-Index")), (200, "1"), path)
            self.assertTrue(body["success"], path)

    def test_bad_index_or_wait_is_400(self):
        reg = self.start_registry()
        sid = self.register(reg)
        for query in ("index=abc", "index=-1", "index=", "index=1&wait=11m",
                      "index=1&wait=soon", "index=99999999999999999999999"):
            for path in ("/v1/services?", "/v1/services/" + sid + "?"):
                reply = reg.request("GET", path + query)
                self.assertJsonError(reply, 400, path + query)
                self.assertIsNotNone(reply[1].get("X-Registry-Index"), path + query)

    def test_blocking_list_wakes_on_a_matching_registration(self):
        reg = self.start_registry()
        self.register(reg, "web", 8080)
        index = self.index_of(reg)
        t, r = self.read_in_thread(reg, "/v1/services", name="web", index=index, wait="30s")
        wait_until(lambda: self.watchers(reg) == 1, T(10), message="the read is parked")
        start = time.monotonic()
        sid = self.register(reg, "web", 8081)
        status, headers, body = self.joined(t, r)
        woke = time.monotonic() - start
        print("blocking list woke %.1f ms after the registration" % (woke * 1000))
        self.assertEqual(status, 200)
        self.assertLess(woke, T(1.5), "woken by the registration, not by its 30 s wait")
        self.assertGreater(int(headers["X-Registry-Index"]), index)
        self.assertIn(sid, [s["id"] for s in body["services"]])
        self.assertEqual(self.watchers(reg), 0)

    def test_blocking_list_without_name_wakes_on_any_instance(self):
        reg = self.start_registry()
        self.register(reg, "web")
        index = self.index_of(reg)
        t, r = self.read_in_thread(reg, "/v1/services", index=index, wait="30s")
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        sid = self.register(reg, "other", 9000)
        status, _, body = self.joined(t, r)
        self.assertLess(r["seconds"], T(10))
        self.assertIn(sid, [s["id"] for s in body["services"]])

    def test_other_name_and_kv_do_not_wake_a_list(self):
        """A registration of another name and a KV write leave the read parked
        until its wait ends; it answers then with the same list."""
        reg = self.start_registry()
        sid = self.register(reg, "web")
        index = self.index_of(reg)
        t, r = self.read_in_thread(reg, "/v1/services", name="web", index=index, wait="1s")
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        self.register(reg, "other", 9000)
        self.assertEqual(reg.request("PUT", "/v1/kv/some/key", "v")[0], 200)
        status, headers, body = self.joined(t, r)
        self.assertEqual(status, 200)
        self.assertGreaterEqual(r["seconds"], 0.9, "answered at its wait, not before")
        self.assertEqual([s["id"] for s in body["services"]], [sid])
        self.assertEqual(int(headers["X-Registry-Index"]), index + 2)

    def test_maintenance_wakes_a_list_and_kv_does_not(self):
        """Without ?name= a list is woken by every instance event, a
        maintenance change among them, and never by a KV write."""
        reg = self.start_registry()
        sid = self.register(reg, "web")
        index = self.index_of(reg)
        t, r = self.read_in_thread(reg, "/v1/services", index=index, wait="1s")
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        self.assertEqual(reg.request("PUT", "/v1/kv/some/key", "v")[0], 200)
        self.joined(t, r)
        self.assertGreaterEqual(r["seconds"], 0.9, "a KV write woke a catalog read")
        index = self.index_of(reg)
        t, r = self.read_in_thread(reg, "/v1/services", index=index, wait="30s")
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        status, _, _ = reg.request("PUT", "/v1/services/%s/maintenance" % sid,
                                   {"enable": True, "reason": "upgrade"})
        self.assertEqual(status, 200)
        status, _, body = self.joined(t, r)
        self.assertLess(r["seconds"], T(10), "maintenance did not wake the read")
        self.assertEqual(body["services"][0]["health"], "critical")

    def test_change_already_after_index_answers_at_once(self):
        reg = self.start_registry()
        self.register(reg, "web")
        index = self.index_of(reg)
        self.register(reg, "other", 9000)
        # another name's change after index: still parks (wait=0.5s)
        start = time.monotonic()
        status, _, _ = reg.request("GET", "/v1/services?name=web&index=%d&wait=500ms" % index,
                                   timeout=T(10))
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.45)
        # a change of the name after index: at once
        self.register(reg, "web", 8081)
        status, _, body = reg.request("GET", "/v1/services?name=web&index=%d&wait=5m" % index,
                                      timeout=T(10))
        self.assertEqual((status, len(body["services"])), (200, 2))

    def test_paged_list_blocks_too(self):
        reg = self.start_registry()
        self.register(reg, "web")
        index = self.index_of(reg)
        t, r = self.read_in_thread(reg, "/v1/services", name="web", limit=1, index=index,
                                   wait="30s")
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        self.register(reg, "web", 8081)
        status, _, body = self.joined(t, r)
        self.assertEqual((status, len(body["services"])), (200, 1))
        self.assertIn("next", body)

    def test_blocking_get_wakes_on_its_deregistration_with_404(self):
        reg = self.start_registry()
        sid = self.register(reg, "web")
        other = self.register(reg, "web", 8081)
        index = self.index_of(reg, "/v1/services/" + sid)
        t, r = self.read_in_thread(reg, "/v1/services/" + sid, index=index, wait="30s")
        wait_until(lambda: self.watchers(reg) == 1, T(10))
        # another instance of the same name changes: not this one's change
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + other))
        time.sleep(0.2)
        self.assertTrue(t.is_alive(), "woken by another instance's deregistration")
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + sid))
        reply = self.joined(t, r)
        self.assertJsonError(reply, 404, "the gone instance")
        self.assertEqual(int(reply[1]["X-Registry-Index"]), index + 2)
        self.assertLess(r["seconds"], T(10))

    def test_index_older_than_the_history_answers_at_once(self):
        """With a history of 2 events, index 1 is older than its oldest
        (3, after 4 registrations): the client gets the state at once."""
        reg = self.start_registry("--events-history", "2")
        for port in range(8080, 8084):
            self.register(reg, "other", port)
        start = time.monotonic()
        status, headers, _ = reg.request("GET", "/v1/services?name=web&index=1&wait=5m",
                                         timeout=T(10))
        self.assertEqual((status, headers["X-Registry-Index"]), (200, "4"))
        self.assertLess(time.monotonic() - start, T(5))
        # index 2 is covered (the events after it: 3 and 4, of another
        # name): it parks until its wait
        start = time.monotonic()
        status, _, _ = reg.request("GET", "/v1/services?name=web&index=2&wait=500ms",
                                   timeout=T(10))
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.45)

    def test_sigterm_with_1000_parked_lists_exits_fast(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        if want < 2200:
            self.skipTest("RLIMIT_NOFILE too low for 1,000 connections")
        reg = self.start_registry("--max-connections", "4000")
        self.register(reg, "web")
        index = self.index_of(reg)
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", reg.port), timeout=T(30))
            socks.append(s)
            path = "/v1/services?index=%d&wait=5m" % index
            if i % 2:
                path += "&name=web"
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        wait_until(lambda: self.watchers(reg) == 1000, T(30), message="1,000 parked reads")
        start = time.monotonic()
        self.assertEqual(reg.stop(signal.SIGTERM, timeout=T(30)), 0)
        print("exit with 1,000 parked reads took %.0f ms" % ((time.monotonic() - start) * 1000))
        answered = 0
        for s in socks:
            try:
                data = s.recv(65536)
            except OSError:
                continue
            if data.startswith(b"HTTP/1.1 200") and b'"services":[' in data:
                answered += 1
        self.assertGreater(answered, 0, "the parked reads were answered the current list")


class FacadeBase(WatchBase):
    """A registry and a facade on it."""

    def start_facade(self, reg, *args, env=None):
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("facade-service", ["--port", "0", "--bind", "127.0.0.1", "--registry",
                                     "http://127.0.0.1:%d" % reg.port, "--ttl", "5s"]
                  + list(args), env=env)
        return svc

    def discovered(self, facade, name="logging-service"):
        status, _, body = facade.request("GET", "/stats")
        self.assertEqual(status, 200, body)
        return [i["id"] for i in body["discovered"][name]]



class DiscoveryTestCase(FacadeBase):
    """The facade's discovery follows the registry with blocking reads."""

    def test_facade_sees_a_new_logging_instance_at_once(self):
        reg = self.start_registry()
        facade = self.start_facade(reg)
        # the facade's reads are parked (one per name it follows)
        wait_until(lambda: self.watchers(reg) >= 2, T(10), message="the facade's reads parked")
        self.assertEqual(self.discovered(facade), [])
        start = time.monotonic()
        sid = self.register(reg, "logging-service", 5999)
        wait_until(lambda: sid in self.discovered(facade), T(10), interval=0.02,
                   message="the facade saw the new instance")
        seen = time.monotonic() - start
        print("the facade saw the new instance after %.0f ms" % (seen * 1000))
        self.assertLess(seen, T(1.0), "followed by a blocking read, not a 1 s poll")
        start = time.monotonic()
        self.assertJsonOk(reg.request("DELETE", "/v1/services/" + sid))
        wait_until(lambda: sid not in self.discovered(facade), T(10), interval=0.02,
                   message="the facade saw it go")
        gone = time.monotonic() - start
        print("the facade saw it go after %.0f ms" % (gone * 1000))
        self.assertLess(gone, T(1.0))
        # and it goes on following: another one comes
        sid2 = self.register(reg, "logging-service", 5998)
        wait_until(lambda: self.discovered(facade) == [sid2], T(10), interval=0.02)


class FacadeSettingsTestCase(FacadeBase):
    """--replicas and --retry-deadline from the KV store (config/facade-service/...)."""

    REPLICAS = "/v1/kv/config/facade-service/replicas"
    DEADLINE = "/v1/kv/config/facade-service/retry-deadline"

    def settings(self, facade):
        status, _, body = facade.request("GET", "/stats")
        self.assertEqual(status, 200, body)
        return body["settings"]["replicas"], body["settings"]["retry_deadline_ms"]

    def put(self, reg, path, value):
        status, _, body = reg.request("PUT", path, value)
        self.assertEqual((status, body), (200, True), path)

    def wait_settings(self, facade, want, what):
        start = time.monotonic()
        wait_until(lambda: self.settings(facade) == want, T(10), interval=0.02, message=what)
        print("%s: seen after %.0f ms" % (what, (time.monotonic() - start) * 1000))

    def test_keys_replace_the_defaults_live(self):
        reg = self.start_registry()
        facade = self.start_facade(reg)
        self.assertEqual(self.settings(facade), (2, 10000))
        self.put(reg, self.REPLICAS, "3")
        self.wait_settings(facade, (3, 10000), "replicas 3 from the key")
        self.put(reg, self.DEADLINE, "2500ms")
        self.wait_settings(facade, (3, 2500), "retry deadline from the key")
        # a bad value: ignored with one WARN line, the last good one stays
        since = len(facade.log_lines())
        self.put(reg, self.REPLICAS, "lots")
        facade.wait_for_log(r"WARN.*config/facade-service/replicas: ignored", T(10), since=since)
        self.put(reg, self.DEADLINE, "7s")  # a later change proves the bad one was read
        self.wait_settings(facade, (3, 7000), "retry deadline 7 s")
        warns = [l for l in facade.log_lines()[since:] if "WARN" in l]
        self.assertEqual(len(warns), 1, warns)
        self.put(reg, self.DEADLINE, "1ms")  # out of range
        facade.wait_for_log(r"WARN.*retry-deadline: ignored", T(10), since=since)
        self.assertEqual(self.settings(facade), (3, 7000))
        # deleted: back to the flag defaults
        self.assertEqual(reg.request("DELETE", self.REPLICAS)[0], 200)
        self.assertEqual(reg.request("DELETE", self.DEADLINE)[0], 200)
        self.wait_settings(facade, (2, 10000), "the defaults again")

    def test_new_messages_use_the_replicas_from_the_key(self):
        """With one logging instance and replicas 1 from the key, a POST is
        stored fully (facade_under_replicated_total stays 0); with the key at
        2 the next POST is under-replicated."""
        reg = self.start_registry()
        facade = self.start_facade(reg)
        logging = Service()
        self.addCleanup(logging.close)
        self.addCleanup(self.finish_service, logging)
        logging.start("logging-service", ["--port", "0", "--bind", "127.0.0.1", "--registry",
                                          "http://127.0.0.1:%d" % reg.port, "--ttl", "5s",
                                          "--data-dir", self.tmp])
        wait_until(lambda: len(self.discovered(facade)) == 1, T(10))
        self.put(reg, self.REPLICAS, "1")
        self.wait_settings(facade, (1, 10000), "replicas 1")

        def under():
            _, _, text = facade.request("GET", "/metrics")
            for line in text.splitlines():
                if line.startswith("facade_under_replicated_total "):
                    return int(line.split()[1])
            raise AssertionError("no facade_under_replicated_total")
        status, _, body = facade.request("POST", "/facade", {"msg": "one copy"})
        self.assertEqual((status, body["replicas"]), (200, 1), body)
        self.assertEqual(under(), 0)
        self.put(reg, self.REPLICAS, "2")
        self.wait_settings(facade, (2, 10000), "replicas 2")
        self.put(reg, self.DEADLINE, "500ms")
        self.wait_settings(facade, (2, 500), "a short deadline")
        status, _, body = facade.request("POST", "/facade", {"msg": "wants two"}, timeout=T(30))
        self.assertIn(status, (200, 503), body)
        self.assertEqual(body["replicas"], 1, body)
        self.assertEqual(under(), 1)

    def test_given_option_wins_over_the_key(self):
        reg = self.start_registry()
        self.put(reg, self.REPLICAS, "3")
        self.put(reg, self.DEADLINE, "4s")
        facade = self.start_facade(reg, "--replicas", "1")
        # the deadline key is followed: once it shows, the replicas key was
        # not taken (the flag wins)
        self.wait_settings(facade, (1, 4000), "deadline from the key, replicas from the flag")
        self.put(reg, self.REPLICAS, "4")
        self.put(reg, self.DEADLINE, "6s")
        self.wait_settings(facade, (1, 6000), "the key followed, the flag kept")
        # an environment variable is explicit too
        env_facade = self.start_facade(reg, env={"RETRY_DEADLINE": "3s"})
        self.wait_settings(env_facade, (4, 3000), "replicas from the key, deadline from env")


if __name__ == "__main__":
    unittest.main(verbosity=2)
