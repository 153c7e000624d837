#!/usr/bin/env bash
# Runs every fuzz target (tools/fuzz.bzl: the *_fuzzer binaries) under
# libFuzzer with AddressSanitizer and UBSan, each for a bounded time, from a
# copy of its committed seed corpus. Built with Debian's clang in an output
# base of its own, so the gcc build of `bazel test //...` is not disturbed.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Prints one line per target and ends with "fuzz: N passed, N failed".
# A crash leaves its input under $FUZZ_OUT (default /tmp/cluster2-fuzz).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
out=${FUZZ_OUT:-/tmp/cluster2-fuzz}
output_base=${FUZZ_OUTPUT_BASE:-$HOME/.cache/cluster2-fuzz-bazel}
mkdir -p "$out"

# shellcheck source=scripts/source_packages.sh
. scripts/source_packages.sh
bazel_fuzz=(bazel --output_base="$output_base")
packages=$(source_packages | paste -sd+ -)
targets=$("${bazel_fuzz[@]}" query "attr(name, \"_fuzzer\$\", $packages)" 2>/dev/null)
if [ -z "$targets" ]; then
  echo "fuzz: no *_fuzzer targets found"
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
# shellcheck disable=SC2086
if ! "${bazel_fuzz[@]}" build --repo_env=CC=clang --repo_env=CXX=clang++ \
    --copt=-fsanitize=fuzzer-no-link,address,undefined \
    --copt=-fno-sanitize-recover=undefined \
    --copt=-g \
    --linkopt=-fsanitize=address,undefined \
    --linkopt=-fsanitize-link-c++-runtime --strip=never --symlink_prefix=/ \
    $targets; then
  echo "fuzz: the fuzz targets do not build with clang"
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
bin=$("${bazel_fuzz[@]}" info bazel-bin 2>/dev/null)

passed=0
failed=0
for target in $targets; do
  package=${target#//}
  package=${package%%:*}
  name=${target##*:}
  test_name=${name%_fuzzer}
  corpus_dir="$out/$test_name/corpus"
  rm -rf "$corpus_dir" && mkdir -p "$corpus_dir"
  # The seed corpus is the data of the replay test of the same name.
  for seed in $("${bazel_fuzz[@]}" query "labels(data, $package:$test_name)" \
                 2>/dev/null | xargs -r "${bazel_fuzz[@]}" query 2>/dev/null |
               grep -v '^//.*:.*_corpus$'); do
    file=${seed#//}
    file=${file/://}
    [ -f "$file" ] && cp "$file" "$corpus_dir/"
  done
  log="$out/$test_name/log"
  start=$(date +%s)
  if (cd "$out/$test_name" && ASAN_OPTIONS=detect_leaks=1 \
      "$bin/$package/$name" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 corpus >"$log" 2>&1); then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    echo "fuzz $target: ok, ${runs:-?} inputs in $(( $(date +%s) - start ))s, corpus $(ls "$corpus_dir" | wc -l) files"
    passed=$((passed + 1))
  else
    echo "fuzz $target: FAILED (see $log; the input is in $out/$test_name)"
    tail -30 "$log"
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
