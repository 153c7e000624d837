#!/usr/bin/env bash
# Every worker of the cluster answers (run by cluster2_service_test, which
# sets CLUSTER2_SERVICE_PORT, CLUSTER2_RUN_DIR and CLUSTER2CTL).
set -euo pipefail
workers=$("$CLUSTER2CTL" --run-dir "$CLUSTER2_RUN_DIR" workers | grep -c ' ready ')
declare -A seen=()
for _ in $(seq 1 60); do
  body=$(curl -sf --max-time 5 "http://127.0.0.1:$CLUSTER2_SERVICE_PORT/")
  seen[${body##* }]=1
  ((${#seen[@]} == workers)) && break
done
((${#seen[@]} == workers)) || { echo "answers from ${#seen[@]} of $workers workers" >&2; exit 1; }
echo "all $workers workers answered"
