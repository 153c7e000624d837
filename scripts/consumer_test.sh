#!/usr/bin/env bash
# examples/bazel_consumer as a user would have it: a copy outside this tree
# whose WORKSPACE points at this checkout (local_repository with an absolute
# path). Checks, each
# counted as a test case:
#   build     bazel build //... passes
#   test      bazel test //... passes (its test cases are counted)
#   run       bazel run //:cluster serves HTTP from every worker and stops
#             gracefully (exit 0) on SIGINT
#   invalid   bazel build //invalid:cluster fails with the master's error
# Ends with one line "consumer: N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# A stable path, so that a second run reuses the copy's output base.
work=/tmp/cluster2-consumer
rm -rf "$work"
cp -r "$repo/examples/bazel_consumer" "$work"
rm -f "$work"/bazel-*  # convenience links of a build inside the tree
cd "$work"
sed -i "s|path = \"../..\",|path = \"$repo\",|" WORKSPACE
grep -q "path = \"$repo\"" WORKSPACE || { echo "consumer: cannot point WORKSPACE at $repo"; exit 1; }
passed=0
failed=0
result() {  # result NAME STATUS [WHY]
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1))
    echo "consumer: $1: passed"
  else
    failed=$((failed + 1))
    echo "consumer: $1: FAILED${3:+ ($3)}"
  fi
}

bazel build //...
result build $?

log=$(mktemp)
bazel test //... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
counts=$(python3 "$repo/scripts/count_tests.py" "$log")
echo "consumer: bazel test: $counts"
passed=$((passed + $(echo "$counts" | sed -n 's/^\([0-9]*\) passed.*/\1/p')))
failed=$((failed + $(echo "$counts" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')))
if [ "$status" -ne 0 ] && ! grep -q " [1-9][0-9]* failed" <<<"$counts"; then
  result "bazel test" 1 "exit $status"
fi
rm -f "$log"

# bazel run: the client execs the launcher, which execs cluster2-master, so
# the pid started here is the master's.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mon_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run_log=$(mktemp)
bazel run //:cluster -- --port="$port" --monPort="$mon_port" \
  --host=127.0.0.1 --runDir="$work/run" >"$run_log" 2>&1 &
pid=$!
why=""
declare -A seen=()
deadline=$((SECONDS + 300))  # includes the build of the run target
while ((${#seen[@]} < 3)); do
  if ! kill -0 "$pid" 2>/dev/null; then why="exited early"; break; fi
  if ((SECONDS >= deadline)); then why="not 3 workers answering"; break; fi
  if body=$(curl -sf --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null); then
    seen[${body##* }]=1
  else
    sleep 0.2  # not serving yet
  fi
done
if [ -z "$why" ]; then
  kill -INT "$pid"
  if timeout 60 tail --pid="$pid" -f /dev/null; then
    wait "$pid"
    code=$?
    if [ "$code" -ne 0 ]; then
      why="exit $code after SIGINT"
    elif ! grep -q "all workers have exited; master stops" "$run_log"; then
      why="no graceful stop in its log"
    fi
  else
    why="still running 60 s after SIGINT"
    kill -KILL "$pid" 2>/dev/null
  fi
else
  kill -KILL "$pid" 2>/dev/null
fi
[ -n "$why" ] && tail -20 "$run_log"
result "run (${#seen[@]} workers answered, SIGINT)" "$([ -z "$why" ] && echo 0 || echo 1)" "$why"
rm -f "$run_log"

invalid_log=$(mktemp)
bazel build //invalid:cluster >"$invalid_log" 2>&1
status=$?
expected="cluster2-master: field 'monPort': equals 'port' (8480): the monitor and application ports must differ"
if [ "$status" -ne 0 ] && grep -qF "$expected" "$invalid_log"; then
  result "invalid config fails the build" 0
else
  cat "$invalid_log"
  result "invalid config fails the build" 1 "exit $status, master's error not shown"
fi
rm -f "$invalid_log"

bazel shutdown
echo "consumer: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
