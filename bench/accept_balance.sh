#!/usr/bin/env bash
# How evenly N hello workers share connections under wrk, for each `balance`
# mode, measured in the same run: new connections (Connection: close) and
# keep-alive connections. Prints each worker's share of the requests and the
# ratio max/mean (1.00 = perfectly even), from the workers' own heartbeat
# request counters.
#
#   bazel build -c opt //master:cluster2-master //cli:cluster2ctl //examples/hello:hello_worker
#   bench/accept_balance.sh [workers=4] [seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-4}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${3:-64}
bin=bazel-bin
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

counts() {  # requests_total per worker, space-separated, by slot
  "$bin/cli/cluster2ctl" --name balance-bench workers -o json | python3 -c '
import json, sys
workers = sorted(json.load(sys.stdin)["workers"], key=lambda w: w["id"])
print(" ".join(str(int(w.get("lastHeartbeat", {}).get("requestsTotal", 0))) for w in workers))'
}

report() {  # mode, kind, before counts, after counts
  python3 - "$@" <<'PY'
import sys
mode, kind, before, after = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
deltas = [int(a) - int(b) for a, b in zip(after, before)]
total = sum(deltas) or 1
shares = " ".join(f"{100.0 * d / total:5.1f}%" for d in deltas)
mean = total / len(deltas)
print(f"{mode:10s} {kind:11s} requests={total:8d}  shares: {shares}  max/mean={max(deltas) / mean:.2f}")
PY
}

for mode in shared reuseport; do
  "$bin/master/cluster2-master" --name=balance-bench --noWorkers="$WORKERS" --port="$PORT" \
    --host=127.0.0.1 --monPort=0 --heartbeatInterval=100 --balance="$mode" \
    -- "$PWD/$bin/examples/hello/hello_worker" 2>/dev/null &
  master=$!
  for _ in $(seq 1 100); do
    [ "$("$bin/cli/cluster2ctl" --name balance-bench workers 2>/dev/null | grep -c ' ready ')" = "$WORKERS" ] && break
    sleep 0.1
  done
  for kind in new-conns keep-alive; do
    headers=()
    [ "$kind" = new-conns ] && headers=(-H "Connection: close")
    before=$(counts)
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "${headers[@]}" "http://127.0.0.1:$PORT/" >/dev/null
    sleep 0.3  # one heartbeat (100 ms) and margin, so the counters are current
    report "$mode" "$kind" "$before" "$(counts)"
  done
  kill -TERM "$master"
  wait "$master" || true
done
