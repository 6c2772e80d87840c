#!/usr/bin/env python3
"""Batch colocation on the all-in-one cluster: the scheduler places a batch Job's pod on capacity
reclaimed from an online deployment (its requests leave too little; its measured use leaves
room), the agent's batch QoS loop throttles, then evicts, that pod when online load rises, the
scheduler holds the Job's replacement back while online load is high, and places it again when
online load falls.

`fulcrum up --scheduler-policy archimedes` (FULCRUM_COLOCATION_POLICY=load-aware for
Koordinator's batch resources instead), with settings that make the run deterministic on a small,
busy machine:
- node usage outside pods is not counted (--qos-cpu-system-usage=off, for the agent and the
  scheduler alike: other work on the machine must not make either act);
- batch may use half a core (--qos-cpu-suppress-percent: on 2 cores, 25%), what the agent lets it
  use before it suppresses batch, and all the scheduler lends it: an idle online deployment
  leaves room for a 300m batch pod and a busy one leaves none;
- the agent reports usage every 2 s, and an application profile has one slot a day
  (--profile-slot-seconds 86400) counted in a time zone where the run starts at noon
  (--profile-utc-offset, chosen at start), so archimedes learns a profile when it first sees an
  application and keeps it for the run, whatever the time of day (it would otherwise take in the
  busy phase when a slot ends: a 15-minute slot at any moment, or one a day at midnight).
The online deployment requests all of the node's CPU but 200m; its CPU follows a pattern the test
sets through a ConfigMap its pods read (low: sleep; high: busy shell loops). The batch Job
(priority class fulcrum-batch, backoffLimit 0, 300m) spins until the ConfigMap tells it to finish.

Checks, by the order of observed states, never by time: the scheduler learns the online
deployment's profile from the agent's reports (AppProfile deployment-web); the Node shows the batch
capacity it lends (kubernetes.io/batch-cpu, Koordinator's batch resources), kept across the agent's
own node status updates; the batch pod is then placed on the node although the requests do not fit,
and its Scheduled event says what was reclaimed; while online load is low it runs unthrottled; when
online load rises, the batch container is throttled (BatchThrottled event, the agent's
fulcrum_qos_* metrics), then its pod is evicted (event Evicted, phase Failed, reason Evicted, a
message naming cpu and the threshold, condition DisruptionTarget), then the Job makes a
replacement, which the scheduler holds back (PodScheduled=False: Insufficient
kubernetes.io/batch-cpu; the Node's batch-cpu falls below the pod's request) while online load is high; the online pods
are never evicted, restarted or throttled, and keep running busy; when online load falls the
replacement is placed on reclaimed capacity again and runs unthrottled, and the Job completes with
no failure counted (the evicted pod is replaceable, not failed: backoffLimit 0 would fail the Job
otherwise).

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
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

POLICY = os.environ.get("FULCRUM_COLOCATION_POLICY", "archimedes")
# Each policy's run has its own node, bridge and pod network.
NODE, BRIDGE, POD_CIDR = {
    "archimedes": ("e2e-coloc", "fup94", "10.244.94.0/24"),
    "load-aware": ("e2e-coloc-la", "fup97", "10.244.97.0/24"),  # fup95 is logs_exec_test's
}[POLICY]
IMAGE = "fulcrum.dev/busybox:demo"
KUBECTL = "1.33"
BATCH_MILLI = 300

# A shell loop that burns CPU for a moment without forking.
SPIN = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"

CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: load
data:
  online: low
  batch: run
"""

# The online deployment; %(cpu)s is each replica's request (and limit).
WEB = """
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
          requests: {cpu: "%(cpu)s"}
          limits: {cpu: "%(cpu)s"}
        volumeMounts:
        - {name: load, mountPath: /load}
"""

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
          requests: {cpu: %(batch)dm}
          limits: {cpu: %(batch)dm}
        volumeMounts:
        - {name: load, mountPath: /load}
""" % {"image": IMAGE, "spin": SPIN, "batch": BATCH_MILLI}

# What the Scheduled event of a batch pod says under a policy that reclaims for batch.
RECLAIMED = re.compile(r"\((?P<policy>[a-z-]+): batch cpu (?P<batch>\d+)m of (?P<reclaimable>\d+)m "
                       r"reclaimable, online requests (?P<online>\d+)m/(?P<allocatable>\d+)m")


def milli(q):
    """A CPU quantity as millicores."""
    if q.endswith("m"):
        return int(q[:-1])
    return int(round(float(q) * 1000))


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
        cls.suppress = max(1, min(100, round(50 / cpus)))
        cls.metrics_port = free_port()
        # The profiles' day starts 12 hours before now and ends 12 hours after: no run reaches
        # the end of the slot.
        offset = 43200 - int(time.time()) % 86400
        cls.server = e2e.start_all_in_one(NODE, POD_CIDR, BRIDGE, [
            "--scheduler-policy", POLICY,
            "--usage-report-interval", "2",
            "--profile-slot-seconds", "86400",
            "--profile-utc-offset", str(offset),
            "--metrics-listen", "127.0.0.1:%d" % cls.metrics_port,
            "--qos-cpu-system-usage", "off",
            "--qos-cpu-suppress-percent", str(cls.suppress),
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

    def get(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def pods(self, selector):
        return self.get("pods", "-l", selector)["items"]

    def events(self, pod):
        return [e for e in self.get("events")["items"] if e["involvedObject"].get("name") == pod]

    def event_message(self, pod, reason):
        """The message of the pod's latest event with that reason, or None."""
        messages = [e["message"] for e in self.events(pod) if e["reason"] == reason]
        return messages[-1] if messages else None

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

    @staticmethod
    def unschedulable_message(pod):
        """The PodScheduled=False message the scheduler set on the pod, or None."""
        for c in pod["status"].get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return c.get("message")
        return None

    def reported(self, *pods):
        """Whether the node's NodeMetric (what the scheduler reads) has every one of the pods."""
        rc, out, _ = self.k("get", "nodemetric", NODE, "-o", "json")
        names = {p["name"] for p in json.loads(out).get("status", {}).get("podsMetric", [])} \
            if rc == 0 else set()
        return set(pods) <= names

    def profile_learnt(self, name):
        """The AppProfile the scheduler learnt from the agent's reports, once it has samples."""
        rc, out, _ = self.k("get", "appprofile", name, "-o", "json")
        profile = json.loads(out) if rc == 0 else {}
        return profile if profile.get("status", {}).get("samples", 0) > 0 else None

    def assert_on_reclaimed_capacity(self, pod, allocatable, online_requests):
        """The batch pod is on the node although requests do not fit, and its Scheduled event
        says what the scheduler reclaimed there."""
        self.assertEqual(pod["spec"]["nodeName"], NODE)
        self.assertGreater(online_requests + BATCH_MILLI, allocatable)
        message = e2e.poll(lambda: self.event_message(pod["metadata"]["name"], "Scheduled"), 30,
                           interval=0.5, what="the batch pod's Scheduled event")
        m = RECLAIMED.search(message)
        self.assertTrue(m, message)
        self.assertEqual(m.group("policy"), POLICY, message)
        self.assertEqual(int(m.group("batch")), BATCH_MILLI, message)
        self.assertGreaterEqual(int(m.group("reclaimable")), BATCH_MILLI, message)
        # Never more than the agent lets batch use.
        self.assertLessEqual(int(m.group("reclaimable")), allocatable * self.suppress // 100, message)
        self.assertEqual(int(m.group("online")), online_requests, message)
        self.assertEqual(int(m.group("allocatable")), allocatable, message)
        if POLICY == "archimedes":
            # No run of the Job has completed yet (the first pod was evicted): the default.
            self.assertIn("expected runtime 1h0m0s (default)", message)
        return message

    def batch_cpu(self):
        """The node's published kubernetes.io/batch-cpu (millicores), or None."""
        out = self.kubectl("get", "node", NODE, "-o",
                           "jsonpath={.status.allocatable.kubernetes\\.io/batch-cpu}").strip()
        return int(out) if out else None

    def heartbeat(self):
        """The Ready condition's lastHeartbeatTime: the agent's last node status update."""
        conditions = self.get("node", NODE)["status"].get("conditions", [])
        return [c.get("lastHeartbeatTime") for c in conditions if c["type"] == "Ready"]

    def set_load(self, **data):
        self.kubectl("patch", "configmap", "load", "--type=merge", "-p", json.dumps({"data": data}))

    def test_batch_on_reclaimed_capacity_is_throttled_evicted_held_back_and_placed_again(self):
        allocatable = milli(self.get("node", NODE)["status"]["allocatable"]["cpu"])
        # Online requests leave 200m: less than the batch pod requests.
        web_milli = (allocatable - 200) // 2
        self.assertGreater(web_milli, 0, allocatable)
        self.kubectl("apply", "-f", "-", input=CONFIGMAP)
        self.kubectl("apply", "-f", "-", input=WEB % {"image": IMAGE, "spin": SPIN,
                                                      "cpu": "%dm" % web_milli})
        self.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        web = sorted(p["metadata"]["name"] for p in self.pods("app=web"))
        self.assertEqual(len(web), 2)
        online_requests = sum(milli(p["spec"]["containers"][0]["resources"]["requests"]["cpu"])
                              for p in self.pods("app=web"))
        # The scheduler has the web pods' usage and has learnt their profile from it.
        e2e.poll(lambda: self.reported(*web), 60, interval=0.5,
                 what="both web pods in the NodeMetric")
        profile = e2e.poll(lambda: self.profile_learnt("deployment-web"), 60, interval=0.5,
                           what="the AppProfile of deployment web")
        self.assertEqual(profile["spec"]["app"], "default/Deployment/web")
        # The node shows the batch capacity reclaimed from the idle deployment, as Koordinator's
        # batch resources (milli-cores), never more than the agent lets batch use; the agent's
        # own status updates (its heartbeat) keep it.
        lent = e2e.poll(lambda: (lambda v: v if v is not None and v >= BATCH_MILLI else None)(
            self.batch_cpu()), 60, interval=0.5, what="kubernetes.io/batch-cpu on the node")
        self.assertLessEqual(lent, allocatable * self.suppress // 100)
        node = self.get("node", NODE)
        self.assertIn("kubernetes.io/batch-memory", node["status"]["allocatable"])
        self.assertIn("kubernetes.io/batch-cpu", node["status"]["capacity"])
        beat = self.heartbeat()
        e2e.poll(lambda: self.heartbeat() != beat, 60, interval=0.5,
                 what="the agent's next node status update")
        self.assertIsNotNone(self.batch_cpu(), self.get("node", NODE)["status"])

        self.kubectl("apply", "-f", "-", input=JOB)
        first = e2e.poll(lambda: [p for p in self.pods("job-name=crunch")
                                  if p["status"].get("phase") == "Running"],
                         120, interval=0.5, what="the batch pod running")[0]
        batch = first["metadata"]["name"]
        self.assertEqual(first["spec"]["priority"], -1000)
        placed = self.assert_on_reclaimed_capacity(first, allocatable, online_requests)

        # Online load low: the batch pod burns CPU and is left alone.
        m = e2e.poll(lambda: (lambda m: m if (self.pod_cpu(m, batch) or 0) >= 0.05 else None)(
            self.metrics()), 60, interval=0.5, what="the batch pod's CPU usage in /metrics")
        self.assertEqual(self.value(m, "fulcrum_qos_batch_throttled_containers"), 0, m)
        self.assertEqual(self.value(m, "fulcrum_qos_evictions_total", reason="cpu"), 0)
        self.assertFalse([e for e in self.events(batch) if e["reason"] == "BatchThrottled"])
        # The Job is known to the scheduler before the busy phase (archimedes learns a profile
        # when it first sees an application, and that must not happen while online is busy).
        e2e.poll(lambda: self.reported(batch) and self.profile_learnt("job-crunch"), 60,
                 interval=0.5, what="the batch pod in the NodeMetric and its AppProfile")

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
            for name, p in pods.items():
                if name == batch:
                    continue
                if "replacement" not in seen:
                    seen.append("replacement")
                held = self.unschedulable_message(p)
                if held and "held back" not in seen:
                    seen.append("held back")
                    facts["held back"] = held
                    facts["replacement node"] = p["spec"].get("nodeName")
                if p["spec"].get("nodeName") and "held back" not in seen:
                    facts["placed while busy"] = p["spec"]["nodeName"]
            return "held back" in seen or "placed while busy" in facts

        e2e.poll(observe, 180, interval=0.5,
                 what="the batch pod throttled, evicted, replaced, the replacement held back "
                      "(seen so far: %s)" % seen)
        print("observed in order: %s; online cores at throttle %.2f, at eviction %.2f; batch quota "
              "%.3f cores" % (", ".join(seen), facts["online at throttle"],
                              facts.get("online at eviction", 0), facts["quota"] or 0),
              file=sys.stderr)
        self.assertNotIn("placed while busy", facts, seen)
        self.assertLess(seen.index("throttled"), seen.index("evicted"), seen)
        self.assertLess(seen.index("evicted"), seen.index("replacement"), seen)
        # The scheduler says why the replacement waits: online pods use what was lent.
        self.assertEqual(facts["held back"],
                         "0/1 nodes are available: 1 Insufficient kubernetes.io/batch-cpu.")
        self.assertIsNone(facts["replacement node"])
        # The node shows it too: less batch CPU than the replacement asks for.
        e2e.poll(lambda: (self.batch_cpu() or 0) < BATCH_MILLI, 60, interval=0.5,
                 what="kubernetes.io/batch-cpu below %dm while online load is high" % BATCH_MILLI)

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
        # The quota the agent set, from its event (the metric may already be gone: with online
        # load high, eviction can follow within the same poll).
        throttled = [e for e in self.events(batch) if e["reason"] == "BatchThrottled"][0]
        quota = re.search(r"CPU quota lowered to ([0-9.]+) cores", throttled["message"])
        self.assertTrue(quota, throttled["message"])
        self.assertLess(float(quota.group(1)), BATCH_MILLI / 1000)  # under the pod's own limit

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

        # Online load falls: the replacement is placed on reclaimed capacity again, runs
        # unthrottled, then finishes; the eviction is no failure.
        self.set_load(online="low")
        replacement = e2e.poll(lambda: [p for p in self.pods("job-name=crunch")
                                        if p["metadata"]["name"] != batch and
                                        p["status"].get("phase") == "Running"],
                               120, interval=0.5, what="the replacement running")[0]
        self.assert_on_reclaimed_capacity(replacement, allocatable, online_requests)
        e2e.poll(lambda: (self.batch_cpu() or 0) >= BATCH_MILLI, 60, interval=0.5,
                 what="kubernetes.io/batch-cpu back above %dm" % BATCH_MILLI)
        e2e.poll(lambda: (lambda m: (self.pod_cpu(m, replacement["metadata"]["name"]) or 0) >= 0.05
                          and self.value(m, "fulcrum_qos_batch_throttled_containers") == 0)(
            self.metrics()), 120, interval=0.5,
            what="the replacement burning CPU unthrottled while online load is low")
        self.set_load(batch="finish")
        self.kubectl("wait", "--for=condition=complete", "job/crunch", "--timeout=120s",
                     timeout=130)
        job = self.get("job", "crunch")
        self.assertEqual(job["status"]["succeeded"], 1)
        self.assertFalse(job["status"].get("failed"), job["status"])
        print("first batch pod: %s; the node's kubernetes.io/batch-cpu then: %d" % (placed, lent),
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
