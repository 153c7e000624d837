'use strict';
// Test helpers: the real binaries (cluster2-master, cluster2-cache,
// cluster2ctl) from $CLUSTER2_BIN_DIR (default <repo>/bazel-bin, with the
// Bazel layout master/, cache_server/, cli/), a cluster per test file under a
// short /tmp directory, waiting for conditions with deadlines, and killing
// every process started.

const {spawn, execFile} = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const {load, grpc} = require('../lib/proto');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BIN_DIR = process.env.CLUSTER2_BIN_DIR || path.join(REPO, 'bazel-bin');
const BIN = {
  master: path.join(BIN_DIR, 'master', 'cluster2-master'),
  cache: path.join(BIN_DIR, 'cache_server', 'cluster2-cache'),
  ctl: path.join(BIN_DIR, 'cli', 'cluster2ctl'),
};
const FIXTURE_WORKER = path.join(__dirname, 'fixtures', 'worker.js');

// Whether the binaries are there (integration tests skip without them, saying
// so).
function haveBinaries() {
  return Object.values(BIN).every((p) => fs.existsSync(p));
}

let counter = 0;
// A fresh short directory (Unix socket paths must stay below 108 bytes).
function tempDir() {
  return fs.mkdtempSync(path.join('/tmp', `c2n${process.pid % 10000}-`));
}

// Resolves once `condition()` (may be async) returns a truthy value, with
// that value; rejects with `what` after `timeoutMs`. Polls every `everyMs`:
// for states that have no event to wait on (a file, a worker table).
async function waitFor(what, condition, {timeoutMs = 15000, everyMs = 50} = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
                      (last ? ` (last error: ${last.message})` : ''));
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

// Runs cluster2ctl with `args`; resolves {code, stdout, stderr}.
function ctl(runDir, args, {timeoutMs = 15000} = {}) {
  return new Promise((resolve) => {
    execFile(BIN.ctl, ['--run-dir', runDir, ...args], {timeout: timeoutMs},
             (error, stdout, stderr) => {
               resolve({code: error ? (error.code ?? 1) : 0, stdout, stderr});
             });
  });
}

// A gRPC client of the cluster's master (unary calls as promises).
function masterClient(address) {
  const {v1} = load();
  const stubs = {
    cluster: new v1.Cluster(address, grpc.credentials.createInsecure()),
  };
  const call = (method, request = {}) => new Promise((resolve, reject) => {
    stubs.cluster[method](request, {deadline: Date.now() + 5000},
                          (e, r) => (e ? reject(e) : resolve(r)));
  });
  return {call, close: () => stubs.cluster.close()};
}

// A running cluster of `noWorkers` copies of `script` (default the fixture
// worker) under a fresh directory. Call stop() in after().
class Cluster {
  constructor({noWorkers = 2, script = FIXTURE_WORKER, args = [], env = {}, flags = []} = {}) {
    this.dir = tempDir();
    this.runDir = path.join(this.dir, 'run');
    this.name = `nt${process.pid}x${++counter}`;
    this.noWorkers = noWorkers;
    this.logFile = path.join(this.dir, 'master.log');
    this.address = `unix:${path.join(this.runDir, 'master.sock')}`;
    this.cacheAddress = `unix:${path.join(this.runDir, 'cache.sock')}`;
    this.workerPids = new Set();
    const log = fs.openSync(this.logFile, 'a');
    this.process = spawn(BIN.master, [
      `--name=${this.name}`, `--runDir=${this.runDir}`, `--noWorkers=${noWorkers}`,
      '--port=0', '--monPort=0', '--host=127.0.0.1', '--heartbeatInterval=500',
      `--cache.persistPath=${path.join(this.dir, 'state')}`, ...flags,
      '--', process.execPath, script, ...args,
    ], {
      stdio: ['ignore', log, log],
      detached: true,  // its own process group, killed as one at the end
      env: {...process.env, TEST_DIR: this.dir, ...env},
    });
    fs.closeSync(log);
    this.exited = new Promise((resolve) => {
      this.process.on('exit', (code, signal) => resolve({code, signal}));
    });
    this.client = masterClient(this.address);
  }

  log() {
    return fs.readFileSync(this.logFile, 'utf8');
  }

  // Resolves the ready workers ([{id, pid, ...}]) once there are
  // `count` of them (default noWorkers) and none is starting or draining.
  async ready(count = this.noWorkers, timeoutMs = 20000) {
    return waitFor(`${count} ready workers (log:\n${this.tail()})`, async () => {
      const {workers} = await this.client.call('ListWorkers');
      for (const w of workers) if (w.pid) this.workerPids.add(w.pid);
      const ready = workers.filter((w) => w.state === 'WORKER_STATE_READY');
      return ready.length === count && workers.length === count ? ready : null;
    }, {timeoutMs, everyMs: 100});
  }

  tail() {
    try {
      return this.log().split('\n').slice(-15).join('\n');
    } catch (_) {
      return '';
    }
  }

  async port() {
    const {config} = await this.client.call('GetConfig');
    return config.port;
  }

  ctl(args, options) {
    return ctl(this.runDir, args, options);
  }

  // Stops the master (SIGTERM, then SIGKILL to its group after 15 s),
  // kills any worker left, removes the directory.
  async stop() {
    this.client.close();
    if (this.process.exitCode === null && this.process.signalCode === null) {
      try {
        process.kill(this.process.pid, 'SIGTERM');
      } catch (_) {
        // gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-this.process.pid, 'SIGKILL');
        } catch (_) {
          // gone
        }
      }, 15000);
      await this.exited;
      clearTimeout(timer);
    }
    for (const pid of this.workerPids) {
      if (alive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch (_) {
          // gone
        }
      }
    }
    try {
      process.kill(-this.process.pid, 'SIGKILL');  // anything left in its group
    } catch (_) {
      // none
    }
    fs.rmSync(this.dir, {recursive: true, force: true});
  }
}

// GET http://127.0.0.1:port/path; resolves {status, headers, body}.
function get(port, urlPath = '/', {agent, timeoutMs = 5000} = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({host: '127.0.0.1', port, path: urlPath, agent, timeout: timeoutMs},
                         (res) => {
                           let body = '';
                           res.setEncoding('utf8');
                           res.on('data', (d) => { body += d; });
                           res.on('end', () => resolve({status: res.statusCode,
                                                        headers: res.headers, body}));
                           res.on('error', reject);
                         });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}

// Keeps `connections` keep-alive connections busy with GETs until stop();
// stop() resolves {ok, failed, errors}.
function loadGenerator(port, connections = 32) {
  let running = true;
  const counts = {ok: 0, failed: 0, errors: []};
  const loops = [];
  for (let i = 0; i < connections; i++) {
    const agent = new http.Agent({keepAlive: true, maxSockets: 1});
    loops.push((async () => {
      while (running) {
        try {
          const res = await get(port, '/', {agent});
          if (res.status === 200) counts.ok++;
          else {
            counts.failed++;
            counts.errors.push(`status ${res.status}`);
          }
        } catch (error) {
          counts.failed++;
          if (counts.errors.length < 20) counts.errors.push(error.code || error.message);
        }
      }
      agent.destroy();
    })());
  }
  return {
    counts,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return counts;
    },
  };
}

// A TCP port free on 127.0.0.1 right now (for a flag that cannot take 0).
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address();
      server.close(() => resolve(port));
    });
  });
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

module.exports = {REPO, BIN, BIN_DIR, FIXTURE_WORKER, haveBinaries, tempDir, waitFor, alive, ctl,
                  Cluster, get, loadGenerator, readJson, masterClient, freePort};
