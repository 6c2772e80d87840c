#!/usr/bin/env bash
# Installs every Debian package that fulcrum's build, tests, benchmarks and a running cluster need.
# Idempotent: a second run with everything present does no network work.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build ccache pkg-config clang lld libclang-rt-14-dev
  libboost-dev libboost-system-dev libssl-dev nlohmann-json3-dev libsqlite3-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libjemalloc-dev
  # tests, benchmarks and a running cluster
  openssl curl ca-certificates sqlite3 etcd-server etcd-client procps psmisc python3
  # the node agent: containers, images, pod networking
  runc busybox-static containernetworking-plugins iproute2 iptables
  # tests of registry pulls: a local OCI distribution registry
  docker-registry
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
