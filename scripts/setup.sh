#!/usr/bin/env bash
# Installs the Debian 12 packages that cluster2's build, tests, demo and
# benchmarks need. Idempotent: does nothing when everything is present.
# Runs apt-get as root (directly, or through sudo).
set -euo pipefail

PACKAGES=(
  # build: Debian's Bazel and the system libraries it wraps as @system
  bazel-bootstrap g++ make
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev libabsl-dev
  prometheus-cpp-dev libmicrohttpd-dev libcli11-dev
  # the cache's Redis backend (cache.backend) and its tests
  libhiredis-dev
  # tests
  libgtest-dev libgmock-dev python3
  # deploy_test: the Kubernetes manifests (YAML), systemd-analyze and
  # systemd-socket-activate for the units (no running systemd needed)
  python3-yaml systemd
  # a real non-C++ peer: Python's gRPC on the protos (tests, examples/python)
  python3-grpcio python3-protobuf
  # debugging workers: gdbserver (debug), gdb (stacks), debugpy (Python workers)
  gdb gdbserver python3-debugpy
  # real peers of the monitor port: promtool/Prometheus, HAProxy, a browser;
  # the multi-host test: ip netns (iproute2) and certificates (openssl)
  prometheus haproxy chromium iproute2 openssl
  # demo and benchmarks
  curl wrk
  # the cache benchmarks' anchor and the cache's Redis backend's tests:
  # Redis (redis-server, redis-benchmark)
  redis-server redis-tools
)

missing=()
# Node workers (clients/node, examples/node, the mixed-cluster test): any
# node >= 18 with npm; Debian's when there is none.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "cluster2 setup: installing ${missing[*]}" >&2
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "cluster2 setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
