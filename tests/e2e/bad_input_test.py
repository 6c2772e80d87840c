#!/usr/bin/env python3
"""Malformed and hostile requests against a live fulcrum server, through raw HTTPS.

Every error must be a Kubernetes Status with the right code and reason; none may change the
objects that were there before, and the server must keep serving.

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum python3 tests/e2e/bad_input_test.py
"""

import json
import os
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

# This suite checks the API server as kubectl sees it; with controllers running, the objects it
# creates would change under it (ReplicaSets, pods, status). e2e_cluster covers the controllers.
API_ONLY = ["--control-loops", "off"]

NS = "default"
CONFIGMAPS = "/api/v1/namespaces/%s/configmaps" % NS
DEPLOYMENTS = "/apis/apps/v1/namespaces/%s/deployments" % NS


def configmap(name, **meta):
    m = {"name": name}
    m.update(meta)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": {"k": "v"}}


def deployment(name):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}}}


class BadInputTest(unittest.TestCase):
    """Test methods run in name order; test_zz_objects_intact runs last on purpose."""

    @classmethod
    def setUpClass(cls):
        cls.server = e2e.Server(extra_args=API_ONLY)
        cls.server.start()
        cls.api = cls.server.client
        cls.before = {}
        for path, body in [(CONFIGMAPS, configmap("keep", labels={"app": "keep"})),
                           (CONFIGMAPS, configmap("patch-target")),
                           (DEPLOYMENTS, deployment("keep-deploy"))]:
            resp = cls.api.post(path, body)
            if resp.status != 201:
                cls.server.stop()
                raise AssertionError("setup: POST %s: %s" % (path, e2e.status_summary(resp)))
            obj = resp.json()
            cls.before[path + "/" + obj["metadata"]["name"]] = obj

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def assertStatus(self, resp, codes, reason=None):
        """resp is a Status object with one of `codes` (int or tuple) and, if given, reason."""
        codes = (codes,) if isinstance(codes, int) else tuple(codes)
        self.assertIn(resp.status, codes, e2e.status_summary(resp))
        body = resp.json_or_none()
        self.assertIsInstance(body, dict, "error body is not a JSON object: %r" % resp)
        self.assertEqual(body.get("kind"), "Status", repr(resp))
        self.assertEqual(body.get("apiVersion"), "v1", repr(resp))
        self.assertEqual(body.get("status"), "Failure", repr(resp))
        self.assertEqual(body.get("code"), resp.status, repr(resp))
        if reason:
            self.assertEqual(body.get("reason"), reason, repr(resp))
        self.assertTrue(body.get("message"), "Status without a message: %r" % resp)
        return body

    def assertCauseField(self, body, field):
        causes = (body.get("details") or {}).get("causes") or []
        fields = [c.get("field") for c in causes]
        self.assertIn(field, fields, "details.causes must name %s: %s" % (field, body))

    def assertNotCreated(self, path, name):
        resp = self.api.get(path + "/" + name)
        self.assertEqual(resp.status, 404, "%s/%s exists after a rejected create: %r"
                         % (path, name, resp))

    # --- undecodable bodies --------------------------------------------------------------

    def test_body_neither_json_nor_yaml(self):
        cases = [(b"{not json at all", "application/json"),
                 (b"\x00\xff\xfe garbage \x01", "application/json"),
                 (b"{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",", "application/json"),
                 (b"key: [unclosed\n  - : :\n\t{", "application/yaml"),
                 (b"@@@ %%% ]]]", "application/yaml"),
                 (b"just a scalar", "application/yaml"),
                 (b"[1, 2, 3]", "application/json"),
                 (b"", "application/json")]
        for body, content_type in cases:
            with self.subTest(body=body, content_type=content_type):
                resp = self.api.post(CONFIGMAPS, body, content_type=content_type)
                self.assertStatus(resp, 400, "BadRequest")

    def test_wrong_kind_or_api_version(self):
        secret = configmap("wrong-kind")
        secret["kind"] = "Secret"
        resp = self.api.post(CONFIGMAPS, secret)
        self.assertStatus(resp, 400, "BadRequest")
        self.assertNotCreated(CONFIGMAPS, "wrong-kind")

        wrong_group = configmap("wrong-group")
        wrong_group["apiVersion"] = "apps/v1"
        self.assertStatus(self.api.post(CONFIGMAPS, wrong_group), 400, "BadRequest")
        self.assertNotCreated(CONFIGMAPS, "wrong-group")

        wrong_version = configmap("wrong-version")
        wrong_version["apiVersion"] = "v2"
        self.assertStatus(self.api.post(CONFIGMAPS, wrong_version), 400, "BadRequest")
        self.assertNotCreated(CONFIGMAPS, "wrong-version")

        pod_as_deployment = deployment("pod-as-deployment")
        pod_as_deployment["kind"] = "Pod"
        self.assertStatus(self.api.post(DEPLOYMENTS, pod_as_deployment), 400, "BadRequest")
        self.assertNotCreated(DEPLOYMENTS, "pod-as-deployment")

    def test_mismatched_namespace_and_name(self):
        other_ns = configmap("other-ns", namespace="kube-system")
        self.assertStatus(self.api.post(CONFIGMAPS, other_ns), 400, "BadRequest")
        self.assertNotCreated(CONFIGMAPS, "other-ns")
        self.assertEqual(self.api.get("/api/v1/namespaces/kube-system/configmaps/other-ns")
                         .status, 404)

        # PUT whose body names another object.
        obj = self.api.get(CONFIGMAPS + "/patch-target").json()
        obj["metadata"]["name"] = "someone-else"
        self.assertStatus(self.api.put(CONFIGMAPS + "/patch-target", obj), 400, "BadRequest")
        self.assertNotCreated(CONFIGMAPS, "someone-else")

    # --- validation ----------------------------------------------------------------------

    def test_invalid_name(self):
        for name in ["Bad_Name", "-leading-dash", "a" * 254, "has space", "UPPER"]:
            with self.subTest(name=name[:20]):
                body = self.assertStatus(self.api.post(CONFIGMAPS, configmap(name)), 422,
                                         "Invalid")
                self.assertCauseField(body, "metadata.name")
                self.assertEqual((body.get("details") or {}).get("kind"), "ConfigMap", body)
                if len(name) < 64:
                    self.assertIn(name, body["message"], "the message names the bad value")
        self.assertNotCreated(CONFIGMAPS, "Bad_Name")

        # Names of deployments are DNS subdomains too.
        d = deployment("Bad_Name")
        body = self.assertStatus(self.api.post(DEPLOYMENTS, d), 422, "Invalid")
        self.assertCauseField(body, "metadata.name")

    def test_invalid_labels(self):
        cases = [{"bad key!": "v"},
                 {"ok": "bad value with spaces"},
                 {"ok": "-starts-with-dash"},
                 {"a/b/c": "v"},
                 {"x" * 64: "v"},
                 {"ok": "y" * 64}]
        for i, labels in enumerate(cases):
            with self.subTest(labels=str(labels)[:40]):
                body = self.assertStatus(
                    self.api.post(CONFIGMAPS, configmap("bad-label-%d" % i, labels=labels)),
                    422, "Invalid")
                causes = (body.get("details") or {}).get("causes") or []
                fields = [c.get("field") or "" for c in causes]
                self.assertTrue(any(f.startswith("metadata.labels") for f in fields),
                                "details.causes must name metadata.labels: %s" % body)
                self.assertNotCreated(CONFIGMAPS, "bad-label-%d" % i)

        # Invalid label on an update is rejected and changes nothing.
        resp = self.api.patch(CONFIGMAPS + "/patch-target",
                              {"metadata": {"labels": {"bad key!": "v"}}})
        body = self.assertStatus(resp, 422, "Invalid")
        self.assertTrue(any((c.get("field") or "").startswith("metadata.labels")
                            for c in (body.get("details") or {}).get("causes") or []), body)

        # A selector that does not match the template's labels is invalid, naming the field.
        d = deployment("mismatch")
        d["spec"]["selector"]["matchLabels"] = {"app": "other"}
        body = self.assertStatus(self.api.post(DEPLOYMENTS, d), 422, "Invalid")
        self.assertCauseField(body, "spec.template.metadata.labels")

    def test_unknown_field_strict(self):
        top = configmap("strict-top")
        top["bogusField"] = 1
        meta = configmap("strict-meta")
        meta["metadata"]["labelz"] = {"a": "b"}
        nested = deployment("strict-nested")
        nested["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
        for path, body, field in [(CONFIGMAPS, top, "bogusField"),
                                  (CONFIGMAPS, meta, "labelz"),
                                  (DEPLOYMENTS, nested, "imagee")]:
            with self.subTest(field=field):
                resp = self.api.post(path + "?fieldValidation=Strict", body)
                status = self.assertStatus(resp, 400, "BadRequest")
                self.assertIn(field, status["message"], "the message names the unknown field")
                self.assertNotCreated(path, body["metadata"]["name"])
        with self.subTest(field="duplicate data"):
            raw = (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},'
                   b'"data":{"k":"1"},"data":{"k":"2"}}')
            status = self.assertStatus(self.api.post(CONFIGMAPS + "?fieldValidation=Strict", raw),
                                       400, "BadRequest")
            self.assertIn("data", status["message"])
            self.assertNotCreated(CONFIGMAPS, "dup")

    def test_unknown_field_dropped_without_strict(self):
        body = configmap("lenient")
        body["bogusField"] = 1
        resp = self.api.post(CONFIGMAPS + "?fieldValidation=Ignore", body)
        self.assertEqual(resp.status, 201, e2e.status_summary(resp))
        self.assertNotIn("bogusField", resp.json())
        self.assertNotIn("bogusField", self.api.get(CONFIGMAPS + "/lenient").json())

        d = deployment("lenient-nested")
        d["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
        resp = self.api.post(DEPLOYMENTS + "?fieldValidation=Ignore", d)
        self.assertEqual(resp.status, 201, e2e.status_summary(resp))
        self.assertNotIn("imagee", resp.json()["spec"]["template"]["spec"]["containers"][0],
                         "unknown fields are dropped, not stored")
        stored = self.api.get(DEPLOYMENTS + "/lenient-nested").json()
        self.assertNotIn("imagee", stored["spec"]["template"]["spec"]["containers"][0])

    # --- patches -------------------------------------------------------------------------

    def test_malformed_json_patch(self):
        target = CONFIGMAPS + "/patch-target"
        cases = [b'{"op":"replace","path":"/data/k","value":"x"}',  # not an array
                 b'[{"op":"frobnicate","path":"/data/k"}]',
                 b'[{"op":"replace","value":"x"}]',  # no path
                 b'[{"op":"replace","path":"data/k","value":"x"}]',  # not a JSON pointer
                 b'[{"op":"replace","path":"/data/nothere/deeper","value":"x"}]',
                 b'[{"op":"remove","path":"/data/missing"}]',
                 b'[{"op":"add","path":"/data/k"',
                 b"not json"]
        for body in cases:
            with self.subTest(patch=body):
                resp = self.api.patch(target, body, content_type="application/json-patch+json")
                self.assertStatus(resp, (400, 422))

    def test_malformed_merge_patch(self):
        target = CONFIGMAPS + "/patch-target"
        for content_type in ["application/merge-patch+json",
                             "application/strategic-merge-patch+json"]:
            for body in [b'{"data": ', b"not json", b'{"data": {"k": "v"}}}']:
                with self.subTest(content_type=content_type, patch=body):
                    resp = self.api.patch(target, body, content_type=content_type)
                    self.assertStatus(resp, (400, 422))
        # A patch that produces an object of the wrong type.
        resp = self.api.patch(target, b'{"data": "not a map"}',
                              content_type="application/merge-patch+json")
        self.assertStatus(resp, (400, 422))

    def test_unknown_patch_type(self):
        resp = self.api.patch(CONFIGMAPS + "/patch-target", b'{}', content_type="text/plain")
        self.assertStatus(resp, 415, "UnsupportedMediaType")

    def test_patch_cannot_rename(self):
        target = CONFIGMAPS + "/patch-target"
        for content_type, body in [
                ("application/merge-patch+json", b'{"metadata": {"name": "renamed"}}'),
                ("application/strategic-merge-patch+json", b'{"metadata": {"name": "renamed"}}'),
                ("application/json-patch+json",
                 b'[{"op": "replace", "path": "/metadata/name", "value": "renamed"}]')]:
            with self.subTest(content_type=content_type):
                resp = self.api.patch(target, body, content_type=content_type)
                self.assertStatus(resp, (400, 422))
                self.assertNotCreated(CONFIGMAPS, "renamed")

    # --- size, auth, not found -----------------------------------------------------------

    def test_huge_body_rejected_and_server_keeps_serving(self):
        resp = self.api.send_large("POST", CONFIGMAPS, 10 * 1024 * 1024)
        self.assertEqual(resp.status, 413, repr(resp))
        body = resp.json_or_none()
        self.assertIsInstance(body, dict, repr(resp))
        self.assertEqual(body.get("kind"), "Status", repr(resp))
        self.assertEqual(body.get("code"), 413, repr(resp))
        self.assertEqual(body.get("reason"), "RequestEntityTooLarge", repr(resp))
        self.assertTrue(self.server.running(), self.server.log_tail())
        self.assertEqual(self.api.get("/readyz", token=False).status, 200)
        self.assertEqual(self.api.get(CONFIGMAPS + "/keep").status, 200)
        self.assertNotCreated(CONFIGMAPS, "huge")
        # A patch of the same size too.
        resp = self.api.send_large("PATCH", CONFIGMAPS + "/patch-target", 10 * 1024 * 1024,
                                   content_type="application/merge-patch+json",
                                   prefix=b'{"data":{"k":"', suffix=b'"}}')
        self.assertEqual(resp.status, 413, repr(resp))
        self.assertEqual(self.api.get("/readyz", token=False).status, 200)

    def test_authentication(self):
        for path in [CONFIGMAPS, "/api/v1/namespaces", "/api", "/apis", "/version"]:
            with self.subTest(path=path, token=None):
                resp = self.api.get(path, token=False)
                self.assertStatus(resp, 401, "Unauthorized")
        with self.subTest(token="wrong"):
            resp = self.api.get(CONFIGMAPS, token="not-the-token")
            self.assertStatus(resp, 401, "Unauthorized")
        with self.subTest(token="truncated"):
            resp = self.api.get(CONFIGMAPS, token=self.server.kubeconfig.token[:-1])
            self.assertStatus(resp, 401, "Unauthorized")
        with self.subTest(scheme="Basic"):
            resp = self.api.get(CONFIGMAPS, token=False,
                                headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
            self.assertStatus(resp, 401, "Unauthorized")
        # Writes without a token change nothing.
        resp = self.api.post(CONFIGMAPS, configmap("anonymous"), token=False)
        self.assertStatus(resp, 401, "Unauthorized")
        self.assertNotCreated(CONFIGMAPS, "anonymous")
        resp = self.api.delete(CONFIGMAPS + "/keep", token=False)
        self.assertStatus(resp, 401, "Unauthorized")
        for path in ["/healthz", "/livez", "/readyz"]:
            self.assertEqual(self.api.get(path, token=False).status, 200, path)

    def test_not_found(self):
        resp = self.api.get(CONFIGMAPS + "/nope")
        body = self.assertStatus(resp, 404, "NotFound")
        self.assertEqual(body.get("details", {}).get("name"), "nope", body)
        self.assertEqual(body.get("details", {}).get("kind"), "configmaps", body)
        self.assertIn("nope", body["message"])
        self.assertStatus(self.api.delete(CONFIGMAPS + "/nope"), 404, "NotFound")
        self.assertStatus(self.api.patch(CONFIGMAPS + "/nope", {"data": {"a": "b"}}), 404,
                          "NotFound")
        self.assertStatus(self.api.put(CONFIGMAPS + "/nope", configmap("nope")), 404, "NotFound")
        self.assertStatus(self.api.get(DEPLOYMENTS + "/nope"), 404, "NotFound")
        self.assertStatus(self.api.get(DEPLOYMENTS + "/nope/scale"), 404, "NotFound")
        self.assertStatus(self.api.get("/api/v1/namespaces/no-such-ns"), 404, "NotFound")
        self.assertStatus(self.api.post("/api/v1/namespaces/no-such-ns/configmaps",
                                        configmap("orphan")), 404, "NotFound")
        self.assertEqual(self.api.get("/api/v1/namespaces/%s/frobnicators" % NS).status, 404)
        self.assertEqual(self.api.get("/apis/nosuch.group/v1").status, 404)

    def test_zz_objects_intact(self):
        # Runs last (methods run in name order): nothing above may have changed the objects
        # made in setUpClass.
        for path, before in self.before.items():
            with self.subTest(path=path):
                resp = self.api.get(path)
                self.assertEqual(resp.status, 200, repr(resp))
                after = resp.json()
                for key in ["uid", "resourceVersion", "labels", "creationTimestamp"]:
                    self.assertEqual(after["metadata"].get(key), before["metadata"].get(key),
                                     key)
                self.assertEqual(after.get("data"), before.get("data"))
                self.assertEqual(after.get("spec"), before.get("spec"))
        resp = self.api.get(CONFIGMAPS + "?labelSelector=app%3Dkeep")
        self.assertEqual([i["metadata"]["name"] for i in resp.json()["items"]], ["keep"])
        self.assertTrue(self.server.running(), self.server.log_tail())


if __name__ == "__main__":
    unittest.main(verbosity=2)
