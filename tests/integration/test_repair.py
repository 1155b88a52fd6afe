"""Under-replication repair in the facade (facade-service/repair.h), through
the real executables: registry, three logging-service instances and the
facade at --replicas 2 --repair-interval 1s, on loopback.

Finding "under-replication is silent and permanent": with 1 of 3 instances
up, POSTs got one copy each and kept one copy after the others came back.
Now the facade's repair timer re-sends every message held by fewer than
min(--replicas, instances) listed instances; logging deduplicates by uuid.
"""

import json
import os
import re
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from svctest import Service, ServiceTestCase, request, timeout, wait_until  # noqa: E402

MESSAGES = 20
REPAIR_BOUND_S = 20  # generous: repair ticks every second


class Cluster:
    """The processes of one test, cleaned up by the test."""

    def __init__(self, test):
        self.test = test
        self.tmp = tempfile.mkdtemp(prefix="repair-")
        test.addCleanup(self._cleanup)
        self.registry = Service().start("registry", [
            "--port", "0", "--data", os.path.join(self.tmp, "registry.db"),
            "--cleanup-interval", "100ms"])
        self.registry_url = "http://127.0.0.1:%d" % self.registry.port
        self.loggings = [self.start_logging() for _ in range(3)]
        self.facade = Service().start("facade-service", [
            "--port", "0", "--registry", self.registry_url, "--ttl", "2s",
            "--replicas", "2", "--repair-interval", "1s"])
        # runs before _cleanup: SIGTERM must end the facade with 0 (its
        # repair timer stopped, nothing leaked under the sanitizers)
        test.addCleanup(test.finish_service, self.facade)
        self.wait_passing("logging-service", 3)
        self.wait_passing("facade-service", 1)
        time.sleep(1.5)  # the facade's discovery cache refreshes every second

    def _cleanup(self):
        for svc in [self.facade, self.registry] + self.loggings:
            svc.close()
        for root, dirs, files in os.walk(self.tmp, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        os.rmdir(self.tmp)

    def start_logging(self, data_dir=None, port=0):
        """The journal is one file per port (logging-PORT.jsonl): a restart
        on the old port and data dir finds its own journal."""
        data_dir = data_dir or tempfile.mkdtemp(dir=self.tmp, prefix="logdata-")
        svc = Service().start("logging-service", [
            "--port", str(port), "--registry", self.registry_url, "--ttl", "2s",
            "--data-dir", data_dir, "--fsync", "always"])
        svc.data_dir = data_dir
        return svc

    def restart_logging(self, i):
        old = self.loggings[i]
        self.loggings[i] = self.start_logging(data_dir=old.data_dir, port=old.port)
        old.close()

    def passing(self, name):
        status, _, body = request(
            "GET", self.registry_url + "/v1/services?name=%s&health=passing" % name)
        return body["services"] if status == 200 else []

    def wait_passing(self, name, count):
        wait_until(lambda: len(self.passing(name)) == count, timeout=15,
                   message="%d passing %s" % (count, name))

    def post(self, msg):
        status, _, body = request("POST", self.facade.url + "/facade", {"msg": msg},
                                  timeout=30)
        self.test.assertEqual(status, 200, body)
        return body

    def journal_path(self, svc):
        return os.path.join(svc.data_dir, "logging-%d.jsonl" % svc.port)

    def journal_uuids(self, svc):
        """The uuids in svc's journal file on disk."""
        try:
            with open(self.journal_path(svc), encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return set()
        out = set()
        for line in lines:
            try:
                out.add(json.loads(line)["uuid"])
            except (ValueError, KeyError):
                pass  # a line being written
        return out

    def served_uuids(self, svc):
        """The uuids svc answers GET /logging with."""
        if not svc.running():
            return set()
        status, _, body = svc.request("GET", "/logging")
        if status != 200:
            return set()
        return {m["uuid"] for m in body["messages"]}

    def copies(self, uuids):
        """Per uuid: on how many journals, and in how many GET /logging."""
        journals = [self.journal_uuids(svc) for svc in self.loggings]
        served = [self.served_uuids(svc) for svc in self.loggings]
        return ({u: sum(u in j for j in journals) for u in uuids},
                {u: sum(u in s for s in served) for u in uuids})

    def wait_all_on_two(self, uuids):
        def on_two():
            journal, served = self.copies(uuids)
            return (all(n >= 2 for n in journal.values()) and
                    all(n >= 2 for n in served.values()))
        wait_until(on_two, timeout=REPAIR_BOUND_S, interval=0.2,
                   message="every message on at least 2 journals")

    def facade_shows_each_once(self, texts):
        status, _, body = request("GET", self.facade.url + "/facade")
        self.test.assertEqual(status, 200, body)
        for text in texts:
            self.test.assertEqual(body["logs"].count(text), 1, (text, body["logs"]))
        self.test.assertEqual(len(body["logs"]), len(texts), body["logs"])

    def metric(self, name):
        status, _, text = request("GET", self.facade.url + "/metrics")
        self.test.assertEqual(status, 200)
        values = [int(line.split()[1]) for line in text.splitlines()
                  if line.startswith(name + " ")]
        self.test.assertEqual(len(values), 1, text)
        return values[0]


class Repair(ServiceTestCase):

    def test_one_copy_messages_reach_two_journals_once_instances_return(self):
        """Two of three instances stopped: 20 POSTs answer "replicas": 1.
        The two restart on their ports and journals: within a bounded time
        every acknowledged uuid is on at least 2 journals (and served by 2
        instances), GET /facade shows each message once, and /metrics and
        the log say what repair did. Before repair: one copy for ever."""
        c = Cluster(self)
        for i in (0, 1):
            self.assertEqual(c.loggings[i].stop(signal.SIGTERM), 0)
        c.wait_passing("logging-service", 1)
        texts = ["one copy %d" % i for i in range(MESSAGES)]
        uuids = []
        for text in texts:
            body = c.post(text)
            self.assertEqual(body["replicas"], 1, body)
            uuids.append(body["uuid"])
        journal, _ = c.copies(uuids)
        self.assertTrue(all(n == 1 for n in journal.values()), journal)
        for i in (0, 1):
            c.restart_logging(i)
        c.wait_all_on_two(uuids)
        c.facade_shows_each_once(texts)
        self.assertGreaterEqual(c.metric("facade_repaired_total"), MESSAGES)
        c.facade.wait_for_log(r"INFO facade-service repair: \d+ messages below 2 copies, "
                              r"re-sent \d+", timeout=timeout(5))

    def test_instance_restarted_empty_is_refilled(self):
        """All three up, 20 POSTs on 2 copies each. One instance crashes
        and comes back at once on its port with its journal gone: it is
        refilled with the messages it held (those that rank it among their
        top 2), and every message is on at least 2 instances again."""
        c = Cluster(self)
        texts = ["two copies %d" % i for i in range(MESSAGES)]
        uuids = []
        for text in texts:
            body = c.post(text)
            self.assertEqual(body["replicas"], 2, body)
            uuids.append(body["uuid"])
        victim = c.loggings[0]
        held = c.journal_uuids(victim)
        self.assertTrue(held, "the instance held no message: the test proves nothing")
        victim.kill()
        os.unlink(c.journal_path(victim))
        c.restart_logging(0)
        self.assertEqual(c.served_uuids(c.loggings[0]), set())  # it came back empty
        wait_until(lambda: held <= c.journal_uuids(c.loggings[0]), timeout=REPAIR_BOUND_S,
                   interval=0.2, message="the emptied instance refilled")
        c.wait_all_on_two(uuids)
        c.facade_shows_each_once(texts)
        self.assertGreaterEqual(c.metric("facade_repaired_total"), len(held))


class RepairOff(ServiceTestCase):

    def test_interval_zero_turns_repair_off(self):
        """--repair-interval 0: the facade says so at start and re-sends
        nothing (facade_repaired_total stays 0)."""
        reg = Service().start("registry", ["--port", "0"])
        self.addCleanup(reg.close)
        fc = Service().start("facade-service", [
            "--port", "0", "--registry", "http://127.0.0.1:%d" % reg.port,
            "--repair-interval", "0"])
        self.addCleanup(fc.close)
        self.addCleanup(self.finish_service, fc)
        fc.wait_for_log(re.escape("repair every 0 ms (off)"), timeout=timeout(5))
        status, _, text = request("GET", fc.url + "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("facade_repaired_total 0\n", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
