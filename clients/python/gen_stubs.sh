#!/bin/sh
# Generates the Python modules of proto/cluster2/v1 (messages and gRPC stubs)
# into DIR/cluster2/v1 with Debian's protoc and grpc_python_plugin (packages
# protobuf-compiler and protobuf-compiler-grpc). Put DIR on PYTHONPATH beside
# clients/python: the package's cluster2/__init__.py extends its path with
# DIR/cluster2, so the stubs import as cluster2.v1.
#
# Usage: clients/python/gen_stubs.sh DIR [PROTO_ROOT]
#   PROTO_ROOT: the import root of the protos (default: <repo>/proto).
# Environment: PROTOC (default protoc), GRPC_PYTHON_PLUGIN (default
# /usr/bin/grpc_python_plugin).
set -eu
out=${1:?usage: gen_stubs.sh DIR [PROTO_ROOT]}
protos=${2:-$(dirname "$0")/../../proto}
protos=$(cd "$protos" && pwd)
mkdir -p "$out"
"${PROTOC:-protoc}" -I"$protos" --python_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc="${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}" \
  "$protos"/cluster2/v1/*.proto
# DIR/cluster2 stays a namespace portion (no __init__.py): a regular package
# there would hide the cluster2 package itself. Older versions of this script
# wrote an empty one; remove it.
if [ -f "$out/cluster2/__init__.py" ] && [ ! -s "$out/cluster2/__init__.py" ]; then
  rm -f "$out/cluster2/__init__.py"
fi
: > "$out/cluster2/v1/__init__.py"
