#!/usr/bin/env python3
"""Batch colocation on the all-in-one cluster: the agent's batch QoS loop throttles, then evicts, a
batch Job's pod when online load rises, and the Job replaces it.

`fulcrum up` with thresholds that make the run deterministic on a small, busy machine: node usage
outside pods is not counted (--qos-cpu-system-usage=off: other work on the machine must not make
the agent act), and the suppress threshold is half a core (on 2 cores, 25%), so that an idle online
deployment leaves room for a 300m batch pod and a busy one leaves none. The online deployment's
CPU follows a pattern the test sets through a ConfigMap its pods read (low: sleep; high: busy
shell loops); the batch Job (priority class fulcrum-batch, backoffLimit 0) spins until the
ConfigMap tells it to finish.

Checks, by the order of observed states, never by time: while online load is low the batch pod
runs unthrottled; when it rises, the batch container is throttled (BatchThrottled event, the
agent's fulcrum_qos_* metrics), then its pod is evicted (event Evicted, phase Failed, reason
Evicted, a message naming cpu and the threshold, condition DisruptionTarget), then the Job makes a
replacement; the online pods are never evicted, restarted or throttled, and keep running busy;
when online load falls the replacement runs, and the Job completes with no failure counted (the
evicted pod is replaceable, not failed: backoffLimit 0 would fail the Job otherwise).

Needs root, runc, the CNI plugins and the demo image (FULCRUM_DEMO_IMAGE, set by CTest); skips
otherwise. Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum FULCRUM_DEMO_IMAGE=build/demo-busybox.tar \\
     python3 tests/e2e/colocation_test.py
"""

import json
import os
import re
import socket
import subprocess
import sys
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

NODE = "e2e-coloc"
BRIDGE = "fup94"
IMAGE = "fulcrum.dev/busybox:demo"
KUBECTL = "1.33"

# A shell loop that burns CPU for a moment without forking.
SPIN = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"

MANIFESTS = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: load
data:
  online: low
  batch: run
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      volumes:
      - name: load
        configMap: {name: load}
      containers:
      - name: serve
        image: %(image)s
        command: ["sh", "-c", "while :; do read level < /load/online; if [ \\"$level\\" = high ]; then %(spin)s; else sleep 1; fi; done"]
        resources:
          requests: {cpu: 250m}
        volumeMounts:
        - {name: load, mountPath: /load}
""" % {"image": IMAGE, "spin": SPIN}

JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: crunch
spec:
  backoffLimit: 0
  template:
    spec:
      priorityClassName: fulcrum-batch
      restartPolicy: Never
      terminationGracePeriodSeconds: 2
      volumes:
      - name: load
        configMap: {name: load}
      containers:
      - name: crunch
        image: %(image)s
        command: ["sh", "-c", "while :; do read mode < /load/batch; if [ \\"$mode\\" = finish ]; then exit 0; fi; %(spin)s; done"]
        resources:
          requests: {cpu: 300m}
          limits: {cpu: 300m}
        volumeMounts:
        - {name: load, mountPath: /load}
""" % {"image": IMAGE, "spin": SPIN}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_metrics(text):
    """Prometheus text as {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


@unittest.skipIf(e2e.containers_skip_reason(), e2e.containers_skip_reason())
class ColocationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cpus = os.cpu_count() or 2
        # Half a core of the node for online + batch before batch is suppressed.
        suppress = max(1, min(100, round(50 / cpus)))
        cls.metrics_port = free_port()
        cls.server = e2e.start_all_in_one(NODE, "10.244.94.0/24", BRIDGE, [
            "--metrics-listen", "127.0.0.1:%d" % cls.metrics_port,
            "--qos-cpu-system-usage", "off",
            "--qos-cpu-suppress-percent", str(suppress),
            "--qos-cpu-evict-window", "6",
            "--qos-memory-evict-percent", "98"])
        cls.k = cls.server.kubectl(KUBECTL)
        e2e.poll(lambda: e2e.node_ready(cls.k, NODE), 60, what="node %s Ready" % NODE)

    @classmethod
    def tearDownClass(cls):
        # The agent removes the containers before it confirms each deletion.
        cls.k("delete", "job", "crunch", "--ignore-not-found", "--wait=true", timeout=120)
        cls.k("delete", "deployment", "web", "--ignore-not-found", "--wait=true", timeout=120)
        cls.k("delete", "pods", "--all", "--wait=true", timeout=120)
        rc, killed = cls.server.stop(timeout=60)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)  # the agent's bridge
        assert not killed, "fulcrum up did not stop on SIGTERM:\n" + cls.server.log_tail()

    def kubectl(self, *args, timeout=e2e.KUBECTL_TIMEOUT, input=None):
        rc, out, err = self.k(*args, timeout=timeout, input=input)
        self.assertEqual(rc, 0, "kubectl %s failed: %s%s\n--- log ---\n%s"
                         % (" ".join(map(str, args)), out, err, self.server.log_tail()))
        return out

    def pods(self, selector):
        return json.loads(self.kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]

    def events(self, pod):
        items = json.loads(self.kubectl("get", "events", "-o", "json"))["items"]
        return [e for e in items if e["involvedObject"].get("name") == pod]

    def metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=10) as r:
            return parse_metrics(r.read().decode())

    @staticmethod
    def value(metrics, name, **labels):
        return metrics.get((name, frozenset(labels.items())))

    @staticmethod
    def pod_cpu(metrics, pod):
        for (name, labels), v in metrics.items():
            if name == "fulcrum_container_cpu_usage_cores" and ("pod", pod) in labels:
                return v
        return None

    def set_load(self, **data):
        self.kubectl("patch", "configmap", "load", "--type=merge", "-p", json.dumps({"data": data}))

    def test_batch_is_throttled_then_evicted_before_online_loses_cpu_and_replaced(self):
        self.kubectl("apply", "-f", "-", input=MANIFESTS)
        self.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        web = sorted(p["metadata"]["name"] for p in self.pods("app=web"))
        self.assertEqual(len(web), 2)
        self.kubectl("apply", "-f", "-", input=JOB)
        first = e2e.poll(lambda: [p for p in self.pods("job-name=crunch")
                                  if p["status"].get("phase") == "Running"],
                         120, interval=0.5, what="the batch pod running")[0]
        batch = first["metadata"]["name"]
        self.assertEqual(first["spec"]["priority"], -1000)
        self.assertEqual(first["spec"]["nodeName"], NODE)

        # Online load low: the batch pod burns CPU and is left alone.
        m = e2e.poll(lambda: (lambda m: m if (self.pod_cpu(m, batch) or 0) >= 0.05 else None)(
            self.metrics()), 60, interval=0.5, what="the batch pod's CPU usage in /metrics")
        self.assertEqual(self.value(m, "fulcrum_qos_batch_throttled_containers"), 0, m)
        self.assertEqual(self.value(m, "fulcrum_qos_evictions_total", reason="cpu"), 0)
        self.assertFalse([e for e in self.events(batch) if e["reason"] == "BatchThrottled"])

        # Online load rises. Record each state the first time it is seen, in order.
        self.set_load(online="high")
        seen = []
        facts = {}

        def observe():
            m = self.metrics()
            online = self.value(m, "fulcrum_qos_online_cpu_usage_cores") or 0
            if online >= 0.3 and "online busy" not in seen:
                seen.append("online busy")
            if (self.value(m, "fulcrum_qos_batch_throttled_containers") or 0) >= 1 and \
                    "throttled" not in seen:
                seen.append("throttled")
                facts["online at throttle"] = online
                facts["quota"] = self.value(m, "fulcrum_qos_batch_cpu_quota_cores")
            pods = {p["metadata"]["name"]: p for p in self.pods("job-name=crunch")}
            status = pods.get(batch, {}).get("status", {})
            if status.get("phase") == "Failed" and "evicted" not in seen:
                seen.append("evicted")
                facts["online at eviction"] = online
                facts["evicted status"] = status
            if any(name != batch for name in pods) and "replacement" not in seen:
                seen.append("replacement")
            return "replacement" in seen

        e2e.poll(observe, 180, interval=0.5,
                 what="the batch pod throttled, evicted and replaced (seen so far: %s)" % seen)
        self.set_load(online="low")
        print("observed in order: %s; online cores at throttle %.2f, at eviction %.2f; batch quota "
              "%.3f cores" % (", ".join(seen), facts["online at throttle"],
                              facts.get("online at eviction", 0), facts["quota"] or 0),
              file=sys.stderr)
        self.assertLess(seen.index("throttled"), seen.index("evicted"), seen)
        self.assertLess(seen.index("evicted"), seen.index("replacement"), seen)
        self.assertIsNotNone(facts["quota"])
        self.assertLess(facts["quota"], 0.3)  # under the batch pod's own 300m limit

        status = facts["evicted status"]
        self.assertEqual(status["reason"], "Evicted", status)
        self.assertIn("The node was low on resource: cpu.", status["message"])
        self.assertIn("below 60%", status["message"])
        disruption = [c for c in status.get("conditions", []) if c["type"] == "DisruptionTarget"]
        self.assertEqual(len(disruption), 1, status)
        self.assertEqual(disruption[0]["status"], "True")
        reasons = [e["reason"] for e in self.events(batch)]
        self.assertIn("BatchThrottled", reasons)
        self.assertIn("Evicted", reasons)
        self.assertIn("Killing", reasons)
        throttled = [e for e in self.events(batch) if e["reason"] == "BatchThrottled"][0]
        self.assertIn("CPU quota lowered to", throttled["message"])

        # The online pods: the same two, running, never restarted, evicted or throttled.
        m = self.metrics()
        self.assertEqual(self.value(m, "fulcrum_qos_evictions_total", reason="cpu"), 1)
        now = self.pods("app=web")
        self.assertEqual(sorted(p["metadata"]["name"] for p in now), web)
        for p in now:
            self.assertEqual(p["status"]["phase"], "Running")
            self.assertEqual(p["status"]["containerStatuses"][0]["restartCount"], 0)
            self.assertNotIn("reason", p["status"])
            reasons = {e["reason"] for e in self.events(p["metadata"]["name"])}
            self.assertFalse(reasons & {"Evicted", "BatchThrottled", "Killing"}, reasons)
        # They were busy when batch was throttled and still when it was evicted.
        self.assertGreaterEqual(facts["online at eviction"], 0.3, facts)

        # Online load falls: the replacement runs, then finishes; the eviction is no failure.
        replacement = e2e.poll(lambda: [p for p in self.pods("job-name=crunch")
                                        if p["metadata"]["name"] != batch and
                                        p["status"].get("phase") == "Running"],
                               120, interval=0.5, what="the replacement running")[0]
        e2e.poll(lambda: (lambda m: (self.pod_cpu(m, replacement["metadata"]["name"]) or 0) >= 0.05
                          and self.value(m, "fulcrum_qos_batch_throttled_containers") == 0)(
            self.metrics()), 120, interval=0.5,
            what="the replacement burning CPU unthrottled while online load is low")
        self.set_load(batch="finish")
        self.kubectl("wait", "--for=condition=complete", "job/crunch", "--timeout=120s",
                     timeout=130)
        job = json.loads(self.kubectl("get", "job", "crunch", "-o", "json"))
        self.assertEqual(job["status"]["succeeded"], 1)
        self.assertFalse(job["status"].get("failed"), job["status"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
