#!/usr/bin/python3
"""Integration tests of self-registration (common/regclient/peer.c, register.c) with
the real registry: a service registers on start, renews its lease, comes
back under the same id after the registry lost it, keeps serving while the
registry is down, and deregisters on SIGTERM.

messages-service is the service under test (it does nothing but register
and answer GET /messages); every registry runs with the memory backend on
127.0.0.1. Tests stop what they start with SIGTERM and expect exit code 0.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_peer.py
      (SVC_TEST_TIMEOUT_SCALE=3 for slow builds such as AddressSanitizer)
"""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, closed_port, wait_until  # noqa: E402

NAME = "messages-service"
REGISTRY_ARGS = ["--backend", "memory", "--cleanup-interval", "100ms"]


class PeerTest(unittest.TestCase):

    def start_registry(self, port=0):
        reg = Service().start("registry", ["--port", str(port)] + REGISTRY_ARGS)
        self.addCleanup(reg.close)
        return reg

    def start_service(self, registry_url, ttl="1s", extra=()):
        svc = Service().start(NAME, ["--port", "0", "--registry", registry_url,
                                     "--ttl", ttl] + list(extra))
        self.addCleanup(svc.close)
        return svc

    def instances(self, reg, health=None):
        path = "/v1/services?name=" + NAME
        if health:
            path += "&health=" + health
        status, _, body = reg.request("GET", path)
        self.assertEqual(status, 200, body)
        return body["services"]

    def registered_id(self, svc):
        return svc.wait_for_log(r"registering as (%s-[0-9a-f-]{36}) at " % NAME,
                                5).group(1)

    def stop_ok(self, svc):
        self.assertEqual(svc.stop(), 0, svc.describe())

    def test_registers_renews_and_deregisters(self):
        """The instance appears with its advertised host and real port, stays
        passing past several ttls (renewals), and is gone after SIGTERM."""
        reg = self.start_registry()
        svc = self.start_service(reg.url)
        inst_id = self.registered_id(svc)

        def listed():
            found = self.instances(reg, "passing")
            return found if len(found) == 1 else None
        inst = wait_until(listed, 5, message="instance listed")[0]
        self.assertEqual(inst["id"], inst_id)
        self.assertEqual(inst["host"], "127.0.0.1")
        self.assertEqual(inst["port"], svc.port)
        self.assertEqual(inst["ttl"], 1)
        self.assertEqual(inst["type"], NAME)

        time.sleep(2.5)  # two and a half ttls: renewals keep it
        self.assertEqual([i["id"] for i in self.instances(reg, "passing")],
                         [inst_id])

        self.stop_ok(svc)
        self.assertIn("deregistered " + inst_id, svc.log_text())
        self.assertEqual(self.instances(reg), [])
        self.stop_ok(reg)

    def test_registry_down_at_start(self):
        """The service starts and serves while the registry is down, warns
        once, and registers as soon as the registry comes up."""
        port = closed_port()
        url = "http://127.0.0.1:%d" % port
        svc = self.start_service(url)
        svc.wait_for_log(r"WARN .*registry %s: connection refused; "
                         r"retrying in \d+ ms" % url, 5)
        status, _, _ = svc.request("GET", "/messages")
        self.assertEqual(status, 200)
        time.sleep(1.0)  # several more attempts

        reg = self.start_registry(port)
        inst_id = self.registered_id(svc)
        wait_until(lambda: [i["id"] for i in self.instances(reg, "passing")]
                   == [inst_id], 10, message="registered after the outage")
        warnings = [l for l in svc.log_lines() if " WARN " in l]
        self.assertEqual(len(warnings), 1, svc.describe())
        self.stop_ok(svc)
        self.stop_ok(reg)

    def test_registry_restart_forgets(self):
        """A registry restarted without its data answers the renewal 404; the
        service registers again under the same id."""
        port = closed_port()
        reg = self.start_registry(port)
        svc = self.start_service(reg.url)
        inst_id = self.registered_id(svc)
        wait_until(lambda: self.instances(reg, "passing"), 5)
        self.stop_ok(reg)

        reg2 = self.start_registry(port)
        svc.wait_for_log("registry forgot us; registering again as " + inst_id,
                         10)
        wait_until(lambda: [i["id"] for i in self.instances(reg2, "passing")]
                   == [inst_id], 5, message="same id registered again")
        self.stop_ok(svc)
        self.assertEqual(self.instances(reg2), [])
        self.stop_ok(reg2)

    def test_failover_to_second_registry(self):
        """With --registry DEAD,LIVE the service ends up registered with
        LIVE."""
        reg = self.start_registry()
        dead = "http://127.0.0.1:%d" % closed_port()
        svc = self.start_service(dead + "," + reg.url)
        inst_id = self.registered_id(svc)
        wait_until(lambda: [i["id"] for i in self.instances(reg, "passing")]
                   == [inst_id], 5, message="registered with the live one")
        self.stop_ok(svc)
        self.stop_ok(reg)

    def test_bad_registry_url(self):
        """A malformed --registry is refused with the entry named."""
        proc = subprocess.run(
            [svctest.binary_path(NAME), "--port", "0", "--registry", "htp://x"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(b"--registry: 'htp://x' is not an http:// URL",
                      proc.stderr)


    def test_bad_advertise_and_bind_end_at_start(self):
        """Hardening finding: --advertise 'bad host!' started, never
        registered and retried a 400 forever; --bind 999.1.1.1 said "No such
        file or directory". Both now end at start with one line saying what
        is wrong (exit 2 for the option the registry would refuse)."""
        for name in ("messages-service", "facade-service", "logging-service"):
            proc = subprocess.run(
                [svctest.binary_path(name), "--port", "0", "--advertise", "bad host!",
                 "--in-memory"] if name == "logging-service" else
                [svctest.binary_path(name), "--port", "0", "--advertise", "bad host!"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=10)
            self.assertEqual(proc.returncode, 2, (name, proc.stderr))
            lines = proc.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, (name, lines))
            self.assertIn("--advertise: 'bad host!' is not a host name or an IP address",
                          lines[0])
        proc = subprocess.run(
            [svctest.binary_path(NAME), "--port", "0", "--bind", "999.1.1.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(b"'999.1.1.1' is not an address to bind", proc.stderr)

    def test_message_not_utf8_refused_at_start(self):
        """Hardening finding: messages-service --message with invalid UTF-8
        started and then answered 500 to every GET; it now ends at start."""
        proc = subprocess.run(
            [svctest.binary_path(NAME), "--port", "0", "--message", b"bad \xff"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(b"--message: not valid UTF-8", proc.stderr)

    def test_ttl_rounds_up_to_whole_seconds_for_every_service(self):
        """--ttl 1500ms registers a lease of 2 s, whichever of the three
        services asks (one rule in peer_main, no per-service copy)."""
        reg = self.start_registry()
        extra = {"logging-service": ["--in-memory"], "facade-service": [],
                 "messages-service": []}
        for name, args in extra.items():
            svc = Service().start(name, ["--port", "0", "--registry", reg.url,
                                         "--ttl", "1500ms"] + args)
            self.addCleanup(svc.close)

            def listed(name=name):
                status, _, body = reg.request("GET", "/v1/services?name=" + name)
                self.assertEqual(status, 200, body)
                return body["services"] or None
            inst = wait_until(listed, 5, message=name + " listed")[0]
            self.assertEqual(inst["ttl"], 2, name)
            self.stop_ok(svc)


if __name__ == "__main__":
    unittest.main(verbosity=2)
