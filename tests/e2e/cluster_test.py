#!/usr/bin/env python3
"""The all-in-one cluster as a user meets it: `fulcrum up` (API server, controllers, scheduler and
this node's agent), the demo image imported, then kubectl only.

Needs root, runc, the CNI plugins and the demo image (FULCRUM_DEMO_IMAGE, set by CTest); skips
otherwise. Checks: the node registers Ready; a Deployment rolls out to Running pods with IPs; a
changed template rolls out as a new revision, `rollout undo` goes back, `scale` adds a replica; a
Job runs to Complete; a pod that fits nowhere gets a FailedScheduling event saying why; deleting
the Deployment removes its ReplicaSets and pods (garbage collection).

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum FULCRUM_DEMO_IMAGE=build/demo-busybox.tar \\
     python3 tests/e2e/cluster_test.py
"""

import json
import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

NODE = "e2e-up"
IMAGE = "fulcrum.dev/busybox:demo"
KUBECTL = "1.33"

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: %s
        command: ["sleep", "3600"]
        env: [{name: VERSION, value: "1"}]
""" % IMAGE


@unittest.skipIf(e2e.containers_skip_reason(), e2e.containers_skip_reason())
class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = e2e.start_all_in_one(NODE, "10.244.91.0/24", "fup91")
        cls.k = cls.server.kubectl(KUBECTL)
        e2e.poll(lambda: e2e.node_ready(cls.k, NODE), 60, what="node %s Ready" % NODE)

    @classmethod
    def tearDownClass(cls):
        cls.k("delete", "deployment", "--all", "--wait=true", timeout=120)
        cls.k("delete", "pods", "--all", "--wait=true", timeout=120)
        rc, killed = cls.server.stop(timeout=60)
        subprocess.run(["ip", "link", "del", "fup91"], capture_output=True)  # the agent's bridge
        assert not killed, "fulcrum up did not stop on SIGTERM:\n" + cls.server.log_tail()

    def kubectl(self, *args, timeout=e2e.KUBECTL_TIMEOUT, input=None):
        rc, out, err = self.k(*args, timeout=timeout, input=input)
        self.assertEqual(rc, 0, "kubectl %s failed: %s%s\n--- log ---\n%s"
                         % (" ".join(map(str, args)), out, err, self.server.log_tail()))
        return out

    def pods(self, selector):
        items = json.loads(self.kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]
        return [p for p in items if "deletionTimestamp" not in p["metadata"]]

    def test_1_deployment_rollout_undo_scale_delete(self):
        self.kubectl("apply", "-f", "-", input=DEPLOYMENT)
        self.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        pods = self.pods("app=web")
        self.assertEqual(len(pods), 2)
        for p in pods:
            self.assertEqual(p["status"]["phase"], "Running")
            self.assertTrue(p["status"].get("podIP", "").startswith("10.244.91."), p["status"])
            self.assertEqual(p["spec"]["nodeName"], NODE)

        self.kubectl("set", "env", "deployment/web", "VERSION=2")
        self.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        e2e.poll(lambda: len(self.pods("app=web")) == 2, 60, what="old pods to go")
        for p in self.pods("app=web"):
            env = {e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]}
            self.assertEqual(env["VERSION"], "2")
        history = self.kubectl("rollout", "history", "deployment/web")
        self.assertIn("1 ", history)
        self.assertIn("2 ", history)

        self.kubectl("rollout", "undo", "deployment/web")
        self.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        e2e.poll(lambda: all(p["spec"]["containers"][0]["env"][0]["value"] == "1"
                             for p in self.pods("app=web")) and len(self.pods("app=web")) == 2,
                 60, what="the undone template's pods")

        self.kubectl("scale", "deployment/web", "--replicas=3")
        self.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        self.assertEqual(len(self.pods("app=web")), 3)

        self.kubectl("delete", "deployment", "web")
        e2e.poll(lambda: not self.pods("app=web") and
                 not json.loads(self.kubectl("get", "rs", "-o", "json"))["items"],
                 90, what="the deployment's ReplicaSets and pods to be collected")

    def test_2_job_runs_to_completion(self):
        self.kubectl("create", "job", "hello", "--image=" + IMAGE, "--", "sh", "-c", "echo hello")
        self.kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=120s", timeout=130)
        job = json.loads(self.kubectl("get", "job", "hello", "-o", "json"))
        self.assertEqual(job["status"]["succeeded"], 1)
        out = self.kubectl("get", "jobs")
        self.assertRegex(out, r"hello\s+Complete\s+1/1")

    def test_3_unschedulable_pod_says_why(self):
        self.kubectl("run", "huge", "--image=" + IMAGE, "--restart=Never",
                     "--overrides", json.dumps({"spec": {"containers": [{
                         "name": "huge", "image": IMAGE, "command": ["sleep", "1"],
                         "resources": {"requests": {"cpu": "1000"}}}]}}))

        def message():
            events = json.loads(self.kubectl("get", "events", "-o", "json"))["items"]
            for e in events:
                if e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == "huge":
                    return e["message"]
            return None
        msg = e2e.poll(message, 60, what="a FailedScheduling event")
        self.assertEqual(msg, "0/1 nodes are available: 1 Insufficient cpu.")
        self.assertIn("Insufficient cpu", self.kubectl("describe", "pod", "huge"))
        self.kubectl("delete", "pod", "huge")


if __name__ == "__main__":
    unittest.main(verbosity=2)
