#!/usr/bin/env python3
"""The usage feed on the all-in-one cluster: agent -> NodeMetric -> metrics.k8s.io and scheduler.

`fulcrum up --scheduler-policy load-aware` with the agent reporting every 2 s, the demo image
imported, then kubectl only (and one NodeMetric written by hand for a node with no agent). A pod
burns CPU; checks: `kubectl get nodemetrics` and the NodeMetric's status show the pod's usage;
unmodified `kubectl top pods` (-A, -n, --containers, -l) and `kubectl top nodes` (kubectl 1.27
and 1.33) show it; `kubectl get appprofiles` shows the profile the scheduler learnt for it; and a
placement that visibly depends on measured usage: a second node "ghost" (no agent; its NodeMetric
written by the test, nearly idle) holds more requests than the real node, so the requests policy
would pick the real node, but load-aware picks ghost and its Scheduled event names the measured
usage it went by.

Needs root, runc, the CNI plugins and the demo image (FULCRUM_DEMO_IMAGE, set by CTest); skips
otherwise. Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum FULCRUM_DEMO_IMAGE=build/demo-busybox.tar \\
     python3 tests/e2e/usage_test.py
"""

import datetime
import json
import os
import re
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

NODE = "e2e-usage"
GHOST = "e2e-ghost"
IMAGE = "fulcrum.dev/busybox:demo"
KUBECTLS = ("1.27", "1.33")
GV = "scheduling.fulcrum.dev/v1alpha1"

BURN = """
apiVersion: v1
kind: Pod
metadata:
  name: burn
  labels: {app: burn}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: spin
    image: %s
    command: ["sh", "-c", "while :; do :; done"]
    resources:  # a full core's CPU shares, so that it gets its share on a busy machine
      requests: {cpu: "1", memory: 16Mi}
  - name: idle
    image: %s
    command: ["sleep", "3600"]
""" % (IMAGE, IMAGE)


def now_rfc3339(micro=False):
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def milli(q):
    """A CPU quantity as millicores."""
    if q.endswith("m"):
        return float(q[:-1])
    if q.endswith("n"):
        return float(q[:-1]) / 1e6
    return float(q) * 1000


@unittest.skipIf(e2e.containers_skip_reason(), e2e.containers_skip_reason())
class UsageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = e2e.start_all_in_one(NODE, "10.244.93.0/24", "fup93", [
            "--scheduler-policy", "load-aware", "--usage-report-interval", "2"])
        cls.k = cls.server.kubectl(KUBECTLS[-1])
        e2e.poll(lambda: e2e.node_ready(cls.k, NODE), 60, what="node %s Ready" % NODE)
        rc, out, err = cls.k("apply", "-f", "-", input=BURN)
        assert rc == 0, out + err
        rc, out, err = cls.k("wait", "--for=condition=Ready", "pod/burn", "--timeout=120s",
                             timeout=130)
        assert rc == 0, out + err + cls.server.log_tail()

    @classmethod
    def tearDownClass(cls):
        # The agent removes burn's containers before it confirms the deletion; pods bound to the
        # ghost node have no agent to confirm theirs.
        cls.k("delete", "pod", "burn", "--wait=true", timeout=120)
        cls.k("delete", "pods", "--all", "--grace-period=0", "--force", "--wait=true", timeout=120)
        cls.k("delete", "node", GHOST, "--ignore-not-found", timeout=60)
        rc, killed = cls.server.stop(timeout=60)
        subprocess.run(["ip", "link", "del", "fup93"], capture_output=True)  # the agent's bridge
        assert not killed, "fulcrum up did not stop on SIGTERM:\n" + cls.server.log_tail()

    def kubectl(self, *args, version=KUBECTLS[-1], timeout=e2e.KUBECTL_TIMEOUT, input=None):
        k = self.k if version == KUBECTLS[-1] else self.server.kubectl(version)
        rc, out, err = k(*args, timeout=timeout, input=input)
        self.assertEqual(rc, 0, "kubectl %s %s failed: %s%s\n--- log ---\n%s"
                         % (version, " ".join(map(str, args)), out, err, self.server.log_tail()))
        return out

    def burn_report(self):
        """The burning pod's entry in the node's NodeMetric once its CPU is visible, else None."""
        rc, out, _ = self.k("get", "nodemetric", NODE, "-o", "json")
        if rc != 0:
            return None
        for p in json.loads(out).get("status", {}).get("podsMetric", []):
            if p["name"] == "burn" and milli(p["usage"].get("cpu", "0")) >= 50:
                return p
        return None

    def test_1_nodemetric_has_the_burning_pod(self):
        pod = e2e.poll(self.burn_report, 60, interval=0.5, what="burn's usage in the NodeMetric")
        self.assertEqual(pod["namespace"], "default")
        self.assertEqual(pod["qos"], "online")
        self.assertEqual(sorted(c["name"] for c in pod["containers"]), ["idle", "spin"])
        spin = [c for c in pod["containers"] if c["name"] == "spin"][0]
        idle = [c for c in pod["containers"] if c["name"] == "idle"][0]
        self.assertGreater(milli(spin["usage"]["cpu"]), milli(idle["usage"]["cpu"]))
        for key in ("usage", "average", "p95"):
            self.assertIn("cpu", pod[key])
            self.assertIn("memory", pod[key])
        metric = json.loads(self.kubectl("get", "nodemetric", NODE, "-o", "json"))
        self.assertEqual(metric["spec"]["reportIntervalSeconds"], 2)
        self.assertEqual(metric["metadata"]["ownerReferences"][0]["name"], NODE)
        node_cpu = milli(metric["status"]["nodeMetric"]["usage"]["cpu"])
        self.assertGreaterEqual(node_cpu, 50)
        table = self.kubectl("get", "nodemetrics")
        self.assertRegex(table.splitlines()[0], r"NAME\s+CPU\s+CPU-P95\s+MEMORY\s+PODS\s+UPDATED")
        self.assertRegex(table, r"(?m)^%s\s+\d+m\s+\d+m\s+\d+Mi\s+\d+\s+" % NODE)

    def test_2_kubectl_top(self):
        e2e.poll(self.burn_report, 60, interval=0.5, what="burn's usage in the NodeMetric")
        for version in KUBECTLS:
            out = self.kubectl("top", "nodes", version=version)
            self.assertRegex(out, r"(?m)^%s\s+\d+m\s+\d+%%\s+\d+Mi\s+\d+%%" % NODE, out)
            out = self.kubectl("top", "pods", version=version)
            match = re.search(r"(?m)^burn\s+(\d+)m\s+(\d+)Mi", out)
            self.assertTrue(match, out)
            self.assertGreaterEqual(int(match.group(1)), 50, out)
            out = self.kubectl("top", "pods", "-A", version=version)
            self.assertRegex(out, r"(?m)^default\s+burn\s+\d+m\s+\d+Mi", out)
            out = self.kubectl("top", "pods", "-n", "default", "-l", "app=burn", "--containers",
                               version=version)
            self.assertRegex(out, r"(?m)^burn\s+spin\s+\d+m\s+\d+Mi", out)
            self.assertRegex(out, r"(?m)^burn\s+idle\s+\d+m\s+\d+Mi", out)
            out = self.kubectl("top", "pod", "burn", version=version)
            self.assertIn("burn", out)
            rc, out, err = self.server.kubectl(version)("top", "pods", "-l", "app=nothing")
            self.assertNotIn("burn", out + err)
        # Discovery lists the group as metrics-server would.
        groups = self.kubectl("api-versions")
        self.assertIn("metrics.k8s.io/v1beta1", groups)

    def burn_profile(self):
        """The AppProfile the scheduler learnt for pod burn, once it has samples, else None."""
        rc, out, _ = self.k("get", "appprofile", "pod-burn", "-o", "json")
        if rc != 0:
            return None
        p = json.loads(out)
        return p if p.get("status", {}).get("samples", 0) > 0 else None

    def test_3_appprofile_learnt_from_the_reports(self):
        profile = e2e.poll(self.burn_profile, 90, interval=0.5, what="the AppProfile of pod burn")
        self.assertEqual(profile["spec"]["app"], "default/Pod/burn")
        self.assertGreater(max(profile["status"]["cpuMeanMilli"]), 0)
        table = self.kubectl("get", "appprofiles")
        self.assertRegex(table, r"(?m)^pod-burn\s+default/Pod/burn\s+learnt\s+\d+\s+\d+m")

    def test_4_load_aware_places_by_measured_usage(self):
        e2e.poll(self.burn_report, 60, interval=0.5, what="burn's usage in the NodeMetric")
        real = json.loads(self.kubectl("get", "node", NODE, "-o", "json"))
        allocatable = real["status"]["allocatable"]
        # A node with the real one's capacity and no agent: its heartbeat and usage come from here.
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": GHOST, "labels": {"kubernetes.io/hostname": GHOST}}}))
        self.kubectl("patch", "node", GHOST, "--subresource=status", "--type=merge", "-p",
                     json.dumps({"status": {
                         "allocatable": allocatable, "capacity": real["status"]["capacity"],
                         "conditions": [{"type": "Ready", "status": "True",
                                         "reason": "KubeletReady",
                                         "lastHeartbeatTime": now_rfc3339(),
                                         "lastTransitionTime": now_rfc3339()}]}}))
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": GHOST, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": GHOST, "leaseDurationSeconds": 40,
                     "renewTime": now_rfc3339(micro=True)}}))
        # Ghost already holds more requests than the real node: by requests, the real node wins.
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reserved"},
            "spec": {"nodeName": GHOST, "containers": [{
                "name": "c", "image": IMAGE, "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": "1500m", "memory": "64Mi"}}}]}}))
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": GV, "kind": "NodeMetric", "metadata": {"name": GHOST},
            "spec": {"reportIntervalSeconds": 60}}))
        self.kubectl("patch", "nodemetric", GHOST, "--subresource=status", "--type=merge", "-p",
                     json.dumps({"status": {
                         "updateTime": now_rfc3339(), "windowSeconds": 60,
                         "nodeMetric": {"usage": {"cpu": "5m", "memory": "64Mi"},
                                        "systemUsage": {"cpu": "5m", "memory": "64Mi"}},
                         "podsMetric": [{"namespace": "default", "name": "reserved",
                                         "usage": {"cpu": "0", "memory": "0"}}]}}))
        rc, out, err = self.k("get", "nodemetrics")
        self.assertIn(GHOST, out)
        self.kubectl("run", "probe", "--image=" + IMAGE, "--restart=Never",
                     "--overrides", json.dumps({"spec": {"containers": [{
                         "name": "probe", "image": IMAGE, "command": ["sleep", "3600"],
                         "resources": {"requests": {"cpu": "100m", "memory": "16Mi"}}}]}}))

        def placed():
            pod = json.loads(self.kubectl("get", "pod", "probe", "-o", "json"))
            return pod["spec"].get("nodeName")
        node = e2e.poll(placed, 60, interval=0.2, what="probe to be scheduled")
        self.assertEqual(node, GHOST)

        def scheduled_message():
            events = json.loads(self.kubectl(
                "get", "events", "--field-selector", "involvedObject.name=probe", "-o", "json"))
            for e in events["items"]:
                if e["reason"] == "Scheduled":
                    return e["message"]
            return None
        message = e2e.poll(scheduled_message, 30, interval=0.2, what="probe's Scheduled event")
        self.assertRegex(message, r"^Successfully assigned default/probe to %s \(load-aware: "
                                  r"measured cpu 5m/\d+m, memory 64Mi/\d+Mi\)$" % GHOST)

    def test_5_profiles_are_read_back_after_a_restart(self):
        e2e.poll(self.burn_profile, 90, interval=0.5, what="the AppProfile of pod burn")
        rc, killed = self.server.stop(timeout=60)
        self.assertFalse(killed, self.server.log_tail())
        self.server.start()

        def restored():
            with open(self.server.log_path, encoding="utf-8", errors="replace") as f:
                return re.search(r"restored (\d+) application profile", f.read())
        match = e2e.poll(restored, 60, interval=0.2, what="the scheduler to read the profiles back")
        self.assertGreaterEqual(int(match.group(1)), 1)
        self.assertEqual(self.burn_profile()["spec"]["app"], "default/Pod/burn")


if __name__ == "__main__":
    unittest.main(verbosity=2)
