#!/usr/bin/python3
"""Integration test of the replicas' leader (registry/core/members.c) on a
real 3-member etcd cluster on loopback (etcdcluster.py): two registry
replicas on one prefix agree on /v1/replicas (the first started leads);
an instance with an HTTP check on a test server is probed by the leader
only, and its status flips on both replicas when the server fails; the
leader killed, the other leads within the member lease's TTL plus a check
interval and the check keeps running there (its status flips back); the
leader stopped with SIGTERM, the other leads at once (before the lease
could lapse).
svcctl replicas prints the same table.

Needs the etcd store's lease ops: when GET /v1/replicas on an etcd replica
says membership is local because the store has no leases, the test is
skipped with a loud message. Exits 77 (skipped) when etcd is not
installed, or when it skipped for want of leases.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_etcd_leader.py
"""

import http.server
import os
import re
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from etcdcluster import skip_without_etcd  # noqa: E402
from etcdreplicas import ReplicaTestCase  # noqa: E402
from svctest import wait_until  # noqa: E402

T = svctest.timeout

MEMBER_TTL_S = 5.0  # LIM_MEMBER_TTL_MS (etcd may raise it a little)
CHECK_INTERVAL_S = 0.2


class Target:
    """A /health endpoint answering 200 ("ok") or 500 ("fail")."""

    def __init__(self):
        self.mode = "ok"
        self.lock = threading.Lock()
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with target.lock:
                    code = 200 if target.mode == "ok" else 500
                body = b"{}"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/health" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, mode):
        with self.lock:
            self.mode = mode

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class EtcdLeaderTest(ReplicaTestCase):

    PREFIX_NAME = "leader"

    def start_replica(self, port=0, extra=()):
        return super().start_replica(port, ("--dns-port", "0", *extra))

    def replicas(self, svc):
        status, _, body = svc.request("GET", "/v1/replicas")
        self.assertEqual(status, 200, body)
        self.assertTrue(body["success"])
        return body

    def check(self, svc, sid):
        """(status of the instance's http check, X-Registry-Index)."""
        status, headers, body = svc.request("GET", "/v1/services/%s/checks" % sid)
        self.assertEqual(status, 200, body)
        mine = [c for c in body["checks"] if c.get("id") == "web-http"]
        self.assertEqual(len(mine), 1, body)
        return mine[0]["status"], int(headers.get("X-Registry-Index"))

    def probes(self, svc):
        """The registry_checks gauge of svc's /metrics: probes it runs."""
        status, _, body = svc.request("GET", "/metrics")
        self.assertEqual(status, 200)
        text = body if isinstance(body, str) else body.decode() if isinstance(body, bytes) else ""
        m = re.search(r"^registry_checks (\d+)$", text, re.M)
        self.assertIsNotNone(m, text[:500])
        return int(m.group(1))

    def wait_status(self, replicas, sid, want, timeout):
        """Every replica shows the check at want, at one index."""
        seen = []

        def agreed():
            got = [self.check(r, sid) for r in replicas]
            seen[:] = got
            return all(s == want for s, _ in got) and len({i for _, i in got}) == 1
        wait_until(agreed, timeout=T(timeout), interval=0.05,
                   message="check %s on every replica at one index (%r)" % (want, seen))

    def test_leader_runs_checks_and_fails_over(self):
        a = self.start_replica()
        first = self.replicas(a)
        if first["membership"] != "store":
            sys.stderr.write(
                "\n" + "!" * 72 + "\n"
                "!!! test_etcd_leader SKIPPED: the etcd store has no lease ops here\n"
                "!!! (/v1/replicas: membership %r, reason %r)\n" % (
                    first["membership"], first.get("reason")) + "!" * 72 + "\n")
            raise unittest.SkipTest("etcd store without leases: " + first.get("reason", ""))
        b = self.start_replica()

        # both see both, oldest first, and agree the first started leads
        def agree():
            ra, rb = self.replicas(a), self.replicas(b)
            return (len(ra["replicas"]) == 2 and ra["replicas"] == [
                    dict(r, self=not r["self"]) for r in rb["replicas"]]
                    and ra["leader"] == rb["leader"] == ra["self"]) and (ra, rb)
        ra, rb = wait_until(agree, timeout=T(MEMBER_TTL_S), interval=0.05,
                            message="both replicas list both, a leading")
        self.assertTrue(ra["replicas"][0]["leader"])
        self.assertEqual(ra["replicas"][0]["id"], ra["self"])
        self.assertEqual(rb["self"], ra["replicas"][1]["id"])
        self.assertLess(ra["replicas"][0]["create_index"], ra["replicas"][1]["create_index"])
        self.assertEqual(ra["replicas"][1]["url"], b.url.rstrip("/"))
        # svcctl replicas: both rows, a the leader, b the one that answered
        out = subprocess.run([svctest.binary_path("svcctl"), "-r", b.url, "replicas"],
                             capture_output=True, text=True, timeout=T(10))
        self.assertEqual(out.returncode, 0, out.stderr)
        rows = out.stdout.splitlines()
        self.assertEqual(len(rows), 3, out.stdout)
        self.assertTrue(rows[1].startswith(ra["self"]) and " leader" in rows[1], out.stdout)
        self.assertTrue(rows[2].startswith(rb["self"]) and " follower" in rows[2]
                        and rows[2].rstrip().endswith("*"), out.stdout)

        target = Target()
        self.addCleanup(target.close)
        status, _, body = b.request("POST", "/v1/services", {
            "name": "web", "host": "127.0.0.1", "port": 1, "ttl": 600,
            "checks": [{"id": "web-http", "http": target.url,
                        "interval": "%dms" % int(CHECK_INTERVAL_S * 1000)}]})
        self.assertEqual(status, 201, body)
        sid = body["service_id"]
        self.wait_status([a, b], sid, "passing", timeout=2.0)
        # the leader probes, the other does not
        wait_until(lambda: self.probes(a) == 1, timeout=T(2.0), message="a probes")
        self.assertEqual(self.probes(b), 0)

        target.set("fail")
        self.wait_status([a, b], sid, "critical", timeout=3.0)
        target.set("ok")
        self.wait_status([a, b], sid, "passing", timeout=3.0)

        # the leader dies: b leads within the member TTL plus an interval
        a.kill()
        target.set("fail")

        def b_leads():
            rb = self.replicas(b)
            return rb["leader"] == rb["self"] and len(rb["replicas"]) == 1
        wait_until(b_leads, timeout=T(2 * MEMBER_TTL_S + CHECK_INTERVAL_S + 1.0), interval=0.1,
                   message="b leads once a's lease lapsed")
        self.assertEqual(self.probes(b), 1)
        self.wait_status([b], sid, "critical", timeout=3.0)
        target.set("ok")
        self.wait_status([b], sid, "passing", timeout=3.0)

    def test_graceful_stop_moves_the_leader_at_once(self):
        """SIGTERM on the leader deletes its member record as it drains:
        the other leads at that commit, well before the lease's TTL (a
        lapse would take MEMBER_TTL_S), and lists only itself."""
        a = self.start_replica()
        if self.replicas(a)["membership"] != "store":
            raise unittest.SkipTest("etcd store without leases")
        b = self.start_replica()

        def agree():
            ra, rb = self.replicas(a), self.replicas(b)
            return len(rb["replicas"]) == 2 and ra["leader"] == rb["leader"] == ra["self"]
        wait_until(agree, timeout=T(MEMBER_TTL_S), interval=0.05, message="a leads, b follows")
        t0 = time.monotonic()
        a.stop()

        def b_leads():
            rb = self.replicas(b)
            return rb["leader"] == rb["self"] and len(rb["replicas"]) == 1
        wait_until(b_leads, timeout=T(2 * MEMBER_TTL_S), interval=0.05,
                   message="b leads once a left")
        self.assertLess(time.monotonic() - t0, MEMBER_TTL_S,
                        "b led only after a's lease lapsed: a did not leave")


if __name__ == "__main__":
    skip_without_etcd()
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.skipped else 0)
