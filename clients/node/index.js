'use strict';
// cluster2 for Node.js: the original cluster2's API (listen, emitter, cache,
// status) on the cluster2 master (C++) over gRPC. See README.md.

const assert = require('assert');
const {Emitter} = require('./lib/emitter');
const {StatusRegistry} = require('./lib/status');
const {Cache} = require('./lib/cache');
const {VERSION} = require('./lib/session');

const isWorker = Boolean(process.env.CLUSTER2_MASTER && process.env.CLUSTER2_WORKER_TOKEN);

const emitter = new Emitter();
const status = new StatusRegistry();
const cache = new Cache();
if (isWorker) {
  emitter._expectSession();  // emits wait for listen()'s session
} else if (process.env.CLUSTER2_MASTER) {
  // A tool run beside a cluster (the master's environment): use its services.
  emitter._useMaster(process.env.CLUSTER2_MASTER);
  status._useMaster(process.env.CLUSTER2_MASTER);
}

// Serves `app` as the original's listen(options) did, returning a promise:
// in a worker (run by cluster2-master), resolves {server, app, port,
// clusterName, cacheAddress, workerId, master: null, worker} once it serves;
// run from a shell, starts cluster2-master with this script as the workers
// and resolves {master, worker: null, app, port, clusterName, cacheAddress}
// once the workers are ready. Throws an AssertionError without `app`.
function listen(options = {}) {
  assert.ok(options && options.app, 'cluster2.listen: options.app is required');
  const modules = {emitter, status, cache};
  if (isWorker) return require('./lib/worker').runWorker(options, modules);
  return require('./lib/launcher').runMaster(options, modules);
}

module.exports = {
  listen,
  emitter,
  status,
  cache,
  cacheManager: cache,  // the original's name
  isWorker,
  isMaster: !isWorker,
  version: VERSION,
};
