#!/usr/bin/env python3
"""traffic.py: the HTTP side of the compose bring-up test (standard library).

  traffic.py batch URL OUT --count N --kill-at K --workers W --interval S -- CMD...
      POST N unique messages to URL/facade from W threads, the i-th one
      starting no earlier than i x S seconds after the first; once K of them
      have been answered, run CMD (e.g. `docker kill <container>`) once,
      while the rest are still being sent. Writes the outcome of every POST
      to OUT (JSON) and prints a one-line summary. Exits 0 when every POST
      got an HTTP answer (200 or not), CMD succeeded and some POSTs started
      after CMD had finished, else 1.
  traffic.py batch URL OUT --count N --kill-at K1,K2 ... -- CMD1... -- CMD2...
      The same with several commands, separated by a lone `--`: CMDj runs
      once Kj POSTs have been answered (the HA test kills an etcd node, then
      a registry replica). Exits 0 when every POST got an HTTP answer, every
      CMDj succeeded and some POSTs started after the last one had finished.
  traffic.py verify URL OUT
      GET URL/facade and check that every message acknowledged in OUT (200)
      is returned exactly once, and that no message of the batch is returned
      twice. Exits 0 or 1 with one line saying why.

Only the facade's published port on 127.0.0.1 is ever contacted.
"""
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

POST_TIMEOUT_S = 30  # above the facade's 10 s retry deadline
GET_TIMEOUT_S = 15


def post(url, text):
    """POST one message; return (status, body dict or None, seconds)."""
    body = json.dumps({"msg": text}).encode()
    req = urllib.request.Request(url + "/facade", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=POST_TIMEOUT_S) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return None, {"error": str(e)}, time.monotonic() - t0
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    return status, doc, time.monotonic() - t0


def batch(url, out, count, kill_ats, workers, interval, kill_cmds):
    """kill_ats[j]: after how many answers kill_cmds[j] runs (same lengths)."""
    tag = uuid.uuid4().hex[:8]
    texts = ["compose-test %s message %03d" % (tag, i) for i in range(count)]
    results = [None] * count
    lock = threading.Lock()
    nkill = len(kill_cmds)
    state = {"next": 0, "answered": 0, "killed": [None] * nkill, "kill_rc": [None] * nkill,
             "kill_end": [None] * nkill}

    def run_kill(j):
        try:
            proc = subprocess.run(kill_cmds[j], timeout=30, capture_output=True, text=True)
            state["kill_rc"][j] = proc.returncode
            if proc.returncode != 0:
                print("traffic: kill command %d failed: %s" % (j + 1, proc.stderr.strip()),
                      file=sys.stderr)
        except (OSError, subprocess.TimeoutExpired) as e:
            state["kill_rc"][j] = -1
            print("traffic: kill command %d failed: %s" % (j + 1, e), file=sys.stderr)
        state["kill_end"][j] = time.monotonic()

    def worker():
        while True:
            with lock:
                i = state["next"]
                if i >= count:
                    return
                state["next"] += 1
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            started = time.monotonic()
            status, doc, secs = post(url, texts[i])
            results[i] = {"msg": texts[i], "status": status, "seconds": round(secs, 3),
                          "started": started,
                          "uuid": (doc or {}).get("uuid"),
                          "error": None if status == 200 else doc}
            start_kill = None
            with lock:
                state["answered"] += 1
                for j in range(nkill):
                    if state["answered"] == kill_ats[j] and state["killed"][j] is None:
                        state["killed"][j] = threading.Thread(target=run_kill, args=(j,))
                        start_kill = state["killed"][j]
                        print("traffic: %d answered, running %s" % (kill_ats[j],
                                                                   " ".join(kill_cmds[j])),
                              flush=True)
            if start_kill is not None:
                start_kill.start()

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in state["killed"]:
        if t is not None:
            t.join()
    elapsed = time.monotonic() - start
    ends = state["kill_end"]
    kill_end = None if None in ends else max(ends)
    after = sum(1 for r in results if kill_end is not None and r["started"] > kill_end)

    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    acked = [r for r in results if r["status"] == 200 and r["uuid"]]
    unanswered = [r for r in results if r["status"] is None]
    other = [r for r in results if r["status"] not in (None, 200)]
    slowest = max(r["seconds"] for r in results)
    print("traffic: %d POSTs in %.1f s: %d acknowledged, %d answered %s, %d unanswered; "
          "slowest %.2f s; kill after %s answers exited %s, %d POSTs started after it"
          % (count, elapsed, len(acked), len(other),
             sorted({r["status"] for r in other}) if other else "non-200",
             len(unanswered), slowest, ",".join(str(k) for k in kill_ats),
             ",".join(str(rc) for rc in state["kill_rc"]), after))
    for r in (other + unanswered)[:5]:
        print("traffic:   %s -> %s %s" % (r["msg"], r["status"], r["error"]))
    if unanswered or any(rc != 0 for rc in state["kill_rc"]) or after == 0:
        return 1
    return 0


def verify(url, out):
    with open(out) as f:
        results = json.load(f)
    try:
        with urllib.request.urlopen(url + "/facade", timeout=GET_TIMEOUT_S) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        print("traffic: GET /facade failed: %s" % e)
        return 1
    logs = doc.get("logs", [])
    counts = {}
    for text in logs:
        counts[text] = counts.get(text, 0) + 1
    batch_texts = {r["msg"] for r in results}
    acked = [r["msg"] for r in results if r["status"] == 200 and r["uuid"]]
    missing = [t for t in acked if counts.get(t, 0) == 0]
    doubled = [t for t in batch_texts if counts.get(t, 0) > 1]
    errors = doc.get("errors", [])
    print("traffic: GET /facade: %d logs, %d of %d acknowledged present, %d missing, "
          "%d duplicated%s"
          % (len(logs), len(acked) - len(missing), len(acked), len(missing), len(doubled),
             ", errors %s" % errors if errors else ""))
    for t in (missing + doubled)[:5]:
        print("traffic:   %s seen %d times" % (t, counts.get(t, 0)))
    return 0 if not missing and not doubled and acked else 1


def main(argv):
    if len(argv) >= 3 and argv[0] == "verify":
        return verify(argv[1], argv[2])
    if len(argv) >= 3 and argv[0] == "batch" and "--" in argv:
        sep = argv.index("--")
        opts = dict(zip(argv[3:sep:2], argv[4:sep:2]))
        kill_ats = [int(k) for k in opts.get("--kill-at", "50").split(",")]
        cmds = [[]]
        for a in argv[sep + 1:]:
            if a == "--":
                cmds.append([])
            else:
                cmds[-1].append(a)
        if len(cmds) != len(kill_ats) or not all(cmds):
            print("traffic: --kill-at names %d points for %d commands"
                  % (len(kill_ats), len(cmds)), file=sys.stderr)
            return 2
        return batch(argv[1], argv[2], int(opts.get("--count", 100)), kill_ats,
                     int(opts.get("--workers", 4)), float(opts.get("--interval", 0.05)), cmds)
    print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
