#!/usr/bin/env bash
# The demo: a cluster of 4 hello workers on port 9090. Shows requests served
# by different workers and the worker table, then keeps running until Ctrl-C
# (or for DEMO_SECONDS seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-9090}
MON_PORT=${MON_PORT:-9091}
bin=bazel-bin
master="$bin/master/cluster2-master"
ctl="$bin/cli/cluster2ctl"
worker="$PWD/$bin/examples/hello/hello_worker"

"$master" --name=demo --noWorkers=4 --port="$PORT" --monPort="$MON_PORT" \
  --heartbeatInterval=1000 -- "$worker" &
master_pid=$!
trap 'kill -TERM $master_pid 2>/dev/null || true' INT TERM

for _ in $(seq 1 100); do
  if [ "$("$ctl" --name demo workers 2>/dev/null | grep -c ' ready ')" = 4 ]; then break; fi
  if ! kill -0 "$master_pid" 2>/dev/null; then wait "$master_pid"; exit 1; fi
  sleep 0.1
done

echo
echo "== 8 requests to http://127.0.0.1:$PORT/ (each on a new connection)"
for _ in $(seq 1 8); do curl -s "http://127.0.0.1:$PORT/"; done
echo
echo "== $ctl --name demo workers"
"$ctl" --name demo workers
echo
echo "== the shared cache (cluster2-cache, started by the master)"
echo "\$ $ctl --name demo cache set demo greeting 'hello from the cache'"
"$ctl" --name demo cache use demo >/dev/null
"$ctl" --name demo cache set demo greeting 'hello from the cache'
echo "\$ $ctl --name demo cache get demo greeting"
"$ctl" --name demo cache get demo greeting
echo
echo "\$ $ctl --name demo cache stats"
"$ctl" --name demo cache stats
echo
echo "The cluster runs: try 'curl http://127.0.0.1:$PORT/', '$ctl --name demo workers',"
echo "the monitor page http://127.0.0.1:$MON_PORT/ and its ECV http://127.0.0.1:$MON_PORT/ecv,"
echo "kill a worker (it comes back in its slot), Ctrl-C to stop gracefully."
if [ -n "${DEMO_SECONDS:-}" ]; then
  ( sleep "$DEMO_SECONDS"; kill -TERM $master_pid 2>/dev/null || true ) &
fi
wait "$master_pid"
