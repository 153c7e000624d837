#!/usr/bin/env bash
# Builds everything with Debian's clang and its thread-safety analysis as
# errors (--config=clang), in an output base of its own so the gcc build of
# `bazel test //...` is not reconfigured. Exit status: the build's.
set -uo pipefail
cd "$(dirname "$0")/.."
output_base=${CLANG_OUTPUT_BASE:-$HOME/.cache/cluster2-clang-bazel}
exec bazel --output_base="$output_base" build --config=clang --symlink_prefix=/ \
  "${@:-//...}"
