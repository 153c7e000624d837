#!/usr/bin/env bash
# The Node client's own tests (clients/node, node's test runner) against the
# binaries Bazel builds. Installs its locked dependencies first (npm ci: the
# npm registry). Ends with one line "node: N passed, N failed" counted from
# the runner's TAP summary; exits non-zero if a test failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! bazel build //master:cluster2-master //cache_server:cluster2-cache //cli:cluster2ctl \
    //examples/hello:hello_worker; then
  echo "node: 0 passed, 1 failed"
  exit 1
fi
bin_dir=$(bazel info bazel-bin 2>/dev/null)
# make test has run npm ci (make node-deps); alone, this script does.
if [ ! -d clients/node/node_modules ] &&
    ! (cd clients/node && npm ci --no-audit --no-fund --loglevel=error); then
  echo "node: 0 passed, 1 failed"
  exit 1
fi
log=$(mktemp)
(cd clients/node && CLUSTER2_BIN_DIR="$bin_dir" timeout 1200 npm test) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -1)
rm -f "$log"
if [ -z "$passed" ] || [ -z "$failed" ]; then
  echo "node: 0 passed, 1 failed (no TAP summary: the runner did not finish)"
  exit 1
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # the runner failed outside a test (a file that did not load)
fi
echo "node: $passed passed, $failed failed"
[ "$status" -eq 0 ]
