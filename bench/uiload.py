#!/usr/bin/python3
"""bench/uiload.py: the dashboard's load on the registry (issue 12, Performance).

Run by bench/run.sh (part "ui") against a running suite; usable alone:

    bench/uiload.py --registry http://127.0.0.1:PORT --pid REGISTRY_PID

1. Reference: the registry's CPU and its request counters over DURATION s
   with no browser at all (the suite's own traffic: renewals, discovery,
   the facade's KV watches).
2. One headless chromium with TABS tabs (window handles of one driver),
   each on the default page /ui/ (services). Every tab has a host name of
   its own (tab<i>.uibench.test, mapped to 127.0.0.1 by
   --host-resolver-rules): chromium keeps at most 6 HTTP/1.1 connections
   per host, and every tab holds one open event stream, so on one host
   name the 7th tab would never load.
3. SETTLE s later, the same window with the tabs open and nothing changing.
4. The first load of /ui/ with a cold cache: the first tab of a fresh
   profile, Performance API transferSize (headers + body as received) of
   the navigation and every resource entry, summed; the other pages the
   same way in a tab with the cache disabled (CDP Network.setCacheDisabled);
   the callers page (the one with a timer) also gives its request rate
   over CALLERS_S s in that one tab.

Requests are counted twice: by the registry (its http_requests_total, by
route; a stream is counted when it ends, so an event stream that stays
open is not counted, one that breaks and reopens is) minus the reference
window, and by the browser (each tab's resource entries that started in
its window; an event stream appears there only once closed).

Prints "key=value" lines (the last one "ok=1"); run.sh reads them.
Every wait is bounded; the browser is always quit.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService

CLK_TCK = os.sysconf("SC_CLK_TCK")
CALLERS_S = 10  # the callers page's request rate is counted over this
TAB_HOST = "tab{}.uibench.test"
# Routes the page asks for (api.js, app.js): its files, the relay, the
# catalog read and the event stream.
PAGE_ROUTES = ("/ui", "/ui/{file*}", "/ui/relay", "/", "/v1/events")
METRIC_RE = re.compile(
    r'^http_requests_total\{route="([^"]*)",method="([^"]*)",status="([^"]*)"\} (\d+)')


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def scrape(base):
    """The registry's request counters {(route, method): n} and its
    registry_watchers gauge."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    counts = {}
    watchers = 0
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if m:
            key = (m.group(1), m.group(2))
            counts[key] = counts.get(key, 0) + int(m.group(4))
        elif line.startswith("registry_watchers "):
            watchers = int(float(line.split()[1]))
    return counts, watchers


def is_page_route(route, method):
    return route in PAGE_ROUTES or (route == "/v1/services" and method == "GET")


class Window:
    """CPU share and request counts of the registry between start() and
    stop()."""

    def __init__(self, base, pid):
        self.base, self.pid = base, pid

    def start(self):
        self.c0, self.w0 = scrape(self.base)
        self.t0, self.k0 = time.monotonic(), cpu_ticks(self.pid)

    def stop(self):
        self.t1, self.k1 = time.monotonic(), cpu_ticks(self.pid)
        self.c1, self.w1 = scrape(self.base)
        self.seconds = self.t1 - self.t0
        self.cpu_pct = 100.0 * (self.k1 - self.k0) / CLK_TCK / self.seconds
        self.delta = {}
        for key, n in self.c1.items():
            d = n - self.c0.get(key, 0)
            # our own two scrapes are not the pages' nor the suite's
            if key[0] == "/metrics":
                d -= 1
            if d > 0:
                self.delta[key] = d

    def total(self, page_only):
        return sum(n for (r, m), n in self.delta.items()
                   if not page_only or is_page_route(r, m))


def start_browser(args, profile):
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--user-data-dir=" + profile,
                "--host-resolver-rules=MAP *.uibench.test 127.0.0.1"):
        options.add_argument(arg)
    options.page_load_strategy = "normal"
    driver = webdriver.Chrome(service=DriverService(executable_path=args.driver), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    return driver


def wait_live(driver, seconds):
    """Wait (bounded) for the page's status line to say it follows the
    stream ("● live"); True when it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = driver.execute_script(
            "const e = document.getElementById('live'); return e ? e.textContent : ''")
        if text.startswith("\u25cf live"):
            return True
        time.sleep(0.1)
    return False


LOAD_JS = """
const nav = performance.getEntriesByType('navigation');
const res = performance.getEntriesByType('resource');
let bytes = 0, body = 0, decoded = 0, n = 0;
for (const e of nav.concat(res)) {
  bytes += e.transferSize; body += e.encodedBodySize; decoded += e.decodedBodySize; n++;
}
return {bytes, body, decoded, n, names: res.map((e) => e.name.replace(/^[a-z]+:\\/\\/[^/]*/, ''))};
"""


def page_load(driver, url):
    """Cold first load of url in a new tab with the cache disabled;
    {bytes, body, decoded, n, names} from the Performance API."""
    driver.switch_to.new_window("tab")
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    driver.get(url)
    wait_live(driver, 10)
    time.sleep(2.5)  # a page's own first fetches (the callers' relay reads)
    load = driver.execute_script(LOAD_JS)
    return load


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--registry", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--pid", type=int, required=True, help="the registry's pid")
    p.add_argument("--tabs", type=int, default=50)
    p.add_argument("--settle", type=float, default=10)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--driver", default="/usr/bin/chromedriver")
    args = p.parse_args()
    # TERM (run.sh's timeout or its EXIT trap) unwinds through the finally
    # below, so that the browser and its driver are quit, not left behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    base = args.registry.rstrip("/")
    port = int(base.rsplit(":", 1)[1])

    def tab_url(i, page=""):
        return "http://%s:%d/ui/%s" % (TAB_HOST.format(i), port, page)

    print("-- reference: %.0f s, no browser" % args.duration, file=sys.stderr)
    ref = Window(base, args.pid)
    ref.start()
    time.sleep(args.duration)
    ref.stop()

    profile = tempfile.mkdtemp(prefix="uiload-profile.")
    driver = None
    try:
        driver = start_browser(args, profile)
        # Tab 1 is the cold first load (a fresh profile); it opens first.
        handles = []
        print("-- opening %d tabs" % args.tabs, file=sys.stderr)
        for i in range(1, args.tabs + 1):
            if i > 1:
                driver.switch_to.new_window("tab")
            driver.get(tab_url(i))
            handles.append(driver.current_window_handle)
            if i == 1:
                live1 = wait_live(driver, 10)
                time.sleep(0.5)
                first = driver.execute_script(LOAD_JS)
        print("-- settling %.0f s" % args.settle, file=sys.stderr)
        time.sleep(args.settle)
        live = 0
        for h in handles:
            driver.switch_to.window(h)
            live += wait_live(driver, 2)

        # Each tab's window in its own clock (performance.now()).
        marks = []
        for h in handles:
            driver.switch_to.window(h)
            marks.append(driver.execute_script(
                "performance.setResourceTimingBufferSize(100000); return performance.now()"))
        print("-- measuring %.0f s with %d tabs" % (args.duration, len(handles)), file=sys.stderr)
        win = Window(base, args.pid)
        win.start()
        time.sleep(args.duration)
        win.stop()
        browser_reqs = 0
        browser_rate = 0.0
        for h, t0 in zip(handles, marks):
            driver.switch_to.window(h)
            got = driver.execute_script(
                "const t0 = arguments[0], t1 = performance.now();"
                "return [performance.getEntriesByType('resource')"
                ".filter((e) => e.startTime >= t0 && e.startTime < t1).length, t1 - t0];", t0)
            browser_reqs += got[0]
            browser_rate += got[0] / (got[1] / 1000.0)
        browser_rate /= len(handles)

        # The other pages' first loads, each in a tab with the cache disabled.
        loads = {"services": page_load(driver, tab_url(args.tabs + 1))}
        others = (("instances", "#/service/logging-service"), ("callers", "#/callers"),
                  ("kv", "#/kv/"), ("events", "#/events"))
        for i, (name, page) in enumerate(others):
            loads[name] = page_load(driver, tab_url(args.tabs + 2 + i, page))
            if name == "callers":
                # The one page with a timer (callers.js reads the facades'
                # and logging instances' counters through the relay): its
                # rate in the one tab shown, for information.
                t0 = driver.execute_script("return performance.now()")
                time.sleep(CALLERS_S)
                callers = driver.execute_script(
                    "const t0 = arguments[0], t1 = performance.now();"
                    "return [performance.getEntriesByType('resource')"
                    ".filter((e) => e.startTime >= t0 && e.startTime < t1).length, t1 - t0];", t0)
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

    tabs = len(handles)
    # The suite's own requests on the page's routes (if any) come off.
    page_extra = max(0.0, win.total(True) - ref.total(True) * win.seconds / ref.seconds)
    all_extra = max(0.0, win.total(False) - ref.total(False) * win.seconds / ref.seconds)
    out = {
        "tabs": tabs,
        "tabs_live": live,
        "first_tab_live": int(live1),
        "window_s": "%.2f" % win.seconds,
        "cpu_ref_pct": "%.3f" % ref.cpu_pct,
        "cpu_tabs_pct": "%.3f" % win.cpu_pct,
        "watchers_ref": ref.w1,
        "watchers_tabs_start": win.w0,
        "watchers_tabs": win.w1,
        "reg_page_reqs": win.total(True),
        "reg_page_reqs_ref": ref.total(True),
        "reg_all_reqs": win.total(False),
        "reg_all_reqs_ref": ref.total(False),
        "rps_per_tab": "%.4f" % (page_extra / tabs / win.seconds),
        "rps_per_tab_all": "%.4f" % (all_extra / tabs / win.seconds),
        "browser_reqs": browser_reqs,
        "browser_rps_per_tab": "%.4f" % browser_rate,
        "first_load_bytes": first["bytes"],
        "first_load_files": first["n"],
        "first_load_body_bytes": first["body"],  # the bodies alone, without headers
        "routes_tabs": json.dumps(sorted("%s %s %d" % (m, r, n) for (r, m), n in win.delta.items()),
                                  separators=(",", ":")),
        "routes_ref": json.dumps(sorted("%s %s %d" % (m, r, n) for (r, m), n in ref.delta.items()),
                                 separators=(",", ":")),
    }
    for name, load in loads.items():
        out["load_%s_bytes" % name] = load["bytes"]
        out["load_%s_files" % name] = load["n"]
    out["callers_reqs"] = callers[0]
    out["callers_rps"] = "%.4f" % (callers[0] / (callers[1] / 1000.0))
    out["load_services_names"] = json.dumps(first["names"], separators=(",", ":"))
    for k, v in out.items():
        print("%s=%s" % (k, v))
    print("ok=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
