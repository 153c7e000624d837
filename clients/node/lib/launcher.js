'use strict';
// Runs a whole cluster from a shell: listen() in a process that was not
// started by cluster2-master starts cluster2-master with the listen()
// options that are ClusterConfig fields, and this same script as the worker
// command (process.execPath + process.argv[1..]); the workers' listen()
// then serves. This process stays the master's parent: it forwards SIGINT,
// SIGTERM, SIGHUP and SIGQUIT to it and exits with its exit code.

const {spawn} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const {load, descriptorOf, grpc} = require('./proto');
const {codedError, status} = require('./errors');

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
// Fields of ClusterConfig listen() sets itself.
const RESERVED_FIELDS = new Set(['command']);

// Returns the path of cluster2-master: $CLUSTER2_MASTER_BIN, else
// cluster2-master on PATH, else <repo>/bazel-bin/master/cluster2-master.
// Throws a NOT_FOUND error naming where it looked.
function findMasterBinary(env = process.env) {
  if (env.CLUSTER2_MASTER_BIN) return env.CLUSTER2_MASTER_BIN;
  const candidates = (env.PATH || '').split(':').filter(Boolean)
      .map((dir) => path.join(dir, 'cluster2-master'));
  candidates.push(path.join(__dirname, '..', '..', '..', 'bazel-bin', 'master', 'cluster2-master'));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch (_) {
      // next
    }
  }
  throw codedError(status.NOT_FOUND, 'cluster2-master not found: set CLUSTER2_MASTER_BIN, put ' +
                   'it on PATH, or build it (bazel build //master:cluster2-master)');
}

function camel(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

// Returns the part of listen()'s `options` that is a ClusterConfig (proto or
// JSON field names, nested objects for nested messages), as JSON for
// cluster2-master --config. Functions, undefined values and keys that are
// not ClusterConfig fields (app, createServer, ...) are left out.
function masterConfig(options) {
  return pick(options, descriptorOf('cluster2.v1.ClusterConfig'), true);
}

function pick(object, descriptor, top) {
  const out = {};
  const nested = new Map((descriptor.nestedType || []).map((n) => [n.name, n]));
  for (const field of descriptor.field) {
    if (top && RESERVED_FIELDS.has(field.name)) continue;
    for (const key of new Set([field.name, camel(field.name)])) {
      const value = object[key];
      if (value === undefined || typeof value === 'function') continue;
      const type = field.type === 'TYPE_MESSAGE' ? nested.get(field.typeName) : null;
      if (type && !(type.options && type.options.mapEntry) &&
          value !== null && typeof value === 'object' && !Array.isArray(value)) {
        out[key] = pick(value, type, false);
      } else {
        out[key] = value;
      }
    }
  }
  return out;
}

// The run directory the master uses for `config` (docs/api.md).
function runDirOf(config, env = process.env) {
  const dir = config.runDir || config.run_dir;
  if (dir) return dir;
  const name = config.name || 'default';
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'cluster2', name);
  return path.join('/tmp', `cluster2-${process.getuid()}`, name);
}

// Starts the master; resolves once it runs `noWorkers` (the effective
// configuration's) ready workers, with {master, worker: null, app, port,
// clusterName, cacheAddress, workerId: null}. `master` is {pid, address,
// runDir, exited (a promise of {code, signal}), stop(signal)}. Rejects if
// the master exits first, or after options.timeout (default 60 s) + 10 s.
function runMaster(options, {emitter, status: statusRegistry}) {
  const config = masterConfig(options);
  const runDir = runDirOf(config);
  const address = `unix:${path.join(runDir, 'master.sock')}`;
  const bin = findMasterBinary();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster2-node-'));
  const configFile = path.join(tmp, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const args = ['--config', configFile, '--', process.execPath, ...process.argv.slice(1)];
  // Its own process group: a terminal's ^C reaches this process only, which
  // forwards it once (the master takes a second signal as "stop fast").
  const child = spawn(bin, args, {stdio: 'inherit', detached: true});
  const forward = (signal) => child.kill(signal);
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({code, signal}));
    child.on('error', (error) => resolve({code: 127, signal: null, error}));
  });
  exited.then(({code, signal}) => {
    for (const s of FORWARDED_SIGNALS) process.removeListener(s, forward);
    fs.rmSync(tmp, {recursive: true, force: true});
    if (options.exitWithMaster !== false) {
      process.exit(code !== null ? code : 128 + (os.constants.signals[signal] || 0));
    }
  });
  const master = {
    pid: child.pid,
    address,
    runDir,
    exited,
    stop: (signal = 'SIGTERM') => child.kill(signal),
  };
  emitter._useMaster(address);
  statusRegistry._useMaster(address);
  const timeoutMs = (Number(config.timeout) || 60000) + 10000;
  return waitReady(address, exited, timeoutMs).then(({config: effective}) => ({
    master,
    worker: null,
    server: null,
    app: options.app,
    port: effective.port,
    clusterName: effective.name,
    cacheAddress: effective.cache && effective.cache.enable ?
        `unix:${path.join(runDir, 'cache.sock')}` : '',
    workerId: null,
  }));
}

// Polls the master (every 100 ms: it has no event for this) until it has as
// many ready workers as its configuration asks for.
function waitReady(address, exited, timeoutMs) {
  const {v1} = load();
  const client = new v1.Cluster(address, grpc.credentials.createInsecure());
  const call = (method) => new Promise((resolve, reject) => {
    client[method]({}, {deadline: Date.now() + 2000}, (e, r) => (e ? reject(e) : resolve(r)));
  });
  const deadline = Date.now() + timeoutMs;
  let done = false;
  return new Promise((resolve, reject) => {
    exited.then(({code, signal}) => {
      if (done) return;
      done = true;
      client.close();
      reject(codedError(status.UNAVAILABLE,
                        `cluster2-master exited (${signal || `code ${code}`}) before it was ready`,
                        {exitCode: code, signal}));
    });
    const poll = async () => {
      if (done) return;
      try {
        const {config} = await call('GetConfig');
        const {workers} = await call('ListWorkers');
        const ready = workers.filter((w) => w.state === 'WORKER_STATE_READY').length;
        if (ready >= Math.max(1, config.no_workers)) {
          done = true;
          client.close();
          resolve({config});
          return;
        }
      } catch (_) {
        // not serving yet
      }
      if (Date.now() > deadline) {
        done = true;
        client.close();
        reject(codedError(status.DEADLINE_EXCEEDED,
                          `the cluster was not ready within ${timeoutMs} ms`));
        return;
      }
      setTimeout(poll, 100);
    };
    poll();
  });
}

module.exports = {runMaster, masterConfig, findMasterBinary, runDirOf};
