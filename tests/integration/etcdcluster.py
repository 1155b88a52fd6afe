"""etcdcluster: a real etcd cluster of N members on loopback for the tests
(and the benchmark), Python standard library only.

    from etcdcluster import EtcdCluster, skip_without_etcd

    skip_without_etcd()              # exit 77 (ctest: skipped) without etcd
    with EtcdCluster(3) as cluster:
        cluster.endpoints            # "http://127.0.0.1:P1,http://..."
        cluster.kill(0)              # SIGKILL member 0
        cluster.start(0)             # start it again on its data dir
        cluster.wait_healthy()

Every member gets a free client and peer port, its data dir in one
temporary directory (removed by stop_all), short raft timings (heartbeat
50 ms, election 500 ms) so a lost leader is replaced quickly, and its log
in <tmp>/<name>.log. Processes are started in their own session and only
those are ever signalled.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ETCD_CANDIDATES = ("/usr/bin/etcd", "/usr/local/bin/etcd")


def etcd_binary():
    """The etcd server executable, or None when it is not installed."""
    for path in ETCD_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("etcd")


def skip_without_etcd():
    """Exit 77 (ctest SKIP_RETURN_CODE) when etcd is not installed."""
    if etcd_binary() is None:
        sys.stderr.write("SKIP: etcd is not installed (apt-get install etcd-server; "
                         "scripts/deps.sh --test installs it)\n")
        sys.exit(77)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(endpoint, path, body, timeout=3.0):
    """POST a JSON body to the v3 gateway; (status, parsed answer or None)."""
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, None
    except (OSError, ValueError):
        return 0, None


class EtcdCluster:
    """N etcd members on loopback; see the module comment."""

    def __init__(self, size=3, extra_args=()):
        self.binary = etcd_binary()
        if self.binary is None:
            raise RuntimeError("etcd is not installed")
        self.size = size
        self.extra_args = list(extra_args)
        self.tmp = tempfile.mkdtemp(prefix="etcdcluster-")
        self.names = ["m%d" % i for i in range(size)]
        self.client_ports = [_free_port() for _ in range(size)]
        self.peer_ports = [_free_port() for _ in range(size)]
        self.procs = [None] * size
        self.logs = [None] * size
        self.token = "svctest-%d-%d" % (os.getpid(), int(time.time() * 1000))
        self.initial = ",".join("%s=http://127.0.0.1:%d" % (n, p)
                                for n, p in zip(self.names, self.peer_ports))

    @property
    def urls(self):
        return ["http://127.0.0.1:%d" % p for p in self.client_ports]

    @property
    def endpoints(self):
        return ",".join(self.urls)

    def start(self, i):
        """Start member i (again, on its data dir when it ran before)."""
        if self.procs[i] is not None and self.procs[i].poll() is None:
            return
        name = self.names[i]
        data = os.path.join(self.tmp, name + ".etcd")
        state = "existing" if os.path.isdir(data) else "new"
        client = "http://127.0.0.1:%d" % self.client_ports[i]
        peer = "http://127.0.0.1:%d" % self.peer_ports[i]
        args = [self.binary, "--name", name, "--data-dir", data,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial,
                "--initial-cluster-state", state,
                "--initial-cluster-token", self.token,
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--logger", "zap", "--log-outputs", "stderr"] + self.extra_args
        if self.logs[i] is None:
            self.logs[i] = open(os.path.join(self.tmp, name + ".log"), "ab")
        env = dict(os.environ)
        env.pop("ETCDCTL_API", None)
        for k in list(env):
            if k.startswith("ETCD_"):
                env.pop(k)
        self.procs[i] = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=self.logs[i], stderr=self.logs[i],
                                         env=env, start_new_session=True)

    def start_all(self):
        for i in range(self.size):
            self.start(i)
        self.wait_healthy()
        return self

    def running(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def healthy(self, i):
        """Member i answers a linearizable read (it has a leader and a quorum)."""
        if not self.running(i):
            return False
        status, _ = post(self.urls[i], "/v3/kv/range", {"key": "aGVhbHRo"}, timeout=1.0)
        return status == 200

    def wait_healthy(self, members=None, timeout=30.0):
        """Wait until every running member (or the listed ones) is healthy."""
        deadline = time.monotonic() + timeout
        want = members if members is not None else [i for i in range(self.size) if self.running(i)]
        while time.monotonic() < deadline:
            if all(self.healthy(i) for i in want):
                return
            time.sleep(0.1)
        raise AssertionError("etcd members %s not healthy within %.0fs; logs in %s"
                             % (want, timeout, self.tmp))

    def _signal(self, i, sig, wait=10.0):
        p = self.procs[i]
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop(self, i):
        """SIGTERM member i and wait for it."""
        self._signal(i, signal.SIGTERM)

    def kill(self, i):
        """SIGKILL member i and wait for it."""
        self._signal(i, signal.SIGKILL)

    def restart(self, i):
        self.stop(i)
        self.start(i)

    def compact(self, revision, endpoint=None):
        """Compact the history up to revision (physical)."""
        return post(endpoint or self.urls[0], "/v3/kv/compaction",
                    {"revision": revision, "physical": True})

    def revision(self):
        for url in self.urls:
            status, body = post(url, "/v3/kv/range", {"key": "cmV2"}, timeout=1.0)
            if status == 200:
                return int(body["header"]["revision"])
        raise AssertionError("no etcd member answers")

    def stop_all(self, remove=True):
        for i in range(self.size):
            self.stop(i)
        for f in self.logs:
            if f is not None:
                f.close()
        self.logs = [None] * self.size
        if remove:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, i, n=30):
        try:
            with open(os.path.join(self.tmp, self.names[i] + ".log"), "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start_all()

    def __exit__(self, *exc):
        self.stop_all()


if __name__ == "__main__":
    skip_without_etcd()
    with EtcdCluster(3) as c:
        print(c.endpoints)
        print("revision", c.revision())
