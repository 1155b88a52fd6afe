#!/usr/bin/python3
"""Integration tests of the registry's DNS interface (--dns-port), asked
with Debian's dig (package dnsutils): A and SRV with the targets' addresses
in the additional section, the tag filter and the RFC 2782 form, the node
name, NXDOMAIN with the SOA, REFUSED outside the domain, NOERROR without
answers for a type the name has none of, names in any case, a CNAME for an
instance whose host is a DNS name, queries over TCP, a UDP answer too large
for 512 bytes (TC set; dig asks again over TCP and gets every instance),
malformed queries (FORMERR over UDP and TCP), and an instance leaving the
answers as soon as it is critical (maintenance, and an expired TTL).

Each test starts its own registry (memory store, ephemeral HTTP port) with
its DNS interface on a port the test found free for both UDP and TCP.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_dns.py
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout

NODE = "testnode"


def free_dns_port():
    """A loopback port free for UDP and TCP at once (both bound, then
    released)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both UDP and TCP")


def query_message(name, qtype=1, qdcount=1, qid=0x1234):
    """A DNS query message for name (no compression)."""
    out = struct.pack(">HHHHHH", qid, 0x0100, qdcount, 0, 0, 0)
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0" + struct.pack(">HH", qtype, 1)


class DNSTestCase(svctest.ServiceTestCase):

    @classmethod
    def setUpClass(cls):
        if not shutil.which("dig"):
            raise AssertionError("dig is missing: apt-get install dnsutils "
                                 "(scripts/deps.sh --test)")

    def start_registry(self, *args):
        self.dns_port = free_dns_port()
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("registry", ["--port", "0", "--bind", "127.0.0.1",
                               "--backend", "memory", "--node-name", NODE,
                               "--dns-port", str(self.dns_port)] + list(args))
        line = "dns listening on 127.0.0.1 port %d" % self.dns_port
        wait_until(lambda: line in svc.log_text(), timeout=T(10),
                   message="no %r in the log" % line)
        return svc

    def register(self, svc, name="web", host="127.0.0.1", port=8080, **fields):
        payload = {"name": name, "host": host, "port": port}
        payload.update(fields)
        body = self.assertJsonOk(svc.request("POST", "/v1/services", payload), 201,
                                 "register %r" % payload)
        return body["service_id"]

    def dig(self, *args):
        """dig's full output for args, against the registry."""
        cmd = ["dig", "@127.0.0.1", "-p", str(self.dns_port), "+tries=1",
               "+timeout=%d" % max(1, int(T(2)))] + list(args)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=T(30))
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return done.stdout

    def records(self, *args):
        """The records dig prints for args: [(name, type, data)] of the
        sections asked with +answer / +additional / +authority."""
        out = self.dig("+noall", *args)
        recs = []
        for line in out.splitlines():
            if not line or line.startswith(";"):
                continue
            parts = line.split(None, 4)
            recs.append((parts[0], parts[3], parts[4]))
        return recs

    def status(self, *args):
        out = self.dig(*args)
        for line in out.splitlines():
            if "status:" in line:
                return line.split("status:")[1].split(",")[0].strip()
        raise AssertionError("no status in %r" % out)

    def a_of(self, name):
        return sorted(d for _, t, d in self.records("+answer", name, "A") if t == "A")

    # --- tests ---------------------------------------------------------------

    def test_a_srv_and_additional(self):
        reg = self.start_registry()
        self.register(reg, host="127.0.0.2", port=8080)
        self.register(reg, host="127.0.0.3", port=8081)
        self.register(reg, host="127.0.0.2", port=8090)  # a host shared by two
        self.register(reg, name="other", host="127.0.0.9", port=1)
        # each address once (an RRset holds no duplicates)
        self.assertEqual(self.a_of("web.service.consul"), ["127.0.0.2", "127.0.0.3"])
        srv = self.records("+answer", "web.service.consul", "SRV")
        self.assertEqual(sorted(d for _, _, d in srv),
                         ["1 1 8080 7f000002.addr.consul.", "1 1 8081 7f000003.addr.consul.",
                          "1 1 8090 7f000002.addr.consul."])
        self.assertTrue(all(n == "web.service.consul." and t == "SRV" for n, t, _ in srv))
        add = self.records("+additional", "web.service.consul", "SRV")
        self.assertEqual(sorted(add), [("7f000002.addr.consul.", "A", "127.0.0.2"),
                                       ("7f000003.addr.consul.", "A", "127.0.0.3")])
        # the target resolves on its own too
        self.assertEqual(self.a_of("7f000003.addr.consul"), ["127.0.0.3"])
        out = self.dig("web.service.consul")
        self.assertIn("flags: qr aa rd;", out)

    def test_tag_filter_and_rfc2782(self):
        reg = self.start_registry()
        self.register(reg, host="127.0.0.2", port=8080, tags=["v1", "primary"])
        self.register(reg, host="127.0.0.3", port=8081, tags=["v2"])
        self.assertEqual(self.a_of("v1.web.service.consul"), ["127.0.0.2"])
        self.assertEqual(self.a_of("v2.web.service.consul"), ["127.0.0.3"])
        self.assertEqual(self.status("v3.web.service.consul"), "NXDOMAIN")
        srv = self.records("+answer", "_web._primary.service.consul", "SRV")
        self.assertEqual([d for _, _, d in srv], ["1 1 8080 7f000002.addr.consul."])
        both = self.records("+answer", "_web._tcp.service.consul", "SRV")
        self.assertEqual(sorted(d.split()[2] for _, _, d in both), ["8080", "8081"])

    def test_datacenter_qualified_names(self):
        reg = self.start_registry("--datacenter", "east-1")
        self.register(reg, host="127.0.0.2", port=8080, tags=["v1"])
        self.register(reg, host="127.0.0.3", port=8081, tags=["v2"])
        # ours: as without the label, in any case, echoed as asked
        self.assertEqual(self.a_of("web.service.east-1.consul"), ["127.0.0.2", "127.0.0.3"])
        self.assertEqual(self.a_of("v1.web.service.east-1.consul"), ["127.0.0.2"])
        self.assertEqual(self.records("+answer", "V2.WeB.Service.EAST-1.Consul", "A"),
                         [("V2.WeB.Service.EAST-1.Consul.", "A", "127.0.0.3")])
        srv = self.records("+answer", "web.service.east-1.consul", "SRV")
        self.assertEqual(sorted(d for _, _, d in srv),
                         ["1 1 8080 7f000002.addr.consul.", "1 1 8081 7f000003.addr.consul."])
        self.assertEqual([d for _, _, d in self.records("+answer", "v2.web.service.east-1.consul",
                                                         "SRV")],
                         ["1 1 8081 7f000003.addr.consul."])
        # RFC 2782: _tcp is the protocol (no tag), any other label a tag
        both = self.records("+answer", "_web._tcp.service.east-1.consul", "SRV")
        self.assertEqual(sorted(d.split()[2] for _, _, d in both), ["8080", "8081"])
        one = self.records("+answer", "_web._v1.service.east-1.consul", "SRV")
        self.assertEqual([d.split()[2] for _, _, d in one], ["8080"])
        self.assertEqual(self.status("_web._udp.service.east-1.consul", "SRV"), "NXDOMAIN")
        # SRV without "service", as Consul allows
        both = self.records("+answer", "_web._TCP.east-1.consul", "SRV")
        self.assertEqual(sorted(d.split()[2] for _, _, d in both), ["8080", "8081"])
        both = self.records("+answer", "_web._tcp.consul", "SRV")
        self.assertEqual(sorted(d.split()[2] for _, _, d in both), ["8080", "8081"])
        # the node, and an addr name in any datacenter
        self.assertEqual(self.a_of(NODE + ".node.east-1.consul"), ["127.0.0.1"])
        self.assertEqual(self.a_of(NODE + ".NODE.East-1.consul"), ["127.0.0.1"])
        self.assertEqual(self.a_of("7f000002.addr.east-1.consul"), ["127.0.0.2"])
        # the default dc1 is not this registry's datacenter now
        for name in ("web.service.dc1.consul", "v1.web.service.dc1.consul",
                     "_web._tcp.service.dc1.consul", NODE + ".node.dc1.consul",
                     "consul.service.dc1.consul"):
            for qtype in ("A", "SRV"):
                self.assertEqual(self.status(name, qtype), "NXDOMAIN", (name, qtype))
        soa = self.records("+authority", "web.service.dc2.consul", "SRV")
        self.assertEqual([(n, t) for n, t, _ in soa], [("consul.", "SOA")])
        self.assertEqual(self.records("+answer", "web.service.dc2.consul", "SRV"), [])
        # one datacenter label only; an unknown kind before it is NXDOMAIN
        self.assertEqual(self.status("web.service.east-1.extra.consul"), "NXDOMAIN")
        self.assertEqual(self.status("web.nothing.east-1.consul"), "NXDOMAIN")
        self.assertEqual(self.status("service.east-1.consul"), "NXDOMAIN")

    def test_default_datacenter_is_dc1(self):
        reg = self.start_registry()
        self.register(reg, host="127.0.0.2", port=8080)
        self.assertEqual(self.a_of("web.service.dc1.consul"), ["127.0.0.2"])
        self.assertEqual(self.a_of("WEB.SERVICE.DC1.CONSUL"), ["127.0.0.2"])
        self.assertEqual(self.status("web.service.dc2.consul"), "NXDOMAIN")

    def test_the_registry_is_the_consul_service(self):
        reg = self.start_registry()
        http = reg.port
        self.assertTrue(http)
        own = "1 1 %d 7f000001.addr.consul." % http
        for name in ("consul.service.consul", "consul.service.dc1.consul",
                     "CONSUL.Service.consul", "_consul._tcp.service.consul"):
            self.assertEqual(self.a_of(name), ["127.0.0.1"], name)
            self.assertEqual([d for _, t, d in self.records("+answer", name, "SRV")], [own], name)
            self.assertEqual(self.records("+additional", name, "SRV"),
                             [("7f000001.addr.consul.", "A", "127.0.0.1")], name)
        # the registry has no tags; another datacenter's is not ours
        self.assertEqual(self.status("v1.consul.service.consul"), "NXDOMAIN")
        self.assertEqual(self.status("consul.service.dc2.consul", "SRV"), "NXDOMAIN")
        # an instance registered as "consul" is answered beside it
        self.register(reg, name="consul", host="127.0.0.5", port=9500, tags=["v1"])
        self.assertEqual(self.a_of("consul.service.consul"), ["127.0.0.1", "127.0.0.5"])
        self.assertEqual(sorted(d for _, _, d in self.records("+answer", "consul.service.consul",
                                                               "SRV")),
                         sorted([own, "1 1 9500 7f000005.addr.consul."]))
        self.assertEqual(self.a_of("v1.consul.service.consul"), ["127.0.0.5"])

    def test_consul_service_of_a_wildcard_bind(self):
        self.dns_port = free_dns_port()
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("registry", ["--port", "0", "--bind", "0.0.0.0", "--dns-bind", "127.0.0.1",
                               "--backend", "memory", "--node-name", NODE,
                               "--dns-port", str(self.dns_port)])
        line = "dns listening on 127.0.0.1 port %d" % self.dns_port
        wait_until(lambda: line in svc.log_text(), timeout=T(10),
                   message="no %r in the log" % line)
        self.assertEqual(self.a_of("consul.service.consul"), ["127.0.0.1"])
        self.assertEqual(self.a_of(NODE + ".node.consul"), ["127.0.0.1"])
        self.assertEqual([d for _, _, d in self.records("+answer", "consul.service.consul",
                                                         "SRV")],
                         ["1 1 %d 7f000001.addr.consul." % svc.port])

    def test_names_outside_unknown_case_and_types(self):
        reg = self.start_registry()
        self.register(reg, host="127.0.0.2")
        self.register(reg, name="api", host="api.example.org", port=9000)
        # any case, echoed as asked
        recs = self.records("+answer", "WeB.SeRvIcE.CoNsUl", "A")
        self.assertEqual(recs, [("WeB.SeRvIcE.CoNsUl.", "A", "127.0.0.2")])
        # unknown under the domain: NXDOMAIN with the SOA
        self.assertEqual(self.status("nope.service.consul"), "NXDOMAIN")
        soa = self.records("+authority", "nope.service.consul")
        self.assertEqual(len(soa), 1)
        self.assertEqual(soa[0][:2], ("consul.", "SOA"))
        self.assertEqual(self.status("web.nothing.consul"), "NXDOMAIN")
        self.assertEqual(self.status("other.node.consul"), "NXDOMAIN")
        # outside the domain
        self.assertEqual(self.status("example.com"), "REFUSED")
        self.assertEqual(self.status("web.service.consul.example.com"), "REFUSED")
        # a type the name has nothing of: NOERROR, no answer
        out = self.dig("web.service.consul", "TXT")
        self.assertIn("status: NOERROR", out)
        self.assertIn("ANSWER: 0,", out)
        self.assertEqual(self.records("+answer", "web.service.consul", "AAAA"), [])
        # the node and the domain itself
        self.assertEqual(self.a_of(NODE + ".node.consul"), ["127.0.0.1"])
        self.assertEqual(self.a_of(NODE.upper() + ".NODE.consul"), ["127.0.0.1"])
        self.assertEqual([t for _, t, _ in self.records("+answer", "consul", "SOA")], ["SOA"])
        # a DNS name as host: a CNAME for A, the name itself as SRV target
        self.assertEqual(self.records("+answer", "api.service.consul", "A"),
                         [("api.service.consul.", "CNAME", "api.example.org.")])
        self.assertEqual([d for _, _, d in self.records("+answer", "api.service.consul", "SRV")],
                         ["1 1 9000 api.example.org."])

    def test_ipv6_hosts_and_ttl_option(self):
        reg = self.start_registry("--dns-ttl", "7s")
        self.register(reg, host="::1", port=8080)
        self.register(reg, host="127.0.0.2", port=8081)
        aaaa = self.records("+answer", "web.service.consul", "AAAA")
        self.assertEqual([d for _, t, d in aaaa if t == "AAAA"], ["::1"])
        self.assertEqual(self.a_of("web.service.consul"), ["127.0.0.2"])
        out = self.dig("+noall", "+answer", "web.service.consul", "A")
        self.assertEqual(out.split()[1], "7", out)
        add = self.records("+additional", "web.service.consul", "SRV")
        self.assertIn(("00000000000000000000000000000001.addr.consul.", "AAAA", "::1"), add)

    def test_answers_are_shuffled(self):
        reg = self.start_registry()
        for i in range(6):
            self.register(reg, host="127.0.0.%d" % (10 + i))
        orders = set()
        for _ in range(12):
            recs = self.records("+answer", "web.service.consul", "A")
            self.assertEqual(len(recs), 6)
            orders.add(tuple(d for _, _, d in recs))
        self.assertGreater(len(orders), 1, orders)

    def test_tcp_and_truncation(self):
        reg = self.start_registry()
        hosts = sorted("10.0.%d.%d" % (i // 200, i % 200 + 1) for i in range(60))
        for i, h in enumerate(hosts):
            self.register(reg, host=h, port=1000 + i)
        # over TCP: every one
        self.assertEqual(sorted(d for _, t, d in self.records("+tcp", "+answer",
                                                                "web.service.consul") if t == "A"),
                         hosts)
        # UDP only: what fits in 512 bytes, TC set
        out = self.dig("+notcp", "+ignore", "web.service.consul")
        self.assertIn(" tc ", out.split("flags:")[1].split(";")[0] + " ")
        size = int(out.split("MSG SIZE  rcvd: ")[1].split()[0])
        self.assertLessEqual(size, 512)
        n_udp = int(out.split("ANSWER: ")[1].split(",")[0])
        self.assertGreater(n_udp, 0)
        self.assertLess(n_udp, 60)
        # dig's default: sees TC, asks again over TCP, gets them all
        out = self.dig("web.service.consul")
        self.assertIn("Truncated, retrying in TCP mode", out)
        self.assertIn("ANSWER: 60,", out)
        srv = self.dig("web.service.consul", "SRV")
        self.assertIn("ANSWER: 60,", srv)
        self.assertIn("ADDITIONAL: 60", srv)

    def test_malformed_queries(self):
        self.start_registry()
        # two questions over UDP: FORMERR with the id echoed (libevent
        # itself drops a query it cannot parse, or one without a question)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(T(5))
            one = query_message("web.service.consul", qdcount=2)
            u.sendto(one + one[12:], ("127.0.0.1", self.dns_port))
            data, _ = u.recvfrom(4096)
            qid, flags = struct.unpack(">HH", data[:4])
            self.assertEqual(qid, 0x1234)
            self.assertTrue(flags & 0x8000)
            self.assertEqual(flags & 15, 1)
        # over TCP: a compression pointer in the question is FORMERR, then
        # the same connection answers a good query
        with socket.create_connection(("127.0.0.1", self.dns_port), timeout=T(5)) as t:
            bad = struct.pack(">HHHHHH", 7, 0, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack(">HH", 1, 1)
            good = query_message("web.service.consul", qid=8)
            t.sendall(struct.pack(">H", len(bad)) + bad + struct.pack(">H", len(good)) + good)
            answers = []
            buf = b""
            while len(answers) < 2:
                chunk = t.recv(4096)
                self.assertTrue(chunk, "connection closed early")
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                    n = struct.unpack(">H", buf[:2])[0]
                    answers.append(buf[2:2 + n])
                    buf = buf[2 + n:]
            qid, flags = struct.unpack(">HH", answers[0][:4])
            self.assertEqual((qid, flags & 15), (7, 1))
            qid, flags = struct.unpack(">HH", answers[1][:4])
            self.assertEqual((qid, flags & 15), (8, 3))  # NXDOMAIN: nothing registered

    def test_critical_instances_leave_the_answers(self):
        reg = self.start_registry("--cleanup-interval", "100ms")
        keep = self.register(reg, host="127.0.0.2", ttl=60)
        drained = self.register(reg, host="127.0.0.3", ttl=60)
        self.assertEqual(self.a_of("web.service.consul"), ["127.0.0.2", "127.0.0.3"])
        # maintenance: critical at once (its commit answers the PUT)
        body = self.assertJsonOk(reg.request("PUT", "/v1/services/%s/maintenance" % drained,
                                             {"enable": True, "reason": "test"}))
        self.assertEqual(body["service"]["health"], "critical")
        self.assertEqual(self.a_of("web.service.consul"), ["127.0.0.2"])
        self.assertEqual(len(self.records("+answer", "web.service.consul", "SRV")), 1)
        # a lease that runs out: gone once GET shows it critical
        lapsed = self.register(reg, host="127.0.0.4", ttl=1)
        self.assertEqual(self.a_of("web.service.consul"), ["127.0.0.2", "127.0.0.4"])

        def critical():
            return self.assertJsonOk(reg.request("GET", "/v1/services/" + lapsed))[
                "service"]["health"] == "critical"
        wait_until(critical, timeout=T(10), message="the ttl-1 instance did not turn critical")
        self.assertEqual(self.a_of("web.service.consul"), ["127.0.0.2"])
        # the last one critical: the service has none passing, NXDOMAIN
        self.assertJsonOk(reg.request("PUT", "/v1/services/%s/maintenance" % keep,
                                      {"enable": True}))
        self.assertEqual(self.status("web.service.consul"), "NXDOMAIN")


if __name__ == "__main__":
    unittest.main()
