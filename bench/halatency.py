#!/usr/bin/env python3
"""halatency.py: the change-to-other-replica latency of the ha benchmark.

    bench/halatency.py PORT_A PORT_B ROUNDS [NAME]

Each round parks a blocking read on replica B, GET
/v1/services?name=NAME&index=<B's X-Registry-Index>&wait=5m (in a thread,
on its own connection), waits until B's /metrics says one more
registry_watchers than before (parked), then registers an instance of
NAME on replica A (POST /v1/services, ttl 600, keep-alive connection) and
waits for B's answer, which must be a 200 with a higher X-Registry-Index
whose services list the new id. The latency is time.perf_counter() taken
just before the registration is sent on A and just after B's answer was
read in full (http.client, both sides; Python's own overhead is inside
the figure, a few hundred microseconds). "ack" is the same clock to A's
own 201, and "after_ack" the latency less it: how much later than A's
own answer B's came (negative when B answered first: A's 201 waits for
its commit to come back through A's watch too).

Prints a line per round and a last line:
    rounds=N p50_ms=X p99_ms=X max_ms=X ack_p50_ms=X ack_p99_ms=X
    after_ack_p50_ms=X after_ack_max_ms=X
Exit 0 only if every round completed; 1 otherwise. Every call has a 10 s
socket timeout and a round 30 s at most, so the run is bounded.
"""

import http.client
import json
import sys
import threading
import time

TIMEOUT = 10.0


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("X-Registry-Index"), r.read()
    finally:
        c.close()


def watchers(port):
    _, _, body = get(port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith("registry_watchers "):
            return float(line.split()[1])
    raise RuntimeError("no registry_watchers in /metrics of :%d" % port)


def pct(sorted_vals, q):
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * q))]


def one_round(port_a, port_b, name, rnd, conn_a):
    status, index, _ = get(port_b, "/v1/services?name=%s" % name)
    if status != 200 or index is None:
        raise RuntimeError("B answered %s without X-Registry-Index" % status)
    w0 = watchers(port_b)
    parked = {}

    def park():
        c = http.client.HTTPConnection("127.0.0.1", port_b, timeout=TIMEOUT)
        try:
            c.request("GET", "/v1/services?name=%s&index=%s&wait=5m" % (name, index))
            r = c.getresponse()
            body = r.read()
            parked["t"] = time.perf_counter()
            parked["status"] = r.status
            parked["index"] = r.getheader("X-Registry-Index")
            parked["body"] = body
        except OSError as e:
            parked["error"] = str(e)
        finally:
            c.close()

    th = threading.Thread(target=park, daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while watchers(port_b) < w0 + 1:
        if time.monotonic() > deadline or not th.is_alive():
            raise RuntimeError("the blocking read on B did not park: %s" % parked)
        time.sleep(0.005)
    body = json.dumps({"name": name, "host": "127.0.0.1", "port": 20000 + rnd, "ttl": 600,
                       "tags": ["bench", "v1"],
                       "metadata": {"zone": "local", "version": "1.0.0"}})
    t0 = time.perf_counter()
    conn_a.request("POST", "/v1/services", body=body,
                   headers={"Content-Type": "application/json"})
    r = conn_a.getresponse()
    answer = r.read()
    t_ack = time.perf_counter()
    if r.status != 201:
        raise RuntimeError("A answered %d: %r" % (r.status, answer))
    sid = json.loads(answer)["service_id"]
    th.join(20)
    if th.is_alive() or "t" not in parked:
        raise RuntimeError("no answer from B: %s" % parked.get("error", "timed out"))
    if parked["status"] != 200 or int(parked["index"] or 0) <= int(index):
        raise RuntimeError("B answered %s, index %s after %s" %
                           (parked["status"], parked["index"], index))
    ids = [s.get("id") for s in json.loads(parked["body"]).get("services", [])]
    if sid not in ids:
        raise RuntimeError("B's answer does not list %s" % sid)
    return parked["t"] - t0, t_ack - t0, index, parked["index"]


def main():
    if len(sys.argv) < 4:
        sys.stderr.write("usage: halatency.py PORT_A PORT_B ROUNDS [NAME]\n")
        return 2
    port_a, port_b, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    name = sys.argv[4] if len(sys.argv) > 4 else "lat"
    conn_a = http.client.HTTPConnection("127.0.0.1", port_a, timeout=TIMEOUT)
    lats, acks, afters = [], [], []
    try:
        for rnd in range(rounds):
            lat, ack, i0, i1 = one_round(port_a, port_b, name, rnd, conn_a)
            lats.append(lat * 1e3)
            acks.append(ack * 1e3)
            afters.append((lat - ack) * 1e3)
            print("round=%d latency_ms=%.3f ack_ms=%.3f index=%s->%s" %
                  (rnd + 1, lat * 1e3, ack * 1e3, i0, i1))
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        sys.stderr.write("halatency: round %d: %s\n" % (len(lats) + 1, e))
        return 1
    finally:
        conn_a.close()
    lats.sort()
    acks.sort()
    afters.sort()
    print("rounds=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f ack_p50_ms=%.3f ack_p99_ms=%.3f "
          "after_ack_p50_ms=%.3f after_ack_max_ms=%.3f" %
          (len(lats), pct(lats, 0.5), pct(lats, 0.99), lats[-1], pct(acks, 0.5),
           pct(acks, 0.99), pct(afters, 0.5), afters[-1]))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
