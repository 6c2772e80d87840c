#!/usr/bin/env python3
"""End to end: `fulcrum sim run` on a small cluster prints the contracted JSON, one line per policy.

Usage: sim_run_e2e.py FULCRUM_BIN TRACES_DIR. Exits 77 (CTest's skip) when the traces are missing.
"""
import json
import os
import subprocess
import sys
import tempfile

KEYS = ["policy", "cpu_util_mean", "cpu_util_p95", "online_unmet_share",
        "contention_node_minutes", "batch_cpu_hours", "batch_jobs_completed", "evictions",
        "batch_lost_share", "decisions_per_second"]
POLICIES = ["requests", "load-aware", "archimedes", "oracle"]


def main():
    binary, traces = sys.argv[1], sys.argv[2]
    online = os.path.join(traces, "crane-app-cpu")
    batch = os.path.join(traces, "alibaba-2017", "batch_task.csv")
    if not os.path.isdir(online) or not os.path.isfile(batch):
        print(f"SKIP: shared traces not found under {traces}")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        plot = os.path.join(tmp, "run.svg")
        args = [binary, "sim", "run", "--nodes", "20", "--days", "1", "--online", online,
                "--batch", batch, "--policy", ",".join(POLICIES), "--seed", "7", "--plot", plot]
        run = subprocess.run(args, capture_output=True, text=True, timeout=850)
        assert run.returncode == 0, f"exit {run.returncode}: {run.stderr}"
        lines = run.stdout.strip().splitlines()
        assert len(lines) == len(POLICIES), f"expected one JSON line per policy: {run.stdout!r}"
        reports = [json.loads(line) for line in lines]
        assert [r["policy"] for r in reports] == POLICIES, reports
        for r in reports:
            assert list(r.keys())[:len(KEYS)] == KEYS, r.keys()
            for share in ("cpu_util_mean", "cpu_util_p95", "online_unmet_share",
                          "batch_lost_share"):
                assert 0 <= r[share] <= 1, (share, r)
            assert r["cpu_util_mean"] <= r["cpu_util_p95"] + 1e-9, r
            for count in ("contention_node_minutes", "batch_jobs_completed", "evictions"):
                assert isinstance(r[count], int) and r[count] >= 0, (count, r)
            assert r["batch_cpu_hours"] > 0 and r["decisions_per_second"] > 0, r
        with open(plot) as f:
            svg = f.read()
        assert svg.startswith("<svg") and svg.count("<polyline") == 2 * len(POLICIES), svg[:200]

        # The same seed gives the same numbers (except the measured speed).
        again = subprocess.run(args[:args.index("--policy")] + ["--policy", "archimedes",
                                                                "--seed", "7"],
                               capture_output=True, text=True, timeout=850)
        assert again.returncode == 0, again.stderr
        a, b = json.loads(again.stdout), reports[2]
        for key in KEYS[1:-1]:
            assert a[key] == b[key], (key, a[key], b[key])

        # A malformed trace is an error naming the file and line.
        bad = os.path.join(tmp, "bad.csv")
        with open(bad, "w") as f:
            f.write("ts,value\n1600000000,1\n1600000060\n")
        run = subprocess.run([binary, "sim", "run", "--nodes", "2", "--days", "1", "--online", bad,
                              "--batch", batch, "--policy", "requests"],
                             capture_output=True, text=True)
        assert run.returncode == 1 and "bad.csv:3" in run.stderr, run
        run = subprocess.run([binary, "sim", "run", "--nodes", "2", "--days", "1", "--online",
                              online, "--batch", batch, "--policy", "fifo"],
                             capture_output=True, text=True)
        assert run.returncode == 2 and "unknown policy fifo" in run.stderr, run
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
