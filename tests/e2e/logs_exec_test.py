#!/usr/bin/env python3
"""`kubectl logs`, `exec` and `attach` through the API server to the agent's pod server, as a
user runs them against `fulcrum up`.

Needs root, runc, the CNI plugins and the demo image (FULCRUM_DEMO_IMAGE, set by CTest); skips
otherwise. Checks, with every kubectl from 1.27 to 1.33 for logs: -c, --tail, --timestamps,
--since, --previous (the run before a restart), -f (new lines arrive; the stream ends when the
container does), the errors kube-apiserver gives (a container the pod does not have, a pod with no
node, no previous run). Exec with kubectl 1.27 and 1.29 (SPDY/3.1) and 1.30 and 1.33 (WebSocket
v5): output and exit codes; with 1.27 and 1.33 stdin to its end (the v5 close signal, a SPDY FIN)
and -it on a terminal with its size. `kubectl attach` (1.27, 1.33) shows what the container writes
from then on, `attach -i` to a container without stdin is refused with the reason (stdin and
terminals: attach_test.py); `kubectl port-forward` (1.27 over SPDY, 1.33
falling back to it) reaches an httpd in the pod, and a port nothing listens on gives kubectl the
agent's error. The agent's pod server refuses clients without the API server's certificate.

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum FULCRUM_DEMO_IMAGE=build/demo-busybox.tar \\
     python3 tests/e2e/logs_exec_test.py
"""

import json
import os
import re
import socket
import ssl
import sys
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

NODE = "e2e-logs"
POD_CIDR, BRIDGE = "10.244.95.0/24", "fup95"  # no other suite's, so that they run side by side
IMAGE = "fulcrum.dev/busybox:demo"
NEW = "1.33"
ALL_VERSIONS = ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"]
SPDY_ONLY = ["1.27", "1.29"]  # exec, attach over SPDY/3.1
EXEC_VERSIONS = ["1.27", "1.29", "1.30", "1.33"]

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %(image)s
    command: ["sh", "-c", "echo first; echo second; echo third; exec sleep 3600"]
  - name: side
    image: %(image)s
    command: ["sh", "-c", "echo side says hi >&2; exec sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %(image)s
    # The writable layer survives the restart (container reuse): the second run knows it is one.
    command: ["sh", "-c", "n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; echo run $n; [ $n -ge 2 ] && exec sleep 3600; exit 1"]
---
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %(image)s
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: short}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: %(image)s
    command: ["sh", "-c", "echo begin; sleep 2; echo end"]
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %(image)s
    command: ["sh", "-c", "mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeSelector: {no-such-label: "true"}
  containers:
  - name: main
    image: %(image)s
    command: ["sleep", "3600"]
""" % {"image": IMAGE}


def wait_for_new_ticks(kubectl):
    """Waits until a background kubectl showing the ticker's output has shown a tick, then ticks
    written after it."""
    kubectl.wait_output(lambda out: "tick" in out, 30, "a first tick")
    seen = max(int(w) for w in kubectl.stdout.split() if w.isdigit())
    kubectl.wait_output(lambda out: ("tick %d\n" % (seen + 3)) in out, 30,
                        "ticks after tick %d" % seen)


@unittest.skipIf(e2e.containers_skip_reason(), e2e.containers_skip_reason())
class LogsExecTest(e2e.AllInOneTest):
    NODE, POD_CIDR, BRIDGE, KUBECTL = NODE, POD_CIDR, BRIDGE, NEW

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rc, out, err = cls.k("apply", "-f", "-", input=PODS)
        assert rc == 0, out + err
        for pod in ("talker", "ticker", "web"):
            e2e.poll(lambda: cls.phase(pod) == "Running", 120, what="pod %s Running" % pod)
        e2e.poll(lambda: cls.restarted_and_running("crasher"), 120,
                 what="pod crasher restarted once and running")
        e2e.poll(lambda: cls.phase("short") == "Succeeded", 120, what="pod short Succeeded")

    @classmethod
    def restarted_and_running(cls, name):
        p = cls.pod(name)
        for s in (p or {}).get("status", {}).get("containerStatuses", []):
            if s.get("restartCount", 0) >= 1 and "running" in s.get("state", {}):
                return True
        return False

    def kubectl(self, *args, version=NEW, input=None, timeout=e2e.KUBECTL_TIMEOUT):
        k = self.k if version == NEW else self.server.kubectl(version)
        rc, out, err = k(*args, input=input, timeout=timeout)
        self.assertEqual(rc, 0, "kubectl %s %s failed: %s%s\n--- log ---\n%s"
                         % (version, " ".join(map(str, args)), out, err, self.server.log_tail()))
        return out

    def fails(self, *args, version=NEW, input=None):
        k = self.k if version == NEW else self.server.kubectl(version)
        rc, out, err = k(*args, input=input)
        self.assertNotEqual(rc, 0, "kubectl %s %s succeeded: %s" % (version, " ".join(args), out))
        return rc, out, err

    # --- logs ----------------------------------------------------------------------------------

    def test_logs_with_every_kubectl(self):
        for v in ALL_VERSIONS:
            with self.subTest(kubectl=v):
                out = self.kubectl("logs", "talker", "-c", "main", version=v)
                self.assertEqual(out, "first\nsecond\nthird\n")
                self.assertEqual(self.kubectl("logs", "talker", "-c", "main", "--tail=1",
                                              version=v), "third\n")
                self.assertEqual(self.kubectl("logs", "talker", "-c", "side", version=v),
                                 "side says hi\n")
                self.assertEqual(self.kubectl("logs", "talker", "-c", "main", "--since=1h",
                                              version=v), "first\nsecond\nthird\n")
                stamped = self.kubectl("logs", "talker", "-c", "main", "--timestamps",
                                       "--tail=2", version=v).splitlines()
                self.assertEqual(len(stamped), 2)
                for line, text in zip(stamped, ["second", "third"]):
                    stamp, _, rest = line.partition(" ")
                    self.assertRegex(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")
                    self.assertEqual(rest, text)
                self.assertEqual(self.kubectl("logs", "crasher", "--previous", version=v),
                                 "run 1\n")
                self.assertEqual(self.kubectl("logs", "crasher", version=v), "run 2\n")

    def test_logs_errors_as_kube_apiserver_gives_them(self):
        _, _, err = self.fails("logs", "talker", "-c", "nope")
        self.assertIn("container nope is not valid for pod talker", err)
        _, _, err = self.fails("logs", "talker", "-c", "main", "--previous")
        self.assertIn('previous terminated container "main" in pod "talker" not found', err)
        _, _, err = self.fails("logs", "no-such-pod")
        self.assertIn('pods "no-such-pod" not found', err)
        # The raw API names the containers when there are several and none is given.
        rc, out, err = self.k("get", "--raw", "/api/v1/namespaces/default/pods/talker/log")
        self.assertNotEqual(rc, 0)
        self.assertIn("a container name must be specified for pod talker, choose one of: "
                      "[main side]", err)
        # A pod with no node has no log yet: kube-apiserver answers with an empty one.
        self.assertEqual(self.kubectl("logs", "nowhere"), "")

    def test_logs_follow_gets_new_lines_and_ends_with_the_container(self):
        follow = self.k.start("logs", "-f", "ticker")
        try:
            wait_for_new_ticks(follow)
        finally:
            follow.stop()
        # The container has exited: the followed log is what it wrote, and kubectl returns.
        self.assertEqual(self.kubectl("logs", "-f", "short", timeout=60), "begin\nend\n")

    # --- exec ----------------------------------------------------------------------------------

    def test_exec_output_and_exit_code(self):
        for v in EXEC_VERSIONS:
            with self.subTest(kubectl=v):
                rc, out, err = self.server.kubectl(v)(
                    "exec", "talker", "-c", "main", "--",
                    "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
                self.assertEqual(rc, 3, out + err)
                self.assertEqual(out, "to-out\n")
                self.assertIn("to-err", err)
        # -c picks the container: the side container's init is its own sleep.
        self.assertEqual(self.kubectl("exec", "talker", "-c", "side", "--", "cat",
                                      "/proc/1/cmdline"), "sleep\x003600\x00")

    def test_exec_stdin_to_its_end(self):
        for v in (SPDY_ONLY[0], NEW):
            with self.subTest(kubectl=v):
                out = self.kubectl("exec", "-i", "talker", "-c", "main", "--", "sh", "-c",
                                   "cat; echo after-eof", input="line one\nline two\n",
                                   version=v)
                self.assertEqual(out, "line one\nline two\nafter-eof\n")

    def test_exec_interactive_terminal(self):
        for v in (SPDY_ONLY[0], NEW):
            with self.subTest(kubectl=v):
                self.interactive_terminal(v)

    def interactive_terminal(self, version):
        k = self.server.kubectl(version)
        term = e2e.Terminal(k.argv(["exec", "-it", "talker", "-c", "main", "--", "sh"]), k.env,
                            rows=37, cols=111)
        try:
            self.assertTrue(term.read_until(b"# "), term.output)  # the shell's prompt
            term.write(b"busybox stty size; echo mark-$((6*7))\r")
            self.assertTrue(term.read_until(b"mark-42"), term.output)
            self.assertIn(b"37 111", term.output)
            term.write(b"exit 7\r")
        finally:
            code = term.wait()
        self.assertEqual(code, 7, term.output)

    def test_exec_errors(self):
        _, _, err = self.fails("exec", "nowhere", "--", "true")
        self.assertIn("pod nowhere does not have a host assigned", err)
        _, _, err = self.fails("exec", "talker", "-c", "nope", "--", "true")
        self.assertIn("container nope is not valid for pod talker", err)

    def test_attach_shows_new_output(self):
        for v in (SPDY_ONLY[0], NEW):
            with self.subTest(kubectl=v):
                attach = self.server.kubectl(v).start("attach", "ticker")
                try:
                    wait_for_new_ticks(attach)
                finally:
                    attach.stop()
        # The container has no stdin (stdin: true in its spec gives it one: attach_test.py).
        _, _, err = self.fails("attach", "-i", "talker", "-c", "main")
        self.assertIn('container "main" in pod "talker" doesn\'t have stdin enabled', err)

    def test_port_forward(self):
        for v in (SPDY_ONLY[0], NEW):
            with self.subTest(kubectl=v):
                forward = self.server.kubectl(v).start("port-forward", "pod/web", ":8080")
                try:
                    forward.wait_output(lambda out: "Forwarding from 127.0.0.1:" in out, 30,
                                        "kubectl port-forward listening")
                    port = int(re.search(r"Forwarding from 127\.0\.0\.1:(\d+)",
                                         forward.stdout).group(1))
                    for _ in range(2):  # a connection each
                        with urllib.request.urlopen("http://127.0.0.1:%d/" % port,
                                                    timeout=30) as r:
                            self.assertEqual(r.read(), b"hello from the pod\n")
                finally:
                    forward.stop()
        # Nothing listens on port 9: kubectl reports the agent's error for the connection.
        forward = self.k.start("port-forward", "pod/web", ":9")
        try:
            forward.wait_output(lambda out: "Forwarding from 127.0.0.1:" in out, 30,
                                "kubectl port-forward listening")
            port = int(re.search(r"Forwarding from 127\.0\.0\.1:(\d+)",
                                 forward.stdout).group(1))
            with self.assertRaises(Exception):
                urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=30).read()
            e2e.poll(lambda: "error forwarding port 9 to pod web" in forward.stderr, 30,
                     what="the forwarding error on kubectl's stderr")
        finally:
            forward.stop()

    # --- the agent's pod server ------------------------------------------------------------------

    def test_pod_server_refuses_clients_without_the_api_servers_certificate(self):
        node = json.loads(self.kubectl("get", "node", NODE, "-o", "json"))
        port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        self.assertGreater(port, 0)
        address = [a["address"] for a in node["status"]["addresses"]
                   if a["type"] == "InternalIP"][0]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        answer = b""
        try:
            with socket.create_connection((address, port), timeout=10) as raw:
                with context.wrap_socket(raw) as tls:
                    tls.sendall(b"GET /containerLogs/default/talker/main HTTP/1.1\r\n"
                                b"Host: x\r\nConnection: close\r\n\r\n")
                    while True:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        self.assertNotIn(b"first", answer)
        self.assertFalse(answer.startswith(b"HTTP/1.1 200"), answer)


if __name__ == "__main__":
    unittest.main(verbosity=2)
