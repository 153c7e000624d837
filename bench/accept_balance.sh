#!/usr/bin/env bash
# How evenly N hello workers share connections under wrk, for the default
# `balance` (even) and, as anchors in the same run, the others: new
# connections (Connection: close) and keep-alive connections. Prints each
# worker's share of the requests and the ratio max/mean (1.00 = perfectly
# even), from the workers' own heartbeat request counters.
#
# Rows: "even" is the default as this user runs it (round robin if the
# master may load eBPF, i.e. has CAP_BPF, else by source port); when run
# with CAP_BPF, "even/sport" is the same master with every capability
# dropped (setpriv), i.e. the unprivileged default; then shared and
# reuseport.
#
#   bazel build -c opt //master:cluster2-master //cli:cluster2ctl //examples/hello:hello_worker
#   bench/accept_balance.sh [workers=4] [seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-4}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${3:-64}
bin=${CLUSTER2_BIN:-bazel-bin}  # or a copy of the three binaries, same layout
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

counts() {  # requests_total per worker, space-separated, by slot, from
            # heartbeats sent after the epoch time $1 (waits up to 10 s)
  for _ in $(seq 1 100); do
    if "$bin/cli/cluster2ctl" --name balance-bench workers -o json | python3 -c '
import datetime, json, sys
since = float(sys.argv[1])
workers = sorted(json.load(sys.stdin)["workers"], key=lambda w: w["id"])
def at(w):
    text = w.get("lastHeartbeatAt", "1970-01-01T00:00:00Z").rstrip("Z")
    whole, _, fraction = text.partition(".")
    moment = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    moment = moment.replace(tzinfo=datetime.timezone.utc).timestamp()
    return moment + (float("0." + fraction) if fraction else 0.0)
if any(at(w) < since for w in workers):
    sys.exit(1)
print(" ".join(str(int(w.get("lastHeartbeat", {}).get("requestsTotal", 0))) for w in workers))' "$1"; then
      return
    fi
    sleep 0.1
  done
  echo "heartbeats are late" >&2
  exit 1
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

modes=(even)
if grep -q '^CapEff:.*[1-9a-f]' /proc/self/status && command -v setpriv >/dev/null; then
  modes+=(even/sport)
fi
modes+=(shared reuseport)
for mode in "${modes[@]}"; do
  prefix=()
  balance=()
  case "$mode" in
    even) ;;  # the default: no flag
    even/sport) prefix=(setpriv --inh-caps=-all --bounding-set=-all) ;;
    *) balance=(--balance="$mode") ;;
  esac
  "${prefix[@]}" "$bin/master/cluster2-master" --name=balance-bench --noWorkers="$WORKERS" --port="$PORT" \
    --host=127.0.0.1 --monPort=0 --heartbeatInterval=100 "${balance[@]}" \
    -- "$(cd "$bin" && pwd)/examples/hello/hello_worker" 2>/dev/null &
  master=$!
  for _ in $(seq 1 100); do
    [ "$("$bin/cli/cluster2ctl" --name balance-bench workers 2>/dev/null | grep -c ' ready ')" = "$WORKERS" ] && break
    sleep 0.1
  done
  for kind in new-conns keep-alive; do
    headers=()
    [ "$kind" = new-conns ] && headers=(-H "Connection: close")
    before=$(counts "$(date +%s.%N)")
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "${headers[@]}" "http://127.0.0.1:$PORT/" >/dev/null
    report "$mode" "$kind" "$before" "$(counts "$(date +%s.%N)")"
  done
  kill -TERM "$master"
  wait "$master" || true
done
