#!/usr/bin/env bash
# Builds everything with Debian's clang and its thread-safety analysis as
# errors (--config=clang), in an output base of its own so the gcc build of
# `bazel test //...` is not reconfigured. Exit status: the build's.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/source_packages.sh
. scripts/source_packages.sh
output_base=${CLANG_OUTPUT_BASE:-$HOME/.cache/cluster2-clang-bazel}
if [ $# -eq 0 ]; then
  # shellcheck disable=SC2046
  set -- $(source_packages)
fi
exec bazel --output_base="$output_base" build --config=clang --symlink_prefix=/ \
  "$@"
