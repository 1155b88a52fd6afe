#!/usr/bin/env python3
"""etcdup.py: a 3-member etcd cluster on loopback for bench/run.sh (the ha
part), a command-line wrapper around tests/integration/etcdcluster.py.

    bench/etcdup.py [SIZE]

Starts SIZE (default 3) members, waits until each answers a linearizable
read, then prints two lines on stdout and flushes them:

    endpoints=http://127.0.0.1:P1,http://127.0.0.1:P2,...
    pids=PID1 PID2 ...

and waits. On SIGTERM or SIGINT it stops every member (SIGTERM, then SIGKILL
after 10 s) and removes their data directory, then exits 0. The data
directory is made under $TMPDIR, so the caller can put it in its own
temp directory. Exit 77 when etcd is not installed, 1 when the cluster
did not become healthy (its members are stopped first).
"""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))

from etcdcluster import EtcdCluster, skip_without_etcd  # noqa: E402


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def main():
    skip_without_etcd()
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    cluster = EtcdCluster(size)
    try:
        try:
            cluster.start_all()
        except AssertionError as e:
            sys.stderr.write("etcdup: %s\n" % e)
            for i in range(size):
                sys.stderr.write(cluster.log_tail(i, 10) + "\n")
            return 1
        print("endpoints=%s" % cluster.endpoints)
        print("pids=%s" % " ".join(str(p.pid) for p in cluster.procs))
        sys.stdout.flush()
        while True:
            signal.pause()
    except _Stop:
        return 0
    finally:
        # stop_all ignores signals arriving meanwhile as a second _Stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cluster.stop_all()


if __name__ == "__main__":
    sys.exit(main())
