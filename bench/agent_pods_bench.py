#!/usr/bin/env python3
"""Pod startup latency on one node: `fulcrum server` + `fulcrum agent` (root), N pods bound to the
node, created at once or one every --interval seconds (image present); each pod's time from its
creation request to the first moment a watch on pods shows it Running; then the agent's resident
memory and CPU (with the processes it ran) with N pods running.
Prints JSON. Cleans up (pods deleted through the agent, bridge removed).

  FULCRUM_BIN=BUILD/cmd/fulcrum/fulcrum python3 bench/agent_pods_bench.py \
      --image BUILD/demo-busybox.tar [--pods 100] [--interval 0.05 | --intervals 0,0.1,0.3]
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import fulcrum_e2e as e2e  # noqa: E402


TARGET_P99_S = 1.0  # issue 3's target for pod startup


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * (len(values) - 1) + 0.5))]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_times(pid):
    """(own, children) CPU seconds: utime + stime of the process, and of the children it waited
    for (for the agent: `runc run`, the CNI plugins)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = [int(v) for v in f.read().rsplit(")", 1)[1].split()[11:15]]
    tick = os.sysconf("SC_CLK_TCK")
    return (fields[0] + fields[1]) / tick, (fields[2] + fields[3]) / tick


def cpu_seconds(pid):
    return sum(cpu_times(pid))


def pods_cgroup_cpu_seconds():
    """CPU of everything in the agent's pods cgroup (`runc init` from the moment it joins the
    container's cgroup, then the containers), or None without a cpuacct or cgroup v2 reading."""
    try:
        with open("/sys/fs/cgroup/cpuacct/kubepods/cpuacct.usage") as f:
            return int(f.read()) / 1e9
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/kubepods/cpu.stat") as f:
            for line in f:
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0,
                        help="seconds between creations (0: all at once, as fast as the API "
                             "takes them; Kubernetes' node density test uses 0, 0.1 and 0.3)")
    parser.add_argument("--agent-flag", action="append", default=[],
                        help="a flag for the agent, e.g. --agent-flag=--pods-cgroup= (repeatable)")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--verbose", action="store_true",
                        help="run the agent with -v (its log stays with FULCRUM_E2E_KEEP=1) and print each "
                             "pod's creation and Running times on stderr")
    parser.add_argument("--intervals",
                        help="several runs, one per interval (comma-separated seconds, e.g. "
                             "0,0.1,0.3 as Kubernetes' node density benchmark), each with a fresh "
                             "server and agent, then a summary line against the p99 target")
    args = parser.parse_args(e2e.parse_argv()[1:])
    if os.geteuid() != 0:
        sys.exit("agent_pods_bench: needs root")
    try:
        intervals = ([float(v) for v in args.intervals.split(",")] if args.intervals
                     else [args.interval])
    except ValueError:
        sys.exit("agent_pods_bench: --intervals: not a list of numbers: %s" % args.intervals)
    if any(v < 0 for v in intervals):
        sys.exit("agent_pods_bench: intervals must not be negative")
    runs = []
    for interval in intervals:
        result = run(args, interval)
        print(json.dumps(result), flush=True)
        runs.append(result)
    if len(runs) > 1:
        print(json.dumps({
            "benchmark": "pod_startup_summary", "pods": args.pods, "target_p99_s": TARGET_P99_S,
            "runs": [{"interval_s": r["interval_s"], "p99_s": r["p99_s"],
                      "cpu_bound_s": r["cpu_bound_s"], "create_span_s": r["create_span_s"],
                      "met": r["p99_s"] is not None and r["running"] == r["pods"]
                      and r["p99_s"] <= TARGET_P99_S} for r in runs]}))


def run(args, interval):
    """One run with a fresh server and agent: the result as a dict."""
    server = e2e.Server().start()
    root = os.path.join(server.root, "agent")
    bridge = "fpb%d" % os.getpid()
    subprocess.run([e2e.fulcrum_bin(), "image", "import", args.image, "--root", root],
                   check=True, capture_output=True)
    log = open(os.path.join(server.root, "agent.log"), "wb")
    agent = subprocess.Popen(e2e._with_pdeathsig(
        [e2e.fulcrum_bin(), "agent", "--kubeconfig", server.kubeconfig_path, "--node-name", "bench",
         "--root", root, "--pod-cidr", "10.254.0.0/16", "--bridge", bridge]
        + args.agent_flag + (["-v"] if args.verbose else [])),
        stdout=log, stderr=subprocess.STDOUT)
    e2e._track(agent)
    client = server.client
    running_at = {}
    created_at = {}
    lock = threading.Lock()

    def watch():
        try:
            watch_events()
        except (OSError, ValueError, http.client.HTTPException):
            pass  # the server stopped

    def watch_events():
        # A watch from the start: each pod's first event with phase Running.
        conn = client.connect()
        conn.timeout = args.timeout + 60
        path = "/api/v1/namespaces/default/pods?watch=1"
        conn.putrequest("GET", path)
        for k, v in client.headers(None, None, None, True).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        buf = b""
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                obj = json.loads(line)["object"]
                name = obj["metadata"]["name"]
                if obj.get("status", {}).get("phase") == "Running":
                    with lock:
                        running_at.setdefault(name, time.monotonic())

    threading.Thread(target=watch, daemon=True).start()
    e2e.poll(lambda: client.get("/api/v1/nodes/bench").status == 200, 30, what="node registered")
    time.sleep(0.5)
    start_cpu = (cpu_times(agent.pid), cpu_seconds(server.proc.pid), pods_cgroup_cpu_seconds())
    # One kept-alive connection for the creations, as `kubectl apply -f` of many objects uses: a
    # TLS handshake per pod would be the client's cost, not the node's, and it would take CPU
    # from the pods being started.
    session = client.session()
    first_create = time.monotonic()
    for i in range(args.pods):
        if interval > 0:
            time.sleep(max(0.0, first_create + i * interval - time.monotonic()))
        name = "p%03d" % i
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": "bench", "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": "fulcrum.dev/busybox:demo",
                                         "command": ["sleep", "3600"]}]}}
        created_at[name] = time.monotonic()
        resp = session.request("POST", "/api/v1/namespaces/default/pods", body)
        assert resp.status == 201, e2e.status_summary(resp)
    session.close()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        with lock:
            if len(running_at) >= args.pods:
                break
        time.sleep(0.1)
    with lock:
        latencies = [running_at[n] - created_at[n] for n in created_at if n in running_at]
        if args.verbose:  # each pod's creation and Running, in seconds from the first creation
            t0 = min(created_at.values())
            for n in sorted(created_at):
                print("%s created %.3f running %s" % (
                    n, created_at[n] - t0,
                    "%.3f" % (running_at[n] - t0) if n in running_at else "never"), file=sys.stderr)
    # CPU spent starting them: the agent, the runc and CNI processes it ran, what ran in the pods
    # cgroup (runc init, then the containers' `sleep`), and the server.
    agent_self, agent_children = (a - b for a, b in zip(cpu_times(agent.pid), start_cpu[0]))
    server_start_cpu = cpu_seconds(server.proc.pid) - start_cpu[1]
    pods_cgroup_cpu = pods_cgroup_cpu_seconds()
    containers_cpu = (pods_cgroup_cpu - start_cpu[2]
                      if pods_cgroup_cpu is not None and start_cpu[2] is not None else 0.0)
    node_cpu = agent_self + agent_children + containers_cpu + server_start_cpu
    create_span = max(created_at.values()) - first_create
    cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
    time.sleep(3)  # a few housekeeping rounds with everything running
    steady_cores = (cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0)
    rss = rss_kib(agent.pid)
    result = {"benchmark": "pod_startup", "pods": args.pods, "interval_s": interval,
              "running": len(latencies),
              "p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
              "p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
              "max_s": round(max(latencies), 3) if latencies else None,
              "agent_rss_mib": round(rss / 1024, 1),
              "create_span_s": round(create_span, 3),
              "start_cpu_ms_per_pod": {
                  "agent": round(1000 * agent_self / args.pods, 1),
                  "runc_and_cni": round(1000 * agent_children / args.pods, 1),
                  "pods_cgroup": round(1000 * containers_cpu / args.pods, 1),
                  "server": round(1000 * server_start_cpu / args.pods, 1),
                  "total": round(1000 * node_cpu / args.pods, 1)},
              # The time the node's cores need for all the starts even if none ever waited: a
              # burst's last pods cannot be Running sooner than this after the first creation.
              "cpu_bound_s": round(node_cpu / os.cpu_count(), 3),
              "cpus": os.cpu_count(),
              # CPU of the agent and the processes it ran, with all pods running (resyncs only)
              "steady_cpu_cores": round(steady_cores, 3),
              "loadavg_1m": os.getloadavg()[0]}

    for name in created_at:
        client.delete("/api/v1/namespaces/default/pods/" + name)
    # Pods deleted with grace 0 leave the API at once; the agent then removes their containers
    # and networks, which must be finished before it stops.
    def left():
        return [d for d in ("containers", "run/netns")
                if os.path.isdir(os.path.join(root, d)) and os.listdir(os.path.join(root, d))]
    e2e.poll(lambda: not client.get("/api/v1/namespaces/default/pods").json()["items"]
             and not left(), args.timeout, what="every pod removed by the agent")
    agent.terminate()
    agent.wait(timeout=30)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    server.stop()
    log.close()
    return result


if __name__ == "__main__":
    main()
