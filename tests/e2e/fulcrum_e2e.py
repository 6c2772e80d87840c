"""Harness for fulcrum's end-to-end tests: real server processes, real kubectl, raw HTTPS.

Standard library only. A test starts `fulcrum server` on 127.0.0.1:0 in a temporary directory,
waits (bounded) for DIR/kubeconfig and /readyz, and then talks to it with kubectl or with
ApiClient. Every process started here is stopped when its owner stops it, at interpreter exit,
or (through setpriv --pdeathsig) when the test process itself dies.

Configuration, each from argv first and the environment second:
  --fulcrum-bin PATH / FULCRUM_BIN                the server binary (CTest sets FULCRUM_BIN)
  --kubectl-versions 1.27,1.33 / FULCRUM_KUBECTL_VERSIONS
  --kubectl-dir DIR / FULCRUM_KUBECTL_DIR         where kubectl.<version> binaries live
  FULCRUM_E2E_KEEP=1                              keep temporary directories for inspection
"""

import atexit
import base64
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

DEFAULT_KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"
DEFAULT_KUBECTL_VERSIONS = "1.27,1.33"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
KUBECTL_TIMEOUT = 60.0

_config = {}


def parse_argv(argv=None):
    """Removes this harness's flags from argv (sys.argv by default) and records them.

    A bare first argument that names an existing file is taken as the fulcrum binary, so that
    `kubectl_test.py build/cmd/fulcrum/fulcrum` works. Everything else is left for unittest.
    """
    argv = sys.argv if argv is None else argv
    rest = [argv[0]] if argv else []
    flags = {"--fulcrum-bin": "fulcrum_bin", "--kubectl-versions": "kubectl_versions",
             "--kubectl-dir": "kubectl_dir"}
    i = 1
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in flags:
            if not eq:
                if i + 1 >= len(argv):
                    raise SystemExit("%s needs a value" % name)
                i += 1
                value = argv[i]
            _config[flags[name]] = value
        elif (i == 1 and not arg.startswith("-") and "/" in arg and os.path.isfile(arg)
              and os.access(arg, os.X_OK)):
            _config["fulcrum_bin"] = arg
        else:
            rest.append(arg)
        i += 1
    argv[:] = rest
    return argv


def fulcrum_bin():
    path = _config.get("fulcrum_bin") or os.environ.get("FULCRUM_BIN")
    if not path:
        raise RuntimeError("no fulcrum binary: set FULCRUM_BIN or pass --fulcrum-bin PATH")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise RuntimeError("fulcrum binary %s is not an executable file" % path)
    return path


def kubectl_versions():
    text = _config.get("kubectl_versions") or os.environ.get("FULCRUM_KUBECTL_VERSIONS") \
        or DEFAULT_KUBECTL_VERSIONS
    return [v.strip() for v in re.split(r"[,;\s]+", text) if v.strip()]


def kubectl_path(version):
    directory = _config.get("kubectl_dir") or os.environ.get("FULCRUM_KUBECTL_DIR") \
        or DEFAULT_KUBECTL_DIR
    return os.path.join(directory, "kubectl." + version)


def poll(predicate, timeout, interval=0.05, what="condition"):
    """Calls predicate until it returns a true value, for at most `timeout` seconds.

    Returns that value; raises AssertionError naming `what` on timeout. The only waiting the
    tests do is this bounded polling.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_error = e
        if time.monotonic() >= deadline:
            suffix = " (last error: %r)" % (last_error,) if last_error else ""
            raise AssertionError("timed out after %.0fs waiting for %s%s" % (timeout, what, suffix))
        time.sleep(interval)


# --- processes -------------------------------------------------------------------------------

_live_processes = set()
_live_lock = threading.Lock()
_temp_dirs = []


def _track(proc):
    with _live_lock:
        _live_processes.add(proc)


def _untrack(proc):
    with _live_lock:
        _live_processes.discard(proc)


def _kill_all():
    with _live_lock:
        procs = list(_live_processes)
        _live_processes.clear()
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    if not os.environ.get("FULCRUM_E2E_KEEP"):
        for d in _temp_dirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_kill_all)


def _on_terminate(signum, frame):
    # CTest's timeout, or a Ctrl-C: unwind so that atexit stops the servers.
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _on_terminate)

_SETPRIV = shutil.which("setpriv")


def _with_pdeathsig(argv):
    """Makes the child die with the test process even if that is SIGKILLed (Linux)."""
    if _SETPRIV and sys.platform.startswith("linux"):
        return [_SETPRIV, "--pdeathsig", "KILL", "--"] + list(argv)
    return list(argv)


def containers_skip_reason():
    """Why suites that run real containers cannot run here (root, runc, the CNI plugins, the
    demo image from FULCRUM_DEMO_IMAGE), or None when they can."""
    if os.geteuid() != 0:
        return "needs root (runs containers and creates a bridge)"
    for path in ("/usr/sbin/runc", "/usr/lib/cni/bridge"):
        if not os.path.exists(path):
            return "%s missing (scripts/install-deps.sh)" % path
    image = os.environ.get("FULCRUM_DEMO_IMAGE", "")
    if not image or not os.path.exists(image):
        return "FULCRUM_DEMO_IMAGE is not set or missing; run through ctest"
    return None


def start_all_in_one(node, pod_cidr, bridge, extra_args=()):
    """Starts `fulcrum up` for `node` (its pod CIDR and bridge, plus `extra_args`) with the demo
    image (FULCRUM_DEMO_IMAGE) imported into the agent's store before any pod needs it. Returns
    the started Server; the caller waits for the node (node_ready) and stops it."""
    server = Server(command="up", extra_args=[
        "--node-name", node, "--pod-cidr", pod_cidr, "--bridge", bridge] + list(extra_args))
    root = os.path.join(server.data_dir, "agent")
    os.makedirs(root, exist_ok=True)
    out = subprocess.run([fulcrum_bin(), "image", "import", os.environ["FULCRUM_DEMO_IMAGE"],
                          "--root", root], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return server.start()


class AllInOneTest(unittest.TestCase):
    """A suite against one `fulcrum up` for node NODE with pod CIDR POD_CIDR on bridge BRIDGE
    (each suite its own, so that suites run side by side), driven with kubectl KUBECTL as `k`;
    its pods are deleted and the server stopped at the end."""

    NODE = POD_CIDR = BRIDGE = None
    KUBECTL = "1.33"

    @classmethod
    def setUpClass(cls):
        cls.server = start_all_in_one(cls.NODE, cls.POD_CIDR, cls.BRIDGE)
        cls.k = cls.server.kubectl(cls.KUBECTL)
        poll(lambda: cls.k("get", "node", cls.NODE)[0] == 0, 60, what="node %s" % cls.NODE)

    @classmethod
    def tearDownClass(cls):
        cls.k("delete", "pods", "--all", "--wait=true", "--grace-period=1", timeout=120)
        rc, killed = cls.server.stop(timeout=60)
        subprocess.run(["ip", "link", "del", cls.BRIDGE], capture_output=True)  # the CNI bridge
        assert not killed, "fulcrum up did not stop on SIGTERM:\n" + cls.server.log_tail()

    @classmethod
    def pod(cls, name):
        """Pod `name` as JSON, None when there is none."""
        rc, out, _ = cls.k("get", "pod", name, "-o", "json")
        return json.loads(out) if rc == 0 else None

    @classmethod
    def phase(cls, name):
        p = cls.pod(name)
        return p and p.get("status", {}).get("phase")


def node_ready(kubectl, node):
    """Whether `node`'s Ready condition is True, as `kubectl` (a Kubectl) sees it."""
    rc, out, _ = kubectl("get", "node", node, "-o", "json")
    if rc != 0:
        return False
    for c in json.loads(out)["status"].get("conditions", []):
        if c["type"] == "Ready":
            return c["status"] == "True"
    return False


def make_temp_dir(prefix="fulcrum-e2e-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _temp_dirs.append(d)
    return d


# --- kubeconfig ------------------------------------------------------------------------------

class Kubeconfig:
    """The three things a client needs from DIR/kubeconfig: server URL, CA, bearer token."""

    def __init__(self, path):
        self.path = path
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.text = text
        self.server = self._field(text, "server")
        token = self._field(text, "token")
        ca_data = self._field(text, "certificate-authority-data", required=False)
        if ca_data:
            self.ca_pem = base64.b64decode(ca_data).decode("ascii")
        else:
            ca_file = self._field(text, "certificate-authority")
            with open(os.path.join(os.path.dirname(path), ca_file), encoding="ascii") as f:
                self.ca_pem = f.read()
        self.token = token
        url = urllib.parse.urlsplit(self.server)
        if url.scheme != "https" or not url.port:
            raise ValueError("kubeconfig server %r is not https://HOST:PORT" % self.server)
        self.host = url.hostname
        self.port = url.port
        ns = self._field(text, "namespace", required=False)
        self.namespace = ns

    @staticmethod
    def _field(text, key, required=True):
        m = re.search(r"^\s*-?\s*%s:\s*(\S+)\s*$" % re.escape(key), text, re.MULTILINE)
        if not m:
            if required:
                raise ValueError("kubeconfig has no %s" % key)
            return None
        return m.group(1).strip("\"'")


# --- raw HTTPS client ------------------------------------------------------------------------

class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # dict, lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def json_or_none(self):
        try:
            return self.json()
        except (ValueError, UnicodeDecodeError):
            return None

    def __repr__(self):
        text = self.body[:600].decode("utf-8", "replace")
        return "HTTP %d %s: %s" % (self.status, self.reason, text)


class ApiClient:
    """HTTPS to the server with the kubeconfig's CA (hostname checked) and bearer token.

    request() opens a connection per call; session() returns one kept alive for many calls
    (not thread-safe: one per thread).
    """

    def __init__(self, kubeconfig, timeout=30.0):
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self.context = ssl.create_default_context(cadata=kubeconfig.ca_pem)

    def connect(self):
        return http.client.HTTPSConnection(self.kubeconfig.host, self.kubeconfig.port,
                                           context=self.context, timeout=self.timeout)

    def headers(self, body, content_type, headers, token):
        h = {"Accept": "application/json"}
        if token is True:
            h["Authorization"] = "Bearer " + self.kubeconfig.token
        elif token:
            h["Authorization"] = "Bearer " + token
        if body is not None:
            h["Content-Type"] = content_type
        h.update(headers or {})
        return h

    @staticmethod
    def encode(body):
        if body is None or isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode("utf-8")
        return json.dumps(body).encode("utf-8")

    def request(self, method, path, body=None, content_type="application/json", headers=None,
                token=True):
        conn = self.connect()
        try:
            return _do_request(conn, method, path, self.encode(body),
                               self.headers(body, content_type, headers, token))
        finally:
            conn.close()

    def session(self):
        return Session(self)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body, content_type="application/merge-patch+json", **kw):
        return self.request("PATCH", path, body, content_type=content_type, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def send_large(self, method, path, total_bytes, content_type="application/json",
                   prefix=b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"huge"},'
                          b'"data":{"k":"', suffix=b'"}}', chunk=64 * 1024, timeout=60.0):
        """Sends a body of total_bytes (valid JSON by default), stopping early if the server
        answers first, and returns the server's Response.

        A server may answer 413 and close before the body is fully sent; reading that answer
        between chunks avoids losing it to a connection reset.
        """
        raw = socket.create_connection((self.kubeconfig.host, self.kubeconfig.port),
                                       timeout=timeout)
        sock = self.context.wrap_socket(raw, server_hostname=self.kubeconfig.host)
        try:
            head = ("%s %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: %s\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n"
                    % (method, path, self.kubeconfig.host, self.kubeconfig.port,
                       self.kubeconfig.token, content_type, total_bytes)).encode("ascii")
            deadline = time.monotonic() + timeout
            filler_end = total_bytes - len(suffix)
            block = b"x" * chunk
            try:
                sock.sendall(head)
                sock.sendall(prefix)
                sent = len(prefix)
                while sent < total_bytes and time.monotonic() < deadline:
                    readable, _, _ = select.select([sock], [], [], 0)
                    if readable or sock.pending():
                        break  # the server has answered already
                    piece = block[:filler_end - sent] if sent < filler_end else suffix
                    sock.sendall(piece)
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
                pass  # the server stopped reading; its answer may still be there
            return _read_response(sock, deadline)
        finally:
            sock.close()


class Session:
    def __init__(self, client):
        self.client = client
        self.conn = client.connect()

    def request(self, method, path, body=None, content_type="application/json", headers=None,
                token=True):
        return _do_request(self.conn, method, path, self.client.encode(body),
                           self.client.headers(body, content_type, headers, token))

    def close(self):
        self.conn.close()


def _do_request(conn, method, path, body, headers):
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return Response(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, data)


def _read_response(sock, deadline):
    """Reads one HTTP/1.1 response from a socket (Content-Length, chunked, or until close)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            raise TimeoutError("no response head from server")
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection without a response; got %r"
                                  % buf[:200])
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()

    def more():
        try:
            return sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, socket.timeout):
            return b""

    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n and time.monotonic() < deadline:
            data = more()
            if not data:
                break
            rest += data
        body = rest[:n]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while time.monotonic() < deadline:
            while b"\r\n" not in rest:
                data = more()
                if not data:
                    break
                rest += data
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            while len(rest) < size + 2:
                data = more()
                if not data:
                    break
                rest += data
            body += rest[:size]
            rest = rest[size + 2:]
    else:
        body = rest
        while time.monotonic() < deadline:
            data = more()
            if not data:
                break
            body += data
    return Response(status, reason, headers, body)


# --- the server ------------------------------------------------------------------------------

class Server:
    """One `fulcrum server` process on 127.0.0.1:0 with its data directory.

    start() blocks until the kubeconfig is written and /readyz answers 200 (at most
    START_TIMEOUT), or raises with the tail of the server's log. stop() sends SIGTERM and
    escalates to SIGKILL; kill() sends SIGKILL. Both can be followed by start() on the same
    data directory.
    """

    def __init__(self, data_dir=None, extra_args=(), command="server"):
        self.command = command  # "server", or "up" for the all-in-one cluster
        self.root = make_temp_dir()
        self.data_dir = data_dir or os.path.join(self.root, "data")
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = None
        self.starts = 0
        self.kubeconfig = None
        self.client = None
        self._log_file = None

    @property
    def kubeconfig_path(self):
        return os.path.join(self.data_dir, "kubeconfig")

    def start(self, timeout=START_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        os.makedirs(self.data_dir, exist_ok=True)
        # A kubeconfig left by an earlier run names the old port; wait for the new one.
        try:
            os.remove(self.kubeconfig_path)
        except FileNotFoundError:
            pass
        self.starts += 1
        self.log_path = os.path.join(self.root, "server-%d.log" % self.starts)
        self._log_file = open(self.log_path, "wb")
        argv = [fulcrum_bin(), self.command, "--data-dir", self.data_dir,
                "--listen", "127.0.0.1:0"] + self.extra_args
        self.proc = subprocess.Popen(_with_pdeathsig(argv), stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT)
        _track(self.proc)
        try:
            self.kubeconfig = poll(self._load_kubeconfig, timeout, what="DIR/kubeconfig")
            self.client = ApiClient(self.kubeconfig)
            poll(self._ready, max(1.0, timeout), what="/readyz to answer 200")
        except BaseException as e:
            log = self.log_tail()
            self.kill()
            raise AssertionError("fulcrum server did not become ready: %s\n--- server log ---\n%s"
                                 % (e, log)) from None
        return self

    def _load_kubeconfig(self):
        if self.proc.poll() is not None:
            raise AssertionError("server exited with %d before writing its kubeconfig"
                                 % self.proc.returncode)
        if not os.path.exists(self.kubeconfig_path):
            return None
        return Kubeconfig(self.kubeconfig_path)

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("server exited with %d" % self.proc.returncode)
        return self.client.request("GET", "/readyz", token=False).status == 200

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout`. Returns (exit code, needed SIGKILL)."""
        if self.proc is None:
            return None, False
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait(timeout=10)
        rc = self.proc.returncode
        self._finish()
        return rc, killed

    def kill(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        rc = self.proc.returncode
        self._finish()
        return rc

    def _finish(self):
        _untrack(self.proc)
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def restart(self):
        self.stop()
        return self.start()

    def log_tail(self, n=40):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def kubectl(self, version):
        return Kubectl(self, version)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# --- kubectl ---------------------------------------------------------------------------------

class Kubectl:
    """An unmodified kubectl of one version, pointed at a server's kubeconfig.

    Discovery cache and HOME are per server, so nothing outside the temp dir is touched.
    """

    def __init__(self, server, version):
        self.server = server
        self.version = version
        self.binary = kubectl_path(version)
        if not os.access(self.binary, os.X_OK):
            raise AssertionError("kubectl %s not found at %s" % (version, self.binary))
        self.home = os.path.join(server.root, "home-" + version)
        os.makedirs(self.home, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        self.env["HOME"] = self.home
        self.env["NO_PROXY"] = "127.0.0.1"
        self.env["no_proxy"] = "127.0.0.1"

    def argv(self, args):
        return ([self.binary, "--kubeconfig", self.server.kubeconfig_path,
                 "--cache-dir", os.path.join(self.home, "cache")] + [str(a) for a in args])

    def __call__(self, *args, input=None, timeout=KUBECTL_TIMEOUT):
        """Runs kubectl; returns (returncode, stdout, stderr) as text."""
        try:
            p = subprocess.run(_with_pdeathsig(self.argv(args)), input=input,
                               capture_output=True, text=True, env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            return -1, out, err + "\n[e2e] kubectl timed out after %ss" % timeout
        return p.returncode, p.stdout, p.stderr

    def start(self, *args):
        """Starts kubectl in the background (for get -w, wait); see Background."""
        return Background(self.argv(args), self.env)


class Terminal:
    """A process on a new pseudo-terminal of `rows` x `cols`, as a user at a terminal runs it
    (kubectl exec -it, run -it): write what the user types, read what the terminal shows."""

    def __init__(self, argv, env, rows, cols):
        import fcntl
        import pty
        import struct
        import termios
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        # Set after the fork: the size change reaches the process as SIGWINCH, as a window's does.
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.output = b""
        self.closed = False

    def write(self, data):
        os.write(self.fd, data)

    def read_until(self, marker, timeout=60):
        """Reads what the terminal shows until it holds `marker` (bytes), the process closed the
        terminal, or `timeout`; returns whether the marker came."""
        def more():
            r, _, _ = select.select([self.fd], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: every process on the terminal has gone
                    chunk = b""
                if not chunk:
                    self.closed = True
                self.output += chunk
            return self.closed or marker in self.output
        try:
            poll(more, timeout, interval=0, what="%r on the terminal" % marker)
        except AssertionError:
            pass
        return marker in self.output

    def wait(self, timeout=60):
        """Reads until the process closes the terminal; returns its exit code (-N for signal N).
        A process still there after `timeout` is killed (a failed test must not hang)."""
        self.read_until(b"\x00never", timeout)
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


class Background:
    """A background process whose stdout/stderr lines are collected by reader threads."""

    def __init__(self, argv, env):
        self.argv = argv
        self.proc = subprocess.Popen(_with_pdeathsig(argv), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        _track(self.proc)
        self._lock = threading.Lock()
        self._out = []
        self._err = []
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self._out),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self._err),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, stream, sink):
        for raw in iter(stream.readline, b""):
            with self._lock:
                sink.append(raw.decode("utf-8", "replace"))

    @property
    def stdout(self):
        with self._lock:
            return "".join(self._out)

    @property
    def stderr(self):
        with self._lock:
            return "".join(self._err)

    def wait_output(self, predicate, timeout, what):
        """Polls until predicate(stdout) is true, or fails with what was seen."""
        try:
            return poll(lambda: predicate(self.stdout), timeout, what=what)
        except AssertionError as e:
            raise AssertionError("%s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                                 % (e, self.stdout, self.stderr)) from None

    def wait(self, timeout):
        """Waits for exit; returns the exit code, or None if still running after timeout."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close()
        return rc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._close()
        return self.proc.returncode

    def _close(self):
        for t in self._threads:
            t.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if not stream.closed:
                stream.close()
        _untrack(self.proc)


# --- small helpers for tests -----------------------------------------------------------------

def write_manifest(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def status_summary(resp):
    """'409 Conflict: message' for assertion messages."""
    body = resp.json_or_none()
    if isinstance(body, dict) and body.get("kind") == "Status":
        return "%d %s: %s" % (resp.status, body.get("reason"), body.get("message"))
    return repr(resp)


def main():
    """unittest.main with this harness's flags removed and a verbose summary."""
    import unittest
    parse_argv()
    unittest.main(module="__main__", verbosity=2)
