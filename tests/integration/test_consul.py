#!/usr/bin/python3
"""Integration tests of the registry's Consul API subset, driven the way a
Consul user drives it: through Debian's python3-consul (consul.Consul), plus
raw HTTP for what the library hides (headers, status codes, bodies).

Covered: register with a TTL check, pass it as "service:<id>", find the
service through health.service(passing=True), catalog and agent views, a
blocking query woken by a registration, maintenance on and off,
deregistration, the X-Consul-* headers on 200 and 404 answers, ?dc=,
status/leader, agent/self, a native registration seen through Consul and
the gaps answered 501.

Each test starts its own registry on 127.0.0.1 (ephemeral port, memory
store). That a blocking query is parked is known from the registry's
registry_watchers gauge in /metrics.

Run:  SVC_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_consul.py
"""

import http.client
import json
import os
import shutil
import socket
import signal
import sys
import tempfile
import threading
import unittest

import consul  # Debian's python3-consul (scripts/deps.sh --test)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import svctest  # noqa: E402
from svctest import Service, wait_until  # noqa: E402

T = svctest.timeout


class ConsulTestCase(svctest.ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.reg = Service()
        self.addCleanup(self.reg.close)
        self.addCleanup(self.finish_service, self.reg)
        self.reg.start("registry", ["--port", "0", "--bind", "127.0.0.1",
                                    "--data", ":memory:",
                                    "--node-name", "node-a",
                                    "--datacenter", "dc-test"])
        self.c = self.client("dc-test")

    def client(self, dc):
        """A python-consul client of the registry for datacenter dc."""
        c = consul.Consul(host="127.0.0.1", port=self.reg.port, dc=dc)
        self.addCleanup(c.http.session.close)
        return c

    def raw(self, method, path, body=None, timeout=30):
        """(status, headers, bytes) of one request, the path as it is."""
        conn = http.client.HTTPConnection("127.0.0.1", self.reg.port,
                                          timeout=T(timeout))
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.msg, resp.read()
        finally:
            conn.close()

    def watchers(self):
        """The registry_watchers gauge: parked reads and streams."""
        _, _, body = self.raw("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith("registry_watchers "):
                return int(float(line.split()[1]))
        self.fail("no registry_watchers in /metrics")

    def register_web(self, service_id, port, tags=None):
        ok = self.c.agent.service.register(
            "web", service_id=service_id, address="127.0.0.1", port=port,
            tags=tags or ["v1"], check=consul.Check.ttl("10s"))
        self.assertTrue(ok)

    # --- the library's view --------------------------------------------

    def test_register_pass_and_discover(self):
        self.register_web("web-1", 8080, ["v1", "primary"])
        self.assertTrue(self.c.agent.check.ttl_pass("service:web-1"))

        index, nodes = self.c.health.service("web", passing=True)
        self.assertGreater(int(index), 0)
        self.assertEqual(len(nodes), 1)
        entry = nodes[0]
        self.assertEqual(entry["Node"]["Node"], "node-a")
        self.assertEqual(entry["Node"]["Datacenter"], "dc-test")
        self.assertEqual(entry["Service"]["ID"], "web-1")
        self.assertEqual(entry["Service"]["Service"], "web")
        self.assertEqual(entry["Service"]["Port"], 8080)
        self.assertEqual(entry["Service"]["Address"], "127.0.0.1")
        self.assertEqual(entry["Service"]["Tags"], ["v1", "primary"])
        checks = {ch["CheckID"]: ch for ch in entry["Checks"]}
        self.assertEqual(set(checks), {"serfHealth", "service:web-1"})
        self.assertEqual(checks["service:web-1"]["Status"], "passing")
        self.assertEqual(checks["service:web-1"]["Type"], "ttl")
        self.assertEqual(checks["service:web-1"]["ServiceID"], "web-1")

        # the tag filter
        _, tagged = self.c.health.service("web", tag="primary")
        self.assertEqual([n["Service"]["ID"] for n in tagged], ["web-1"])
        _, untagged = self.c.health.service("web", tag="canary")
        self.assertEqual(untagged, [])

        self.assertEqual(self.c.catalog.services()[1],
                         {"consul": [], "web": ["v1", "primary"]})
        _, entries = self.c.catalog.service("web")
        self.assertEqual(len(entries), 1)
        self.assertEqual(entries[0]["ServiceID"], "web-1")
        self.assertEqual(entries[0]["ServicePort"], 8080)
        self.assertEqual(entries[0]["Node"], "node-a")
        services = self.c.agent.services()
        self.assertEqual(list(services), ["web-1"])
        self.assertEqual(services["web-1"]["Service"], "web")
        self.assertEqual(services["web-1"]["Datacenter"], "dc-test")
        self.assertIn("service:web-1", self.c.agent.checks())

        _, nodes = self.c.catalog.nodes()
        self.assertEqual([n["Node"] for n in nodes], ["node-a"])
        _, node = self.c.catalog.node("node-a")
        self.assertEqual(list(node["Services"]), ["consul", "web-1"])
        self.assertEqual(self.c.catalog.datacenters(), ["dc-test"])

        # the same instance in the native API, its Consul id kept
        _, _, body = self.raw("GET", "/v1/services?name=web")
        native = json.loads(body)["services"]
        self.assertEqual(len(native), 1)
        self.assertTrue(native[0]["id"].startswith("web-"))
        self.assertEqual(native[0]["metadata"]["consul_id"], "web-1")
        self.assertEqual(native[0]["ttl"], 10)

    def test_blocking_query_wakes_on_a_registration(self):
        self.register_web("web-1", 8080)
        index, nodes = self.c.health.service("web")
        self.assertEqual([n["Service"]["ID"] for n in nodes], ["web-1"])
        result = {}

        def block():
            result["answer"] = self.c.health.service("web", index=index,
                                                      wait="60s")

        t = threading.Thread(target=block)
        t.start()
        try:
            wait_until(lambda: self.watchers() >= 1,
                       message="the blocking query is not parked")
            self.assertNotIn("answer", result)
            self.register_web("web-2", 8081)
        finally:
            t.join(T(30))
        self.assertFalse(t.is_alive())
        new_index, nodes = result["answer"]
        self.assertGreater(int(new_index), int(index))
        self.assertEqual([n["Service"]["ID"] for n in nodes], ["web-1", "web-2"])

    def test_the_registry_is_the_consul_service(self):
        self.register_web("web-1", 8080)
        _, nodes = self.c.health.service("consul", passing=True)
        self.assertEqual(len(nodes), 1)
        entry = nodes[0]
        self.assertEqual(entry["Service"]["ID"], "consul")
        self.assertEqual(entry["Service"]["Port"], self.reg.port)
        # no ServiceAddress: the node's address, as a Consul server has it
        self.assertEqual(entry["Service"]["Address"], "")
        self.assertEqual(entry["Node"]["Address"], "127.0.0.1")
        self.assertEqual([ch["CheckID"] for ch in entry["Checks"]], ["serfHealth"])
        _, entries = self.c.catalog.service("consul")
        self.assertEqual([(e["ServiceID"], e["ServicePort"]) for e in entries],
                         [("consul", self.reg.port)])
        # it has no tags, so a tag filter leaves it out
        self.assertEqual(self.c.catalog.service("consul", tag="v1")[1], [])
        # the agent lists only what was registered with it, and the native
        # API only registered instances
        self.assertEqual(list(self.c.agent.services()), ["web-1"])
        _, _, body = self.raw("GET", "/v1/services")
        self.assertEqual([s["name"] for s in json.loads(body)["services"]], ["web"])
        # it answers on the port it names: its own /metrics
        status, _, _ = self.raw("GET", "/metrics")
        self.assertEqual(status, 200)

    def test_create_and_modify_index_per_instance(self):
        self.register_web("web-1", 8080)
        self.register_web("web-2", 8081)
        _, entries = self.c.catalog.service("web")
        first = {e["ServiceID"]: (e["CreateIndex"], e["ModifyIndex"]) for e in entries}
        self.assertEqual(first["web-1"][0], first["web-1"][1])
        self.assertGreater(first["web-2"][0], first["web-1"][0])
        # a check's change moves its instance's ModifyIndex, not the other's
        self.assertTrue(self.c.agent.check.ttl_pass("service:web-1"))
        _, nodes = self.c.health.service("web")
        now = {n["Service"]["ID"]: n for n in nodes}
        self.assertEqual(now["web-1"]["Service"]["CreateIndex"], first["web-1"][0])
        self.assertGreater(now["web-1"]["Service"]["ModifyIndex"], first["web-2"][1])
        self.assertEqual(now["web-2"]["Service"]["ModifyIndex"], first["web-2"][1])
        check = [ch for ch in now["web-1"]["Checks"] if ch["CheckID"] == "service:web-1"][0]
        self.assertEqual(check["ModifyIndex"], now["web-1"]["Service"]["ModifyIndex"])
        # registering the same ID again keeps its CreateIndex
        self.register_web("web-1", 8090)
        _, entries = self.c.catalog.service("web")
        again = {e["ServiceID"]: (e["CreateIndex"], e["ModifyIndex"]) for e in entries}
        self.assertEqual(again["web-1"][0], first["web-1"][0])
        self.assertGreater(again["web-1"][1], now["web-1"]["Service"]["ModifyIndex"])

    def test_an_empty_registry_shows_index_1_and_blocks_on_it(self):
        index, services = self.c.catalog.services()
        self.assertEqual((index, services), ("1", {"consul": []}))
        result = {}

        def block():
            result["answer"] = self.c.catalog.services(index=index, wait="60s")

        t = threading.Thread(target=block)
        t.start()
        try:
            wait_until(lambda: self.watchers() >= 1,
                       message="the blocking query on index 1 is not parked")
            self.assertNotIn("answer", result)
            self.register_web("web-1", 8080)
        finally:
            t.join(T(30))
        self.assertFalse(t.is_alive())
        self.assertEqual(result["answer"][1], {"consul": [], "web": ["v1"]})

    def test_check_register_and_deregister_on_a_service(self):
        self.register_web("web-1", 8080)
        self.assertTrue(self.c.agent.check.ttl_pass("service:web-1"))
        url = "http://127.0.0.1:%d/health" % self.reg.port
        # python-consul's own call: name (the default CheckID), service_id
        self.assertTrue(self.c.agent.check.register(
            "web-http", consul.Check.http(url, "1s"), service_id="web-1"))
        checks = self.c.agent.checks()
        self.assertEqual(checks["web-http"]["ServiceID"], "web-1")
        self.assertEqual(checks["web-http"]["Type"], "http")
        # the TTL check kept its state: still passing, not back to critical
        self.assertEqual(checks["service:web-1"]["Status"], "passing")
        wait_until(lambda: "200 OK" in self.c.agent.checks()["web-http"]["Output"],
                   message="the added HTTP check is not probed")
        _, nodes = self.c.health.service("web", passing=True)
        self.assertEqual([n["Service"]["ID"] for n in nodes], ["web-1"])
        # a failing check added with an explicit CheckID takes the service out
        status, _, body = self.raw("PUT", "/v1/agent/check/register", json.dumps(
            {"Name": "Port 1", "CheckID": "port-1", "ServiceID": "web-1",
             "TCP": "127.0.0.1:%d" % svctest.closed_port(), "Interval": "1s",
             "Status": "passing"}))
        self.assertEqual(status, 200, body)
        wait_until(lambda: self.c.health.service("web", passing=True)[1] == [],
                   message="a refused TCP check did not make web-1 critical")
        self.assertEqual(self.c.agent.checks()["port-1"]["Status"], "critical")
        # removing it brings the service back
        self.assertTrue(self.c.agent.check.deregister("port-1"))
        self.assertNotIn("port-1", self.c.agent.checks())
        _, nodes = self.c.health.service("web", passing=True)
        self.assertEqual([n["Service"]["ID"] for n in nodes], ["web-1"])
        # the native view has the same checks
        _, _, body = self.raw("GET", "/v1/services?name=web")
        native = json.loads(body)["services"][0]["checks"]
        self.assertEqual(sorted(ch["id"] for ch in native),
                         sorted([native[0]["id"], "web-http"]))
        # refusals: nothing changed
        for body, code, words in [
                ({"Name": "x", "HTTP": url, "Interval": "1s"}, 501, "ServiceID"),
                ({"Name": "x", "ServiceID": "web-9", "HTTP": url, "Interval": "1s"}, 404,
                 "web-9"),
                ({"Name": "x", "ServiceID": "web-1", "TTL": "10s"}, 400, "ttl"),
                ({"Name": "bad id", "ServiceID": "web-1", "HTTP": url, "Interval": "1s"}, 400,
                 "id"),
                ({"Name": "x", "ServiceID": "web-1", "HTTP": url, "Interval": "1ms"}, 400,
                 "interval"),
                ({"Name": "x", "ServiceID": "web-1", "Script": "/bin/true"}, 501, "Script")]:
            status, _, reply = self.raw("PUT", "/v1/agent/check/register", json.dumps(body))
            self.assertEqual(status, code, (body, reply))
            self.assertIn(words, json.loads(reply)["error"], body)
        for cid, code in [("service:web-1", 400), ("nope", 404),
                          ("_service_maintenance:web-1", 400)]:
            status, _, _ = self.raw("PUT", "/v1/agent/check/deregister/" + cid)
            self.assertEqual(status, code, cid)
        self.assertEqual(sorted(self.c.agent.checks()), ["service:web-1", "web-http"])

    def test_a_new_output_alone_is_seen_at_once(self):
        """An output that changes while the status stays changes no index,
        and still shows in the next read (the answers are kept only while
        nothing they show has moved)."""
        self.register_web("web-1", 8080)
        outputs = []
        for note in ("first", "second", "second", ""):
            status, _, _ = self.raw("PUT", "/v1/agent/check/update/service:web-1", json.dumps(
                {"Status": "passing", "Output": note}))
            self.assertEqual(status, 200)
            for _ in range(2):  # the second read may come from what the first built
                _, nodes = self.c.health.service("web", passing=True)
                check = [ch for ch in nodes[0]["Checks"] if ch["CheckID"] == "service:web-1"]
                outputs.append(check[0]["Output"])
        self.assertEqual(outputs, ["first", "first", "second", "second", "second", "second",
                                   "", ""])

    def test_catalog_register_of_an_external_service(self):
        self.register_web("web-1", 8080)
        url = "http://127.0.0.1:%d/health" % self.reg.port
        # python-consul's catalog.register: a node the registry does not run
        self.assertTrue(self.c.catalog.register(
            "db-node", "10.9.8.7",
            service={"Service": "db", "ID": "db-1", "Port": 5432, "Tags": ["primary"]},
            check={"CheckID": "db-http", "Status": "passing",
                   "Definition": {"HTTP": url, "Interval": "1s"}}))
        # the same ID on another node is another instance
        self.assertTrue(self.c.catalog.register(
            "db-node-2", "10.9.8.6", service={"Service": "db", "ID": "db-1", "Port": 5433}))
        _, nodes = self.c.catalog.nodes()
        self.assertEqual([n["Node"] for n in nodes], ["db-node", "db-node-2", "node-a"])
        _, entries = self.c.catalog.service("db")
        self.assertEqual(sorted((e["Node"], e["Address"], e["ServiceID"], e["ServiceAddress"],
                                 e["ServicePort"]) for e in entries),
                         [("db-node", "10.9.8.7", "db-1", "10.9.8.7", 5432),
                          ("db-node-2", "10.9.8.6", "db-1", "10.9.8.6", 5433)])
        # its Definition is probed by the registry, like a check of its own
        wait_until(lambda: any("200 OK" in ch["Output"]
                               for ch in self.c.health.node("db-node")[1]),
                   message="the external service's HTTP check is not probed")
        _, healthy = self.c.health.service("db", passing=True)
        entry = [n for n in healthy if n["Node"]["Node"] == "db-node"][0]
        # an external node has no agent: no serfHealth
        self.assertEqual([ch["CheckID"] for ch in entry["Checks"]], ["db-http"])
        self.assertEqual(entry["Checks"][0]["Node"], "db-node")
        _, node = self.c.catalog.node("db-node")
        self.assertEqual(node["Node"]["Address"], "10.9.8.7")
        self.assertEqual(list(node["Services"]), ["db-1"])
        # the agent's own lists do not show them; the native API does
        self.assertEqual(list(self.c.agent.services()), ["web-1"])
        self.assertNotIn("db-http", self.c.agent.checks())
        _, _, body = self.raw("GET", "/v1/services?name=db")
        native = json.loads(body)["services"]
        self.assertEqual(sorted(i["metadata"]["consul_node"] for i in native),
                         ["db-node", "db-node-2"])
        _, _, body = self.raw("GET", "/v1/discover?name=db")
        self.assertIn(json.loads(body)["service"]["host"], ("10.9.8.7", "10.9.8.6"))
        # refusals: nothing stored
        for body, code in [
                ({"Node": "x", "Address": "10.0.0.1"}, 501),
                ({"Node": "x", "Service": {"Service": "s", "Port": 1}}, 400),
                ({"Node": "x", "Address": "10.0.0.1", "Service": {"Service": "s", "Port": 1},
                  "Check": {"Status": "critical"}}, 501),
                ({"Node": "x", "Address": "10.0.0.1", "Service": {"Service": "s", "Port": 1},
                  "Check": {"ServiceID": "other", "Definition": {"TCP": "h:1",
                                                                 "Interval": "1s"}}}, 400),
                ({"Node": "x", "Address": "10.0.0.1", "Service": {"Service": "s", "Port": 1,
                                                                  "Meta": {"consul_node": "y"}}},
                 400)]:
            status, _, reply = self.raw("PUT", "/v1/catalog/register", json.dumps(body))
            self.assertEqual(status, code, (body, reply))
        status, _, reply = self.raw("PUT", "/v1/catalog/register", json.dumps(
            {"Datacenter": "dc-other", "Node": "x", "Address": "10.0.0.1",
             "Service": {"Service": "s", "Port": 1}}))
        self.assertEqual((status, reply), (500, b"No path to datacenter"))
        self.assertNotIn("s", self.c.catalog.services()[1])
        # deregister: a check, a service, then a whole node
        self.assertTrue(self.c.catalog.deregister("db-node", check_id="db-http"))
        self.assertEqual(self.c.health.node("db-node")[1], [])
        self.assertTrue(self.c.catalog.deregister("db-node-2", service_id="db-1"))
        self.assertTrue(self.c.catalog.deregister("db-node-2", service_id="db-1"))  # gone: true
        self.assertTrue(self.c.catalog.register(
            "db-node", "10.9.8.7", service={"Service": "cache", "Port": 6379}))
        self.assertTrue(self.c.catalog.deregister("db-node"))
        _, nodes = self.c.catalog.nodes()
        self.assertEqual([n["Node"] for n in nodes], ["node-a"])
        self.assertEqual(self.c.catalog.services()[1], {"consul": [], "web": ["v1"]})
        # the registry's own node stays
        status, _, _ = self.raw("PUT", "/v1/catalog/deregister", json.dumps({"Node": "node-a"}))
        self.assertEqual(status, 400)

    def test_a_change_of_another_service_does_not_wake_the_query(self):
        self.register_web("web-1", 8080)
        index, _ = self.c.health.service("web")
        result = {}

        def block():
            result["answer"] = self.c.health.service("web", index=index,
                                                      wait="60s")

        t = threading.Thread(target=block)
        t.start()
        try:
            wait_until(lambda: self.watchers() >= 1,
                       message="the blocking query is not parked")
            self.assertTrue(self.c.agent.service.register(
                "db", service_id="db-1", address="127.0.0.1", port=5432))
            # the db registration is committed (it is listed) ...
            self.assertIn("db-1", self.c.agent.services())
            # ... and the query on web is still parked
            self.assertEqual(self.watchers(), 1)
            self.assertNotIn("answer", result)
            self.register_web("web-2", 8081)
        finally:
            t.join(T(30))
        self.assertEqual([n["Service"]["ID"] for n in result["answer"][1]],
                         ["web-1", "web-2"])

    def test_sigterm_answers_a_parked_query(self):
        self.register_web("web-1", 8080)
        index, _ = self.c.health.service("web")
        result = {}

        def block():
            result["answer"] = self.raw(
                "GET", "/v1/health/service/web?index=%s&wait=5m" % index)

        t = threading.Thread(target=block)
        t.start()
        try:
            wait_until(lambda: self.watchers() >= 1,
                       message="the blocking query is not parked")
            self.assertEqual(self.reg.stop(signal.SIGTERM), 0)
        finally:
            t.join(T(30))
        status, headers, body = result["answer"]
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Consul-Index"], index)
        self.assertEqual([n["Service"]["ID"] for n in json.loads(body)], ["web-1"])

    def test_ttl_check_starts_critical_then_pass_warn_fail_update(self):
        """A TTL check starts critical (Consul's default) until its first
        pass; warn, fail and update set its status with the note as its
        Output, and a Status given at registration is its first one."""
        self.register_web("web-1", 8080)

        def ttl_check():
            _, nodes = self.c.health.service("web")
            return {ch["CheckID"]: ch for ch in nodes[0]["Checks"]}["service:web-1"]
        self.assertEqual(ttl_check()["Status"], "critical")
        self.assertEqual(self.c.health.service("web", passing=True)[1], [])
        self.assertTrue(self.c.agent.check.ttl_pass("service:web-1", "all good"))
        self.assertEqual((ttl_check()["Status"], ttl_check()["Output"]),
                         ("passing", "all good"))
        self.assertTrue(self.c.agent.check.ttl_warn("service:web-1", "disk 91%"))
        self.assertEqual((ttl_check()["Status"], ttl_check()["Output"]),
                         ("warning", "disk 91%"))
        self.assertEqual(self.c.health.service("web", passing=True)[1], [])
        self.assertTrue(self.c.agent.check.ttl_fail("service:web-1", "disk full"))
        self.assertEqual(ttl_check()["Status"], "critical")
        status, _, _ = self.raw("PUT", "/v1/agent/check/update/service:web-1",
                                json.dumps({"Status": "passing", "Output": "cleaned"}))
        self.assertEqual(status, 200)
        self.assertEqual((ttl_check()["Status"], ttl_check()["Output"]),
                         ("passing", "cleaned"))
        self.assertEqual(len(self.c.health.service("web", passing=True)[1]), 1)
        ok = self.c.agent.service.register(
            "web", service_id="web-2", address="127.0.0.1", port=8081,
            check=consul.Check.ttl("10s"))
        self.assertTrue(ok)
        status, _, _ = self.raw("PUT", "/v1/agent/service/register", json.dumps(
            {"Name": "web", "ID": "web-3", "Port": 8082,
             "Check": {"TTL": "10s", "Status": "passing"}}))
        self.assertEqual(status, 200)
        _, passing = self.c.health.service("web", passing=True)
        self.assertEqual(sorted(n["Service"]["ID"] for n in passing), ["web-1", "web-3"])

    def test_maintenance_on_and_off(self):
        self.register_web("web-1", 8080)
        self.assertTrue(self.c.agent.check.ttl_pass("service:web-1"))
        self.assertTrue(self.c.agent.service.maintenance("web-1", True, "upgrade"))
        _, passing = self.c.health.service("web", passing=True)
        self.assertEqual(passing, [])
        _, nodes = self.c.health.service("web")
        checks = {ch["CheckID"]: ch for ch in nodes[0]["Checks"]}
        maint = checks["_service_maintenance:web-1"]
        self.assertEqual(maint["Status"], "critical")
        self.assertEqual(maint["Notes"], "upgrade")
        _, critical = self.c.health.state("critical")
        self.assertEqual([ch["CheckID"] for ch in critical],
                         ["_service_maintenance:web-1"])

        self.assertTrue(self.c.agent.service.maintenance("web-1", False))
        _, passing = self.c.health.service("web", passing=True)
        self.assertEqual([n["Service"]["ID"] for n in passing], ["web-1"])
        _, critical = self.c.health.state("critical")
        self.assertEqual(critical, [])

    def test_deregister(self):
        self.register_web("web-1", 8080)
        self.register_web("web-2", 8081)
        self.assertTrue(self.c.agent.service.deregister("web-1"))
        self.assertEqual(list(self.c.agent.services()), ["web-2"])
        self.assertTrue(self.c.agent.service.deregister("web-2"))
        self.assertEqual(self.c.agent.services(), {})
        self.assertEqual(self.c.catalog.services()[1], {"consul": []})
        # an unknown id: 404, which the library reports as False
        self.assertFalse(self.c.agent.service.deregister("web-1"))

    def test_register_again_replaces_the_instance(self):
        self.register_web("web-1", 8080, ["v1"])
        self.register_web("web-1", 8090, ["v2"])
        services = self.c.agent.services()
        self.assertEqual(list(services), ["web-1"])
        self.assertEqual(services["web-1"]["Port"], 8090)
        self.assertEqual(services["web-1"]["Tags"], ["v2"])

    def test_an_id_of_another_service_is_refused(self):
        self.register_web("web-1", 8080)
        status, _, body = self.raw("PUT", "/v1/agent/service/register", json.dumps(
            {"Name": "api", "ID": "web-1", "Port": 9000}))
        self.assertEqual(status, 409)
        self.assertIn("deregister it first", json.loads(body)["error"])
        self.assertEqual(self.c.agent.services()["web-1"]["Service"], "web")

    def test_http_check_and_no_check(self):
        self.assertTrue(self.c.agent.service.register(
            "api", service_id="api-1", address="127.0.0.1", port=9,
            check=consul.Check.http("http://127.0.0.1:%d/health" % self.reg.port,
                                    "10s", timeout="1s")))
        self.assertTrue(self.c.agent.service.register(
            "plain", address="127.0.0.1", port=7))
        _, checks = self.c.health.checks("api")
        self.assertEqual(len(checks), 1)
        self.assertEqual(checks[0]["CheckID"], "service:api-1")
        self.assertEqual(checks[0]["Type"], "http")
        self.assertEqual(checks[0]["Definition"]["Interval"], "10s")
        self.assertEqual(checks[0]["Definition"]["Timeout"], "1s")
        # without ID the Name is the id; without a check the service has none
        self.assertEqual(self.c.health.checks("plain")[1], [])
        _, nodes = self.c.health.service("plain", passing=True)
        self.assertEqual([n["Service"]["ID"] for n in nodes], ["plain"])
        # the http check cannot be passed by hand
        with self.assertRaises(consul.base.BadRequest):
            self.c.agent.check.ttl_pass("service:api-1")

    def test_go_durations(self):
        here = "127.0.0.1:%d" % self.reg.port
        status, _, body = self.raw("PUT", "/v1/agent/service/register", json.dumps({
            "Name": "go", "ID": "go-1", "Port": 9000, "Checks": [
                {"TTL": "1m0s", "DeregisterCriticalServiceAfter": "1h30m"},
                {"TCP": here, "Interval": "1m30s", "Timeout": "1.5s"}]}))
        self.assertEqual(status, 200, body)
        _, _, body = self.raw("GET", "/v1/services?name=go")
        native = json.loads(body)["services"][0]
        self.assertEqual(native["ttl"], 60)
        _, checks = self.c.health.checks("go")
        tcp = [ch for ch in checks if ch["Type"] == "tcp"][0]
        self.assertEqual(tcp["Definition"]["Interval"], "90s")
        self.assertEqual(tcp["Definition"]["Timeout"], "1500ms")

    def test_checks_listed_by_check_id(self):
        here = "127.0.0.1:%d" % self.reg.port
        status, _, body = self.raw("PUT", "/v1/agent/service/register", json.dumps({
            "Name": "api", "ID": "api-1", "Port": 9000, "Checks": [
                {"CheckID": "z-tcp", "TCP": here, "Interval": "10s"},
                {"CheckID": "a-http", "HTTP": "http://%s/health" % here, "Interval": "10s"},
                {"TTL": "30s"}]}))
        self.assertEqual(status, 200, body)
        self.register_web("web-1", 8080)
        _, checks = self.c.health.checks("api")
        self.assertEqual([ch["CheckID"] for ch in checks],
                         ["a-http", "service:api-1", "z-tcp"])
        _, checks = self.c.health.node("node-a")
        self.assertEqual([ch["CheckID"] for ch in checks],
                         ["a-http", "serfHealth", "service:api-1", "service:web-1", "z-tcp"])
        _, nodes = self.c.health.service("api")
        self.assertEqual([ch["CheckID"] for ch in nodes[0]["Checks"]],
                         ["a-http", "serfHealth", "service:api-1", "z-tcp"])
        self.assertEqual(list(self.c.agent.checks()),
                         ["a-http", "service:api-1", "service:web-1", "z-tcp"])

    def test_native_registration_seen_through_consul(self):
        status, _, body = self.raw("POST", "/v1/services", json.dumps({
            "name": "native", "host": "127.0.0.1", "port": 7000, "ttl": 30}))
        self.assertEqual(status, 201, body)
        nid = json.loads(body)["service_id"]
        self.assertIn(nid, self.c.agent.services())
        self.assertTrue(self.c.agent.check.ttl_pass("service:" + nid))
        _, nodes = self.c.health.service("native", passing=True)
        self.assertEqual([n["Service"]["ID"] for n in nodes], [nid])
        self.assertTrue(self.c.agent.service.deregister(nid))
        status, _, _ = self.raw("GET", "/v1/services/" + nid)
        self.assertEqual(status, 404)

    # --- raw HTTP --------------------------------------------------------

    def test_headers_on_200_and_404(self):
        self.register_web("web-1", 8080)
        _, native_headers, _ = self.raw("GET", "/v1/services")
        index = native_headers["X-Registry-Index"]
        status, headers, _ = self.raw("GET", "/v1/catalog/services")
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Consul-Index"], index)
        self.assertEqual(headers["X-Consul-KnownLeader"], "true")
        self.assertEqual(headers["X-Consul-LastContact"], "0")
        status, headers, body = self.raw("GET", "/v1/agent/service/nope")
        self.assertEqual(status, 404)
        self.assertEqual(headers["X-Consul-Index"], index)
        self.assertEqual(headers["X-Consul-KnownLeader"], "true")
        self.assertIn("unknown service ID 'nope'", json.loads(body)["error"])
        status, headers, _ = self.raw("PUT", "/v1/agent/check/pass/service:nope")
        self.assertEqual(status, 404)
        self.assertEqual(headers["X-Consul-Index"], index)

    def test_datacenter(self):
        status, headers, body = self.raw("GET", "/v1/catalog/services?dc=other")
        self.assertEqual(status, 500)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(body, b"No path to datacenter")
        self.assertIn("X-Consul-Index", headers)
        status, _, _ = self.raw("GET", "/v1/catalog/services?dc=dc-test")
        self.assertEqual(status, 200)
        other = self.client("other")
        with self.assertRaises(consul.ConsulException):
            other.health.service("web")

    def test_status_and_agent_self(self):
        self.assertEqual(self.c.status.leader(), "127.0.0.1:8300")
        self.assertEqual(self.c.status.peers(), ["127.0.0.1:8300"])
        me = self.c.agent.self()
        self.assertEqual(me["Config"]["Datacenter"], "dc-test")
        self.assertEqual(me["Config"]["NodeName"], "node-a")
        self.assertEqual(me["Member"]["Name"], "node-a")
        self.assertEqual([m["Name"] for m in self.c.agent.members()], ["node-a"])

    def test_index_ahead_resets_and_answers_at_once(self):
        self.register_web("web-1", 8080)
        # wait=5m: a parked query would pass the 30 s timeout of raw()
        status, headers, body = self.raw(
            "GET", "/v1/health/service/web?index=999999999&wait=5m")
        self.assertEqual(status, 200)
        self.assertEqual(len(json.loads(body)), 1)
        self.assertEqual(self.watchers(), 0)

    def test_bad_input_and_gaps(self):
        status, _, body = self.raw("PUT", "/v1/agent/service/register",
                                   json.dumps({"Port": 80}))
        self.assertEqual(status, 400)
        self.assertIn("Name", json.loads(body)["error"])
        status, _, body = self.raw("PUT", "/v1/agent/service/register", "{")
        self.assertEqual(status, 400)
        status, _, body = self.raw("PUT", "/v1/agent/service/register", json.dumps(
            {"Name": "s", "Port": 80, "Check": {"Script": "/bin/true", "Interval": "10s"}}))
        self.assertEqual(status, 501)
        self.assertIn("Script", json.loads(body)["error"])
        status, _, body = self.raw("PUT", "/v1/agent/service/register", json.dumps(
            {"Name": "s", "Port": 80, "Check": {"TTL": "10s", "Status": "bad"}}))
        self.assertEqual(status, 400)
        status, _, body = self.raw("PUT", "/v1/agent/service/register", json.dumps(
            {"Name": "s", "Port": 80, "Check": {"TTL": "50ms"}}))
        self.assertEqual(status, 400)
        self.assertIn("ttl", json.loads(body)["error"])
        self.register_web("web-1", 8080)
        for body in ("{", json.dumps({"Status": "fine"}), json.dumps({"Status": "passing",
                                                                      "Output": 7})):
            status, _, _ = self.raw("PUT", "/v1/agent/check/update/service:web-1", body)
            self.assertEqual(status, 400, body)
        status, _, _ = self.raw("PUT", "/v1/agent/check/warn/service:web-nope")
        self.assertEqual(status, 404)
        status, _, body = self.raw("PUT", "/v1/agent/service/maintenance/web-1")
        self.assertEqual(status, 400)
        status, _, body = self.raw("PUT", "/v1/agent/service/maintenance/web-1?enable=maybe")
        self.assertEqual(status, 400)
        status, _, body = self.raw("GET", "/v1/health/state/sick")
        self.assertEqual(status, 400)
        status, _, body = self.raw("GET", "/v1/catalog/services?index=abc")
        self.assertEqual(status, 400)
        status, _, body = self.raw("GET", "/v1/catalog/services?index=1&wait=soon")
        self.assertEqual(status, 400)
        self.assertIn("wait must be a duration", json.loads(body)["error"])
        # nothing of the refused registrations was stored
        self.assertEqual(list(self.c.agent.services()), ["web-1"])


class ConsulACLTestCase(svctest.ServiceTestCase):
    """With --acl-tokens the Consul routes need a token, sent as Consul's
    clients send it: X-Consul-Token."""

    def test_token_in_x_consul_token(self):
        tmp = tempfile.mkdtemp(prefix="registry-consul-")
        self.addCleanup(shutil.rmtree, tmp, True)
        tokens = os.path.join(tmp, "tokens.json")
        with open(tokens, "w") as f:
            json.dump({"web-tok": "service:web", "reader": "read"}, f)
        reg = Service()
        self.addCleanup(reg.close)
        self.addCleanup(self.finish_service, reg)
        reg.start("registry", ["--port", "0", "--bind", "127.0.0.1",
                               "--data", ":memory:", "--acl-tokens", tokens])

        def call(method, path, token=None, body=None):
            conn = http.client.HTTPConnection("127.0.0.1", reg.port, timeout=T(30))
            try:
                conn.request(method, path, body=body,
                             headers={"X-Consul-Token": token} if token else {})
                resp = conn.getresponse()
                return resp.status, resp.msg, resp.read()
            finally:
                conn.close()

        web = json.dumps({"Name": "web", "ID": "web-1", "Port": 80})
        status, headers, _ = call("PUT", "/v1/agent/service/register", body=web)
        self.assertEqual(status, 403)
        self.assertIn("X-Consul-Index", headers)
        status, _, _ = call("PUT", "/v1/agent/service/register", "reader", web)
        self.assertEqual(status, 403)
        status, _, _ = call("PUT", "/v1/agent/service/register", "web-tok", json.dumps(
            {"Name": "db", "Port": 80}))
        self.assertEqual(status, 403)
        status, _, _ = call("PUT", "/v1/agent/service/register", "web-tok", web)
        self.assertEqual(status, 200)
        status, _, body = call("GET", "/v1/agent/services")
        self.assertEqual(status, 403)
        status, _, body = call("GET", "/v1/agent/services", "reader")
        self.assertEqual(status, 200)
        self.assertEqual(list(json.loads(body)), ["web-1"])
        status, _, _ = call("PUT", "/v1/agent/service/deregister/web-1", "reader")
        self.assertEqual(status, 403)
        status, _, _ = call("PUT", "/v1/agent/service/deregister/web-1", "web-tok")
        self.assertEqual(status, 200)
        # python-consul sends its token as ?token=, which counts too
        reader = consul.Consul(host="127.0.0.1", port=reg.port, token="reader")
        self.addCleanup(reader.http.session.close)
        anonymous = consul.Consul(host="127.0.0.1", port=reg.port)
        self.addCleanup(anonymous.http.session.close)
        self.assertEqual([n["Node"] for n in reader.catalog.nodes()[1]], [socket.gethostname()])
        with self.assertRaises(consul.ACLPermissionDenied):
            anonymous.catalog.nodes()
        with self.assertRaises(consul.ACLPermissionDenied):
            reader.agent.service.register("web", service_id="web-9", port=80)
        writer = consul.Consul(host="127.0.0.1", port=reg.port, token="web-tok")
        self.addCleanup(writer.http.session.close)
        self.assertTrue(writer.agent.service.register("web", service_id="web-9", port=80))
        status, _, _ = call("GET", "/v1/agent/services?token=")
        self.assertEqual(status, 403)


if __name__ == "__main__":
    unittest.main(verbosity=2)
