#!/usr/bin/python3
"""Integration tests of TTL checks on etcd leases: two registry replicas A
and B on one etcd prefix over a real 3-member etcd cluster on loopback
(etcdcluster.py). An instance registered on A gets an etcd lease (its
alive record !alive/<id> bound to it); renewals through either replica
keep that lease alive; when nobody renews, etcd lets it lapse and both
replicas turn the instance critical at the same index with the same
health event; a renewal makes it passing again on both; a deregistration
removes the alive record from etcd; and renewals through B keep it
passing after A was killed.

Exits 77 (skipped) when etcd is not installed.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_etcd_lease.py
"""

import base64
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from etcdcluster import post, skip_without_etcd  # noqa: E402
from etcdreplicas import ReplicaTestCase  # noqa: E402
from svctest import wait_until  # noqa: E402

T = svctest.timeout
TTL = 2  # seconds; above etcd's minimum TTL with etcdcluster's timings (1 s)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def index_of(headers):
    return int(headers.get("X-Registry-Index"))


class EtcdLeaseTest(ReplicaTestCase):
    """One cluster for the class; each test its own prefix and replicas."""

    PREFIX_NAME = "lease"

    # -- etcd, read directly through its gateway --------------------------

    def etcd(self, path, body):
        for url in self.cluster.urls:
            status, answer = post(url, path, body)
            if status == 200:
                return answer
        raise AssertionError("no etcd member answers %s" % path)

    def alive_record(self, sid):
        """The kv of sid's alive record in etcd, or None."""
        kvs = self.etcd("/v3/kv/range", {"key": b64(self.prefix + "!alive/" + sid)}).get("kvs")
        return kvs[0] if kvs else None

    def granted_ttl(self, lease):
        return int(self.etcd("/v3/lease/timetolive", {"ID": lease})["grantedTTL"])

    # -- the registry ------------------------------------------------------

    def register(self, svc, name):
        status, _, body = svc.request("POST", "/v1/services", {
            "name": name, "host": "10.0.0.1", "port": 8080, "ttl": TTL})
        self.assertEqual(status, 201, body)
        return body["service_id"]

    def renew(self, svc, sid):
        status, _, body = svc.request("PUT", "/v1/services/%s/renew" % sid)
        self.assertEqual(status, 200, body)

    def health(self, svc, sid):
        """(health, X-Registry-Index) of sid on svc."""
        status, headers, body = svc.request("GET", "/v1/services/" + sid)
        self.assertEqual(status, 200, body)
        return body["service"]["health"], index_of(headers)

    def wait_health_on_both(self, a, b, sid, want, timeout):
        """Wait until sid is want on both replicas at one index; returns it."""
        got = []

        def both():
            got[:] = [self.health(a, sid), self.health(b, sid)]
            return got[0] == got[1] and got[0][0] == want
        wait_until(both, timeout=T(timeout), interval=0.05,
                   message="%s %s on both at one index (%r)" % (sid, want, got))
        return got[0][1]

    def health_events(self, svc, after, sid):
        """sid's health events after index after, up to svc's index now."""
        status, headers, body = svc.request("GET", "/v1/events?index=%d&wait=1s" % after,
                                            timeout=T(10))
        self.assertEqual(status, 200, body)
        return [(e["index"], e["data"]["check_id"], e["data"]["status"], e["data"]["previous"])
                for e in body["events"]
                if e["type"] == "health" and e["data"].get("service_id") == sid]

    def wait_seen(self, svc, sid):
        wait_until(lambda: svc.request("GET", "/v1/services/" + sid)[0] == 200,
                   timeout=T(2), interval=0.02, message="%s seen on %s" % (sid, svc.url))

    # ------------------------------------------------------------------

    def test_lease_kept_by_either_replica_and_lapsed_by_etcd(self):
        """Registered on A, renewed only through B for 3 ttls: passing on
        both. No renewal: critical on both within ttl + 2 s, at one index,
        one and the same health event on both streams. Renewed on A:
        passing on both at one index. Deregistered: the alive record is
        gone from etcd."""
        a, b = self.start_replica(), self.start_replica()
        sid = self.register(a, "leased")
        self.wait_seen(b, sid)
        start = self.wait_health_on_both(a, b, sid, "passing", 2.0)

        kv = []
        wait_until(lambda: kv.append(self.alive_record(sid)) or kv[-1] is not None,
                   timeout=T(2), message="the alive record of %s in etcd" % sid)
        lease = kv[-1].get("lease")
        self.assertTrue(lease and int(lease) > 0, kv[-1])
        self.assertEqual(self.granted_ttl(lease), TTL, "the lease has the instance's ttl")

        # renewals through B only keep A's lease alive: passing on both
        end = time.monotonic() + 3 * TTL
        while time.monotonic() < end:
            self.renew(b, sid)
            self.assertEqual(self.health(a, sid)[0], "passing")
            self.assertEqual(self.health(b, sid)[0], "passing")
            time.sleep(0.5)
        self.renew(b, sid)
        last = time.monotonic()
        self.assertEqual(int(self.alive_record(sid)["lease"]), int(lease),
                         "the same lease all along")

        # nobody renews: etcd lapses the lease, both replicas hear it
        critical = self.wait_health_on_both(a, b, sid, "critical", TTL + 2.0)
        self.assertLess(time.monotonic() - last, T(TTL + 2.0))
        self.assertIsNone(self.alive_record(sid), "etcd deleted the alive record")
        on_a = self.health_events(a, start, sid)
        on_b = self.health_events(b, start, sid)
        self.assertEqual(on_a, on_b, "one health event, the same on both replicas")
        self.assertEqual(on_a, [(critical, sid + ":ttl", "critical", "passing")])

        # a renewal on A: a new lease, passing on both at one index
        self.renew(a, sid)
        passing = self.wait_health_on_both(a, b, sid, "passing", 2.0)
        self.assertGreater(passing, critical)
        on_a = self.health_events(a, critical, sid)
        self.assertEqual(on_a, self.health_events(b, critical, sid))
        self.assertEqual(on_a, [(passing, sid + ":ttl", "passing", "critical")])
        self.assertIsNotNone(self.alive_record(sid))

        # deregistered: its alive record leaves etcd with it
        status, _, body = b.request("DELETE", "/v1/services/" + sid)
        self.assertEqual(status, 200, body)
        wait_until(lambda: self.alive_record(sid) is None, timeout=T(2),
                   message="the alive record of %s gone from etcd" % sid)
        wait_until(lambda: a.request("GET", "/v1/services/" + sid)[0] == 404, timeout=T(2),
                   message="%s gone on A" % sid)

    def test_renewals_through_b_after_a_was_killed(self):
        """The lease A was granted outlives A: renewals through B keep the
        instance passing for 3 ttls after A was killed."""
        a, b = self.start_replica(), self.start_replica()
        sid = self.register(a, "survivor")
        self.wait_seen(b, sid)
        wait_until(lambda: self.alive_record(sid) is not None, timeout=T(2),
                   message="the alive record of %s in etcd" % sid)
        lease = int(self.alive_record(sid)["lease"])
        a.kill()
        end = time.monotonic() + 3 * TTL
        while time.monotonic() < end:
            self.renew(b, sid)
            self.assertEqual(self.health(b, sid)[0], "passing")
            time.sleep(0.5)
        self.assertEqual(int(self.alive_record(sid)["lease"]), lease, "A's lease, kept by B")


if __name__ == "__main__":
    skip_without_etcd()
    unittest.main(verbosity=2)
