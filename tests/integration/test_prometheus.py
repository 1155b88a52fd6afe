#!/usr/bin/python3
"""Integration test of the registry's Consul API as a Prometheus user meets
it: a real scraper configured with nothing but consul_sd_configs pointed at
the registry finds every instance of the running suite, scrapes each one's
/metrics, and follows an instance that stops and one that starts.

The suite: the registry (its own --datacenter and --node-name, memory
store), two logging-service instances, messages-service and the facade,
each registering itself as it does in production. Then the scraper, on
127.0.0.1 with a free port (never 9090, which a system Prometheus may hold),
its storage in a temporary directory, scrape_interval 1s and one job whose
only target source is consul_sd_configs: [{server: 127.0.0.1:<registry>}].

Which scraper: /usr/bin/prometheus when its build knows consul_sd_configs.
Debian's prometheus 2.42 (bookworm) is built with Consul SD disabled
(changelog of 2.33.5+ds1-4: "Disable Consul SD until its Debian package is
back in shape") and refuses such a config; the test then runs Debian's
victoria-metrics, whose scraper reads the same scrape_configs (Consul
discovery with blocking queries on /v1/catalog/services and
/v1/health/service/<name>, the datacenter from /v1/agent/self) and answers
the same /api/v1/targets and /api/v1/query. Both are installed by
scripts/deps.sh --test. With neither usable the test is skipped loudly
(exit 77, ctest's SKIP_RETURN_CODE for it).

Expected targets: every instance GET /v1/services lists (host:port), plus
the registry itself, which the Consul catalog lists as the service
"consul" at its HTTP port (as a Consul server lists itself), so its own
/metrics is scraped too.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_prometheus.py
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, request, wait_until  # noqa: E402

T = svctest.timeout

SKIP_EXIT = 77          # ctest's SKIP_RETURN_CODE for this script
JOB = "svcmesh"         # the one scrape job
DATACENTER = "dc-prom"
NODE = "node-prom"
DISCOVERY_WAIT = 30     # seconds (scaled) for the targets to settle
POLL = 0.2              # seconds between two reads of /api/v1/targets

# A metric each kind of target exports beside the shared series.
SERVICE_METRIC = {
    "logging-service": "logging_messages_stored",
    "facade-service": "facade_under_replicated_total",
    "consul": "registry_instances",
}


def free_port():
    """A loopback TCP port nothing listens on now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_config(registry_port, prometheus):
    """prometheus.yml: 1 s intervals and one job whose only targets come
    from the registry's Consul API. evaluation_interval and refresh_interval
    only for Prometheus: victoria-metrics 1.79 refuses fields it does not
    know, and takes its Consul refresh as a flag."""
    text = "global:\n  scrape_interval: 1s\n"
    if prometheus:
        text += "  evaluation_interval: 1s\n"
    text += ("scrape_configs:\n"
             "  - job_name: %s\n"
             "    consul_sd_configs:\n"
             "      - server: '127.0.0.1:%d'\n" % (JOB, registry_port))
    if prometheus:
        text += "        refresh_interval: 1s\n"
    return text


class Scraper:
    """One running Prometheus-compatible scraper: its process, its log file
    and its HTTP address. The process dies with the thread that started it
    (svctest's preexec) and is always stopped by close()."""

    def __init__(self, name, proc, port, log_path, config_path):
        self.name = name
        self.flush_path = None  # GET before a query makes every sample searchable
        self.proc = proc
        self.url = "http://127.0.0.1:%d" % port
        self.log_path = log_path
        self.config_path = config_path

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError as exc:
            return "(no log: %s)" % exc

    def describe(self, last=150):
        lines = self.log_text().splitlines()
        with open(self.config_path, encoding="utf-8") as f:
            config = f.read()
        return ("--- %s (pid %s, %s), config ---\n%s--- last %d log lines ---\n%s\n--- end ---"
                % (self.name, self.proc.pid,
                   "running" if self.proc.poll() is None
                   else "exit code %s" % self.proc.returncode,
                   config, min(last, len(lines)), "\n".join(lines[-last:])))

    def get(self, path):
        status, _, body = request("GET", self.url + path, timeout=10)
        if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
            raise AssertionError("%s %s: %s %r" % (self.name, path, status, body))
        return body["data"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(T(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(T(10))


def launch(name, argv, port, log_path, config_path, ready_path):
    """Start argv with its output in log_path and wait until ready_path
    answers 200. Returns the Scraper, or None when the process exited first
    (its log stays in log_path): a build without Consul SD refuses the
    config and exits. Raises AssertionError, with the log, when it is still
    not ready after 30 s (scaled)."""
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=getattr(svctest, "_PREEXEC", None))
    finally:
        log.close()
    scraper = Scraper(name, proc, port, log_path, config_path)
    deadline = time.monotonic() + T(30)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            status, _, _ = request("GET", scraper.url + ready_path, timeout=2)
            if status == 200:
                return scraper
        except OSError:
            pass
        time.sleep(0.1)
    text = scraper.describe()
    scraper.close()
    raise AssertionError("%s not ready within %.0fs\n%s" % (name, T(30), text))


def start_scraper(tmp, registry_port):
    """The first scraper that runs with consul_sd_configs: Prometheus, else
    victoria-metrics. Returns (scraper, None) or (None, why none ran)."""
    reasons = []
    prometheus = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)
    if prometheus:
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(scrape_config(registry_port, prometheus=True))
        port = free_port()
        log_path = os.path.join(tmp, "prometheus.log")
        scraper = launch("prometheus", [
            prometheus, "--config.file=" + config,
            "--web.listen-address=127.0.0.1:%d" % port,
            "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
            "--log.level=debug"], port, log_path, config, "/-/ready")
        if scraper:
            return scraper, None
        with open(log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        if "consul_sd_configs not found" not in log:
            raise AssertionError("prometheus exited at start:\n" + log)
        reasons.append("%s is built without Consul service discovery "
                       "(Debian's 2.42 is: 'field consul_sd_configs not found')"
                       % prometheus)
    else:
        reasons.append("no prometheus (apt-get install prometheus)")

    vm = shutil.which("victoria-metrics")
    if vm:
        config = os.path.join(tmp, "scrape.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(scrape_config(registry_port, prometheus=False))
        port = free_port()
        log_path = os.path.join(tmp, "victoria-metrics.log")
        scraper = launch("victoria-metrics", [
            vm, "-httpListenAddr=127.0.0.1:%d" % port,
            "-storageDataPath=" + os.path.join(tmp, "vmdata"),
            "-promscrape.config=" + config,
            "-promscrape.consulSDCheckInterval=1s",
            # instant queries see the newest samples, not those of 30 s ago,
            # and never an answer cached before a series came
            "-search.latencyOffset=0s", "-search.disableCache",
            "-loggerLevel=INFO"], port, log_path, config, "/health")
        if scraper:
            # it buffers new samples (and series) for seconds before a
            # search sees them; /internal/force_flush is its way to say now
            scraper.flush_path = "/internal/force_flush"
            return scraper, None
        with open(log_path, encoding="utf-8", errors="replace") as f:
            raise AssertionError("victoria-metrics exited at start:\n" + f.read())
    reasons.append("no victoria-metrics (apt-get install victoria-metrics)")
    return None, "; ".join(reasons)


class PrometheusConsulTest(svctest.ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="svctest-prometheus-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.reg = self.service("registry", [
            "--port", "0", "--bind", "127.0.0.1", "--backend", "memory",
            "--datacenter", DATACENTER, "--node-name", NODE])
        self.loggings = [self.start_logging() for _ in range(2)]
        self.messages = self.service("messages-service", self.client_args())
        self.facade = self.service("facade-service", self.client_args())
        wait_until(lambda: len(self.native()) == 4, timeout=T(15),
                   message="4 instances registered")

        scraper, why = start_scraper(self.tmp, self.reg.port)
        if scraper is None:
            sys.stderr.write("\n" + "!" * 72 + "\nSKIPPING test_prometheus: no "
                             "scraper with consul_sd_configs: %s\n" % why
                             + "!" * 72 + "\n")
            self.skipTest(why)
        self.scraper = scraper
        self.addCleanup(self.finish_scraper)
        sys.stderr.write("\nscraper: %s at %s\n" % (scraper.name, scraper.url))

    # --- the suite -----------------------------------------------------------

    def service(self, name, args):
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        return svc.start(name, args)

    def client_args(self):
        return ["--port", "0", "--registry", "http://127.0.0.1:%d" % self.reg.port]

    def start_logging(self):
        data = tempfile.mkdtemp(dir=self.tmp, prefix="logging-")
        return self.service("logging-service", self.client_args() + ["--data-dir", data])

    def finish_scraper(self):
        if self._test_failed():
            sys.stderr.write("\n" + self.scraper.describe() + "\n")
        self.scraper.close()

    # --- what the registry says ----------------------------------------------

    def native(self):
        """{host:port: instance} of every instance GET /v1/services lists."""
        status, _, body = self.reg.request("GET", "/v1/services")
        self.assertEqual(status, 200, body)
        return {"%s:%d" % (i["host"], i["port"]): i for i in body["services"]}

    def expected(self):
        """{host:port: (Consul service name, Consul service id or None)}:
        every native instance (its Consul id: the native id, or the
        consul_id its Consul registration kept), and the registry itself,
        the "consul" service of the Consul catalog."""
        want = {addr: (i["name"], (i.get("metadata") or {}).get("consul_id", i["id"]))
                for addr, i in self.native().items()}
        status, _, catalog = self.reg.request("GET", "/v1/catalog/services")
        self.assertEqual(status, 200, catalog)
        self.assertEqual(catalog.get("consul"), [], catalog)
        want["127.0.0.1:%d" % self.reg.port] = ("consul", None)
        return want

    # --- what the scraper says -----------------------------------------------

    def active(self):
        """{instance: target} of /api/v1/targets' activeTargets, after
        checking every one belongs to our job and is unique."""
        targets = self.scraper.get("/api/v1/targets")["activeTargets"]
        out = {}
        for t in targets:
            self.assertEqual(t["labels"]["job"], JOB, t)
            addr = t["discoveredLabels"]["__address__"]
            self.assertNotIn(addr, out, "target listed twice: %r" % targets)
            out[addr] = t
        return out

    def settled(self, want):
        """The active targets when they are exactly want's addresses, each
        up after a scrape without error; else None (not yet)."""
        got = self.active()
        if set(got) != set(want):
            return None
        for t in got.values():
            if t["health"] != "up" or t["lastError"] != "":
                return None
        return got

    def wait_settled(self, want, what):
        return wait_until(lambda: self.settled(want), timeout=T(DISCOVERY_WAIT),
                          interval=POLL,
                          message="%s: active targets = %s, all up" % (what, sorted(want)))

    def query(self, promql):
        """{instance: float value} of an instant query."""
        if self.scraper.flush_path:
            status, _, body = request("GET", self.scraper.url + self.scraper.flush_path)
            self.assertEqual(status, 200, body)
        data = self.scraper.get("/api/v1/query?query=" + urllib.parse.quote(promql))
        self.assertEqual(data["resultType"], "vector", data)
        return {r["metric"]["instance"]: float(r["value"][1]) for r in data["result"]}

    def check_labels(self, got, want):
        """Each target carries the labels Consul discovery gives."""
        for addr, (name, sid) in want.items():
            labels = got[addr]["discoveredLabels"]
            self.assertEqual(labels["__meta_consul_service"], name, labels)
            self.assertEqual(labels["__meta_consul_dc"], DATACENTER, labels)
            self.assertEqual(labels["__meta_consul_node"], NODE, labels)
            host, port = addr.rsplit(":", 1)
            self.assertEqual(labels["__meta_consul_service_port"], port, labels)
            if sid is not None:
                self.assertEqual(labels["__meta_consul_service_id"], sid, labels)
                self.assertEqual(labels["__meta_consul_service_address"], host, labels)
            else:
                # the "consul" entry leaves Service.Address empty, as Consul
                # does: the node's address is the target's
                self.assertEqual(labels["__meta_consul_service_address"], "", labels)
                self.assertEqual(labels["__meta_consul_address"], host, labels)
            if "__meta_consul_health" in labels:
                self.assertEqual(labels["__meta_consul_health"], "passing", labels)
            self.assertEqual(got[addr]["labels"]["instance"], addr, got[addr])
            self.assertTrue(got[addr]["scrapeUrl"].endswith(addr + "/metrics"), got[addr])

    def check_metrics(self, want):
        """up is 1 for every target, every target's resident memory is in,
        and each service's own metric comes from its instances. A target
        that left may keep its last samples for a while: only want's
        instances are asked for."""
        def stored():
            up = self.query('up{job="%s"}' % JOB)
            if any(up.get(addr) != 1.0 for addr in want):
                return None
            rss = self.query("process_resident_memory_bytes")
            if any(rss.get(addr, 0) <= 0 for addr in want):
                return None
            for name, metric in SERVICE_METRIC.items():
                mine = {a for a, (n, _) in want.items() if n == name}
                if not mine <= set(self.query(metric)):
                    return None
            return up
        wait_until(stored, timeout=T(DISCOVERY_WAIT), interval=POLL,
                   message="every target's metrics queryable")

    # --- the test ------------------------------------------------------------

    def test_discovers_scrapes_and_follows_the_suite(self):
        want = self.expected()
        names = sorted(n for n, _ in want.values())
        for name in ["facade-service", "logging-service", "logging-service",
                     "messages-service"]:
            self.assertIn(name, names)
            names.remove(name)
        self.assertEqual(names, ["consul"], "unexpected instances: %r" % want)

        got = self.wait_settled(want, "the whole suite")
        self.check_labels(got, want)
        self.check_metrics(want)

        # A logging instance stops (deregistering on SIGTERM): it leaves.
        gone = self.loggings[0]
        gone_addr = "127.0.0.1:%d" % gone.port
        self.assertIn(gone_addr, want)
        self.assertEqual(gone.stop(signal.SIGTERM), 0, gone.describe())
        wait_until(lambda: gone_addr not in self.native(), timeout=T(15),
                   message="the stopped instance out of the registry")
        rest = self.expected()
        self.assertEqual(set(rest), set(want) - {gone_addr})
        got = self.wait_settled(rest, "after stopping %s" % gone_addr)
        self.check_labels(got, rest)

        # A new one starts: it appears, up.
        new = self.start_logging()
        new_addr = "127.0.0.1:%d" % new.port
        wait_until(lambda: new_addr in self.native(), timeout=T(15),
                   message="the new instance registered")
        again = self.expected()
        self.assertEqual(set(again), set(rest) | {new_addr})
        got = self.wait_settled(again, "after starting %s" % new_addr)
        self.check_labels(got, again)
        self.check_metrics(again)


if __name__ == "__main__":
    program = unittest.main(exit=False, verbosity=2)
    result = program.result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.skipped:
        sys.exit(SKIP_EXIT)
    sys.exit(0)
