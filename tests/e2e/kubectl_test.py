#!/usr/bin/env python3
"""fulcrum driven by unmodified kubectl binaries, one test class per kubectl version.

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum python3 tests/e2e/kubectl_test.py
     [--kubectl-versions 1.27,1.33] [KubectlV1_33Test.test_scale_deployment]
Each class starts its own server; each test works in its own namespace.
"""

import base64
import json
import os
import re
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

# This suite checks the API server as kubectl sees it; with controllers running, the objects it
# creates would change under it (ReplicaSets, pods, status). e2e_cluster covers the controllers.
API_ONLY = ["--control-loops", "off"]

NAMESPACE_GONE_TIMEOUT = 30.0
WATCH_TIMEOUT = 20.0

APP_MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    team: e2e
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: {ns}
data:
  greeting: hello
  mode: test
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
  namespace: {ns}
type: Opaque
stringData:
  password: s3cret
data:
  token: dG9rZW4=
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
    protocol: TCP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1.25
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: {ns}
  labels:
    app: web
spec:
  containers:
  - name: app
    image: nginx:1.25
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
{labels}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: app
        image: {image}
"""

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
{labels}
spec:
  containers:
  - name: app
    image: {image}
"""

REPLICASET = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      rs: {name}
  template:
    metadata:
      labels:
        rs: {name}
    spec:
      containers:
      - name: app
        image: busybox:1.36
"""

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def yaml_labels(labels, indent=4):
    if not labels:
        return " " * indent + "{}"
    return "\n".join("%s%s: %s" % (" " * indent, k, json.dumps(v)) for k, v in labels.items())


def deployment(name, image="nginx:1.25", replicas=1, labels=None):
    return DEPLOYMENT.format(name=name, image=image, replicas=replicas,
                             labels=yaml_labels(labels or {"app": name}))


def pod(name, image="nginx:1.25", labels=None):
    return POD.format(name=name, image=image, labels=yaml_labels(labels or {"app": name}))


def configmap(name, data=None, labels=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": data if data is not None else {"k": "v"}}


def secret(name, string_data):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "stringData": string_data}


def service(name, port=80, target_port=8080):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name},
                     "ports": [{"port": port, "targetPort": target_port, "protocol": "TCP"}]}}


def service_account(name):
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def lines(text):
    return [l for l in text.splitlines() if l.strip()]


class KubectlSuite(unittest.TestCase):
    """The checks; concrete subclasses (one per kubectl version) are made at the bottom."""

    VERSION = None

    @classmethod
    def setUpClass(cls):
        cls.server = e2e.Server(extra_args=API_ONLY)
        cls.server.start()
        cls.kubectl = cls.server.kubectl(cls.VERSION)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        name = re.sub(r"[^a-z0-9]+", "-", self._testMethodName[len("test_"):].lower())
        self.ns = ("e2e-" + name)[:50].strip("-")
        self.tmp = e2e.make_temp_dir("fulcrum-e2e-manifests-")
        self.manifests = 0
        # Through the API rather than `kubectl create namespace`, which test_create_imperative
        # covers, so that one broken command does not fail every test.
        resp = self.api.post("/api/v1/namespaces", namespace(self.ns))
        self.assertEqual(resp.status, 201, "creating namespace %s: %s"
                         % (self.ns, e2e.status_summary(resp)))

    # --- running kubectl -----------------------------------------------------------------

    @property
    def api(self):
        return self.server.client

    def run_kubectl(self, args, namespaced=True, input=None, timeout=e2e.KUBECTL_TIMEOUT,
                    kubectl=None):
        kubectl = kubectl or self.kubectl
        full = (["-n", self.ns] if namespaced else []) + list(args)
        rc, out, err = kubectl(*full, input=input, timeout=timeout)
        return full, rc, out, err

    def describe_run(self, full, rc, out, err, kubectl=None):
        kubectl = kubectl or self.kubectl
        return ("kubectl %s %s\nexit %d\n--- stdout ---\n%s--- stderr ---\n%s--- server log ---\n%s"
                % (kubectl.version, " ".join(full), rc, out, err,
                   kubectl.server.log_tail(15)))

    def ok(self, *args, namespaced=True, input=None, kubectl=None, timeout=e2e.KUBECTL_TIMEOUT):
        """Runs kubectl, asserts exit 0, returns stdout."""
        full, rc, out, err = self.run_kubectl(args, namespaced, input, timeout, kubectl)
        if rc != 0:
            self.fail("expected success:\n" + self.describe_run(full, rc, out, err, kubectl))
        return out

    def fails(self, *args, namespaced=True, input=None, kubectl=None):
        """Runs kubectl, asserts a non-zero exit, returns stderr."""
        full, rc, out, err = self.run_kubectl(args, namespaced, input, e2e.KUBECTL_TIMEOUT,
                                              kubectl)
        if rc == 0:
            self.fail("expected failure:\n" + self.describe_run(full, rc, out, err, kubectl))
        return err

    def jsonpath(self, resource, expr, kubectl=None):
        return self.ok("get", resource, "-o", "jsonpath=" + expr, kubectl=kubectl)

    def get_json(self, *args, kubectl=None):
        return json.loads(self.ok("get", *args, "-o", "json", kubectl=kubectl))

    def manifest(self, text, name="manifest.yaml"):
        return e2e.write_manifest(self.tmp, name, text)

    def create(self, obj, **kw):
        """`kubectl create -f` of one object written to a JSON manifest; returns stdout."""
        self.manifests += 1
        path = self.manifest(json.dumps(obj, indent=2), "object-%d.json" % self.manifests)
        return self.ok("create", "-f", path, **kw)

    def names(self, *args):
        """`kubectl get ARGS -o name` as a set."""
        return set(lines(self.ok("get", *args, "-o", "name")))

    def assertStatus(self, resp, code, reason=None):
        body = resp.json_or_none()
        self.assertEqual(resp.status, code, e2e.status_summary(resp))
        self.assertIsInstance(body, dict, repr(resp))
        self.assertEqual(body.get("kind"), "Status", repr(resp))
        self.assertEqual(body.get("code"), code, repr(resp))
        if reason:
            self.assertEqual(body.get("reason"), reason, repr(resp))
        return body

    # --- create, apply -------------------------------------------------------------------

    def test_create_from_manifest(self):
        app_ns = self.ns + "-app"
        path = self.manifest(APP_MANIFEST.format(ns=app_ns))
        out = self.ok("create", "-f", path, namespaced=False)
        for expected in ["namespace/%s created" % app_ns, "configmap/app-config created",
                         "secret/app-secret created", "service/web created",
                         "deployment.apps/web created", "pod/web-0 created"]:
            self.assertIn(expected, out)

        listed = set(lines(self.ok("get", "-f", path, "-o", "name", namespaced=False)))
        self.assertEqual(listed, {"namespace/" + app_ns, "configmap/app-config",
                                  "secret/app-secret", "service/web", "deployment.apps/web",
                                  "pod/web-0"})

        ns_json = self.get_json("namespace", app_ns)
        self.assertEqual(ns_json["metadata"]["labels"].get("team"), "e2e")
        self.assertEqual(ns_json.get("status", {}).get("phase"), "Active", ns_json)

        def get(*args):
            return self.ok("-n", app_ns, "get", *args, namespaced=False)

        self.assertEqual(get("configmap", "app-config", "-o",
                             "jsonpath={.data.greeting}/{.data.mode}"), "hello/test")
        secret = json.loads(get("secret", "app-secret", "-o", "json"))
        self.assertEqual(secret["type"], "Opaque")
        self.assertEqual(base64.b64decode(secret["data"]["password"]), b"s3cret",
                         "stringData must be merged into data: %s" % secret)
        self.assertEqual(base64.b64decode(secret["data"]["token"]), b"token")
        self.assertNotIn("stringData", secret)
        self.assertEqual(get("service", "web", "-o",
                             "jsonpath={.spec.ports[0].port} {.spec.ports[0].targetPort}"
                             " {.spec.selector.app}"), "80 8080 web")
        self.assertEqual(get("deployment", "web", "-o",
                             "jsonpath={.spec.replicas} "
                             "{.spec.template.spec.containers[0].image}"), "2 nginx:1.25")
        p = json.loads(get("pod", "web-0", "-o", "json"))
        self.assertEqual(p["spec"]["containers"][0]["image"], "nginx:1.25")
        self.assertEqual(p.get("status", {}).get("phase"), "Pending", p)

        err = self.fails("create", "-f", path, namespaced=False)
        self.assertIn("AlreadyExists", err)
        self.assertIn("already exists", err)

    def test_create_imperative(self):
        # kubectl's generators; kubectl 1.32 and later send their bodies as protobuf.
        other = self.ns + "-imp"
        self.assertIn("namespace/%s created" % other,
                      self.ok("create", "namespace", other, namespaced=False))
        self.assertEqual(self.jsonpath("namespace/" + other, "{.status.phase}"), "Active")
        self.assertIn("configmap/gen created",
                      self.ok("create", "configmap", "gen", "--from-literal=a=1",
                              "--from-literal=b=2"))
        self.assertEqual(self.get_json("configmap", "gen")["data"], {"a": "1", "b": "2"})
        self.ok("create", "secret", "generic", "gen", "--from-literal=password=s3cret")
        self.assertEqual(base64.b64decode(self.jsonpath("secret/gen", "{.data.password}")),
                         b"s3cret")
        self.ok("create", "service", "clusterip", "gen", "--tcp=80:8080")
        self.assertEqual(self.jsonpath("service/gen",
                                       "{.spec.ports[0].port} {.spec.ports[0].targetPort}"),
                         "80 8080")
        self.ok("create", "serviceaccount", "gen")
        self.ok("create", "deployment", "gen", "--image=nginx:1.25", "--replicas=2")
        self.assertEqual(self.jsonpath("deployment/gen", "{.spec.replicas} "
                                       "{.spec.template.spec.containers[0].image}"),
                         "2 nginx:1.25")
        self.assertIn("pod/gen created", self.ok("run", "gen", "--image=nginx:1.25",
                                                 "--labels=app=gen"))
        self.assertEqual(self.jsonpath("pod/gen", "{.metadata.labels.app}"), "gen")
        self.assertEqual(self.names("configmaps,secrets,services,serviceaccounts,deployments,pods"),
                         {"configmap/gen", "secret/gen", "service/gen", "serviceaccount/gen",
                          "deployment.apps/gen", "pod/gen"})

    def test_apply_twice(self):
        config = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: "1"
{extra}---
"""
        first = deployment("api", image="nginx:1.25",
                           labels={"app": "api", "tier": "backend", "old": "x"})
        path = self.manifest(config.format(extra='  b: "2"\n') + first)
        out = self.ok("apply", "-f", path)
        self.assertIn("configmap/settings created", out)
        self.assertIn("deployment.apps/api created", out)
        self.assertIn("unchanged", self.ok("apply", "-f", path))
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration",
                      self.jsonpath("deployment/api", "{.metadata.annotations}"))

        second = deployment("api", image="nginx:1.26", labels={"app": "api", "tier": "frontend"})
        path = self.manifest(config.format(extra="") + second)
        out = self.ok("apply", "-f", path)
        self.assertIn("deployment.apps/api configured", out)
        self.assertIn("configmap/settings configured", out)
        self.assertEqual(
            self.jsonpath("deployment/api", "{.metadata.labels.tier} "
                          "{.spec.template.spec.containers[0].image}"),
            "frontend nginx:1.26")
        labels = self.get_json("deployment", "api")["metadata"]["labels"]
        self.assertNotIn("old", labels, "a label removed from the manifest must be pruned")
        self.assertEqual(self.get_json("configmap", "settings")["data"], {"a": "1"},
                         "a key removed from the manifest must be pruned")
        self.assertIn("nginx:1.26", self.jsonpath(
            "deployment/api",
            "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}"))
        self.assertIn("unchanged", self.ok("apply", "-f", path))

    # --- get -----------------------------------------------------------------------------

    def test_get_output_formats(self):
        self.ok("create", "-f", self.manifest(pod("fmt-pod")))
        self.create(configmap("fmt"))

        y = self.ok("get", "pod", "fmt-pod", "-o", "yaml")
        for needle in ["apiVersion: v1", "kind: Pod", "name: fmt-pod", "namespace: " + self.ns,
                       "image: nginx:1.25", "uid: ", "resourceVersion: ", "creationTimestamp: "]:
            self.assertIn(needle, y)

        p = self.get_json("pod", "fmt-pod")
        self.assertEqual((p["apiVersion"], p["kind"]), ("v1", "Pod"))
        self.assertEqual(p["metadata"]["name"], "fmt-pod")
        self.assertEqual(p["metadata"]["namespace"], self.ns)
        self.assertTrue(p["metadata"].get("uid"), p)
        self.assertTrue(p["metadata"].get("resourceVersion"), p)
        self.assertRegex(p["metadata"].get("creationTimestamp", ""), RFC3339)

        listed = self.get_json("pods")
        self.assertEqual(listed["kind"], "List")
        self.assertEqual([i["metadata"]["name"] for i in listed["items"]], ["fmt-pod"])
        self.assertEqual(listed["items"][0]["kind"], "Pod")

        table = lines(self.ok("get", "pods"))
        self.assertEqual(table[0].split(), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"])
        self.assertEqual(table[1].split()[:4], ["fmt-pod", "0/1", "Pending", "0"])

        wide = lines(self.ok("get", "pods", "-o", "wide"))
        header = wide[0].split()
        for column in ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]:
            self.assertIn(column, header, wide[0])
        self.assertTrue(wide[1].startswith("fmt-pod"), wide)

        cm_table = lines(self.ok("get", "configmaps"))
        self.assertEqual(cm_table[0].split(), ["NAME", "DATA", "AGE"])
        self.assertEqual(cm_table[1].split()[:2], ["fmt", "1"])

        self.assertEqual(self.ok("get", "pod", "fmt-pod", "-o", "name").strip(), "pod/fmt-pod")
        self.assertEqual(self.jsonpath("pod/fmt-pod", "{.metadata.name}"), "fmt-pod")
        self.assertEqual(self.ok("get", "pods", "-o",
                                 'jsonpath={range .items[*]}{.metadata.name}:'
                                 '{.spec.containers[0].image}{"\\n"}{end}'),
                         "fmt-pod:nginx:1.25\n")
        custom = lines(self.ok("get", "pods", "-o",
                               "custom-columns=N:.metadata.name,I:.spec.containers[0].image"))
        self.assertEqual([l.split() for l in custom], [["N", "I"], ["fmt-pod", "nginx:1.25"]])

    def test_get_all(self):
        self.ok("create", "-f", self.manifest(deployment("front")))
        self.ok("create", "-f", self.manifest(pod("lonely")))
        self.ok("create", "-f", self.manifest(REPLICASET.format(name="rs1")))
        self.create(service("front"))
        self.create(configmap("not-in-all"))
        out = self.ok("get", "all")
        for expected in ["pod/lonely", "service/front", "deployment.apps/front",
                         "replicaset.apps/rs1"]:
            self.assertIn(expected, out)
        self.assertNotIn("not-in-all", out, "configmaps are not in the 'all' category")
        names = self.names("all")
        self.assertEqual(names, {"pod/lonely", "service/front", "deployment.apps/front",
                                 "replicaset.apps/rs1"})

    def test_get_label_selectors(self):
        for name, labels in [("a", {"app": "web", "tier": "front"}),
                             ("b", {"app": "web", "tier": "back"}),
                             ("c", {"app": "db"}),
                             ("d", {"other": "x"})]:
            self.ok("create", "-f", self.manifest(pod(name, labels=labels), name + ".yaml"))
        cases = [("app=web", {"a", "b"}),
                 ("app==web", {"a", "b"}),
                 ("app!=web", {"c", "d"}),
                 ("tier in (front,back)", {"a", "b"}),
                 ("tier in (front)", {"a"}),
                 ("app notin (web)", {"c", "d"}),
                 ("tier", {"a", "b"}),
                 ("!tier", {"c", "d"}),
                 ("app=web,tier=front", {"a"}),
                 ("app=web,tier notin (front)", {"b"}),
                 ("app=nothing", set())]
        for selector, expected in cases:
            with self.subTest(selector=selector):
                self.assertEqual(self.names("pods", "-l", selector),
                                 {"pod/" + n for n in expected})

    def test_get_field_selectors(self):
        for name in ["f1", "f2"]:
            self.ok("create", "-f", self.manifest(pod(name), name + ".yaml"))
            self.create(configmap(name, {"k": name}, labels={"app": name}))
        self.assertEqual(self.names("pods", "--field-selector", "metadata.name=f1"), {"pod/f1"})
        self.assertEqual(self.names("pods", "--field-selector", "metadata.name!=f1"), {"pod/f2"})
        self.assertEqual(self.names("configmaps", "--field-selector", "metadata.name=f2"),
                         {"configmap/f2"})
        self.assertEqual(self.names("pods", "--field-selector",
                                    "metadata.namespace=" + self.ns), {"pod/f1", "pod/f2"})
        self.assertEqual(self.names("pods", "--field-selector", "status.phase=Pending"),
                         {"pod/f1", "pod/f2"})
        self.assertEqual(self.names("pods", "--field-selector", "status.phase=Running"), set())
        self.assertEqual(self.names("pods", "-l", "app=f2",
                                    "--field-selector", "metadata.name=f2"), {"pod/f2"})
        err = self.fails("get", "pods", "--field-selector", "spec.bogusField=1")
        self.assertIn("BadRequest", err)

    def test_describe(self):
        self.ok("create", "-f", self.manifest(pod("desc-pod", labels={"app": "desc"})))
        self.ok("create", "-f", self.manifest(deployment("desc-deploy", replicas=2)))
        out = self.ok("describe", "pod", "desc-pod")
        self.assertRegex(out, r"Name:\s+desc-pod")
        self.assertRegex(out, r"Namespace:\s+" + re.escape(self.ns))
        self.assertRegex(out, r"Labels:\s+app=desc")
        self.assertRegex(out, r"Status:\s+Pending")
        self.assertIn("Containers:", out)
        self.assertRegex(out, r"Image:\s+nginx:1.25")
        out = self.ok("describe", "deployment", "desc-deploy")
        self.assertRegex(out, r"Name:\s+desc-deploy")
        self.assertRegex(out, r"Selector:\s+app=desc-deploy")
        self.assertRegex(out, r"Replicas:\s+2 desired")
        self.assertRegex(out, r"Image:\s+nginx:1.25")
        out = self.ok("describe", "pods", "-l", "app=desc")
        self.assertRegex(out, r"Name:\s+desc-pod")

    # --- modify --------------------------------------------------------------------------

    def test_label_and_annotate(self):
        self.ok("create", "-f", self.manifest(pod("lab")))
        self.assertIn("pod/lab labeled", self.ok("label", "pod", "lab", "env=prod"))
        self.assertEqual(self.jsonpath("pod/lab", "{.metadata.labels.env}"), "prod")
        err = self.fails("label", "pod", "lab", "env=dev")
        self.assertIn("already has a value", err)
        self.assertEqual(self.jsonpath("pod/lab", "{.metadata.labels.env}"), "prod")
        self.ok("label", "pod", "lab", "env=dev", "--overwrite")
        self.assertEqual(self.jsonpath("pod/lab", "{.metadata.labels.env}"), "dev")
        self.ok("label", "pod", "lab", "env-")
        self.assertNotIn("env", self.get_json("pod", "lab")["metadata"].get("labels", {}))
        self.assertEqual(self.get_json("pod", "lab")["metadata"]["labels"], {"app": "lab"})

        # kubectl 1.27 itself prints "annotate" here, later versions "annotated".
        self.assertRegex(self.ok("annotate", "pod", "lab", "owner=alice", "example.com/note=hi"),
                         r"pod/lab annotated?\b")
        ann = self.get_json("pod", "lab")["metadata"]["annotations"]
        self.assertEqual((ann.get("owner"), ann.get("example.com/note")), ("alice", "hi"))
        err = self.fails("annotate", "pod", "lab", "owner=bob")
        self.assertIn("already has a value", err)
        self.ok("annotate", "pod", "lab", "owner=bob", "--overwrite")
        self.assertEqual(self.jsonpath("pod/lab", "{.metadata.annotations.owner}"), "bob")
        self.ok("annotate", "pod", "lab", "owner-", "example.com/note-")
        ann = self.get_json("pod", "lab")["metadata"].get("annotations", {})
        self.assertNotIn("owner", ann)
        self.assertNotIn("example.com/note", ann)

        # Several objects by selector at once.
        self.ok("create", "-f", self.manifest(pod("lab2", labels={"app": "lab"}), "p2.yaml"))
        out = self.ok("label", "pods", "-l", "app=lab", "wave=1")
        self.assertIn("pod/lab labeled", out)
        self.assertIn("pod/lab2 labeled", out)
        self.assertEqual(self.names("pods", "-l", "wave=1"), {"pod/lab", "pod/lab2"})

    def test_scale_deployment(self):
        self.ok("create", "-f", self.manifest(deployment("scaled", replicas=1)))
        self.assertIn("deployment.apps/scaled scaled",
                      self.ok("scale", "deployment", "scaled", "--replicas=3"))
        self.assertEqual(self.jsonpath("deployment/scaled", "{.spec.replicas}"), "3")
        resp = self.api.get("/apis/apps/v1/namespaces/%s/deployments/scaled/scale" % self.ns)
        self.assertEqual(resp.status, 200, repr(resp))
        scale = resp.json()
        self.assertEqual(scale["kind"], "Scale")
        self.assertEqual(scale["apiVersion"], "autoscaling/v1")
        self.assertEqual(scale["spec"]["replicas"], 3)
        self.assertEqual(scale["metadata"]["name"], "scaled")

        # A precondition that does not hold leaves the object alone.
        self.fails("scale", "deployment", "scaled", "--current-replicas=2", "--replicas=5")
        self.assertEqual(self.jsonpath("deployment/scaled", "{.spec.replicas}"), "3")
        self.ok("scale", "deployment", "scaled", "--current-replicas=3", "--replicas=0")
        self.assertEqual(self.jsonpath("deployment/scaled", "{.spec.replicas}"), "0")

        self.ok("create", "-f", self.manifest(REPLICASET.format(name="rs-scaled"), "rs.yaml"))
        self.assertIn("replicaset.apps/rs-scaled scaled",
                      self.ok("scale", "rs", "rs-scaled", "--replicas=4"))
        self.assertEqual(self.jsonpath("rs/rs-scaled", "{.spec.replicas}"), "4")

    def containers(self, name, ordered=True):
        spec = self.get_json("deployment", name)["spec"]["template"]["spec"]
        found = [(c["name"], c["image"]) for c in spec["containers"]]
        return found if ordered else sorted(found)

    def test_patch_strategic(self):
        self.ok("create", "-f", self.manifest(deployment("sp", labels={"app": "sp", "a": "1"})))
        out = self.ok("patch", "deployment", "sp", "--type=strategic", "-p", json.dumps(
            {"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "busybox:1.36"}]}}}}))
        self.assertIn("deployment.apps/sp patched", out)
        # Without $setElementOrder Kubernetes puts new patch items first; order is not the point.
        self.assertEqual(self.containers("sp", ordered=False),
                         [("app", "nginx:1.25"), ("sidecar", "busybox:1.36")],
                         "containers merge by name under a strategic merge patch")
        # Naming an existing container changes only that one.
        self.ok("patch", "deployment", "sp", "-p", json.dumps(
            {"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.26"}]}}}}))
        self.assertEqual(self.containers("sp", ordered=False),
                         [("app", "nginx:1.26"), ("sidecar", "busybox:1.36")])
        # $patch: delete removes one element by its merge key.
        self.ok("patch", "deployment", "sp", "--type=strategic", "-p", json.dumps(
            {"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "$patch": "delete"}]}}}}))
        self.assertEqual(self.containers("sp"), [("app", "nginx:1.26")])
        # Maps merge; null deletes a key.
        self.ok("patch", "deployment", "sp", "--type=strategic", "-p",
                '{"metadata":{"labels":{"b":"2","a":null}}}')
        self.assertEqual(self.get_json("deployment", "sp")["metadata"]["labels"],
                         {"app": "sp", "b": "2"})

    def test_patch_merge(self):
        self.ok("create", "-f", self.manifest(deployment("mp", labels={"app": "mp", "a": "1"})))
        self.ok("patch", "deployment", "mp", "--type=merge", "-p",
                '{"metadata":{"labels":{"b":"2","a":null}},"spec":{"replicas":4}}')
        d = self.get_json("deployment", "mp")
        self.assertEqual(d["metadata"]["labels"], {"app": "mp", "b": "2"})
        self.assertEqual(d["spec"]["replicas"], 4)
        # A JSON merge patch replaces lists wholesale.
        self.ok("patch", "deployment", "mp", "--type=merge", "-p", json.dumps(
            {"spec": {"template": {"spec": {"containers": [
                {"name": "only", "image": "busybox:1.36"}]}}}}))
        self.assertEqual(self.containers("mp"), [("only", "busybox:1.36")])
        self.create(configmap("mcm", {"x": "1", "y": "2"}))
        self.ok("patch", "configmap", "mcm", "--type=merge", "-p", '{"data":{"x":null,"z":"3"}}')
        self.assertEqual(self.get_json("configmap", "mcm")["data"], {"y": "2", "z": "3"})

    def test_patch_json(self):
        self.ok("create", "-f", self.manifest(deployment("jp", labels={"app": "jp", "gone": "1"})))
        self.ok("patch", "deployment", "jp", "--type=json", "-p", json.dumps([
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "jp"},
            {"op": "remove", "path": "/metadata/labels/gone"},
            {"op": "add", "path": "/spec/template/spec/containers/-",
             "value": {"name": "second", "image": "busybox:1.36"}},
        ]))
        d = self.get_json("deployment", "jp")
        self.assertEqual(d["spec"]["replicas"], 5)
        self.assertEqual(d["metadata"]["labels"], {"app": "jp", "app.kubernetes.io/name": "jp"})
        self.assertEqual(self.containers("jp"), [("app", "nginx:1.25"),
                                                 ("second", "busybox:1.36")])
        rv = d["metadata"]["resourceVersion"]
        # A failing "test" op rejects the whole patch.
        self.fails("patch", "deployment", "jp", "--type=json", "-p", json.dumps([
            {"op": "replace", "path": "/spec/replicas", "value": 9},
            {"op": "test", "path": "/spec/replicas", "value": 1}]))
        d = self.get_json("deployment", "jp")
        self.assertEqual(d["spec"]["replicas"], 5)
        self.assertEqual(d["metadata"]["resourceVersion"], rv)

    # --- watch and wait ------------------------------------------------------------------

    def test_get_watch(self):
        self.ok("create", "-f", self.manifest(pod("w0"), "w0.yaml"))
        watcher = self.kubectl.start("-n", self.ns, "get", "pods", "-w",
                                     "--request-timeout=60s")
        try:
            watcher.wait_output(lambda out: "w0" in out, WATCH_TIMEOUT,
                                "the initial list to show w0")
            self.ok("create", "-f", self.manifest(pod("w1"), "w1.yaml"))
            watcher.wait_output(lambda out: re.search(r"^w1\s", out, re.M), WATCH_TIMEOUT,
                                "the watch to show the new pod w1")
            seen = watcher.stdout.count("\nw1 ")
            self.ok("label", "pod", "w1", "stage=two")
            watcher.wait_output(lambda out: out.count("\nw1 ") > seen, WATCH_TIMEOUT,
                                "the watch to show the modified pod w1 again")
            self.assertIsNone(watcher.proc.poll(), "kubectl get -w exited early: "
                              + watcher.stderr)
        finally:
            watcher.stop()

        # Watch events as JSON: ADDED then MODIFIED then DELETED for one object.
        watcher = self.kubectl.start("-n", self.ns, "get", "configmaps", "-w",
                                     "--output-watch-events", "-o", "json",
                                     "--request-timeout=60s")
        try:
            # Nothing to list yet; give the watch something to open on.
            self.create(configmap("wcm", {"k": "1"}))
            watcher.wait_output(lambda out: '"ADDED"' in out, WATCH_TIMEOUT, "an ADDED event")
            self.ok("patch", "configmap", "wcm", "--type=merge", "-p", '{"data":{"k":"2"}}')
            watcher.wait_output(lambda out: '"MODIFIED"' in out, WATCH_TIMEOUT,
                                "a MODIFIED event")
            self.ok("delete", "configmap", "wcm")
            watcher.wait_output(lambda out: '"DELETED"' in out, WATCH_TIMEOUT,
                                "a DELETED event")
        finally:
            watcher.stop()

    def start_logged_wait(self, *args):
        """Starts `kubectl wait` at -v=6 so the test can see when its first request returned."""
        return self.kubectl.start("-n", self.ns, "-v=6", "wait", *args)

    def wait_for_request(self, waiter, name):
        """Until kubectl logged a 200 for a request naming the object (list, get or watch)."""
        request = re.compile(r"(/%s\b|metadata\.name%%3D%s\b)" % (re.escape(name), re.escape(name)))

        def logged():
            return any(request.search(line) and "200 OK" in line
                       for line in waiter.stderr.splitlines())
        try:
            e2e.poll(lambda: logged() or waiter.proc.poll() is not None, WATCH_TIMEOUT,
                     what="kubectl wait's first request")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, waiter.stderr[-3000:])) from None

    def finish_wait(self, waiter, what):
        rc = waiter.wait(timeout=60)
        if rc is None:
            waiter.stop()
        self.assertEqual(rc, 0, "kubectl wait %s: exit %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                         % (what, rc, waiter.stdout, waiter.stderr[-3000:]))

    def test_wait_for_delete(self):
        self.ok("create", "-f", self.manifest(pod("doomed")))
        waiter = self.start_logged_wait("--for=delete", "pod/doomed", "--timeout=60s")
        try:
            self.wait_for_request(waiter, "doomed")
            self.assertIsNone(waiter.proc.poll(), "kubectl wait ended before the delete: "
                              + waiter.stderr[-2000:])
            self.ok("delete", "pod", "doomed", "--wait=false")
            self.finish_wait(waiter, "--for=delete")
        finally:
            waiter.stop()
        self.assertIn("condition met", waiter.stdout)

    def pod_status_path(self, name):
        return "/api/v1/namespaces/%s/pods/%s/status" % (self.ns, name)

    def test_wait_for_jsonpath(self):
        self.ok("create", "-f", self.manifest(pod("runner")))
        waiter = self.start_logged_wait("--for=jsonpath={.status.phase}=Running", "pod/runner",
                                        "--timeout=60s")
        try:
            self.wait_for_request(waiter, "runner")
            resp = self.api.patch(self.pod_status_path("runner"),
                                  {"status": {"phase": "Running", "podIP": "10.0.0.7"}})
            self.assertEqual(resp.status, 200, e2e.status_summary(resp))
            self.assertEqual(resp.json()["status"]["phase"], "Running")
            self.finish_wait(waiter, "--for=jsonpath")
        finally:
            waiter.stop()
        self.assertEqual(self.jsonpath("pod/runner", "{.status.phase} {.status.podIP}"),
                         "Running 10.0.0.7")
        table = lines(self.ok("get", "pod", "runner", "-o", "wide"))
        self.assertIn("Running", table[1].split())
        self.assertIn("10.0.0.7", table[1].split())

    def test_wait_for_condition(self):
        self.ok("create", "-f", self.manifest(pod("ready")))
        waiter = self.start_logged_wait("--for=condition=Ready", "pod/ready", "--timeout=60s")
        try:
            self.wait_for_request(waiter, "ready")
            resp = self.api.get(self.pod_status_path("ready"))
            self.assertEqual(resp.status, 200, repr(resp))
            obj = resp.json()
            obj["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True",
                 "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
            resp = self.api.put(self.pod_status_path("ready"), obj)
            self.assertEqual(resp.status, 200, e2e.status_summary(resp))
            self.finish_wait(waiter, "--for=condition=Ready")
        finally:
            waiter.stop()
        self.assertIn("condition met", waiter.stdout)
        # The status subresource does not change spec.
        obj = self.get_json("pod", "ready")
        obj["spec"]["containers"][0]["image"] = "nginx:9.9"
        obj["status"]["phase"] = "Succeeded"
        resp = self.api.put(self.pod_status_path("ready"), obj)
        self.assertEqual(resp.status, 200, e2e.status_summary(resp))
        self.assertEqual(self.jsonpath("pod/ready", "{.spec.containers[0].image} {.status.phase}"),
                         "nginx:1.25 Succeeded")
        # ...and a write to the main resource does not change status.
        self.ok("patch", "pod", "ready", "--type=merge", "-p", '{"status":{"phase":"Failed"}}')
        self.assertEqual(self.jsonpath("pod/ready", "{.status.phase}"), "Succeeded")

    # --- delete, namespaces --------------------------------------------------------------

    def test_delete(self):
        for name, labels in [("d1", {"app": "x"}), ("d2", {"app": "x"}), ("d3", {"app": "y"})]:
            self.ok("create", "-f", self.manifest(pod(name, labels=labels), name + ".yaml"))
        for i in range(3):
            self.create(configmap("cm%d" % i))

        self.assertIn('pod "d3" deleted', self.ok("delete", "pod", "d3"))
        err = self.fails("get", "pod", "d3")
        self.assertIn("NotFound", err)
        self.assertIn('pods "d3" not found', err)
        err = self.fails("delete", "pod", "d3")
        self.assertIn("NotFound", err)

        out = self.ok("delete", "pods", "-l", "app=x")
        self.assertIn('pod "d1" deleted', out)
        self.assertIn('pod "d2" deleted', out)
        self.assertEqual(self.names("pods"), set())

        self.ok("create", "-f", self.manifest(pod("survivor")))
        out = self.ok("delete", "configmaps", "--all")
        for i in range(3):
            self.assertIn('configmap "cm%d" deleted' % i, out)
        self.assertEqual(self.names("configmaps"), set())
        self.assertEqual(self.names("pods"), {"pod/survivor"}, "--all must stay in its kind")

        self.ok("create", "-f", self.manifest(deployment("dd")))
        self.ok("delete", "-f", self.manifest(deployment("dd")))
        self.assertEqual(self.names("deployments"), set())

    def test_namespace_lifecycle(self):
        doomed = self.ns + "-doomed"
        self.assertIn("namespace/%s created" % doomed,
                      self.create(namespace(doomed), namespaced=False))
        self.assertIn("namespace/" + doomed, self.ok("get", "namespaces", "-o", "name",
                                                       namespaced=False))
        k = ["-n", doomed]
        self.ok(*k, "create", "-f", self.manifest(json.dumps(configmap("c")), "c.json"),
                namespaced=False)
        self.ok(*k, "create", "-f", self.manifest(json.dumps(secret("s", {"a": "b"})), "s.json"),
                namespaced=False)
        self.ok(*k, "create", "-f", self.manifest(pod("p")), namespaced=False)
        self.ok(*k, "create", "-f", self.manifest(deployment("d"), "d.yaml"), namespaced=False)
        self.ok(*k, "create", "-f", self.manifest(json.dumps(service("svc")), "svc.json"),
                namespaced=False)
        self.ok(*k, "create", "-f", self.manifest(json.dumps(service_account("sa")), "sa.json"),
                namespaced=False)
        # A bystander in another namespace.
        self.create(configmap("c", {"keep": "1"}))

        out = self.ok("delete", "namespace", doomed, "--timeout=60s", namespaced=False)
        self.assertIn('namespace "%s" deleted' % doomed, out)

        paths = ["/api/v1/namespaces/%s/configmaps/c", "/api/v1/namespaces/%s/secrets/s",
                 "/api/v1/namespaces/%s/pods/p", "/apis/apps/v1/namespaces/%s/deployments/d",
                 "/api/v1/namespaces/%s/services/svc",
                 "/api/v1/namespaces/%s/serviceaccounts/sa", "/api/v1/namespaces/%s"]
        for path in paths:
            path = path % doomed
            e2e.poll(lambda: self.api.get(path).status == 404, NAMESPACE_GONE_TIMEOUT,
                     what="%s to be gone after its namespace was deleted" % path)
        everywhere = json.loads(self.ok("get", "configmaps", "-A", "-o", "json",
                                        namespaced=False))
        self.assertEqual([i["metadata"]["name"] for i in everywhere["items"]
                          if i["metadata"]["namespace"] == doomed], [])
        self.assertEqual(self.jsonpath("configmap/c", "{.data.keep}"), "1")

        err = self.fails("-n", doomed, "create", "-f",
                         self.manifest(json.dumps(configmap("late")), "late.json"),
                         namespaced=False)
        self.assertIn("NotFound", err)
        # The name can be used again.
        self.create(namespace(doomed), namespaced=False)
        self.assertEqual(self.ok("get", "configmaps", "-n", doomed, "-o", "name",
                                 namespaced=False), "")

    def test_dry_run_server(self):
        out = self.ok("create", "-f", self.manifest(json.dumps(configmap("dry")), "dry.json"),
                      "--dry-run=server", "-o", "json")
        self.assertEqual(json.loads(out)["metadata"]["name"], "dry")
        self.assertIn("NotFound", self.fails("get", "configmap", "dry"))

        path = self.manifest(deployment("dry-deploy"))
        out = self.ok("apply", "-f", path, "--dry-run=server")
        self.assertIn("server dry run", out)
        self.assertEqual(self.names("deployments"), set())
        self.ok("create", "-f", path, "--dry-run=server")
        self.assertEqual(self.names("deployments"), set())

        self.ok("create", "-f", path)
        rv = self.jsonpath("deployment/dry-deploy", "{.metadata.resourceVersion}")
        self.ok("scale", "deployment", "dry-deploy", "--replicas=7", "--dry-run=server")
        self.ok("label", "deployment", "dry-deploy", "dry=yes", "--dry-run=server")
        self.ok("patch", "deployment", "dry-deploy", "--type=merge", "-p",
                '{"spec":{"replicas":8}}', "--dry-run=server")
        self.ok("delete", "deployment", "dry-deploy", "--dry-run=server")
        d = self.get_json("deployment", "dry-deploy")
        self.assertEqual(d["spec"]["replicas"], 1)
        self.assertNotIn("dry", d["metadata"]["labels"])
        self.assertEqual(d["metadata"]["resourceVersion"], rv)

        # The server still validates under dry run.
        err = self.fails("create", "-f", self.manifest(json.dumps(configmap("Bad_Name")),
                                                       "bad.json"), "--dry-run=server")
        self.assertIn("Invalid", err)

    def test_generate_name(self):
        path = self.manifest("""\
apiVersion: v1
kind: ConfigMap
metadata:
  generateName: gen-
data:
  k: v
""")
        created = set()
        for _ in range(3):
            out = self.ok("create", "-f", path, "-o", "name").strip()
            self.assertRegex(out, r"^configmap/gen-[a-z0-9]{5}$")
            created.add(out)
        self.assertEqual(len(created), 3)
        self.assertEqual(self.names("configmaps"), created)
        name = sorted(created)[0].split("/")[1]
        self.assertEqual(self.jsonpath("configmap/" + name, "{.metadata.generateName}"), "gen-")

    def test_optimistic_concurrency(self):
        self.create(configmap("occ", {"v": "1"}))
        path = "/api/v1/namespaces/%s/configmaps/occ" % self.ns
        resp = self.api.get(path)
        self.assertEqual(resp.status, 200, repr(resp))
        stale = resp.json()
        fresh = json.loads(json.dumps(stale))
        fresh["data"]["v"] = "2"
        resp = self.api.put(path, fresh)
        self.assertEqual(resp.status, 200, e2e.status_summary(resp))
        self.assertNotEqual(resp.json()["metadata"]["resourceVersion"],
                            stale["metadata"]["resourceVersion"])
        stale["data"]["v"] = "3"
        resp = self.api.put(path, stale)
        body = self.assertStatus(resp, 409, "Conflict")
        self.assertIn("occ", body.get("message", ""))
        self.assertEqual(self.jsonpath("configmap/occ", "{.data.v}"), "2")

        # The same through kubectl replace with a stale resourceVersion.
        stale["data"]["v"] = "4"
        err = self.fails("replace", "-f", self.manifest(json.dumps(stale), "stale.json"))
        self.assertIn("Conflict", err)
        self.assertIn("the object has been modified", err)
        self.assertEqual(self.jsonpath("configmap/occ", "{.data.v}"), "2")
        # Without a resourceVersion, replace is unconditional.
        del stale["metadata"]["resourceVersion"]
        self.ok("replace", "-f", self.manifest(json.dumps(stale), "nover.json"))
        self.assertEqual(self.jsonpath("configmap/occ", "{.data.v}"), "4")

    # --- discovery -----------------------------------------------------------------------

    def test_api_resources(self):
        out = self.ok("api-resources", namespaced=False)
        rows = {}
        for line in lines(out)[1:]:
            fields = line.split()
            rows.setdefault(fields[0], fields)  # the first (core) group wins, e.g. for events
        self.assertEqual(lines(out)[0].split()[:5],
                         ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"])
        expected = {
            "pods": ["pods", "po", "v1", "true", "Pod"],
            "deployments": ["deployments", "deploy", "apps/v1", "true", "Deployment"],
            "replicasets": ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
            "services": ["services", "svc", "v1", "true", "Service"],
            "configmaps": ["configmaps", "cm", "v1", "true", "ConfigMap"],
            "namespaces": ["namespaces", "ns", "v1", "false", "Namespace"],
            "nodes": ["nodes", "no", "v1", "false", "Node"],
            "endpoints": ["endpoints", "ep", "v1", "true", "Endpoints"],
            "serviceaccounts": ["serviceaccounts", "sa", "v1", "true", "ServiceAccount"],
            "events": ["events", "ev", "v1", "true", "Event"],
            "secrets": ["secrets", "v1", "true", "Secret"],
            "leases": ["leases", "coordination.k8s.io/v1", "true", "Lease"],
            "endpointslices": ["endpointslices", "discovery.k8s.io/v1", "true", "EndpointSlice"],
        }
        for name, row in expected.items():
            with self.subTest(resource=name):
                self.assertIn(name, rows, out)
                self.assertEqual(rows[name][:len(row)], row)
        apps = set(lines(self.ok("api-resources", "--api-group=apps", "-o", "name",
                                 namespaced=False)))
        self.assertTrue({"deployments.apps", "replicasets.apps"} <= apps, apps)
        versions = set(lines(self.ok("api-versions", namespaced=False)))
        self.assertTrue({"v1", "apps/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1"}
                        <= versions, versions)
        version = json.loads(self.ok("version", "-o", "json", namespaced=False))
        self.assertRegex(version["serverVersion"]["gitVersion"], r"^v1\.\d+\.\d+")

    def test_short_names(self):
        self.ok("create", "-f", self.manifest(pod("sn")))
        self.ok("create", "-f", self.manifest(deployment("sn"), "d.yaml"))
        self.assertEqual(self.names("po"), {"pod/sn"})
        self.assertEqual(self.names("deploy"), {"deployment.apps/sn"})
        self.assertEqual(self.names("deploy,po"), {"deployment.apps/sn", "pod/sn"})
        self.assertEqual(self.jsonpath("po/sn", "{.metadata.name}"), "sn")
        for short in ["svc", "cm", "sa", "ep", "rs", "ev", "no", "ns", "deployment.apps",
                      "leases", "endpointslices", "pod", "deployments"]:
            with self.subTest(short=short):
                self.ok("get", short)

    # --- restart -------------------------------------------------------------------------

    def test_restart_keeps_objects(self):
        server = e2e.Server(extra_args=API_ONLY)
        server.start()
        try:
            kubectl = server.kubectl(self.VERSION)
            k = {"kubectl": kubectl}
            self.create(namespace(self.ns), namespaced=False, **k)
            self.create(configmap("kept", {"k": "v"}), **k)
            self.create(secret("kept", {"p": "q"}), **k)
            self.ok("create", "-f", self.manifest(deployment("kept", replicas=2)), **k)
            self.ok("create", "-f", self.manifest(pod("kept"), "p.yaml"), **k)
            self.ok("scale", "deployment", "kept", "--replicas=3", **k)
            self.create(configmap("deleted"), **k)
            self.ok("delete", "configmap", "deleted", **k)
            before = {r: self.get_json(r, "kept", **k)["metadata"]
                      for r in ["configmap", "secret", "deployment", "pod"]}
            max_rv = max(int(m["resourceVersion"]) for m in before.values())

            rc, killed = server.stop()
            self.assertFalse(killed, "SIGTERM did not stop the server within %ss\n%s"
                             % (e2e.STOP_TIMEOUT, server.log_tail()))
            self.assertEqual(rc, 0, "exit code after SIGTERM\n" + server.log_tail())
            server.start()

            for r, meta in before.items():
                with self.subTest(resource=r):
                    after = self.get_json(r, "kept", **k)["metadata"]
                    self.assertEqual(after["uid"], meta["uid"])
                    self.assertEqual(after["resourceVersion"], meta["resourceVersion"])
                    self.assertEqual(after["creationTimestamp"], meta["creationTimestamp"])
            self.assertEqual(self.jsonpath("configmap/kept", "{.data.k}", **k), "v")
            self.assertEqual(self.jsonpath("deployment/kept", "{.spec.replicas}", **k), "3")
            self.assertIn("NotFound", self.fails("get", "configmap", "deleted", **k))
            self.assertEqual(
                {"default", "kube-system", "kube-public", "kube-node-lease", self.ns},
                set(n.split("/")[1] for n in lines(self.ok("get", "ns", "-o", "name",
                                                           namespaced=False, **k))))
            self.ok("label", "configmap", "kept", "after=restart", **k)
            rv = int(self.jsonpath("configmap/kept", "{.metadata.resourceVersion}", **k))
            self.assertGreater(rv, max_rv, "resourceVersions must keep growing across restarts")
            # And a second restart, this time after a write made by the restarted server.
            server.restart()
            self.assertEqual(self.jsonpath("configmap/kept", "{.metadata.labels.after}", **k),
                             "restart")
        finally:
            server.stop()


def _make_version_classes():
    for version in e2e.kubectl_versions():
        name = "KubectlV%sTest" % version.replace(".", "_")
        globals()[name] = type(name, (KubectlSuite,), {"VERSION": version})


_make_version_classes()


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    for version in e2e.kubectl_versions():
        cls = globals()["KubectlV%sTest" % version.replace(".", "_")]
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


if __name__ == "__main__":
    unittest.main(verbosity=2)
