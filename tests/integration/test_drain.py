#!/usr/bin/python3
"""Integration tests of health checks and the graceful drain of a service
(common/regclient/peer.c, register.c, common/http/service.c) with the real
registry: on SIGTERM logging-service enters maintenance (it leaves
discovery, still registered, still serving /health) for its --drain-delay,
then deregisters and exits 0; registered with --check http, the registry
checks its /health, so a frozen (SIGSTOPped) instance turns critical and
leaves discovery before its lease runs out, and comes back when it thaws.

The checks and the maintenance endpoint are the registry's side of the
contract. Against a registry without them (PUT .../maintenance answers
"no route") the tests that need them are skipped, and the script then
exits 77 (when nothing failed), which ctest reports as "Skipped"
(SKIP_RETURN_CODE in tests/CMakeLists.txt), so a run that could not test
the drain says so. The others run with any registry.

How a check shows in an instance's JSON is read loosely: a member
"checks" (a list of objects) where the maintenance check is the one named
(or whose id ends in) "maintenance" and an HTTP check is one with an
"http" member or type "http".

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_drain.py
      (SVC_TEST_TIMEOUT_SCALE=3 for slow builds such as AddressSanitizer)
"""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from svctest import (Service, binary_path, closed_port, request,  # noqa: E402
                     timeout, wait_until)

NAME = "logging-service"
REGISTRY_ARGS = ["--backend", "memory", "--cleanup-interval", "100ms"]
SKIP_EXIT = 77  # ctest's SKIP_RETURN_CODE for this script


def checks_of(inst):
    """The list of check objects of an instance's JSON ([] when none)."""
    checks = inst.get("checks")
    if isinstance(checks, dict):  # keyed by id
        checks = [dict(v, id=k) if isinstance(v, dict) else {"id": k}
                  for k, v in checks.items()]
    return [c for c in (checks or []) if isinstance(c, dict)]


def check_named(inst, name):
    """The check of inst named name (or whose id ends in name), or None."""
    for c in checks_of(inst):
        if c.get("name") == name or str(c.get("id", "")).endswith(name):
            return c
    return None


def http_check(inst):
    """The HTTP check of inst, or None."""
    for c in checks_of(inst):
        if c.get("http") or c.get("type") == "http":
            return c
    return None


class DrainTest(unittest.TestCase):

    def start_registry(self):
        reg = Service().start("registry", ["--port", "0"] + REGISTRY_ARGS)
        self.addCleanup(reg.close)
        return reg

    def start_logging(self, registry_url, *extra):
        svc = Service().start(NAME, ["--port", "0", "--bind", "127.0.0.1",
                                     "--registry", registry_url,
                                     "--in-memory"] + list(extra))
        self.addCleanup(svc.close)
        return svc

    def registered_id(self, svc):
        svc.wait_for_log(r"registered as %s-" % NAME, 5)
        return svc.wait_for_log(r"registering as (%s-[0-9a-f-]{36}) at " % NAME,
                                5).group(1)

    def instance(self, reg, inst_id):
        """GET /v1/services/{id}: the instance object, or None on 404."""
        status, _, body = reg.request("GET", "/v1/services/" + inst_id)
        if status == 404:
            return None
        self.assertEqual(status, 200, body)
        return body.get("service", body)

    def discovered(self, reg):
        """The id /v1/discover?name=logging-service picks, or None (404)."""
        status, _, body = reg.request("GET", "/v1/discover?name=" + NAME)
        if status == 404:
            return None
        self.assertEqual(status, 200, body)
        return body["service"]["id"]

    def require_registry_side(self, reg):
        """Skip unless the registry has the maintenance endpoint and checks:
        register a probe instance and put it in and out of maintenance."""
        status, _, body = reg.request(
            "POST", "/v1/services",
            {"name": "drain-probe", "host": "127.0.0.1", "port": 1, "ttl": 30})
        self.assertIn(status, (200, 201), body)
        probe = body["service_id"]
        status, _, body = reg.request(
            "PUT", "/v1/services/%s/maintenance" % probe,
            {"enable": True, "reason": "probe"})
        reg.request("DELETE", "/v1/services/" + probe)
        if status != 200:
            self.skipTest("registry has no maintenance endpoint yet "
                          "(PUT .../maintenance: %s %s)" % (status, body))

    # --- any registry --------------------------------------------------

    def test_bad_check_is_a_startup_error(self):
        """--check with another value: exit 2 and one line on stderr."""
        proc = subprocess.run([binary_path(NAME), "--check", "tcp", "--in-memory"],
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout(10))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn("--check: 'tcp' is not http, ttl or none", lines[0])

    def test_unregistered_stops_without_delay(self):
        """Registry down, so never registered: SIGTERM skips maintenance and
        the (long) drain delay, and the service exits 0 at once."""
        svc = self.start_logging("http://127.0.0.1:%d" % closed_port(),
                                 "--drain-delay", "60s")
        svc.wait_for_log(r"retrying in", 5)
        started = time.monotonic()
        self.assertEqual(svc.stop(timeout=20), 0, svc.describe())
        self.assertLess(time.monotonic() - started, 30, svc.describe())
        self.assertIn("not registered; stopping without a drain delay",
                      svc.log_text())

    # --- the registry side (checks, maintenance) -------------------------

    def test_drain_enters_maintenance_then_deregisters(self):
        """SIGTERM: within the delay the instance is registered but in
        maintenance (critical, a check named maintenance), discover does not
        return it and it still answers /health; then it is deregistered and
        the process exits 0."""
        reg = self.start_registry()
        self.require_registry_side(reg)
        svc = self.start_logging(reg.url, "--drain-delay", "1s")
        inst_id = self.registered_id(svc)
        wait_until(lambda: self.discovered(reg) == inst_id, timeout(5),
                   message="logging discovered")

        svc.proc.send_signal(signal.SIGTERM)
        svc.wait_for_log(r"%s in maintenance" % inst_id, 1)
        inst = self.instance(reg, inst_id)
        self.assertIsNotNone(inst, "deregistered before the delay was over")
        self.assertEqual(inst.get("health"), "critical", inst)
        maint = check_named(inst, "maintenance")
        self.assertIsNotNone(maint, inst)
        self.assertEqual(maint.get("status", "critical"), "critical", inst)
        self.assertIsNone(self.discovered(reg))
        status, _, _ = request("GET", svc.url + "/health", timeout=1)
        self.assertEqual(status, 200)

        self.assertEqual(svc.stop(timeout=15), 0, svc.describe())
        self.assertIsNone(self.instance(reg, inst_id))
        self.assertIn("deregistered " + inst_id, svc.log_text())

    def test_second_signal_cuts_the_delay(self):
        """A second SIGTERM during a long delay stops the service now."""
        reg = self.start_registry()
        self.require_registry_side(reg)
        svc = self.start_logging(reg.url, "--drain-delay", "60s")
        inst_id = self.registered_id(svc)
        svc.proc.send_signal(signal.SIGTERM)
        svc.wait_for_log(r"%s in maintenance" % inst_id, 2)
        self.assertTrue(svc.running())
        self.assertEqual(svc.stop(timeout=15), 0, svc.describe())
        self.assertIn("ending the drain delay", svc.log_text())
        self.assertIsNone(self.instance(reg, inst_id))

    def test_http_check_follows_a_frozen_instance(self):
        """--check http: the instance JSON shows an HTTP check; SIGSTOP makes
        it critical and it leaves discovery within about 2 s while its 30 s
        lease is still valid; SIGCONT brings it back passing."""
        reg = self.start_registry()
        self.require_registry_side(reg)
        svc = self.start_logging(reg.url, "--check", "http",
                                 "--check-interval", "200ms", "--ttl", "30s")
        inst_id = self.registered_id(svc)
        inst = wait_until(lambda: self.instance(reg, inst_id), timeout(5),
                          message="instance listed")
        check = http_check(inst)
        self.assertIsNotNone(check, inst)
        self.assertEqual(check.get("http", "http://127.0.0.1:%d/health" % svc.port),
                         "http://127.0.0.1:%d/health" % svc.port, inst)
        wait_until(lambda: self.discovered(reg) == inst_id, timeout(5),
                   message="logging discovered")

        os.kill(svc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: (self.instance(reg, inst_id) or {}).get("health")
                       == "critical", timeout(3), message="critical once frozen")
            self.assertIsNone(self.discovered(reg))
            self.assertEqual(self.instance(reg, inst_id)["ttl"], 30)
        finally:
            os.kill(svc.pid, signal.SIGCONT)
        wait_until(lambda: self.discovered(reg) == inst_id, timeout(5),
                   message="passing again after SIGCONT")
        self.assertEqual(self.instance(reg, inst_id).get("health"), "passing")
        self.assertEqual(svc.stop(timeout=15), 0, svc.describe())


if __name__ == "__main__":
    program = unittest.main(exit=False, verbosity=2)
    result = program.result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.skipped:
        sys.exit(SKIP_EXIT)
    sys.exit(0)
