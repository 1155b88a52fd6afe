#!/usr/bin/python3
"""etcd_run: run a test program against a real 3-member etcd cluster on
loopback (etcdcluster.py), with ETCD_ENDPOINTS set to its client URLs and
ETCD_PIDS to its members' process ids (in the same order; a test may kill
one), and exit with the program's code. Exits 77 (skipped) when etcd is not installed.

Run:  /usr/bin/python3 tests/integration/etcd_run.py build/bin/test_etcd_follow [args...]
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from etcdcluster import EtcdCluster, skip_without_etcd  # noqa: E402


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: etcd_run.py PROGRAM [ARGS...]\n")
        return 2
    skip_without_etcd()
    with EtcdCluster(3) as cluster:
        env = dict(os.environ, ETCD_ENDPOINTS=cluster.endpoints,
                   ETCD_PIDS=",".join(str(p.pid) for p in cluster.procs))
        try:
            code = subprocess.run(argv[1:], env=env, timeout=240).returncode
        except subprocess.TimeoutExpired:
            sys.stderr.write("etcd_run: %s did not finish within 240 s\n" % argv[1])
            code = 1
        if code != 0:
            for i in range(cluster.size):
                sys.stderr.write("--- etcd member %d log tail ---\n%s\n"
                                 % (i, cluster.log_tail(i)))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
