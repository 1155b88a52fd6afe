"""test_ui: the registry's dashboard (/ui/) in a real browser.

Debian's chromium in headless mode, driven by Debian's python3-selenium and
chromium-driver (scripts/deps.sh --test installs them), against a real
registry and the suite (two logging instances, messages, facade) with short
TTLs and HTTP check intervals. It checks what a person would look at:

- /ui/ loads with no console error and no failed request (both show in the
  browser's log), and lists the suite's instances;
- SIGTERM of a logging instance: it leaves the page, without a reload;
- SIGSTOP of the other: it is shown critical within a few seconds;
- the callers' page shows the facade's breaker table (through the relay);
  a SIGKILLed logging instance's breaker shows open with its retries risen,
  and once it is restarted on the same port, closed again and the instance
  passing, without a reload;
- a KV edit made on the page is read back over the API;
- a CAS conflict (the key changed over the API between opening and saving)
  is shown, and nothing is overwritten;
- the events feed, opened after some changes, lists them from the
  registry's history, once each, and the live ones on top;
- the registry stopped: a banner says so and the last data stays;
- a registry with ACLs (AclDashboardTest): the page shows a token field,
  says so when the token is wrong, and with a right one lists the
  instances and follows the event stream (its token as ?token=).

Over plain HTTP (HeadersTest, which runs without a browser too): the
files' headers, the relay's refusals, and its batch form against stand-in
instances (per-id answers and errors, the id limit, shutdown).

A screenshot of each state is saved under <build>/test-artifacts/ui/.
Exits 77 (a skip for ctest) when chromium or chromedriver is missing.
"""

import base64
import http.server
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from svctest import (Service, ServiceTestCase, bin_dir, closed_port, request,  # noqa: E402
                     timeout, wait_until)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import StaleElementReferenceException
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

ARTIFACTS = os.path.join(os.path.dirname(bin_dir()), "test-artifacts", "ui")
KEY = "config/ui-test/greeting"


def setUpModule():
    """This run's screenshots only: the old ones go first."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    for old in os.listdir(ARTIFACTS):
        if old.endswith(".png"):
            os.unlink(os.path.join(ARTIFACTS, old))


def severe(entries):
    """The browser log entries that are errors (console errors and failed
    requests both come as SEVERE)."""
    return [e for e in entries if e.get("level") == "SEVERE"]


class HeadersTest(ServiceTestCase):
    """What the registry answers for /ui/ over plain HTTP (no browser)."""

    def test_files_and_relay(self):
        reg = Service().start("registry", ["--port", "0", "--backend", "memory"])
        self.addCleanup(self.finish_service, reg)
        status, headers, _ = request("GET", reg.url + "/")
        self.assertEqual((status, headers.get("Location")), (302, "/ui/"))
        types = {"": "text/html", "index.html": "text/html", "app.js": "text/javascript",
                 "style.css": "text/css", "icon.svg": "image/svg+xml"}
        for name, ctype in types.items():
            status, headers, body = request("GET", reg.url + "/ui/" + name)
            self.assertEqual(status, 200, name)
            self.assertEqual(headers["Content-Type"].split(";")[0], ctype, name)
            self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
            csp = headers["Content-Security-Policy"]
            self.assertIn("default-src 'none'", csp)
            self.assertIn("script-src 'self'", csp)
            self.assertNotIn("unsafe-inline", csp)
            self.assertEqual(headers["Cache-Control"], "no-cache")
            etag = headers["ETag"]
            self.assertRegex(etag, r'^"[0-9a-f]{16}"$')
            status, headers, body = request("GET", reg.url + "/ui/" + name,
                                            headers={"If-None-Match": etag})
            self.assertEqual((status, body), (304, ""), name)
            status, _, _ = request("GET", reg.url + "/ui/" + name,
                                   headers={"If-None-Match": '"0000000000000000"'})
            self.assertEqual(status, 200, name)
        self.assertJsonError(request("GET", reg.url + "/ui/nope.js"), 404)
        self.assertJsonError(request("GET", reg.url + "/ui/relay?path=/stats"), 400)
        self.assertJsonError(request("GET", reg.url + "/ui/relay?id=x&path=/v1/kv/x"), 400)
        self.assertJsonError(request("GET", reg.url + "/ui/relay?id=x&path=/stats"), 404)
        # A registered instance with nothing listening: 502 with why.
        status, _, body = request("POST", reg.url + "/v1/services",
                                  {"name": "gone", "host": "127.0.0.1", "port": closed_port()})
        self.assertEqual(status, 201, body)
        reply = request("GET", reg.url + "/ui/relay?id=%s&path=/metrics" % body["service_id"])
        self.assertIn("refused", self.assertJsonError(reply, 502)["error"])

    def start_fake(self, status=200, body=b"{}", ctype="application/json", hang=None, seen=None):
        """A stand-in instance on loopback answering every GET with status,
        body and ctype (with hang, an Event, holding the answer until it is
        set; seen, an Event, is set when a GET arrives). Returns its port;
        it stops with the test."""
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if seen is not None:
                    seen.set()
                if hang is not None:
                    hang.wait(timeout(10))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the relay gave up on it (the shutdown test)

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        if hang is not None:
            self.addCleanup(hang.set)
        return srv.server_address[1]

    def register_at(self, reg, name, port):
        status, _, body = request("POST", reg.url + "/v1/services",
                                  {"name": name, "host": "127.0.0.1", "port": port})
        self.assertEqual(status, 201, body)
        return body["service_id"]

    def test_relay_batch(self):
        """GET /ui/relay?stats=...&metrics=...: one answer keyed by instance
        id, each entry the instance's answer or its own error."""
        reg = Service().start("registry", ["--port", "0", "--backend", "memory"])
        self.addCleanup(self.finish_service, reg)
        one = self.register_at(reg, "facade-service", self.start_fake(body=b'{"upstreams": [1]}'))
        two = self.register_at(reg, "facade-service", self.start_fake(body=b'{"upstreams": [2]}'))
        text = self.register_at(reg, "facade-service", self.start_fake(body=b"<html>",
                                                                       ctype="text/html"))
        failing = self.register_at(reg, "facade-service", self.start_fake(status=500))
        gone = self.register_at(reg, "facade-service", closed_port())
        # The registry's own /metrics stands for a logging instance's.
        own = self.register_at(reg, "logging-service", reg.port)
        unknown = "facade-service-00000000-0000-4000-8000-000000000000"
        status, headers, body = request(
            "GET", reg.url + "/ui/relay?stats=%s&metrics=%s"
            % (",".join((one, two, text, failing, gone, unknown)), own))
        self.assertEqual(status, 200, body)
        self.assertJsonContentType(headers)
        self.assertEqual(headers["Cache-Control"], "no-store")
        self.assertEqual(set(body), {one, two, text, failing, gone, unknown, own})
        self.assertEqual(body[one], {"upstreams": [1]})
        self.assertEqual(body[two], {"upstreams": [2]})
        self.assertEqual(body[text]["status"], 502)
        self.assertIn("not JSON", body[text]["error"])
        self.assertEqual(body[failing]["status"], 502)
        self.assertIn("500", body[failing]["error"])
        self.assertEqual(body[gone]["status"], 502)
        self.assertIn("refused", body[gone]["error"])
        self.assertEqual(body[unknown]["status"], 404)
        self.assertIn(unknown, body[unknown]["error"])
        self.assertIsInstance(body[own], str)
        self.assertRegex(body[own], r"(?m)^# TYPE ")
        # Only unknown ids: answered at once, each with its 404.
        status, _, body = request("GET", reg.url + "/ui/relay?metrics=" + unknown)
        self.assertEqual((status, body[unknown]["status"]), (200, 404), body)
        # The single form is still there, and answers as it came.
        status, headers, body = request("GET", reg.url + "/ui/relay?id=%s&path=/stats" % one)
        self.assertEqual((status, body), (200, {"upstreams": [1]}))
        # The limit on ids, and the other refusals: 400 with why.
        ids = ["facade-service-%08d-0000-4000-8000-000000000000" % i for i in range(65)]
        reply = request("GET", reg.url + "/ui/relay?stats=" + ",".join(ids[:64]))
        self.assertEqual(reply[0], 200, reply[2])
        self.assertEqual(len(reply[2]), 64)
        reply = request("GET", reg.url + "/ui/relay?stats=%s&metrics=%s"
                        % (",".join(ids[:60]), ",".join(ids[60:])))
        self.assertIn("at most 64", self.assertJsonError(reply, 400)["error"])
        reply = request("GET", reg.url + "/ui/relay?stats=%s,%s" % (one, one))
        self.assertIn("twice", self.assertJsonError(reply, 400)["error"])
        reply = request("GET", reg.url + "/ui/relay?stats=%s&metrics=%s" % (one, one))
        self.assertIn("twice", self.assertJsonError(reply, 400)["error"])
        self.assertJsonError(request("GET", reg.url + "/ui/relay?stats=%s,,%s" % (one, two)), 400)
        self.assertJsonError(request("GET", reg.url + "/ui/relay?stats="), 400)
        self.assertJsonError(request("GET", reg.url + "/ui/relay?stats=x&id=x&path=/stats"), 400)

    def test_relay_batch_shutdown(self):
        """A batch still waiting for an instance when the registry stops is
        answered 503, as a single relay is."""
        reg = Service().start("registry", ["--port", "0", "--backend", "memory"])
        self.addCleanup(self.finish_service, reg)
        quick = self.register_at(reg, "facade-service", self.start_fake())
        arrived = threading.Event()
        slow = self.register_at(reg, "facade-service",
                                self.start_fake(hang=threading.Event(), seen=arrived))
        replies = []
        asking = threading.Thread(target=lambda: replies.append(request(
            "GET", reg.url + "/ui/relay?stats=%s,%s" % (quick, slow))))
        asking.start()
        self.assertTrue(arrived.wait(timeout(10)), "the batch's GET to the slow instance")
        self.assertEqual(reg.stop(signal.SIGTERM), 0, reg.describe())
        asking.join(timeout(10))
        self.assertEqual(len(replies), 1)
        self.assertIn("shutting down", self.assertJsonError(replies[0], 503)["error"])


class BrowserTestCase(ServiceTestCase):
    """A test with services and one headless chromium (start_browser), and
    the helpers to look at the page."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="test_ui-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        os.makedirs(ARTIFACTS, exist_ok=True)

    def start_browser(self):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    "--no-first-run", "--disable-extensions"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=DriverService(executable_path=DRIVER),
                                       options=options)
        self.addCleanup(self.driver.quit)
        self.log = []  # every browser log entry read so far

    def start(self, name, args):
        svc = Service().start(name, args)
        self.addCleanup(self.finish_service, svc)
        return svc

    # --- helpers -------------------------------------------------------------

    def read_log(self):
        entries = self.driver.get_log("browser")
        self.log.extend(entries)
        return entries

    def shot(self, name):
        path = os.path.join(ARTIFACTS, name + ".png")
        self.driver.save_screenshot(path)
        return path

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait_js(self, script, what, seconds=10.0):
        """Wait until the script (a function's body) returns true; on a
        timeout save a screenshot (fail-*.png) and the page's text."""
        try:
            wait_until(lambda: self.js(script), timeout=seconds, interval=0.1,
                       message=what)
        except AssertionError:
            self.shot("fail-" + "".join(c if c.isalnum() else "-" for c in what))
            sys.stderr.write("page text:\n%s\n" % self.js("return document.body.innerText;"))
            raise

    def act(self, css, fn):
        """fn(element) on the element css selects, again when a live redraw
        replaced it in between (a StaleElementReferenceException)."""
        for _ in range(20):
            try:
                return fn(self.driver.find_element(By.CSS_SELECTOR, css))
            except StaleElementReferenceException:
                time.sleep(0.1)
        self.fail("%s kept being replaced" % css)

    def type_into(self, css, text):
        self.act(css, lambda el: (el.clear(), el.send_keys(text)))


class DashboardTest(BrowserTestCase):

    def setUp(self):
        super().setUp()
        self.registry = self.start("registry", [
            "--port", "0", "--backend", "memory", "--cleanup-interval", "100ms"])
        reg = ["--registry", self.registry.url, "--ttl", "2s", "--check-interval", "300ms"]
        self.loggings = [
            self.start("logging-service", ["--port", "0", "--data-dir",
                                           tempfile.mkdtemp(dir=self.tmp)] + reg)
            for _ in range(2)]
        # A third that only a TTL lease watches, long: SIGKILLed, it stays
        # discoverable long enough for the facade's breaker to open on it.
        self.killed_dir = tempfile.mkdtemp(dir=self.tmp)
        self.killed = self.start("logging-service", [
            "--port", "0", "--data-dir", self.killed_dir,
            "--registry", self.registry.url, "--ttl", "15s", "--check", "ttl"])
        self.messages = self.start("messages-service", ["--port", "0"] + reg)
        self.facade = self.start("facade-service", ["--port", "0"] + reg)
        self.stopped = None  # a SIGSTOPped service, continued at the end
        self.start_browser()

    def tearDown(self):
        if self.stopped is not None and self.stopped.running():
            os.kill(self.stopped.pid, signal.SIGCONT)

    def retries_of(self, addr):
        """The Retries the callers' page shows for upstream addr (0 while
        the facade has no record of it)."""
        text = self.js("const c = document.querySelector('table.breakers tr[data-upstream=\"'"
                       " + arguments[0] + '\"] td:nth-child(7)'); return c ? c.textContent : '0';",
                       addr)
        return int(text)

    def card_health(self, inst_id):
        """The health word in the card of instance inst_id, or None."""
        return self.js(
            "const c = document.querySelector('section.card[data-id=\"' + arguments[0] + '\"] h3 .badge');"
            "return c ? c.textContent : null;", inst_id)

    def ids_of(self, name):
        status, _, body = request("GET", self.registry.url + "/v1/services?name=" + name)
        self.assertEqual(status, 200, body)
        return sorted(s["id"] for s in body["services"])

    def kv_raw(self):
        status, _, body = request("GET", self.registry.url + "/v1/kv/" + KEY)
        self.assertEqual(status, 200, body)
        return base64.b64decode(body[0]["Value"]).decode(), body[0]["ModifyIndex"]

    def put(self, value):
        status, _, body = request("PUT", self.registry.url + "/v1/kv/" + KEY,
                                  value.encode())
        self.assertEqual((status, body), (200, True))

    # --- the test ------------------------------------------------------------

    def test_dashboard(self):
        d = self.driver
        wait_until(lambda: len(self.ids_of("logging-service")) == 3
                   and self.ids_of("facade-service") and self.ids_of("messages-service"),
                   timeout=15, message="the suite registered")
        self.put("hello")
        # One message, so the facade has upstreams to show.
        status, _, body = request("POST", self.facade.url + "/facade", {"msg": "ui"},
                                  timeout=15)
        self.assertIn(status, (200, 201), body)

        # The root redirects to /ui/; the page lists every service.
        d.get(self.registry.url + "/")
        self.assertTrue(d.current_url.endswith("/ui/"), d.current_url)
        self.js("window.__sameDocument = true;")
        self.wait_js(
            "const r = document.querySelector('tr[data-service=\"logging-service\"] td.num');"
            "return r && r.textContent === '3' &&"
            " document.querySelector('tr[data-service=\"facade-service\"]') &&"
            " document.querySelector('tr[data-service=\"messages-service\"]') &&"
            " document.getElementById('live').textContent.includes('live');",
            "the services page lists the suite, live")
        self.shot("1-services")
        errors = severe(self.read_log())
        self.assertEqual(errors, [], "console errors or failed requests on load")
        # Idle, the page asks nothing: its stream stays open, no polling.
        count = "return performance.getEntriesByType('resource').length;"
        before = self.js(count)
        time.sleep(3)
        self.assertEqual(self.js(count), before, "the idle services page made requests")

        # The instances of logging-service: both, passing, with checks.
        d.get(self.registry.url + "/ui/#/service/logging-service")
        self.js("window.__sameDocument = true;")
        killed_id = next(i for i in self.ids_of("logging-service")
                         if self.instance(i)["port"] == self.killed.port)
        ids = [i for i in self.ids_of("logging-service") if i != killed_id]
        for inst in ids:
            wait_until(lambda inst=inst: self.card_health(inst) == "✓ passing",
                       timeout=10, message="%s shown passing" % inst)
        checks = self.js("return document.querySelectorAll('table.checks tbody tr').length;")
        self.assertGreaterEqual(checks, 4, "a TTL and an HTTP check per instance")
        self.shot("2-instances")
        d.set_window_size(390, 844)  # a phone
        self.shot("2-instances-phone")
        d.set_window_size(1280, 900)

        # SIGTERM of one: it leaves the page without a reload.
        gone, frozen = ids[0], ids[1]
        victim = next(s for s in self.loggings if s.port == self.instance(gone)["port"])
        other = next(s for s in self.loggings if s is not victim)
        self.assertEqual(victim.stop(signal.SIGTERM), 0)
        wait_until(lambda: self.card_health(gone) is None, timeout=5,
                   message="the stopped instance left the page")
        self.assertTrue(self.js("return window.__sameDocument === true;"), "the page reloaded")
        self.shot("3-sigterm-gone")

        # SIGSTOP of the other: critical within a few seconds (its HTTP
        # check times out every 300 ms), still without a reload.
        os.kill(other.pid, signal.SIGSTOP)
        self.stopped = other
        t0 = time.monotonic()
        wait_until(lambda: self.card_health(frozen) == "✕ critical", timeout=5,
                   message="the frozen instance shown critical")
        self.assertLess(time.monotonic() - t0, timeout(5))
        self.assertTrue(self.js("return window.__sameDocument === true;"), "the page reloaded")
        self.shot("4-sigstop-critical")

        # The callers' side: the facade's upstream table, through the relay.
        d.get(self.registry.url + "/ui/#/callers")
        self.wait_js(
            "return document.querySelectorAll('table.breakers tbody tr').length > 0;",
            "the facade's breakers listed", seconds=10)
        breakers = self.js("return [...document.querySelectorAll('table.breakers .badge')]"
                           ".map(b => b.textContent);")
        self.assertTrue(breakers and all(b in ("✓ closed", "! half-open", "✕ open")
                                         for b in breakers), breakers)
        self.shot("5-callers")
        os.kill(other.pid, signal.SIGCONT)
        self.stopped = None
        killed_addr = "127.0.0.1:%d" % self.killed.port
        retries_before = self.retries_of(killed_addr)

        # SIGKILL of the third while messages come: its breaker opens on
        # the page (its calls are refused; the registry still lists it),
        # and the retries the facade made around it have risen.
        self.killed.kill()
        posts = [threading.Thread(target=request, daemon=True,
                                  args=("POST", self.facade.url + "/facade", {"msg": "m%d" % i}),
                                  kwargs={"timeout": 20}) for i in range(6)]
        for t in posts:
            t.start()
        self.wait_js(
            "const r = document.querySelector('table.breakers tr[data-upstream=\"' + '%s' + '\"] .badge');"
            "return r && r.textContent === '✕ open';" % killed_addr,
            "the killed instance's breaker shown open", seconds=15)
        self.assertGreater(self.retries_of(killed_addr), retries_before,
                           "the retries shown for the killed instance did not rise")
        self.shot("5b-callers-breaker-open")
        for t in posts:
            t.join(timeout(25))

        # Restarted (a fresh process on the same port and data): reads
        # through the facade (GET /facade asks every logging instance the
        # breaker admits) are its half-open probes once the open time
        # (BRK_OPEN_MS_DEFAULT, 5 s: the facade has no option for it) is
        # over; the page shows the breaker closed again and the new
        # instance passing, without a reload.
        self.js("window.__sameDocument = true;")
        restarted = self.start("logging-service", [
            "--port", str(self.killed.port), "--data-dir", self.killed_dir,
            "--registry", self.registry.url, "--ttl", "2s", "--check-interval", "300ms"])
        new_id = wait_until(
            lambda: next((i for i in self.ids_of("logging-service")
                          if self.instance(i)["port"] == restarted.port
                          and self.instance(i)["health"] == "passing"
                          and i != killed_id), None),
            timeout=10, message="the restarted instance registered and passing")
        reading = threading.Event()

        def read_loop():
            while not reading.is_set():
                try:
                    request("GET", self.facade.url + "/facade", timeout=5)
                except OSError:
                    pass
                reading.wait(0.3)
        reader = threading.Thread(target=read_loop, daemon=True)
        reader.start()
        try:
            self.wait_js(
                "const r = document.querySelector('table.breakers tr[data-upstream=\"%s\"] .badge');"
                "const i = document.querySelector('tr[data-id=\"%s\"] .badge');"
                "return r && r.textContent === '✓ closed' && i && i.textContent === '✓ passing';"
                % (killed_addr, new_id),
                "the restarted instance's breaker shown closed, the instance passing",
                seconds=20)
        finally:
            reading.set()
            reader.join(timeout(10))
        self.assertTrue(self.js("return window.__sameDocument === true;"), "the page reloaded")
        self.shot("5c-callers-breaker-closed")

        # KV: open the key, edit it, save; the API reads the new value.
        d.get(self.registry.url + "/ui/#/kv/config/ui-test/")
        self.wait_js("return document.querySelector('tr[data-key=\"%s\"] button');" % KEY,
                     "the key listed")
        self.act('tr[data-key="%s"] button' % KEY, lambda el: el.click())
        self.wait_js("const a = document.getElementById('kv-value'); return a && a.value === 'hello';",
                     "the editor shows the value")
        self.type_into("#kv-value", "edited from the page")
        self.act("#kv-save", lambda el: el.click())
        wait_until(lambda: self.kv_raw()[0] == "edited from the page", timeout=5,
                   message="the page's edit read back over the API")
        self.wait_js("return document.querySelector('p.note') &&"
                     " document.querySelector('p.note').textContent.startsWith('Saved');",
                     "the page says saved")
        self.shot("6-kv-saved")

        # CAS: open it, change it over the API, then save from the page.
        self.act('tr[data-key="%s"] button' % KEY, lambda el: el.click())
        self.wait_js("const a = document.getElementById('kv-value');"
                     " return a && a.value === 'edited from the page';", "the editor reopened")
        self.put("changed over the API")
        # The kv event reaches the open editor before any save.
        self.wait_js("return document.getElementById('kv-changed').textContent"
                     ".includes('changed meanwhile');", "the editor told of the change")
        self.type_into("#kv-value", "the page's late edit")
        self.act("#kv-save", lambda el: el.click())
        self.wait_js("const c = document.getElementById('kv-conflict');"
                     " return c && c.textContent.includes('Conflict') &&"
                     " c.textContent.includes('changed over the API');",
                     "the conflict shown with their value")
        self.assertEqual(self.kv_raw()[0], "changed over the API", "the CAS let a write through")
        self.assertEqual(d.find_element(By.ID, "kv-value").get_attribute("value"),
                         "the page's late edit", "the person's text was lost")
        self.shot("7-kv-conflict")

        # Errors so far: none but relays to the frozen instance (a 504 or
        # 502 while it was stopped).
        unexpected = [e for e in severe(self.read_log())
                      if "/ui/relay" not in e.get("message", "")]
        self.assertEqual(unexpected, [], "console errors or failed requests")

        # The events feed, opened afresh: what happened before it opened is
        # listed from the registry's history (the write just made, the
        # restarted instance's registration; a health change of the killed
        # instance's lease may come in between); a live KV write then comes
        # on top, the feed newest first, and no event is listed twice.
        status, _, body = request("PUT", self.registry.url + "/v1/kv/config/ui-test/history",
                                  b"before the page")
        self.assertEqual((status, body), (200, True))
        d.get("about:blank")
        d.get(self.registry.url + "/ui/#/events")
        self.wait_js("const li = [...document.querySelectorAll('ol.feed li')];"
                     " return li.some(l => l.dataset.type === 'kv' &&"
                     " l.textContent.includes('config/ui-test/history')) &&"
                     " li.some(l => l.dataset.type === 'register' && l.textContent.includes('%s'));"
                     % new_id, "the feed lists the events from before it opened")
        self.put("for the feed")
        self.wait_js("const li = document.querySelector('ol.feed li');"
                     " return li && li.dataset.type === 'kv' && li.textContent.includes('%s');" % KEY,
                     "the kv event first in the feed")
        indexes = self.js("return [...document.querySelectorAll('ol.feed li .idx')].map(e => e.textContent);")
        self.assertEqual(len(indexes), len(set(indexes)), "an event listed twice")
        numbers = [int(i.lstrip("#")) for i in indexes]
        self.assertEqual(numbers, sorted(numbers, reverse=True), "the feed is not newest first")
        self.act("#ev-type", lambda el: el.send_keys("kv"))
        self.wait_js("const types = [...document.querySelectorAll('ol.feed li')].map(li => li.dataset.type);"
                     " return types.length > 0 && types.every(t => t === 'kv');",
                     "the feed filtered to kv")
        self.shot("7b-events")

        # The registry gone: a banner, and the page keeps the last data.
        d.get(self.registry.url + "/ui/#/services")
        self.wait_js("return document.querySelector('tr[data-service=\"facade-service\"]') &&"
                     " document.getElementById('live').textContent.includes('live');",
                     "the services page again")
        self.assertEqual(self.registry.stop(signal.SIGTERM), 0)
        self.wait_js("const b = document.getElementById('banner');"
                     " return !b.hidden && b.textContent.includes('unreachable');",
                     "the banner says the registry is unreachable")
        self.assertTrue(self.js("return !!document.querySelector('tr[data-service=\"facade-service\"]');"),
                        "the last data was dropped")
        time.sleep(1.2)  # the banner ages the data it shows
        self.assertRegex(self.js("return document.getElementById('banner').textContent;"),
                         r"from \d+ s ago")
        self.shot("8-registry-down")

    def instance(self, inst_id):
        status, _, body = request("GET", self.registry.url + "/v1/services/" + inst_id)
        self.assertEqual(status, 200, body)
        return body["service"]



class AclDashboardTest(BrowserTestCase):
    """The dashboard of a registry started with --acl-tokens: the page asks
    for a token, keeps it for the tab, sends it on every request (the event
    stream's as ?token=)."""

    WRITE = "ui-ops-5d1e"
    READ = "ui-dash-77a0"

    def register(self, name, port):
        status, _, body = request("POST", self.registry.url + "/v1/services",
                                  {"name": name, "host": "127.0.0.1", "port": port, "ttl": 60},
                                  headers={"X-Registry-Token": self.WRITE})
        self.assertEqual(status, 201, body)
        return body["service_id"]

    def test_token_field(self):
        tokens = os.path.join(self.tmp, "tokens.json")
        with open(tokens, "w") as f:
            json.dump({self.WRITE: "write", self.READ: "read"}, f)
        self.registry = self.start("registry", ["--port", "0", "--backend", "memory",
                                                "--acl-tokens", tokens])
        self.register("acl-probe", 9001)
        self.start_browser()
        d = self.driver
        d.get(self.registry.url + "/ui/")
        # Refused without a token: the field shows, labelled, a password.
        self.wait_js("const f = document.getElementById('auth');"
                     " return !f.hidden && document.getElementById('auth-msg').textContent"
                     ".includes('no token');", "the token field shown with why")
        field = d.find_element(By.ID, "token")
        self.assertEqual(field.get_attribute("type"), "password")
        self.assertEqual(d.find_element(By.CSS_SELECTOR, "label[for=token]").text,
                         "Registry token")
        self.assertFalse(self.js("return !!document.querySelector('tr[data-service]');"),
                         "the catalog shown without a token")
        self.wait_js("return document.getElementById('view').textContent.includes('only with a token');",
                     "the services page says it waits for a token")
        # A wrong one: it says so, and still lists nothing.
        self.type_into("#token", "not-a-token")
        self.act("#auth button[type=submit]", lambda el: el.click())
        self.wait_js("return document.getElementById('auth-msg').textContent"
                     ".includes('refused this token') &&"
                     " document.getElementById('auth-msg').textContent.includes('unknown token');",
                     "the page says the token is wrong")
        self.shot("9-acl-wrong-token")
        self.assertFalse(self.js("return !!document.querySelector('tr[data-service]');"),
                         "the catalog shown with a wrong token")
        # The right one: the instances, then the live stream.
        self.type_into("#token", self.READ)
        self.act("#auth button[type=submit]", lambda el: el.click())
        self.wait_js("return !!document.querySelector('tr[data-service=\"acl-probe\"]') &&"
                     " document.getElementById('auth-msg').textContent.includes('accepted') &&"
                     " document.getElementById('live').textContent.includes('live');",
                     "the instances listed with the token, live")
        self.assertEqual(self.js("return sessionStorage.getItem('registry-token');"), self.READ)
        self.register("acl-later", 9002)
        self.wait_js("return !!document.querySelector('tr[data-service=\"acl-later\"]');",
                     "a registration after the token came over the stream")
        self.shot("9-acl-token")
        # The token stays for the tab: a reload lists at once.
        d.refresh()
        self.wait_js("return !!document.querySelector('tr[data-service=\"acl-later\"]');",
                     "the reloaded page used the kept token")


if __name__ == "__main__":
    missing = [what for what, have in (("chromium", CHROMIUM), ("chromedriver", DRIVER),
                                       ("python3-selenium", HAVE_SELENIUM)) if not have]
    if missing:
        # The HTTP part still runs; the browser part is a loud skip.
        result = unittest.TextTestRunner(verbosity=2).run(
            unittest.defaultTestLoader.loadTestsFromTestCase(HeadersTest))
        sys.stderr.write("SKIP test_ui: %s not installed (scripts/deps.sh --test installs "
                         "chromium chromium-driver python3-selenium)\n" % ", ".join(missing))
        sys.exit(77 if result.wasSuccessful() else 1)
    unittest.main()
