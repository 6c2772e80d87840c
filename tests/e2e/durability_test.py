#!/usr/bin/env python3
"""Acknowledged writes survive SIGKILL.

Writer threads create ConfigMaps through raw HTTPS and record every 201 with its
resourceVersion. The server is SIGKILLed while they write, then restarted on the same data
directory: every acknowledged object must be there, unchanged, and the next write must get a
resourceVersion above every acknowledged one. Counts and times are bounded.

Run: FULCRUM_BIN=build/cmd/fulcrum/fulcrum python3 tests/e2e/durability_test.py
"""

import http.client
import os
import ssl
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_e2e as e2e  # noqa: E402

e2e.parse_argv()

WRITERS = 4
MAX_WRITES_PER_WRITER = 2000  # bound on count
ACKS_BEFORE_KILL = 300  # kill once this many creates were acknowledged...
MAX_STREAM_SECONDS = 20.0  # ...or after this long, whichever comes first
ROUNDS = 2
NS = "default"
CONFIGMAPS = "/api/v1/namespaces/%s/configmaps" % NS


class Writer(threading.Thread):
    """Creates ConfigMaps until stopped, the bound is hit, or the connection breaks."""

    def __init__(self, client, prefix, stop):
        super().__init__(daemon=True)
        self.client = client
        self.prefix = prefix
        self.stop_event = stop
        self.acked = {}  # name -> (resourceVersion, uid, payload)
        self.lock = threading.Lock()
        self.failures = []  # non-201 answers while the server was alive

    def run(self):
        session = None
        try:
            session = self.client.session()
            for i in range(MAX_WRITES_PER_WRITER):
                if self.stop_event.is_set():
                    return
                name = "%s-%05d" % (self.prefix, i)
                payload = "%s payload %d" % (name, i * 7919)
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "labels": {"writer": self.prefix}},
                        "data": {"payload": payload}}
                resp = session.request("POST", CONFIGMAPS, body)
                if resp.status == 201:
                    obj = resp.json()
                    with self.lock:
                        self.acked[name] = (obj["metadata"]["resourceVersion"],
                                            obj["metadata"]["uid"], payload)
                elif not self.stop_event.is_set():
                    self.failures.append((name, e2e.status_summary(resp)))
                    return
        except (OSError, http.client.HTTPException, ssl.SSLError, ValueError):
            return  # the server went away: expected once it is killed
        finally:
            if session:
                session.close()

    def acknowledged(self):
        with self.lock:
            return dict(self.acked)


class DurabilityTest(unittest.TestCase):

    def setUp(self):
        self.server = e2e.Server()
        self.server.start()

    def tearDown(self):
        self.server.stop()

    def write_until_killed(self, round_no):
        stop = threading.Event()
        writers = [Writer(self.server.client, "r%d-w%d" % (round_no, i), stop)
                   for i in range(WRITERS)]
        for w in writers:
            w.start()
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        try:
            e2e.poll(lambda: (sum(len(w.acknowledged()) for w in writers) >= ACKS_BEFORE_KILL
                              or time.monotonic() >= deadline
                              or not any(w.is_alive() for w in writers)),
                     MAX_STREAM_SECONDS + 5, interval=0.01, what="the write stream")
        finally:
            # Mid-stream: the writers are still sending when the server dies.
            writing = sum(w.is_alive() for w in writers)
            rc = self.server.kill()
            stop.set()
            for w in writers:
                w.join(timeout=30)
        self.assertFalse(any(w.is_alive() for w in writers), "a writer did not finish")
        self.assertEqual(rc, -9, "the server should have been running until SIGKILL; log:\n"
                         + self.server.log_tail())
        failures = [f for w in writers for f in w.failures]
        self.assertEqual(failures, [], "creates rejected while the server was up")
        acked = {}
        for w in writers:
            acked.update(w.acknowledged())
        self.assertGreater(len(acked), 0, "no write was acknowledged before the kill")
        self.assertGreater(writing, 0, "every writer had stopped before the kill")
        print("\nround %d: %d creates acknowledged, %d writers busy at SIGKILL"
              % (round_no, len(acked), writing), file=sys.stderr)
        return acked

    def check_all_present(self, acked):
        session = self.server.client.session()
        try:
            missing, changed = [], []
            for name, (rv, uid, payload) in sorted(acked.items()):
                resp = session.request("GET", CONFIGMAPS + "/" + name)
                if resp.status != 200:
                    missing.append((name, rv, resp.status))
                    continue
                obj = resp.json()
                if (obj["metadata"]["uid"], obj["metadata"]["resourceVersion"],
                        obj.get("data", {}).get("payload")) != (uid, rv, payload):
                    changed.append((name, (uid, rv, payload), obj["metadata"]))
        finally:
            session.close()
        self.assertEqual(missing, [], "%d of %d acknowledged creates lost after SIGKILL; "
                         "first: %s" % (len(missing), len(acked), missing[:5]))
        self.assertEqual(changed, [], "acknowledged objects changed after SIGKILL")

        # The list agrees with the individual reads.
        resp = self.server.client.get(CONFIGMAPS)
        self.assertEqual(resp.status, 200, repr(resp))
        listed = {i["metadata"]["name"] for i in resp.json()["items"]}
        self.assertEqual(set(acked) - listed, set(), "acknowledged objects missing from LIST")

    def test_acknowledged_writes_survive_sigkill(self):
        all_acked = {}
        for round_no in range(ROUNDS):
            acked = self.write_until_killed(round_no)
            all_acked.update(acked)
            max_rv = max(int(rv) for rv, _, _ in all_acked.values())
            self.server.start()
            self.check_all_present(all_acked)

            resp = self.server.client.post(CONFIGMAPS, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "after-restart-%d" % round_no}, "data": {"a": "b"}})
            self.assertEqual(resp.status, 201, e2e.status_summary(resp))
            new_rv = int(resp.json()["metadata"]["resourceVersion"])
            self.assertGreater(new_rv, max_rv,
                               "resourceVersion went backwards after restart")
            # An update, too, moves forward.
            resp = self.server.client.patch(CONFIGMAPS + "/after-restart-%d" % round_no,
                                            {"data": {"a": "c"}})
            self.assertEqual(resp.status, 200, e2e.status_summary(resp))
            self.assertGreater(int(resp.json()["metadata"]["resourceVersion"]), new_rv)


if __name__ == "__main__":
    unittest.main(verbosity=2)
