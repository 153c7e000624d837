#!/bin/sh
# Generates the Python modules of proto/cluster2/v1 into DIR with Debian's
# protoc and grpc_python_plugin (package protobuf-compiler-grpc).
# Usage: examples/python/gen_stubs.sh DIR
set -eu
out=${1:?usage: gen_stubs.sh DIR}
protos=$(cd "$(dirname "$0")/../../proto" && pwd)
mkdir -p "$out"
protoc -I"$protos" --python_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin "$protos"/cluster2/v1/*.proto
touch "$out/cluster2/__init__.py" "$out/cluster2/v1/__init__.py"
