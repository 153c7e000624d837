'use strict';
// Loads the cluster2 v1 protos at run time from the repository's proto/
// directory (never copied or generated into the package) and builds the
// gRPC service constructors of @grpc/grpc-js from them.
//
// The directory is $CLUSTER2_PROTO_DIR, else <repo>/proto (this file lives in
// <repo>/clients/node/lib). Loaded once per process, on first use.

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const FILES = [
  'cluster2/v1/worker_session.proto',
  'cluster2/v1/emitter.proto',
  'cluster2/v1/status.proto',
  'cluster2/v1/cache.proto',
  'cluster2/v1/cluster.proto',
  'cluster2/v1/config.proto',
];

// keepCase: our messages keep their proto (snake_case) field names. Note that
// google.protobuf.Value is NOT affected by keepCase (protobufjs' built-in
// definition is camelCase): lib/value.js is the one place that builds them.
const LOADER_OPTIONS = {
  keepCase: true,
  longs: Number,  // uint64 fields (sequence, revision) stay below 2^53
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

function protoDir() {
  return process.env.CLUSTER2_PROTO_DIR || path.join(__dirname, '..', '..', '..', 'proto');
}

let loaded = null;

// Returns {v1, definition}: v1 is the cluster2.v1 package object of
// grpc.loadPackageDefinition (service constructors and message types),
// definition the raw package definition (for serialize/deserialize in tests).
// Throws an Error naming the directory if the protos are not there.
function load() {
  if (loaded) return loaded;
  const dir = protoDir();
  if (!fs.existsSync(path.join(dir, FILES[0]))) {
    throw new Error(`cluster2: protos not found in ${dir} (set CLUSTER2_PROTO_DIR to the ` +
                    `cluster2 repository's proto/ directory)`);
  }
  const definition = protoLoader.loadSync(FILES, {...LOADER_OPTIONS, includeDirs: [dir]});
  const root = grpc.loadPackageDefinition(definition);
  loaded = {v1: root.cluster2.v1, definition};
  return loaded;
}

// The descriptor (a google.protobuf.DescriptorProto as plain object) of
// message `typeName`, e.g. 'cluster2.v1.ClusterConfig'.
function descriptorOf(typeName) {
  return load().definition[typeName].type;
}

module.exports = {load, protoDir, descriptorOf, grpc};
