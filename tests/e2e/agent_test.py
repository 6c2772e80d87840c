#!/usr/bin/env python3
"""`fulcrum server` + `fulcrum agent` running real pods: runc containers on the demo image, a CNI
bridge of the test's own, kubectl to drive them.

Needs root, runc, the CNI plugins and the demo image (FULCRUM_DEMO_IMAGE, set by CTest); skips
otherwise. Checks: the Node registers Ready with capacity and a Lease; a pod bound to the node
(init container, then an httpd with a tcpSocket readiness probe) becomes Running and Ready with a
pod IP that the node can reach, and its usage shows on the agent's /metrics; an agent restart
adopts running containers rather than restarting them; a crashing container is restarted in place
(same container ID, its writable layer kept); an image is pulled from a local registry (Debian's
docker-registry) and a missing one ends in ErrImagePull, then ImagePullBackOff; deleting pods stops
them gracefully and leaves no container, namespace, mount, veth or iptables rule behind.

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum FULCRUM_DEMO_IMAGE=build/demo-busybox.tar \
     python3 tests/e2e/agent_test.py
"""

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

NODE = "e2e-node"
IMAGE = "fulcrum.dev/busybox:demo"


def sh(*argv):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  nodeName: %(node)s
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: prepare
    image: %(image)s
    command: ["sh", "-c", "echo prepared"]
  containers:
  - name: httpd
    image: %(image)s
    command: ["httpd", "-f", "-p", "8080", "-h", "/etc"]
    ports:
    - containerPort: 8080
    readinessProbe:
      tcpSocket:
        port: 8080
      periodSeconds: 1
    env:
    - name: MY_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
"""

CRASHER = """
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  nodeName: %(node)s
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: %(image)s
    command: ["sh", "-c", "cat /keep 2>/dev/null; echo run >> /keep; sleep 1; exit 3"]
"""


@unittest.skipIf(e2e.containers_skip_reason(), e2e.containers_skip_reason())
class AgentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = e2e.Server().start()
        cls.kubectl = cls.server.kubectl(e2e.kubectl_versions()[-1])
        cls.root = os.path.join(cls.server.root, "agent")
        n = os.getpid() % 200
        cls.bridge = "fe2e%d" % os.getpid()
        cls.cidr = "10.253.%d.0/24" % n
        rc, out = sh(e2e.fulcrum_bin(), "image", "import", os.environ["FULCRUM_DEMO_IMAGE"],
                     "--root", cls.root)
        assert rc == 0, out
        cls.agent = None
        cls.agent_starts = 0
        cls.metrics_port = 30000 + os.getpid() % 10000
        cls.start_agent()

    @classmethod
    def start_agent(cls):
        cls.agent_starts += 1
        cls.agent_log = os.path.join(cls.server.root, "agent-%d.log" % cls.agent_starts)
        argv = [e2e.fulcrum_bin(), "agent", "--kubeconfig", cls.server.kubeconfig_path,
                "--node-name", NODE, "--root", cls.root, "--pod-cidr", cls.cidr,
                "--bridge", cls.bridge, "--cluster-dns", "10.96.0.10",
                "--metrics-listen", "127.0.0.1:%d" % cls.metrics_port]
        with open(cls.agent_log, "wb") as log:
            cls.agent = subprocess.Popen(e2e._with_pdeathsig(argv), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        e2e._track(cls.agent)

    @classmethod
    def stop_agent(cls):
        if cls.agent and cls.agent.poll() is None:
            cls.agent.send_signal(signal.SIGTERM)
            try:
                cls.agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                cls.agent.kill()
                cls.agent.wait()
        if cls.agent:
            e2e._untrack(cls.agent)

    @classmethod
    def tearDownClass(cls):
        # Pods still there are deleted through the agent; then whatever a failure left.
        try:
            cls.kubectl("delete", "pods", "--all", "--wait=true", "--timeout=40s", timeout=60)
        except Exception:
            pass
        cls.stop_agent()
        runc_root = os.path.join(cls.root, "runc")
        if os.path.isdir(runc_root):
            for cid in os.listdir(runc_root):
                sh("/usr/sbin/runc", "--root", runc_root, "delete", "--force", cid)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if cls.root in line.split()[4]]
        for m in sorted(mounts, key=len, reverse=True):
            sh("umount", "-l", m)
        sh("ip", "link", "del", cls.bridge)
        cls.remove_nat_rules(cls.cidr.rsplit(".", 1)[0] + ".")
        cls.server.stop()
        if not os.environ.get("FULCRUM_E2E_KEEP"):
            shutil.rmtree(cls.server.root, ignore_errors=True)

    @staticmethod
    def remove_nat_rules(prefix):
        """ipMasq rules a failed run left for our pod CIDR (a clean run leaves none)."""
        rc, out = sh("iptables-save", "-t", "nat")
        chains = set()
        for line in out.splitlines():
            if line.startswith("-A POSTROUTING") and (" -s " + prefix) in line:
                args = shlex.split(line)
                chains.add(args[-1])
                sh("iptables", "-t", "nat", "-D", *args[1:])
        for chain in chains:
            sh("iptables", "-t", "nat", "-F", chain)
            sh("iptables", "-t", "nat", "-X", chain)

    def agent_log_tail(self):
        try:
            with open(self.agent_log, errors="replace") as f:
                return "".join(f.readlines()[-40:])
        except OSError:
            return ""

    def get(self, *args):
        rc, out, err = self.kubectl("get", *args, "-o", "json")
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def wait_for(self, predicate, timeout, what):
        try:
            return e2e.poll(predicate, timeout, interval=0.25, what=what)
        except AssertionError as e:
            raise AssertionError("%s\n--- agent log ---\n%s" % (e, self.agent_log_tail())) from None

    def pod(self, name):
        rc, out, _ = self.kubectl("get", "pod", name, "-o", "json")
        return json.loads(out) if rc == 0 else None

    def apply(self, text):
        path = e2e.write_manifest(self.server.root, "m.yaml", text % {"node": NODE, "image": IMAGE})
        rc, out, err = self.kubectl("apply", "-f", path)
        self.assertEqual(rc, 0, err)

    def leftovers(self, uid):
        """What the host still has of pod `uid` (and of any container: one pod runs at a time)."""
        found = [d for d in ("run/netns/" + uid, "network/pods/" + uid, "pods/" + uid)
                 if os.path.exists(os.path.join(self.root, d))]
        containers = os.path.join(self.root, "containers")
        if os.path.isdir(containers):
            found += ["containers/" + c for c in os.listdir(containers)]
        rc, rules = sh("iptables-save")
        if uid in rules:
            found.append("iptables rules naming " + uid)
        rc, links = sh("ip", "-o", "link", "show", "master", self.bridge)
        if links.strip():
            found.append("veths: " + links)
        with open("/proc/self/mountinfo") as f:
            found += [line.split()[4] for line in f
                      if uid in line.split()[4] or os.path.join(self.root, "containers") in line]
        return found

    def test_1_node_registers(self):
        def ready():
            node = self.get("nodes", NODE) if self.kubectl("get", "node", NODE)[0] == 0 else None
            if not node:
                return None
            conds = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
            return node if conds.get("Ready") == "True" else None
        node = self.wait_for(ready, 30, "node %s Ready" % NODE)
        cap = node["status"]["capacity"]
        self.assertEqual(cap["cpu"], str(os.cpu_count()))
        for key in ("memory", "pods", "ephemeral-storage"):
            self.assertIn(key, node["status"]["allocatable"])
        conds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        self.assertEqual(conds["MemoryPressure"], "False")
        self.assertIn(node["status"]["addresses"][0]["type"], ("InternalIP",))
        self.assertEqual(node["spec"]["podCIDR"], self.cidr)
        lease = self.wait_for(
            lambda: self.kubectl("get", "lease", "-n", "kube-node-lease", NODE, "-o", "json")[0] == 0,
            20, "the node's Lease")
        self.assertTrue(lease)

    def test_2_pod_runs_and_is_reachable_then_deleted(self):
        self.apply(POD)

        def running():
            pod = self.pod("web")
            if not pod or pod["status"].get("phase") != "Running":
                return None
            conds = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            return pod if conds.get("Ready") == "True" and pod["status"].get("podIP") else None
        pod = self.wait_for(running, 60, "pod web Running and Ready with an IP")
        status = pod["status"]
        ip = status["podIP"]
        self.assertTrue(ip.startswith(self.cidr.rsplit(".", 1)[0] + "."), ip)
        self.assertEqual(status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
                         "Completed")
        cs = status["containerStatuses"][0]
        self.assertTrue(cs["ready"])
        self.assertTrue(cs["containerID"].startswith("runc://"))
        self.assertIn("running", cs["state"])
        self.assertTrue(status.get("hostIP"))
        self.assertTrue(status.get("startTime"))
        rc, out, _ = self.kubectl("get", "pod", "web", "-o", "wide")
        self.assertIn(ip, out)
        self.assertIn("Running", out)
        # The node reaches the pod: httpd serves the pod's /etc/hosts (written by the agent).
        with socket.create_connection((ip, 8080), timeout=5) as s:
            s.sendall(b"GET /hosts HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertIn(("%s\tweb" % ip).encode(), data)
        rc, out, _ = self.kubectl("get", "events", "--field-selector", "involvedObject.name=web")
        for reason in ("Pulled", "Created", "Started"):
            self.assertIn(reason, out)

        # The agent's /metrics has the container's usage, sampled from its cgroup.
        def scraped():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                            timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return None
            want = 'container_memory_working_set_bytes{container="httpd",namespace="default",pod="web"}'
            return text if want in text and "node_cpu_usage_seconds_total" in text else None
        self.wait_for(scraped, 15, "the container's usage on the agent's /metrics")

        # Adoption: a restarted agent keeps the running container.
        self.stop_agent()
        self.start_agent()
        time.sleep(4)
        again = self.pod("web")["status"]["containerStatuses"][0]
        self.assertEqual(again["containerID"], cs["containerID"])
        self.assertEqual(again["restartCount"], 0)
        self.assertEqual(again["state"], cs["state"])

        uid = pod["metadata"]["uid"]
        rc, out, err = self.kubectl("delete", "pod", "web", "--timeout=60s", timeout=90)
        self.assertEqual(rc, 0, err + self.agent_log_tail())
        self.assertIsNone(self.pod("web"))
        self.wait_for(lambda: not self.leftovers(uid), 10,
                      "no leftovers of pod web: %s" % self.leftovers(uid))

    def test_3_crashing_container_is_restarted_in_place(self):
        self.apply(CRASHER)

        def restarted():
            pod = self.pod("crasher")
            if not pod or not pod["status"].get("containerStatuses"):
                return None
            cs = pod["status"]["containerStatuses"][0]
            return cs if cs.get("restartCount", 0) >= 1 and cs.get("lastState") else None
        cs = self.wait_for(restarted, 60, "crasher restarted")
        self.assertEqual(cs["lastState"]["terminated"]["exitCode"], 3)
        self.assertEqual(cs["lastState"]["terminated"]["containerID"], cs["containerID"])
        # The writable layer was reused: the second run saw the first run's file.
        cid = cs["containerID"][len("runc://"):]
        keep = os.path.join(self.root, "containers", cid, "upper", "keep")
        def runs():
            if not os.path.exists(keep):
                return 0
            with open(keep) as f:
                return f.read().count("run")
        self.wait_for(lambda: runs() >= 2, 30, "two runs recorded in the container's writable layer")
        uid = self.pod("crasher")["metadata"]["uid"]
        rc, out, err = self.kubectl("delete", "pod", "crasher", "--timeout=60s", timeout=90)
        self.assertEqual(rc, 0, err + self.agent_log_tail())
        self.wait_for(lambda: not self.leftovers(uid), 10,
                      "no leftovers of pod crasher: %s" % self.leftovers(uid))

    def test_4_image_is_pulled_from_a_registry(self):
        registry_bin = "/usr/bin/docker-registry"
        if not os.path.exists(registry_bin):
            self.skipTest("docker-registry is not installed")
        port = free_port()
        endpoint = "127.0.0.1:%d" % port
        config = os.path.join(self.server.root, "registry.yml")
        with open(config, "w") as f:
            f.write("version: 0.1\nlog: {level: error}\n"
                    "storage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: \"%s\"}\n"
                    % (os.path.join(self.server.root, "registry"), endpoint))
        registry = subprocess.Popen(e2e._with_pdeathsig([registry_bin, "serve", config]),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        e2e._track(registry)
        try:
            e2e.poll(lambda: http_status("http://%s/v2/" % endpoint) == 200, 20,
                     what="docker-registry answering")
            push_oci_archive(os.environ["FULCRUM_DEMO_IMAGE"], endpoint, "e2e/busybox", "v1")
            image = endpoint + "/e2e/busybox:v1"
            self.apply(POD_FROM_REGISTRY % {"name": "pulled", "image": image})
            self.apply(POD_FROM_REGISTRY % {"name": "unpullable", "image": endpoint + "/e2e/busybox:nope"})

            def running():
                pod = self.pod("pulled")
                return pod if pod and pod["status"].get("phase") == "Running" else None
            self.wait_for(running, 60, "pod pulled Running")
            rc, out, _ = self.kubectl("get", "events", "--field-selector", "involvedObject.name=pulled")
            self.assertIn("Successfully pulled image \"%s\"" % image, out)
            rc, out = sh(e2e.fulcrum_bin(), "image", "ls", "--root", self.root)
            self.assertIn(image, out)

            def waiting(reason):
                pod = self.pod("unpullable")
                for cs in (pod or {}).get("status", {}).get("containerStatuses") or []:
                    w = cs.get("state", {}).get("waiting", {})
                    if w.get("reason") == reason:
                        return w
                return None
            w = self.wait_for(lambda: waiting("ErrImagePull") or waiting("ImagePullBackOff"), 60,
                              "unpullable waiting on the pull")
            self.wait_for(lambda: waiting("ImagePullBackOff"), 60, "unpullable in ImagePullBackOff")
            rc, out, _ = self.kubectl("get", "events", "--field-selector",
                                      "involvedObject.name=unpullable")
            self.assertIn("MANIFEST_UNKNOWN", out)
            self.assertIn("ErrImagePull", out)
            for name in ("pulled", "unpullable"):
                rc, out, err = self.kubectl("delete", "pod", name, "--timeout=60s", timeout=90)
                self.assertEqual(rc, 0, err + self.agent_log_tail())
        finally:
            registry.kill()
            registry.wait()
            e2e._untrack(registry)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_status(url, method="GET", data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def push_oci_archive(path, endpoint, repository, tag):
    """Pushes the one image of an OCI layout tarball as `docker push` would: blobs, then the
    manifest under `tag`."""
    with tarfile.open(path) as tar:
        def blob(digest):
            return tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1]).read()
        index = json.loads(tar.extractfile("index.json").read())
        manifest_digest = index["manifests"][0]["digest"]
        manifest_bytes = blob(manifest_digest)
        manifest = json.loads(manifest_bytes)
        for d in [manifest["config"]["digest"]] + [l["digest"] for l in manifest["layers"]]:
            req = urllib.request.Request("http://%s/v2/%s/blobs/uploads/" % (endpoint, repository),
                                         data=b"", method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                location = r.headers["Location"]
            if location.startswith("/"):
                location = "http://" + endpoint + location
            location += ("&" if "?" in location else "?") + "digest=" + d
            status = http_status(location, "PUT", blob(d), {"Content-Type": "application/octet-stream"})
            assert status == 201, "pushing blob %s: HTTP %d" % (d, status)
        status = http_status("http://%s/v2/%s/manifests/%s" % (endpoint, repository, tag), "PUT",
                             manifest_bytes,
                             {"Content-Type": manifest.get("mediaType",
                                                           "application/vnd.oci.image.manifest.v1+json")})
        assert status == 201, "pushing the manifest: HTTP %d" % status


POD_FROM_REGISTRY = """
apiVersion: v1
kind: Pod
metadata:
  name: %(name)s
spec:
  nodeName: e2e-node
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: %(image)s
    imagePullPolicy: Always
    command: ["sleep", "3600"]
"""


if __name__ == "__main__":
    unittest.main(verbosity=2)
