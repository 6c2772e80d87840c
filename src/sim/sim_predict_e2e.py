#!/usr/bin/env python3
"""End to end: `fulcrum sim predict` on the shared Crane traces prints the contracted JSON.

Usage: sim_predict_e2e.py FULCRUM_BIN CRANE_TRACE_DIR. Exits 77 (CTest's skip) when the traces
are missing.
"""
import json
import os
import subprocess
import sys


def main():
    binary, traces = sys.argv[1], sys.argv[2]
    if not os.path.isdir(traces):
        print(f"SKIP: shared traces not found at {traces}")
        return 77
    run = subprocess.run([binary, "sim", "predict", "--trace", traces, "--format", "crane"],
                         capture_output=True, text=True, timeout=850)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr}"
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {run.stdout!r}"
    out = json.loads(lines[0])
    assert list(out.keys()) == ["trace", "predictors", "best", "oracle"], out.keys()
    assert out["trace"] == traces
    for name in ("archimedes", "decaying-percentile", "last-value", "moving-window-max",
                 "seasonal", "fft"):
        assert name in out["predictors"], f"{name} missing: {out}"
    for name, score in out["predictors"].items():
        assert set(score) == {"under_prediction_rate", "over_provisioning", "pinball_loss"}, score
        assert 0 <= score["under_prediction_rate"] <= 1, (name, score)
        assert score["over_provisioning"] > 0 and score["pinball_loss"] >= 0, (name, score)
    assert out["best"] in out["predictors"], out["best"]
    oracle = out["oracle"]
    assert set(oracle) == {"under_prediction_rate", "over_provisioning", "pinball_loss"}, oracle
    assert oracle["under_prediction_rate"] <= 0.05, oracle  # it covers 95% of every window

    bad = subprocess.run([binary, "sim", "predict", "--trace", traces, "--format", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown trace format" in bad.stderr, bad
    print(lines[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
