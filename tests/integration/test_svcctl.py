#!/usr/bin/python3
"""Integration tests of svcctl, the command-line client, against a real
registry (and, for `svcctl stats`, a real facade-service with a real
logging-service): every subcommand, its --json output parsed, and every
exit code (0 ok, 1 not found / unhealthy / refused, 2 usage, 3 registry
unreachable).

Each test starts its own registry on 127.0.0.1 with an ephemeral port and
runs build/bin/svcctl with subprocess. A watch is known to be listening by
the registry's own gauge (registry_watchers in /metrics), never by sleeping.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_svcctl.py
"""

import base64
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, request, wait_until  # noqa: E402

T = svctest.timeout


def clean_env(**extra):
    """The caller's environment without the variables svcctl or the
    services read, plus extra."""
    env = dict(os.environ)
    for var in svctest.SERVICE_ENV_VARS:
        env.pop(var, None)
    env.update(extra)
    return env


class SvcctlTestCase(svctest.ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="svcctl-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.registry = self.start("registry", [
            "--port", "0", "--bind", "127.0.0.1", "--backend", "memory",
            "--cleanup-interval", "100ms"])
        self.url = "http://127.0.0.1:%d" % self.registry.port

    def start(self, name, args):
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start(name, args)
        return svc

    def svcctl(self, *args, env=None, stdin=None, url=True):
        """Run svcctl to completion; REGISTRY_URL is this test's registry
        unless url is False. Returns CompletedProcess (text)."""
        e = clean_env(**({"REGISTRY_URL": self.url} if url else {}))
        e.update(env or {})
        return subprocess.run([svctest.binary_path("svcctl")] + list(args), env=e,
                              input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=T(20))

    def ok(self, *args, **kw):
        """svcctl must exit 0; returns its stdout."""
        r = self.svcctl(*args, **kw)
        self.assertEqual(r.returncode, 0, "svcctl %s: %r %r" % (args, r.stdout, r.stderr))
        self.assertEqual(r.stderr, "")
        return r.stdout

    def fails(self, code, *args, **kw):
        """svcctl must exit code with one error line "svcctl: ..."; returns it."""
        r = self.svcctl(*args, **kw)
        self.assertEqual(r.returncode, code, "svcctl %s: %r %r" % (args, r.stdout, r.stderr))
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("svcctl: "), r.stderr)
        return lines[0]

    def register(self, name="web", port=8080, **fields):
        body = {"name": name, "host": "127.0.0.1", "port": port}
        body.update(fields)
        status, _, reply = self.registry.request("POST", "/v1/services", body)
        self.assertIn(status, (200, 201), reply)
        return reply["service_id"]

    @staticmethod
    def rows(table):
        """A table's lines as lists of cells (split on runs of 2+ spaces)."""
        import re
        return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]


class Usage(SvcctlTestCase):

    def test_usage_errors_exit_2(self):
        for args in ([], ["bogus"], ["instances"], ["instances", "a", "b"], ["show"],
                     ["maint", "x"], ["maint", "x", "maybe"], ["maint", "x", "off", "--reason", "r"],
                     ["deregister"], ["kv"], ["kv", "get"], ["kv", "put", "k"], ["kv", "frob", "k"],
                     ["services", "extra"], ["watch", "extra"], ["--type", "kv", "services"],
                     ["--reason", "r", "health"], ["--timeout", "soon", "health"],
                     ["--timeout", "0", "health"], ["--frobnicate", "services"], ["--registry"],
                     ["--registry", "ftp://127.0.0.1:1", "services"]):
            with self.subTest(args=args):
                line = self.fails(2, *args)
                self.assertIn("svcctl --help", line)

    def test_help_and_version(self):
        out = self.ok("--help")
        for word in ("services", "instances NAME", "show ID", "watch", "kv get KEY", "kv put",
                     "kv del", "kv ls", "maint ID on|off", "deregister ID", "health", "stats",
                     "--registry", "REGISTRY_URL", "--json", "--token", "--timeout",
                     "exit codes", "unreachable"):
            self.assertIn(word, out)
        self.assertRegex(self.ok("--version"), r"^svcctl \d+\.\d+\.\d+\n$")


class Unreachable(SvcctlTestCase):

    def test_closed_port_exit_3(self):
        closed = "http://127.0.0.1:%d" % svctest.closed_port()
        for args in (["services"], ["instances", "web"], ["show", "web-1"], ["health"],
                     ["kv", "get", "k"], ["kv", "put", "k", "v"], ["kv", "del", "k"], ["kv", "ls"],
                     ["maint", "web-1", "on"], ["deregister", "web-1"], ["stats"], ["watch"]):
            with self.subTest(args=args):
                line = self.fails(3, "--registry", closed, *args)
                self.assertIn("unreachable", line)
        # the environment variable names the registry too, --registry wins over it
        self.fails(3, "services", env={"REGISTRY_URL": closed})
        self.ok("--registry", self.url, "services", env={"REGISTRY_URL": closed})

    def test_timeout_exit_3(self):
        """A registry that accepts but never answers (SIGSTOP) is a timeout."""
        self.registry.proc.send_signal(signal.SIGSTOP)
        try:
            line = self.fails(3, "--timeout", "300ms", "services")
        finally:
            self.registry.proc.send_signal(signal.SIGCONT)
        self.assertIn("unreachable", line)


class Catalog(SvcctlTestCase):

    def test_services(self):
        self.register("web", 8080, tags=["v1", "edge"])
        self.register("web", 8081, tags=["v2"])
        self.register("db", 5432, check={"tcp": "127.0.0.1:1", "interval": "1s",
                                         "status": "critical"})
        out = self.ok("services")
        rows = self.rows(out)
        self.assertEqual(rows[0], ["SERVICE", "INSTANCES", "PASSING", "WARNING", "CRITICAL", "TAGS"])
        self.assertEqual(rows[1:], [["db", "1", "0", "0", "1", "-"],
                                    ["web", "2", "2", "0", "0", "edge,v1,v2"]])
        doc = json.loads(self.ok("--json", "services"))
        self.assertTrue(doc["success"])
        self.assertEqual(sorted(s["name"] for s in doc["services"]), ["db", "web", "web"])

    def test_instances(self):
        a = self.register("web", 8080)
        b = self.register("web", 8081)
        self.register("other", 9000)
        self.ok("maint", b, "on", "--reason", "deploy 7")
        rows = self.rows(self.ok("instances", "web"))
        self.assertEqual(rows[0], ["ID", "ADDRESS", "HEALTH", "CHECKS", "MAINTENANCE"])
        self.assertEqual(rows[1], [a, "127.0.0.1:8080", "passing", "1 passing", "-"])
        self.assertEqual(rows[2], [b, "127.0.0.1:8081", "critical", "1 passing, 1 critical",
                                   "deploy 7"])
        self.assertEqual(len(rows), 3)
        doc = json.loads(self.ok("--json", "instances", "web"))
        self.assertEqual([s["id"] for s in doc["services"]], [a, b])
        line = self.fails(1, "instances", "nope")
        self.assertIn("no instance of service 'nope'", line)

    def test_show(self):
        sid = self.register("web", 8080, tags=["v1"], metadata={"zone": "eu-1"},
                            checks=[{"ttl": "30s"},
                                    {"id": "probe", "tcp": "127.0.0.1:1", "interval": "10s",
                                     "status": "warning"}])
        out = self.ok("show", sid)
        self.assertIn("id:             %s\n" % sid, out)
        self.assertIn("address:        127.0.0.1:8080\n", out)
        self.assertIn("health:         warning\n", out)
        self.assertIn("tags:           v1\n", out)
        self.assertIn("maintenance:    off\n", out)
        self.assertIn("  zone = eu-1\n", out)
        checks = self.rows(out.split("checks:\n", 1)[1])
        self.assertEqual(checks[0], ["CHECK", "TYPE", "STATUS", "LAST CHANGE", "OUTPUT"])
        self.assertEqual([c[:3] for c in checks[1:]],
                         [[sid + ":1", "ttl", "passing"], ["probe", "tcp", "warning"]])
        self.assertRegex(checks[2][3], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        doc = json.loads(self.ok("--json", "show", sid))
        self.assertEqual(doc["service"]["id"], sid)
        self.assertEqual(doc["service"]["metadata"], {"zone": "eu-1"})
        self.assertIn("not found", self.fails(1, "show", "web-00000000-0000-4000-8000-000000000000"))
        # an id with characters a path cannot hold as they are is escaped, not mangled
        self.fails(1, "show", "a b/../c?d")

    def test_health(self):
        self.assertEqual(self.ok("health"), "all 0 instances passing\n")
        self.register("web", 8080)
        self.assertEqual(self.ok("health"), "all 1 instances passing\n")
        doc = json.loads(self.ok("--json", "health"))
        self.assertEqual(doc, {"passing": True, "instances": 1, "not_passing": []})
        bad = self.register("db", 5432, check={"tcp": "127.0.0.1:1", "interval": "1s",
                                               "status": "critical"})
        r = self.svcctl("health")
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stderr, "svcctl: health: 1 of 2 instances are not passing\n")
        rows = self.rows(r.stdout)
        self.assertEqual([row[:3] for row in rows[1:]], [[bad, "127.0.0.1:5432", "critical"]])
        r = self.svcctl("--json", "health")
        self.assertEqual(r.returncode, 1)
        doc = json.loads(r.stdout)
        self.assertFalse(doc["passing"])
        self.assertEqual([s["id"] for s in doc["not_passing"]], [bad])

    def test_maint(self):
        sid = self.register("web", 8080)
        self.assertEqual(self.ok("maint", sid, "on", "--reason", "upgrade"),
                         "%s: maintenance on, health critical\n" % sid)
        _, _, body = self.registry.request("GET", "/v1/services/" + sid)
        self.assertEqual(body["service"]["maintenance"]["reason"], "upgrade")
        doc = json.loads(self.ok("--json", "maint", sid, "off"))
        self.assertNotIn("maintenance", doc["service"])
        self.assertEqual(doc["service"]["health"], "passing")
        self.ok("maint", sid, "on")  # no reason: the registry's default
        _, _, body = self.registry.request("GET", "/v1/services/" + sid)
        self.assertIn("maintenance", body["service"])
        self.assertIn("not found", self.fails(1, "maint", "nope-1", "on"))

    def test_deregister(self):
        sid = self.register("web", 8080)
        self.assertEqual(self.ok("deregister", sid), "deregistered %s\n" % sid)
        status, _, _ = self.registry.request("GET", "/v1/services/" + sid)
        self.assertEqual(status, 404)
        self.assertIn("not found", self.fails(1, "deregister", sid))
        sid = self.register("web", 8080)
        self.assertTrue(json.loads(self.ok("--json", "deregister", sid))["success"])


class KV(SvcctlTestCase):

    def test_put_get_ls_del(self):
        self.assertEqual(self.ok("kv", "put", "config/web/greeting", "hello world"),
                         "set config/web/greeting (11 bytes)\n")
        self.assertEqual(self.ok("kv", "get", "config/web/greeting"), "hello world")
        # "-" reads the value from stdin, bytes as they are (a newline too)
        self.ok("kv", "put", "config/web/motd", "-", stdin="line 1\nline 2\n")
        _, _, body = self.registry.request("GET", "/v1/kv/config/web/motd?raw")
        self.assertEqual(body, "line 1\nline 2\n")
        self.assertEqual(self.ok("kv", "get", "config/web/motd"), "line 1\nline 2\n")
        self.ok("kv", "put", "other", "x")
        self.assertEqual(self.ok("kv", "ls"), "config/web/greeting\nconfig/web/motd\nother\n")
        self.assertEqual(self.ok("kv", "ls", "config/"), "config/web/greeting\nconfig/web/motd\n")
        self.assertEqual(self.ok("kv", "ls", "nothing/"), "")
        self.assertEqual(json.loads(self.ok("--json", "kv", "ls", "nothing/")), [])
        self.assertEqual(json.loads(self.ok("--json", "kv", "ls", "config/")),
                         ["config/web/greeting", "config/web/motd"])
        entry = json.loads(self.ok("--json", "kv", "get", "config/web/greeting"))[0]
        self.assertEqual(entry["Key"], "config/web/greeting")
        self.assertEqual(base64.b64decode(entry["Value"]), b"hello world")
        self.assertIs(json.loads(self.ok("--json", "kv", "put", "k2", "v")), True)
        self.assertEqual(self.ok("kv", "del", "config/web/greeting"), "deleted config/web/greeting\n")
        status, _, _ = self.registry.request("GET", "/v1/kv/config/web/greeting")
        self.assertEqual(status, 404)

    def test_unknown_key_exit_1(self):
        self.assertIn("not found", self.fails(1, "kv", "get", "missing"))
        self.assertIn("not found", self.fails(1, "kv", "del", "missing"))

    def test_refused_key_exit_1(self):
        """The key goes as it is: no dot segment is resolved on the way."""
        line = self.fails(1, "kv", "put", "config/../etc", "x")
        self.assertIn("'..'", line)
        self.assertEqual(self.ok("kv", "ls"), "")


class Tokens(SvcctlTestCase):

    def setUp(self):
        svctest.ServiceTestCase.setUp(self)
        self.tmp = tempfile.mkdtemp(prefix="svcctl-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        acl = os.path.join(self.tmp, "acl.json")
        with open(acl, "w") as f:
            json.dump({"ops-token-1": "write"}, f)
        self.registry = self.start("registry", [
            "--port", "0", "--bind", "127.0.0.1", "--backend", "memory",
            "--acl-tokens", acl])
        self.url = "http://127.0.0.1:%d" % self.registry.port

    def test_token_option_and_env(self):
        self.assertIn("permission denied", self.fails(1, "services"))
        self.assertIn("permission denied", self.fails(1, "--token", "wrong", "services"))
        self.ok("--token", "ops-token-1", "services")
        self.ok("kv", "put", "a", "b", env={"TOKEN": "ops-token-1"})
        self.assertEqual(self.ok("-t", "ops-token-1", "kv", "get", "a"), "b")


class Watch(SvcctlTestCase):

    def watchers(self):
        _, _, text = self.registry.request("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith("registry_watchers "):
                return int(line.split()[1])
        raise AssertionError("no registry_watchers in /metrics")

    def start_watch(self, *args):
        """svcctl watch running; returns (process, queue of its stdout lines)."""
        before = self.watchers()
        proc = subprocess.Popen([svctest.binary_path("svcctl")] + list(args) + ["watch"],
                                env=clean_env(REGISTRY_URL=self.url), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)
        threading.Thread(target=pump, daemon=True).start()
        wait_until(lambda: self.watchers() > before, timeout=10, message="the watch to connect")
        return proc, lines

    @staticmethod
    def reap(proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    def next_line(self, lines):
        try:
            return lines.get(timeout=T(10))
        except queue.Empty:
            self.fail("no line from svcctl watch within 10 s")

    def interrupt(self, proc):
        proc.send_signal(signal.SIGINT)
        self.assertEqual(proc.wait(timeout=T(5)), 0, proc.stderr.read())
        self.assertEqual(proc.stderr.read(), "")

    def test_lines_then_sigint(self):
        proc, lines = self.start_watch()
        sid = self.register("api", 9000)
        line = self.next_line(lines)
        self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ register +api %s passing\n$"
                         % sid)
        self.ok("maint", sid, "on", "--reason", "drain")
        self.assertIn("maintenance api %s critical maintenance on: drain" % sid,
                      self.next_line(lines))
        self.ok("kv", "put", "config/x", "1")
        self.assertRegex(self.next_line(lines), r" kv +- config/x set\n$")
        self.ok("deregister", sid)
        self.assertRegex(self.next_line(lines), r" deregister +api %s critical\n$" % sid)
        self.interrupt(proc)

    def test_filters_and_json(self):
        proc, lines = self.start_watch("--json", "--type", "register", "--name", "api")
        self.register("web", 8080)  # another name: not shown
        self.ok("kv", "put", "k", "v")  # another type: not shown
        sid = self.register("api", 9000)
        event = json.loads(self.next_line(lines))
        self.assertEqual(event["type"], "register")
        self.assertEqual(event["data"]["service_id"], sid)
        self.assertEqual(event["data"]["service_info"]["name"], "api")
        self.assertTrue(lines.empty(), "only the one event")
        self.interrupt(proc)

    def test_registry_ends_the_stream_exit_3(self):
        proc, _ = self.start_watch()
        self.assertEqual(self.registry.stop(signal.SIGTERM), 0)
        self.assertEqual(proc.wait(timeout=T(10)), 3)
        self.assertEqual(proc.stderr.read(), "svcctl: watch: the registry ended the stream\n")

    def test_refused_filter_exit_1(self):
        self.assertIn("type must be", self.fails(1, "watch", "--type", "bogus"))


class Stats(SvcctlTestCase):

    def test_no_facade_exit_1(self):
        self.assertIn("no facade-service instance", self.fails(1, "stats"))

    def test_facade_upstreams(self):
        data = os.path.join(self.tmp, "logdata")
        os.mkdir(data)
        logging_svc = self.start("logging-service", [
            "--port", "0", "--registry", self.url, "--ttl", "2s", "--data-dir", data])
        facade = self.start("facade-service", [
            "--port", "0", "--registry", self.url, "--ttl", "2s", "--replicas", "1"])

        def stored():
            status, _, body = request("POST", facade.url + "/facade", {"msg": "hello"})
            return status == 200 and body
        wait_until(stored, timeout=15, interval=0.2, message="the facade to store a message")
        rows = self.rows(self.ok("stats"))
        self.assertEqual(rows[0], ["FACADE", "UPSTREAM", "INSTANCE", "BREAKER", "TOTAL", "SUCCESS",
                                   "FAILURE", "RETRIES", "MEAN MS"])
        mine = [r for r in rows[1:] if r[1] == "logging-service"]
        self.assertEqual(len(mine), 1, rows)
        self.assertEqual(mine[0][0], "127.0.0.1:%d" % facade.port)
        self.assertEqual(mine[0][2], "127.0.0.1:%d" % logging_svc.port)
        self.assertEqual(mine[0][3], "closed")
        self.assertGreaterEqual(int(mine[0][5]), 1)
        self.assertRegex(mine[0][8], r"^\d+\.\d\d$")
        doc = json.loads(self.ok("--json", "stats"))
        self.assertEqual(len(doc["facades"]), 1)
        f = doc["facades"][0]
        self.assertEqual(f["address"], "127.0.0.1:%d" % facade.port)
        self.assertTrue(f["id"].startswith("facade-service-"))
        ups = [u for u in f["stats"]["upstreams"] if u["service"] == "logging-service"]
        self.assertGreaterEqual(ups[0]["successful_requests"], 1)
        # a facade that no longer answers its /stats: its row says so, exit 1
        facade.proc.send_signal(signal.SIGSTOP)
        try:
            r = self.svcctl("--timeout", "300ms", "stats")
        finally:
            facade.proc.send_signal(signal.SIGCONT)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("did not answer /stats", r.stderr)
        self.assertIn("127.0.0.1:%d" % facade.port, r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
