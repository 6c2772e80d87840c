#!/usr/bin/env bash
# Runs every API benchmark against a fresh fulcrum server and a fresh etcd (the anchor for durable
# writes), each on its own temporary data directory and free 127.0.0.1 ports, and prints one JSON
# line per scenario on stdout. Progress goes to stderr. Both processes are stopped on any exit.
#
#   bash bench/run.sh BUILD_DIR [api_bench flags...]     e.g. bash bench/run.sh build-release
#
# Extra flags go to api_bench (e.g. --scenarios durable_creates --create-seconds 5).
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: bash bench/run.sh BUILD_DIR [api_bench flags...]" >&2
  exit 2
fi
BUILD_DIR=$(cd "$1" && pwd)
shift
FULCRUM="$BUILD_DIR/cmd/fulcrum/fulcrum"
API_BENCH="$BUILD_DIR/bench/api_bench"
ETCD=${ETCD:-/usr/bin/etcd}
for bin in "$FULCRUM" "$API_BENCH" "$BUILD_DIR/bench/tls_fanout_floor"; do
  [[ -x "$bin" ]] || { echo "run.sh: $bin not built (cmake --build $BUILD_DIR --target benchmarks)" >&2; exit 2; }
done
if [[ -f "$BUILD_DIR/CMakeCache.txt" ]] && ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$BUILD_DIR/CMakeCache.txt"; then
  echo "run.sh: warning: $BUILD_DIR is not a Release build; numbers will not be representative" >&2
fi

# 1,000 watch connections need more than the usual 1,024 descriptors on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Data on disk (not tmpfs), so that fsync costs what it costs.
WORK=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/fulcrum-bench.XXXXXX")
FULCRUM_PID=""
ETCD_PID=""
cleanup() {
  local pid
  for pid in $FULCRUM_PID $ETCD_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $FULCRUM_PID $ETCD_PID; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORTS=($("$API_BENCH" --free-ports 2))
ETCD_CLIENT_PORT=${PORTS[0]}
ETCD_PEER_PORT=${PORTS[1]}

"$FULCRUM" server --data-dir "$WORK/fulcrum" --listen 127.0.0.1:0 --control-loops off >"$WORK/fulcrum.log" 2>&1 &
FULCRUM_PID=$!

"$ETCD" --name bench --data-dir "$WORK/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER_PORT" \
  --logger zap --log-level warn >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!

KUBECONFIG_FILE="$WORK/fulcrum/kubeconfig"
for _ in $(seq 1 300); do
  [[ -s "$KUBECONFIG_FILE" ]] && break
  kill -0 "$FULCRUM_PID" 2>/dev/null || { echo "run.sh: fulcrum exited:" >&2; cat "$WORK/fulcrum.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$KUBECONFIG_FILE" ]] || { echo "run.sh: fulcrum wrote no kubeconfig in 30 s" >&2; cat "$WORK/fulcrum.log" >&2; exit 1; }
SERVER_URL=$(sed -n 's/^[[:space:]]*server:[[:space:]]*\(https\{0,1\}:\/\/[^[:space:]]*\).*/\1/p' "$KUBECONFIG_FILE" | head -n 1)
[[ -n "$SERVER_URL" ]] || { echo "run.sh: no server URL in $KUBECONFIG_FILE" >&2; exit 1; }

ETCD_URL="http://127.0.0.1:$ETCD_CLIENT_PORT"
for _ in $(seq 1 300); do
  curl -fsS "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' && break
  kill -0 "$ETCD_PID" 2>/dev/null || { echo "run.sh: etcd exited:" >&2; cat "$WORK/etcd.log" >&2; exit 1; }
  sleep 0.1
done

echo "run.sh: fulcrum $SERVER_URL (pid $FULCRUM_PID), etcd $ETCD_URL (pid $ETCD_PID), data in $WORK" >&2
echo "run.sh: $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2

# Bounded: each phase has its own limit inside api_bench; this is the backstop for a hung server.
status=0
timeout --signal=TERM "${BENCH_TIMEOUT:-600}" "$API_BENCH" \
  --server "$SERVER_URL" \
  --ca-file "$WORK/fulcrum/pki/ca.crt" \
  --token-file "$WORK/fulcrum/pki/admin.token" \
  --server-pid "$FULCRUM_PID" \
  --etcd "$ETCD_URL" --etcd-pid "$ETCD_PID" \
  "$@" || status=$?

# With the watch fan-out, the same fan-out by nothing but TLS (bench/tls_fanout_floor.cc): what
# these cores allow any server whose clients run beside it, in the same run.
scenarios=all
for ((i = 1; i <= $#; i++)); do
  case "${!i}" in
    --scenarios=*) scenarios=${!i#--scenarios=} ;;
    --scenarios) j=$((i + 1)); scenarios=${!j:-} ;;
  esac
done
if [[ ",$scenarios," == *,all,* || ",$scenarios," == *,watch_fanout,* ]]; then
  timeout --signal=TERM "${BENCH_TIMEOUT:-600}" "$BUILD_DIR/bench/tls_fanout_floor" \
    --connections 1000 --rates "${FLOOR_RATES:-1000,500,300,200,100}" --seconds 5 || status=$?
fi

for name in fulcrum etcd; do
  pid_var=${name^^}_PID
  if ! kill -0 "${!pid_var}" 2>/dev/null; then
    server_status=0
    wait "${!pid_var}" || server_status=$?
    echo "run.sh: $name exited during the run (status $server_status); the end of its log:" >&2
    tail -n 40 "$WORK/$name.log" >&2
    status=1
  fi
done
exit "$status"
