#!/usr/bin/env python3
"""`kubectl attach -i` and `kubectl run -i` / `run -it` against `fulcrum up`: containers with
`stdin: true` read what the user sends, `stdinOnce: true` closes their stdin when the session's
input ends, and `tty: true` containers run on a terminal that `kubectl run -it` drives (input,
output, its size), as Kubernetes users type them daily.

With kubectl 1.29 (SPDY/3.1) and 1.33 (WebSocket v5). Needs root, runc, the CNI plugins and the
demo image (FULCRUM_DEMO_IMAGE, set by CTest); skips otherwise. The last test restarts the
server: running containers are adopted, and their stdin, held by the agent, is gone (docs/agent.md).

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum FULCRUM_DEMO_IMAGE=build/demo-busybox.tar \\
     python3 tests/e2e/attach_test.py
"""

import json
import os
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

NODE = "e2e-attach"
POD_CIDR, BRIDGE = "10.244.96.0/24", "fup96"  # no other suite's, so that they run side by side
IMAGE = "fulcrum.dev/busybox:demo"
NEW = "1.33"
VERSIONS = ["1.29", "1.33"]  # SPDY/3.1, WebSocket v5

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %(image)s
    stdin: %(stdin)s
    stdinOnce: %(once)s
    command: ["sh", "-c", %(script)s]
"""


def pod_yaml(name, script, stdin=True, once=False):
    return POD % {"name": name, "image": IMAGE, "stdin": json.dumps(stdin),
                  "once": json.dumps(once), "script": json.dumps(script)}


def slug(version):
    return version.replace(".", "-")


@unittest.skipIf(e2e.containers_skip_reason(), e2e.containers_skip_reason())
class AttachTest(e2e.AllInOneTest):
    NODE, POD_CIDR, BRIDGE, KUBECTL = NODE, POD_CIDR, BRIDGE, NEW

    def start_pod(self, yaml, name):
        rc, out, err = self.k("apply", "-f", "-", input=yaml)
        self.assertEqual(rc, 0, out + err)
        e2e.poll(lambda: self.phase(name) == "Running", 120, what="pod %s Running" % name)

    def kubectl(self, version, *args, input=None):
        rc, out, err = self.server.kubectl(version)(*args, input=input, timeout=120)
        self.assertEqual(rc, 0, "kubectl %s %s failed: %s%s\n--- log ---\n%s"
                         % (version, " ".join(args), out, err, self.server.log_tail()))
        return out

    def test_attach_sends_stdin_to_a_container_with_stdin(self):
        for v in VERSIONS:
            with self.subTest(kubectl=v):
                name = "reader-" + slug(v)
                self.start_pod(pod_yaml(name, "read l; echo got:$l"), name)
                out = self.kubectl(v, "attach", "-i", name, input="hello-%s\n" % v)
                self.assertIn("got:hello-%s\n" % v, out)
                e2e.poll(lambda: self.phase(name) == "Succeeded", 60,
                         what="pod %s Succeeded" % name)
                self.assertEqual(self.kubectl(NEW, "logs", name), "got:hello-%s\n" % v)

    def test_stdin_once_closes_stdin_when_the_input_ends(self):
        for v in VERSIONS:
            with self.subTest(kubectl=v):
                name = "once-" + slug(v)
                self.start_pod(pod_yaml(name, "cat; echo eof-seen", once=True), name)
                out = self.kubectl(v, "attach", "-i", name, input="line one\nline two\n")
                self.assertEqual(out, "line one\nline two\neof-seen\n")

    def test_attach_without_stdin_enabled_is_refused(self):
        name = "no-stdin"
        self.start_pod(pod_yaml(name, "exec sleep 3600", stdin=False), name)
        for v in VERSIONS:
            with self.subTest(kubectl=v):
                rc, out, err = self.server.kubectl(v)("attach", "-i", name, input="x\n")
                self.assertNotEqual(rc, 0, out)
                self.assertIn('container "main" in pod "no-stdin" doesn\'t have stdin enabled',
                              err)

    def test_run_interactive_with_piped_input_and_rm(self):
        for v in VERSIONS:
            with self.subTest(kubectl=v):
                name = "run-i-" + slug(v)
                out = self.kubectl(v, "run", "-i", "--rm", "--restart=Never", name,
                                   "--image=" + IMAGE, "--", "sh", "-c", "read l; echo got:$l",
                                   input="piped-%s\n" % v)
                self.assertIn("got:piped-%s\n" % v, out)
                e2e.poll(lambda: self.pod(name) is None, 60, what="pod %s deleted" % name)

    def test_run_it_on_a_terminal(self):
        for v in VERSIONS:
            with self.subTest(kubectl=v):
                self.run_it(v)

    def run_it(self, version):
        name = "run-it-" + slug(version)
        k = self.server.kubectl(version)
        term = e2e.Terminal(k.argv(["run", "-it", "--rm", "--restart=Never", name,
                                    "--image=" + IMAGE, "--", "sh"]), k.env, rows=37, cols=111)
        try:
            self.assertTrue(term.read_until(b"try pressing enter", 120), term.output)
            term.write(b"echo hi-$((6*7)); tty\r")
            self.assertTrue(term.read_until(b"hi-42"), term.output)
            self.assertTrue(term.read_until(b"/dev/pts/"), term.output)

            # kubectl attach first sends a size one larger, then the real one (so that full-screen
            # programs redraw): ask until the real size has arrived.
            def real_size():
                term.write(b"busybox stty size\r")
                return term.read_until(b"37 111", 2)
            e2e.poll(real_size, 60, interval=0, what="the terminal's size 37 111 in the container")
            term.write(b"exit\r")
        finally:
            code = term.wait()
        self.assertEqual(code, 0, term.output)
        e2e.poll(lambda: self.pod(name) is None, 60, what="pod %s deleted" % name)

    # Runs last (the name sorts last): it restarts the server.
    def test_z_agent_restart_adopts_the_container_and_its_stdin_is_gone(self):
        name = "survivor"
        self.start_pod(pod_yaml(name, "while true; do sleep 1; done"), name)
        before = self.pod(name)["status"]["containerStatuses"][0]
        self.server.restart()
        e2e.poll(lambda: e2e.node_ready(self.k, NODE), 120, what="node %s Ready again" % NODE)
        refusals = []

        def refused():  # once the new agent knows the pod again
            rc, out, err = self.k("attach", "-i", name, input="x\n")
            refusals.append(err)
            return rc != 0 and "has lost its stdin" in err
        try:
            e2e.poll(refused, 120, interval=0.5, what="attach -i refused for the lost stdin")
        except AssertionError as e:
            raise AssertionError("%s; last answer: %s" % (e, refusals[-1:])) from None
        after = self.pod(name)["status"]["containerStatuses"][0]
        self.assertEqual(after["containerID"], before["containerID"])  # adopted, not restarted
        self.assertEqual(after["restartCount"], 0)
        self.assertIn("running", after["state"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
