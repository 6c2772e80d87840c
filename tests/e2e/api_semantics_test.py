#!/usr/bin/env python3
"""The API semantics client libraries rely on, checked over raw HTTPS against a live server:
resourceVersion on list and watch, paging, watch resumption and selectors, finalizers,
deletecollection, dry runs, and the /metrics request analysis.

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum python3 tests/e2e/api_semantics_test.py
"""

import http.client
import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()


def configmap(name, labels=None, finalizers=None, data=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


class WatchStream:
    """A watch request read event by event, with a deadline on every read."""

    def __init__(self, api, path, timeout=20.0, headers=None):
        self.conn = api.connect()
        self.conn.timeout = timeout
        self.conn.request("GET", path, headers=api.headers(None, None, headers, True))
        self.resp = self.conn.getresponse()
        self.buffer = b""

    def next(self):
        while b"\n" not in self.buffer:
            chunk = self.resp.read1(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.conn.close()


class ApiSemanticsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = e2e.Server()
        cls.server.start()
        cls.api = cls.server.client

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.ns = "sem-" + self._testMethodName.replace("_", "-")[5:40].strip("-")
        resp = self.api.post("/api/v1/namespaces",
                             {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": self.ns}})
        self.assertEqual(resp.status, 201, resp)
        self.cms = "/api/v1/namespaces/%s/configmaps" % self.ns

    def create(self, body):
        resp = self.api.post(self.cms, body)
        self.assertEqual(resp.status, 201, resp)
        return resp.json()

    def test_list_paging_with_limit_and_continue(self):
        for i in range(7):
            self.create(configmap("page-%d" % i))
        names, token, pages = [], None, 0
        while True:
            path = self.cms + "?limit=3" + ("&continue=" + token if token else "")
            body = self.api.get(path).json()
            names += [o["metadata"]["name"] for o in body["items"]]
            pages += 1
            token = body["metadata"].get("continue")
            if not token:
                break
            self.assertLessEqual(pages, 5)
        self.assertEqual(names, ["page-%d" % i for i in range(7)])
        self.assertEqual(pages, 3)
        bad = self.api.get(self.cms + "?limit=3&continue=%%%%notatoken")
        self.assertEqual(bad.status, 400, bad)

    def test_resource_versions_on_get_and_list(self):
        first = self.create(configmap("rv", data={"v": "1"}))
        rv1 = first["metadata"]["resourceVersion"]
        resp = self.api.put(self.cms + "/rv", dict(first, data={"v": "2"}))
        self.assertEqual(resp.status, 200, resp)
        rv2 = resp.json()["metadata"]["resourceVersion"]
        self.assertGreater(int(rv2), int(rv1))
        # A list without a resourceVersion reads its own writes; "0" may be served from cache.
        items = self.api.get(self.cms).json()["items"]
        self.assertEqual(items[0]["data"], {"v": "2"})
        self.assertEqual(self.api.get(self.cms + "?resourceVersion=0").status, 200)
        # Exact: the state at that revision.
        old = self.api.get(self.cms + "?resourceVersion=%s&resourceVersionMatch=Exact" % rv1)
        self.assertEqual(old.status, 200, old)
        self.assertEqual(old.json()["items"][0]["data"], {"v": "1"})
        self.assertEqual(old.json()["metadata"]["resourceVersion"], rv1)
        # Stale update: 409 Conflict as a Status.
        stale = self.api.put(self.cms + "/rv", dict(first, data={"v": "3"}))
        self.assertEqual(stale.status, 409, stale)
        self.assertEqual(stale.json()["reason"], "Conflict")

    def test_watch_resumes_from_a_resource_version(self):
        a = self.create(configmap("wa"))
        self.create(configmap("wb"))
        self.api.delete(self.cms + "/wb")
        stream = WatchStream(self.api, self.cms + "?watch=true&resourceVersion=%s" %
                             a["metadata"]["resourceVersion"])
        try:
            events = [stream.next(), stream.next()]
        finally:
            stream.close()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                         [("ADDED", "wb"), ("DELETED", "wb")])
        self.assertGreater(int(events[1]["object"]["metadata"]["resourceVersion"]),
                           int(events[0]["object"]["metadata"]["resourceVersion"]))

    def test_watch_with_label_selector_sees_objects_enter_and_leave(self):
        self.create(configmap("sel", labels={"tier": "a"}))
        stream = WatchStream(self.api, self.cms + "?watch=true&labelSelector=tier%3Db")
        try:
            self.api.patch(self.cms + "/sel", {"metadata": {"labels": {"tier": "b"}}})
            self.api.patch(self.cms + "/sel", {"metadata": {"labels": {"tier": "c"}}})
            events = [stream.next(), stream.next()]
        finally:
            stream.close()
        self.assertEqual([e["type"] for e in events], ["ADDED", "DELETED"])

    def test_watch_initial_events_end_with_a_bookmark(self):
        self.create(configmap("init-a"))
        self.create(configmap("init-b"))
        stream = WatchStream(self.api, self.cms + "?watch=true&sendInitialEvents=true"
                             "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
        try:
            events = [stream.next() for _ in range(3)]
        finally:
            stream.close()
        self.assertEqual([e["type"] for e in events], ["ADDED", "ADDED", "BOOKMARK"])
        bookmark = events[2]["object"]["metadata"]
        self.assertEqual(bookmark["annotations"], {"k8s.io/initial-events-end": "true"})
        self.assertGreaterEqual(int(bookmark["resourceVersion"]),
                                int(events[1]["object"]["metadata"]["resourceVersion"]))

    def test_many_watchers_each_receive_every_event(self):
        self.create(configmap("before"))
        rv = self.api.get(self.cms).json()["metadata"]["resourceVersion"]
        base = self.cms + "?watch=true&resourceVersion=%s" % rv
        plain = [WatchStream(self.api, base) for _ in range(40)]
        by_label = WatchStream(self.api, base + "&labelSelector=tier%3Dodd")
        by_name = WatchStream(self.api, base + "&fieldSelector=metadata.name%3Dfan-3")
        names = ["fan-%d" % i for i in range(8)]
        try:
            for i, name in enumerate(names):
                self.create(configmap(name, labels={"tier": "odd" if i % 2 else "even"}))
            self.api.delete(self.cms + "/fan-3")
            for stream in plain:
                events = [stream.next() for _ in range(len(names) + 1)]
                self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                                 [("ADDED", n) for n in names] + [("DELETED", "fan-3")])
            events = [by_label.next() for _ in range(5)]
            self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                             [("ADDED", "fan-1"), ("ADDED", "fan-3"), ("ADDED", "fan-5"),
                              ("ADDED", "fan-7"), ("DELETED", "fan-3")])
            events = [by_name.next() for _ in range(2)]
            self.assertEqual([e["type"] for e in events], ["ADDED", "DELETED"])
        finally:
            for stream in plain + [by_label, by_name]:
                stream.close()

    def test_watch_timeout_ends_the_stream(self):
        self.create(configmap("t"))
        start = time.monotonic()
        resp = self.api.get(self.cms + "?watch=true&timeoutSeconds=1")
        self.assertEqual(resp.status, 200, resp)
        self.assertLess(time.monotonic() - start, 15)
        lines = [json.loads(line) for line in resp.body.splitlines() if line.strip()]
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in lines],
                         [("ADDED", "t")])

    def test_table_watch_sends_rows(self):
        self.create(configmap("row"))
        stream = WatchStream(self.api, self.cms + "?watch=true&resourceVersion=0",
                             headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
        try:
            event = stream.next()
        finally:
            stream.close()
        self.assertEqual(event["type"], "ADDED")
        self.assertEqual(event["object"]["kind"], "Table")
        self.assertEqual(event["object"]["rows"][0]["cells"][0], "row")

    def test_watch_from_a_future_version_is_refused(self):
        resp = self.api.get(self.cms + "?watch=true&resourceVersion=999999999")
        self.assertEqual(resp.status, 504, resp)
        self.assertEqual(resp.json()["kind"], "Status")

    def test_finalizers_hold_deletion(self):
        self.create(configmap("held", finalizers=["example.com/keep"]))
        resp = self.api.delete(self.cms + "/held")
        self.assertEqual(resp.status, 200, resp)
        self.assertIn("deletionTimestamp", resp.json()["metadata"])
        self.assertEqual(self.api.get(self.cms + "/held").status, 200)
        # Finalizers may not be added once deletion started; removing the last one deletes.
        resp = self.api.patch(self.cms + "/held", {"metadata": {"finalizers": None}})
        self.assertEqual(resp.status, 200, resp)
        e2e.poll(lambda: self.api.get(self.cms + "/held").status == 404, 10,
                 what="held deleted after its finalizer was removed")

    def test_deletecollection_and_dry_run(self):
        for name, tier in [("dc-1", "x"), ("dc-2", "x"), ("dc-3", "y")]:
            self.create(configmap(name, labels={"tier": tier}))
        dry = self.api.delete(self.cms + "/dc-3?dryRun=All")
        self.assertEqual(dry.status, 200, dry)
        self.assertEqual(self.api.get(self.cms + "/dc-3").status, 200, "dry run deletes nothing")
        resp = self.api.delete(self.cms + "?labelSelector=tier%3Dx")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(sorted(o["metadata"]["name"] for o in resp.json()["items"]),
                         ["dc-1", "dc-2"])
        left = [o["metadata"]["name"] for o in self.api.get(self.cms).json()["items"]]
        self.assertEqual(left, ["dc-3"])

    def test_metrics_count_requests_by_verb_resource_and_code(self):
        self.api.get(self.cms)
        self.api.get(self.cms + "/missing")
        resp = self.api.get("/metrics")
        self.assertEqual(resp.status, 200, resp)
        text = resp.body.decode()
        self.assertIn('apiserver_request_total{verb="list",resource="configmaps",code="200"}', text)
        self.assertIn('apiserver_request_total{verb="get",resource="configmaps",code="404"}', text)
        self.assertIn('apiserver_request_duration_seconds_bucket{verb="list",resource="configmaps"',
                      text)
        self.assertIn('apiserver_storage_objects{resource="namespaces"}', text)
        self.assertEqual(self.api.get("/metrics", token=None).status, 401)
        self.assertEqual(self.api.get("/healthz", token=None).status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
