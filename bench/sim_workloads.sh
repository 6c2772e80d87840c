#!/usr/bin/env bash
# The utilization of the four policies across workloads (issue 4: archimedes against requests,
# load-aware and the oracle), one `fulcrum sim run` per workload on the shared traces. Prints one
# JSON line per policy per workload: the simulator's line with the workload's flags in front
# (request_factor, online_fill, batch_scale, seed). Progress goes to stderr.
#
#   bash bench/sim_workloads.sh BUILD_DIR [WORKLOAD...]
#
# A workload is REQUEST_FACTOR:ONLINE_FILL:BATCH_SCALE:SEED; the default list is the table of
# docs/scheduler.md ("The ratio across workloads"). NODES (default 1000) and DAYS (7) override the
# cluster; TRACES the traces folder (../shared/traces).
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: bash bench/sim_workloads.sh BUILD_DIR [RF:FILL:BATCH_SCALE:SEED...]" >&2
  exit 2
fi
FULCRUM="$(cd "$1" && pwd)/cmd/fulcrum/fulcrum"
shift
[[ -x "$FULCRUM" ]] || { echo "sim_workloads.sh: $FULCRUM not built" >&2; exit 2; }
TRACES=${TRACES:-$(cd "$(dirname "$0")/../.." && pwd)/shared/traces}
[[ -d "$TRACES" ]] || { echo "sim_workloads.sh: no traces at $TRACES (set TRACES)" >&2; exit 2; }

workloads=("$@")
if [[ ${#workloads[@]} -eq 0 ]]; then
  workloads=(1:0.7:1:1 1:0.9:1:1 2:0.7:1:1 2:0.9:1:1 6.8:0.7:1:1 6.8:0.8:1:1 6.8:0.85:1:1
             6.8:0.9:1:1 6.8:0.7:2:1 6.8:0.8:2:1 6.8:0.9:2:1 6.8:0.9:1:2 6.8:0.9:1:3)
fi

for workload in "${workloads[@]}"; do
  IFS=: read -r rf fill scale seed <<<"$workload"
  if [[ -z "$rf" || -z "$fill" || -z "$scale" || -z "$seed" ]]; then
    echo "sim_workloads.sh: bad workload \"$workload\" (expected RF:FILL:BATCH_SCALE:SEED)" >&2
    exit 2
  fi
  echo "sim_workloads.sh: --request-factor $rf --online-fill $fill --batch-scale $scale --seed $seed" >&2
  "$FULCRUM" sim run --nodes "${NODES:-1000}" --days "${DAYS:-7}" --seed "$seed" \
    --online "$TRACES/crane-app-cpu,$TRACES/azure-vm-cpu,$TRACES/alibaba-2018/machine_usage.csv" \
    --batch "$TRACES/alibaba-2017/batch_task.csv" \
    --policy requests,load-aware,archimedes,oracle \
    --request-factor "$rf" --online-fill "$fill" --batch-scale "$scale" |
    sed "s/^{/{\"request_factor\":$rf,\"online_fill\":$fill,\"batch_scale\":$scale,\"seed\":$seed,/"
done
