#!/usr/bin/env python3
"""Two nodes, one server: each `fulcrum agent` runs in a network namespace of its own that acts as
a host (eth0 on a bridge of the test's own, as two machines on one switch), against one
`fulcrum server` listening on that bridge. Pods on different nodes reach each other by pod IP,
without NAT: the server pod's CGI script answers with the address it sees, which must be the
client pod's own IP (the agents route each other's pod CIDRs, host-gw, from --cluster-cidr); and
`kubectl exec` and `kubectl logs` reach the pods on both nodes through the API server.

Needs root, runc, the CNI plugins and the demo image (FULCRUM_DEMO_IMAGE, set by CTest); skips
otherwise.

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum FULCRUM_DEMO_IMAGE=build/demo-busybox.tar \
     python3 tests/e2e/multinode_test.py
"""

import json
import os
import signal
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

N = os.getpid() % 200 + 20
HOST_NET = "10.250.%d" % N            # the "switch" between the two hosts and the server
CLUSTER_CIDR = "10.252.0.0/16"        # pod CIDRs live in the hosts' own namespaces
NODES = [("node-a", "fmna%d" % os.getpid(), HOST_NET + ".2", "10.252.1.0/24"),
         ("node-b", "fmnb%d" % os.getpid(), HOST_NET + ".3", "10.252.2.0/24")]
BRIDGE = "fmn%d" % os.getpid()


def sh(*argv, check=True):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(argv), p.stderr))
    return p.stdout


SERVER_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: server
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: fulcrum.dev/busybox:demo
    command: ["sh", "-c"]
    args:
    - |
      mkdir -p /www/cgi-bin
      printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip
      chmod +x /www/cgi-bin/ip
      exec httpd -f -p 8080 -h /www
"""

CLIENT_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  nodeName: node-b
  terminationGracePeriodSeconds: 1
  volumes:
  - name: out
    hostPath: {path: %(out)s}
  containers:
  - name: wget
    image: fulcrum.dev/busybox:demo
    volumeMounts:
    - {name: out, mountPath: /out}
    command: ["sh", "-c"]
    args:
    - |
      until wget -q -O /out/seen.tmp http://%(target)s:8080/cgi-bin/ip; do sleep 0.5; done
      mv /out/seen.tmp /out/seen
      exec sleep 3600
"""


@unittest.skipIf(e2e.containers_skip_reason(), e2e.containers_skip_reason())
class MultiNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agents = []
        cls.made_netns = []
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", HOST_NET + ".1/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        cls.server = e2e.Server(extra_args=["--listen", HOST_NET + ".1:0",
                                            "--control-loops", "off"]).start()
        cls.kubectl = cls.server.kubectl(e2e.kubectl_versions()[-1])
        for name, netns, ip, cidr in NODES:
            cls.make_host(netns, ip)
            cls.start_agent(name, netns, ip, cidr)

    @classmethod
    def make_host(cls, netns, ip):
        sh("ip", "netns", "add", netns)
        cls.made_netns.append(netns)
        outside = netns + "o"
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", netns + "i")
        sh("ip", "link", "set", netns + "i", "netns", netns)
        sh("ip", "link", "set", outside, "master", BRIDGE, "up")
        inside = ["ip", "netns", "exec", netns, "ip"]
        sh(*inside, "link", "set", netns + "i", "name", "eth0")
        sh(*inside, "addr", "add", ip + "/24", "dev", "eth0")
        sh(*inside, "link", "set", "eth0", "up")
        sh(*inside, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    @classmethod
    def start_agent(cls, name, netns, ip, cidr):
        root = os.path.join(cls.server.root, name)
        sh(e2e.fulcrum_bin(), "image", "import", os.environ["FULCRUM_DEMO_IMAGE"], "--root", root)
        # nsenter enters the network namespace alone: `ip netns exec` would also mount a sysfs of
        # the namespace over /sys, hiding the cgroup hierarchy that runc needs.
        argv = ["nsenter", "--net=/run/netns/" + netns, e2e.fulcrum_bin(), "agent",
                "--kubeconfig", cls.server.kubeconfig_path, "--node-name", name, "--root", root,
                "--pod-cidr", cidr, "--cluster-cidr", CLUSTER_CIDR, "--node-ip", ip,
                "--bridge", "fulcrum0"]
        with open(os.path.join(cls.server.root, name + ".log"), "wb") as log:
            proc = subprocess.Popen(e2e._with_pdeathsig(argv), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        e2e._track(proc)
        cls.agents.append((name, netns, root, proc))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.kubectl("delete", "pods", "--all", "--wait=true", "--timeout=40s", timeout=60)
        except Exception:  # noqa: BLE001 - cleanup goes on
            pass
        for name, netns, root, proc in cls.agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            e2e._untrack(proc)
            # Whatever a failure left running.
            runc_root = os.path.join(root, "runc")
            if os.path.isdir(runc_root):
                out = subprocess.run(["runc", "--root", runc_root, "list", "-q"],
                                     capture_output=True, text=True).stdout
                for cid in out.split():
                    subprocess.run(["runc", "--root", runc_root, "kill", cid, "KILL"],
                                   capture_output=True)
                    subprocess.run(["runc", "--root", runc_root, "delete", "-f", cid],
                                   capture_output=True)
        for netns in cls.made_netns:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        cls.server.stop()

    def agent_logs(self):
        out = ""
        for name, _, _, _ in self.agents:
            with open(os.path.join(self.server.root, name + ".log"), errors="replace") as f:
                out += "\n--- %s ---\n%s" % (name, f.read()[-3000:])
        return out

    def pod(self, name):
        rc, out, _ = self.kubectl("get", "pod", name, "-o", "json")
        return json.loads(out) if rc == 0 else None

    def apply(self, text):
        path = os.path.join(self.server.root, "manifest.yaml")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = self.kubectl("apply", "-f", path)
        self.assertEqual(rc, 0, err)

    def test_pods_on_two_nodes_reach_each_other_without_nat(self):
        def ready_nodes():
            rc, out, _ = self.kubectl("get", "nodes", "-o", "json")
            if rc != 0:
                return None
            nodes = json.loads(out)["items"]
            ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in n["status"].get("conditions", []))]
            return nodes if len(ready) == 2 else None
        try:
            nodes = e2e.poll(ready_nodes, 60, what="two Ready nodes")
        except AssertionError as e:
            raise AssertionError(str(e) + self.agent_logs()) from None
        cidrs = sorted(n["spec"].get("podCIDR") for n in nodes)
        self.assertEqual(cidrs, ["10.252.1.0/24", "10.252.2.0/24"])

        # Each host routes the other's pod CIDR to it.
        for name, netns, _, _ in self.agents:
            other = [n for n in NODES if n[0] != name][0]
            e2e.poll(lambda: other[3] in sh("ip", "netns", "exec", netns, "ip", "route", "show",
                                             "proto", "211"), 30,
                     what="%s routing %s" % (name, other[3]))

        self.apply(SERVER_POD)

        def ip_of(name):
            pod = self.pod(name)
            if pod and pod["status"].get("phase") == "Running" and pod["status"].get("podIP"):
                return pod["status"]["podIP"]
            return None
        try:
            server_ip = e2e.poll(lambda: ip_of("server"), 60, what="server pod Running")
        except AssertionError as e:
            raise AssertionError(str(e) + json.dumps(self.pod("server").get("status"), indent=1) +
                                 self.agent_logs()) from None
        self.assertTrue(server_ip.startswith("10.252.1."), server_ip)

        out_dir = os.path.join(self.server.root, "client-out")
        os.makedirs(out_dir)
        self.apply(CLIENT_POD % {"out": out_dir, "target": server_ip})
        client_ip = e2e.poll(lambda: ip_of("client"), 60, what="client pod Running")
        self.assertTrue(client_ip.startswith("10.252.2."), client_ip)
        seen_path = os.path.join(out_dir, "seen")
        try:
            e2e.poll(lambda: os.path.exists(seen_path), 60,
                     what="the client pod's request answered by the server pod")
        except AssertionError as e:
            raise AssertionError(str(e) + self.agent_logs()) from None
        with open(seen_path) as f:
            seen = f.read().strip()  # busybox httpd's REMOTE_ADDR: "[::ffff:10.252.2.2]"
        seen = seen.strip("[]")
        if seen.startswith("::ffff:"):
            seen = seen[len("::ffff:"):]
        # The server saw the client pod's own address: no NAT between pods.
        self.assertEqual(seen, client_ip)

        # Logs and exec reach each node's agent through the API server, which dials the node's
        # InternalIP: the server pod's httpd log on node-a, a command in the client pod on node-b.
        rc, out, err = self.kubectl("exec", "client", "--", "cat", "/out/seen")
        self.assertEqual(rc, 0, err + self.agent_logs())
        self.assertIn(client_ip, out)
        rc, out, err = self.kubectl("logs", "server")
        self.assertEqual(rc, 0, err + self.agent_logs())

        # A node that leaves takes its route with it.
        rc, _, err = self.kubectl("delete", "pod", "client", "--timeout=60s", timeout=90)
        self.assertEqual(rc, 0, err)
        name_b, netns_b, _, proc_b = self.agents[1]
        proc_b.send_signal(signal.SIGTERM)
        proc_b.wait(timeout=30)
        rc, _, err = self.kubectl("delete", "node", name_b)
        self.assertEqual(rc, 0, err)
        netns_a = self.agents[0][1]
        e2e.poll(lambda: "10.252.2.0/24" not in sh("ip", "netns", "exec", netns_a, "ip", "route",
                                                   "show", "proto", "211"), 30,
                 what="node-a dropping the route to node-b's pods")


if __name__ == "__main__":
    unittest.main(verbosity=2)
