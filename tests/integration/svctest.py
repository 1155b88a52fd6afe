"""svctest: helpers for integration tests that drive the real service
executables over HTTP on loopback.

Python standard library only: the tests run under the system interpreter
(/usr/bin/python3) from ctest and must see nothing but Debian's packages.

    from svctest import Service, request, wait_until

    svc = Service().start("registry", ["--port", "0", "--backend", "memory"])
    try:
        status, headers, body = request("GET", svc.url + "/health")
    finally:
        svc.close()

What it gives:
- Service: starts an executable from the build's bin directory with
  "--port 0", reads the real port from the "listening on http://HOST:PORT"
  log line, keeps every log line (a background thread drains stderr so the
  pipe never fills), stops it with a signal and reports the exit code, and
  kills it when anything goes wrong.
- request(): one HTTP request with http.client; returns
  (status, headers, body) and never raises on 4xx/5xx.
- wait_until(): poll a predicate until it holds or a deadline passes.
- timeout(): scale a deadline with SVC_TEST_TIMEOUT_SCALE (set it above 1 for
  slow builds such as AddressSanitizer on a loaded machine).

Environment:
  SVC_BIN_DIR             directory holding the executables
                          (default: <repo>/build/bin)
  SVC_TEST_TIMEOUT_SCALE  multiplies every deadline (default: 1)
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

__all__ = [
    "Service", "ServiceError", "WaitTimeout", "bin_dir", "binary_path",
    "request", "timeout", "wait_until",
]

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))

# Variables the services read their configuration from. They are removed from
# the environment a service inherits, so a developer's shell (PORT=8080, ...)
# cannot change what a test runs; pass them explicitly with env= instead.
SERVICE_ENV_VARS = (
    "PORT", "BIND", "REGISTRY_URL", "ADVERTISE_HOST", "LOG_LEVEL",
    "DATA_PATH", "STORE_BACKEND", "CLEANUP_INTERVAL", "DEREGISTER_AFTER",
    "TTL", "DATA_DIR", "IN_MEMORY", "FSYNC", "MESSAGE", "REPLICAS",
    "RETRY_DEADLINE", "RETRY_BASE", "RETRY_CAP", "MAX_CONNECTIONS",
    "TOKEN", "TOKEN_FILE", "ACL_TOKENS", "ACL_ANONYMOUS", "PEER_TOKEN",
    "PEER_TOKEN_FILE", "CHECK", "CHECK_INTERVAL", "DRAIN_DELAY",
    "DNS_PORT", "DNS_BIND", "DOMAIN", "DNS_TTL", "DATACENTER", "NODE_NAME",
)

# "2026-11-22T05:46:27.123Z INFO registry listening on http://127.0.0.1:43817"
LISTENING_RE = re.compile(r"listening on http://(\[[^\]]*\]|[^\s/:\[\]]+):(\d+)")


def bin_dir():
    """Directory holding the executables: $SVC_BIN_DIR or <repo>/build/bin."""
    return os.environ.get("SVC_BIN_DIR") or os.path.join(_REPO, "build", "bin")


def binary_path(name):
    """Absolute path of executable name in bin_dir()."""
    return os.path.join(bin_dir(), name)


def timeout(seconds):
    """A deadline of `seconds`, scaled by $SVC_TEST_TIMEOUT_SCALE."""
    try:
        scale = float(os.environ.get("SVC_TEST_TIMEOUT_SCALE", "1"))
    except ValueError:
        scale = 1.0
    return seconds * max(scale, 1.0)


class ServiceError(RuntimeError):
    """A service could not be started or stopped as expected. The message
    carries the service's log so the failure explains itself."""


class WaitTimeout(AssertionError):
    """wait_until() or Service.wait_for_log() ran out of time. An
    AssertionError, so unittest reports it as a failure of the behaviour."""


def wait_until(predicate, timeout=10.0, interval=0.05, message=None):
    """Call predicate() every `interval` seconds until it returns something
    truthy, and return that value. After `timeout` seconds (scaled, see
    timeout()) raise WaitTimeout naming `message`, the last value returned
    and the last exception raised by the predicate (exceptions count as
    "not yet", so a predicate may use assertions)."""
    deadline = time.monotonic() + _scaled(timeout)
    last_value = None
    last_error = None
    while True:
        try:
            last_value = predicate()
            last_error = None
            if last_value:
                return last_value
        except Exception as exc:  # not yet: remember why
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    text = message or getattr(predicate, "__name__", "condition")
    detail = "last value: %r" % (last_value,)
    if last_error is not None:
        detail += "; last error: %r" % (last_error,)
    raise WaitTimeout("timed out after %.1fs waiting for %s (%s)"
                      % (_scaled(timeout), text, detail))


def _scaled(seconds):
    return timeout(seconds)


def request(method, url, body=None, headers=None, timeout=10):
    """Send one HTTP request and return (status, headers, body).

    body: None (no body), dict or list (sent as JSON with Content-Type
    application/json), str (sent as UTF-8) or bytes (sent as they are).
    headers: extra request headers (override the defaults above).
    The returned headers are an http.client.HTTPMessage (case-insensitive
    .get()); the returned body is the parsed JSON when the reply says JSON or
    looks like it, else the text. 4xx/5xx replies are returned, not raised;
    connection failures do raise (OSError, http.client.HTTPException).
    timeout (seconds, scaled) bounds each socket operation."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise ValueError("only http:// URLs are supported: %r" % (url,))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query

    send_headers = {}
    data = None
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode("utf-8")
        send_headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    elif body is not None:
        raise TypeError("body must be dict, list, str, bytes or None")
    if headers:
        send_headers.update(headers)

    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                      timeout=_scaled(timeout))
    try:
        try:
            conn.request(method, path, body=data, headers=send_headers)
        except (BrokenPipeError, ConnectionResetError) as send_error:
            # A server may answer (413 Payload Too Large, say) and close
            # before it has read the whole body; its reply is what counts.
            try:
                resp = conn.getresponse()
            except Exception:
                raise send_error from None
        else:
            resp = conn.getresponse()
        raw = resp.read()
        return resp.status, resp.msg, _decode_body(resp.msg, raw)
    finally:
        conn.close()


def _decode_body(headers, raw):
    text = raw.decode("utf-8", errors="replace")
    ctype = (headers.get("Content-Type") or "").lower()
    stripped = text.lstrip()
    if "json" in ctype or stripped.startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


# Services still running when the interpreter exits are killed.
_live = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers():
    with _live_lock:
        leftovers = list(_live)
    for svc in leftovers:
        try:
            svc.kill()
        except Exception:
            pass


def _die_with_parent_fn():
    """A preexec_fn asking Linux to SIGKILL the child when the thread that
    started it dies, so a test runner killed hard leaves no servers behind.
    None where prctl is not available."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1
    sigkill = int(signal.SIGKILL)

    def preexec():
        prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0)

    return preexec


_PREEXEC = _die_with_parent_fn()


class Service:
    """One running executable.

    Typical use in a unittest.TestCase:

        svc = Service().start("registry", ["--port", "0", ...])
        self.addCleanup(svc.close)
        svc.request("GET", "/health")

    start() runs the binary in a fresh temporary working directory (removed
    by close()) unless cwd= is given, so relative default paths (such as a
    database file) never land in the source tree. Start services from the
    main thread: they are killed when the thread that started them exits.
    """

    def __init__(self):
        self.proc = None
        self.name = None
        self.args = []
        self.host = None
        self.port = None
        self.url = None
        self.cwd = None
        self._own_cwd = None
        self._lines = []          # stderr lines, without the newline
        self._out = []            # stdout lines
        self._cond = threading.Condition()
        self._readers = []
        self._stderr_eof = False
        self.signalled = None     # the signal stop()/kill() sent, if any

    # --- lifecycle ---------------------------------------------------------

    def start(self, binary_name, args=(), env=None, cwd=None,
              ready_timeout=15.0, inherit_env=True):
        """Start bin_dir()/binary_name with args and wait until it logs
        "listening on http://HOST:PORT"; then .host, .port and .url are set.

        env: variables to set on top of the inherited environment (from which
        SERVICE_ENV_VARS are removed); a value of None removes a variable.
        Raises ServiceError, with the collected log, when the binary is
        missing, exits early or is not listening within ready_timeout
        seconds (scaled); the process is then killed and the temporary
        working directory removed. Returns self."""
        if self.proc is not None:
            raise ServiceError("Service.start called twice")
        path = binary_name if os.sep in binary_name else binary_path(binary_name)
        if not os.access(path, os.X_OK):
            raise ServiceError(
                "executable not found: %s (build it first, or point "
                "SVC_BIN_DIR at the directory holding it)" % path)
        self.name = os.path.basename(path)
        self.args = [str(a) for a in args]

        child_env = dict(os.environ) if inherit_env else {}
        for var in SERVICE_ENV_VARS:
            child_env.pop(var, None)
        # The registry's DNS interface defaults to port 8600: tests run many
        # registries at once, so it is off unless a test asks for it (with
        # --dns-port or its own DNS_PORT).
        child_env["DNS_PORT"] = "0"
        for key, value in (env or {}).items():
            if value is None:
                child_env.pop(key, None)
            else:
                child_env[key] = str(value)

        if cwd is None:
            self._own_cwd = tempfile.mkdtemp(prefix="svctest-%s-" % self.name)
            cwd = self._own_cwd
        self.cwd = cwd

        try:
            self.proc = subprocess.Popen(
                [path] + self.args, cwd=cwd, env=child_env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True,
                preexec_fn=_PREEXEC)
        except OSError:
            self.close()
            raise
        with _live_lock:
            _live.add(self)
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stderr, True),
                             name="%s-stderr" % self.name, daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stdout, False),
                             name="%s-stdout" % self.name, daemon=True),
        ]
        for t in self._readers:
            t.start()

        try:
            match = self.wait_for_log(LISTENING_RE, ready_timeout)
        except WaitTimeout:
            code = self.proc.poll()
            self.close()  # the log stays readable for the message below
            if code is not None:
                raise ServiceError("%s exited with code %s before listening\n%s"
                                   % (self.name, code, self.describe())) from None
            raise ServiceError("%s did not log 'listening on' within %.1fs\n%s"
                               % (self.name, timeout(ready_timeout),
                                  self.describe())) from None
        host, port = match.group(1), int(match.group(2))
        self.host = host
        self.port = port
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host in ("[::]", "[0:0:0:0:0:0:0:0]"):
            host = "[::1]"
        self.url = "http://%s:%d" % (host, port)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Send sig and wait up to timeout seconds (scaled) for the process
        to exit. Returns its exit code (negative: killed by that signal, as
        in subprocess). If it does not exit in time it is killed and
        ServiceError is raised. Returns the known code when already gone."""
        if self.proc is None:
            raise ServiceError("service was never started")
        if self.proc.poll() is None:
            self.signalled = sig
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(_scaled(timeout))
            except subprocess.TimeoutExpired:
                self.kill()
                raise ServiceError("%s did not exit within %.1fs of signal %s\n%s"
                                   % (self.name, _scaled(timeout),
                                      signal.Signals(sig).name,
                                      self.describe())) from None
        self._finish()
        return self.proc.returncode

    def kill(self):
        """SIGKILL the process (if running) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signalled = signal.SIGKILL
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(_scaled(10))
            except subprocess.TimeoutExpired:
                pass
        self._finish()

    def close(self):
        """Kill the process if still running and remove the temporary
        working directory start() created. Safe to call more than once."""
        self.kill()
        if self._own_cwd is not None:
            shutil.rmtree(self._own_cwd, ignore_errors=True)
            self._own_cwd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _finish(self):
        for t in self._readers:
            t.join(_scaled(5))
        with _live_lock:
            _live.discard(self)

    # --- state -------------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def returncode(self):
        """Exit code once the process is gone, else None."""
        return self.proc.poll() if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # --- output ------------------------------------------------------------

    def _drain(self, stream, is_stderr):
        target = self._lines if is_stderr else self._out
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                with self._cond:
                    target.append(line)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass
            if is_stderr:
                with self._cond:
                    self._stderr_eof = True
                    self._cond.notify_all()

    def log_lines(self):
        """Every stderr line so far (a copy), oldest first."""
        with self._cond:
            return list(self._lines)

    def stdout_lines(self):
        """Every stdout line so far (a copy), oldest first."""
        with self._cond:
            return list(self._out)

    def log_text(self):
        return "\n".join(self.log_lines())

    def wait_for_log(self, regex, timeout=10.0, since=0):
        """Wait until a stderr line from index `since` on matches regex (a
        string or compiled pattern, searched with re.search) and return the
        match. Raises WaitTimeout, with the log, after timeout seconds
        (scaled) or as soon as stderr is closed with no match."""
        pattern = re.compile(regex) if isinstance(regex, str) else regex
        deadline = time.monotonic() + _scaled(timeout)
        index = since
        with self._cond:
            while True:
                while index < len(self._lines):
                    match = pattern.search(self._lines[index])
                    index += 1
                    if match:
                        return match
                if self._stderr_eof:
                    reason = "the log ended"
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reason = "%.1fs passed" % _scaled(timeout)
                    break
                self._cond.wait(min(remaining, 0.5))
        raise WaitTimeout("no log line matched %r (%s)\n%s"
                          % (pattern.pattern, reason, self.describe()))

    def describe(self, last=80):
        """The command line, state and the last `last` log lines, for
        failure messages."""
        lines = self.log_lines()
        shown = lines[-last:]
        head = "--- %s %s (pid %s, %s) ---" % (
            self.name, " ".join(self.args), self.pid,
            "running" if self.running() else "exit code %s" % self.returncode)
        if len(lines) > len(shown):
            head += "\n[... %d earlier lines ...]" % (len(lines) - len(shown))
        out = self.stdout_lines()
        body = "\n".join(shown) if shown else "(no log output)"
        if out:
            body += "\n--- stdout ---\n" + "\n".join(out[-last:])
        return head + "\n" + body + "\n--- end ---"

    # --- HTTP --------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=10):
        """request() against this service: path is like "/v1/services"."""
        if self.url is None:
            raise ServiceError("service is not listening")
        return request(method, self.url + path, body=body, headers=headers,
                       timeout=timeout)

    def __repr__(self):
        return "<Service %s pid=%s url=%s>" % (self.name, self.pid, self.url)


# --- helpers shared by the test modules ----------------------------------------

def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(binary_name, args, cwd, env=None, timeout_s=10):
    """Run bin_dir()/binary_name with args to completion (for options that
    exit at once); returns CompletedProcess with text stdout/stderr. The
    SERVICE_ENV_VARS of the caller's shell are removed, then env is applied.
    A service that starts serving instead of exiting is killed by
    subprocess.run and reported as a timeout."""
    child_env = dict(os.environ)
    for var in SERVICE_ENV_VARS:
        child_env.pop(var, None)
    child_env.update(env or {})
    return subprocess.run([binary_path(binary_name)] + list(args), cwd=cwd,
                          env=child_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True,
                          timeout=timeout(timeout_s))


class ServiceTestCase(unittest.TestCase):
    """A TestCase that checks the services it started when it ends, and
    asserts on the JSON replies every service gives.

    Register each started Service with addCleanup(self.finish_service, svc):
    after a passing test SIGTERM must end it with code 0; after a failing
    one it is killed and its log printed for the reader."""

    maxDiff = None

    def setUp(self):
        self._problems_at_start = self._problem_count()

    def _problem_count(self):
        """Failures and errors the test result has recorded so far (the
        result object is the only place that still knows during cleanups)."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return (len(getattr(result, "failures", ()))
                + len(getattr(result, "errors", ())))

    def _test_failed(self):
        return self._problem_count() > self._problems_at_start

    def finish_service(self, svc):
        """The end-of-test check described in the class comment."""
        if svc.proc is None:
            return
        if self._test_failed():
            svc.kill()
            sys.stderr.write("\n" + svc.describe() + "\n")
            return
        if not svc.running():
            code = svc.returncode
            if code != 0 and not svc.signalled:
                self.fail("%s exited with code %s during the test\n%s"
                          % (svc.name, code, svc.describe()))
            return
        code = svc.stop(signal.SIGTERM)
        if code != 0:
            self.fail("%s exited with code %s on SIGTERM at the end of the test\n%s"
                      % (svc.name, code, svc.describe()))

    def assertJsonContentType(self, headers, msg=""):
        ctype = headers.get("Content-Type") or ""
        self.assertEqual(ctype.split(";")[0].strip().lower(), "application/json",
                         "Content-Type is %r. %s" % (ctype, msg))

    def assertJsonOk(self, reply, status=200, what=""):
        """reply is a 'status' JSON reply with "success": true; returns body."""
        got, headers, body = reply
        msg = "%s: got %s %r" % (what, got, body)
        self.assertEqual(got, status, msg)
        self.assertJsonContentType(headers, msg)
        self.assertIsInstance(body, dict, msg)
        self.assertIs(body.get("success"), True, msg)
        return body

    def assertJsonError(self, reply, status, what=""):
        """reply is a 'status' reply with body {"success": false, "error":
        "<non-empty text>"} and Content-Type application/json."""
        got, headers, body = reply
        msg = "%s: got %s %r" % (what, got, body)
        self.assertEqual(got, status, msg)
        self.assertJsonContentType(headers, msg)
        self.assertIsInstance(body, dict, msg)
        self.assertIs(body.get("success"), False, msg)
        self.assertIsInstance(body.get("error"), str, msg)
        self.assertTrue(body["error"].strip(), msg)
        return body
