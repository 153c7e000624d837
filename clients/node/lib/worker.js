'use strict';
// The worker side of listen(): serves createServer(app) on the socket the
// master passes as fd 3, keeps the WorkerSession (Hello/Welcome, Ready,
// heartbeats) and drains, pauses and opens the debugger when told to.
//
// Drain (or SIGTERM/SIGINT, or the session's loss): stop accepting (close
// our copy of fd 3; the master keeps the socket), answer the requests in
// flight with Connection: close, close idle keep-alive connections without
// racing a client's next request (lib/connections.js), end the session and
// exit 0 before the grace runs out.
//
// Pause: Node cannot stop accepting on fd 3 and accept again later (closing
// the server closes the fd). With balance "even" (the default) the master
// stops routing new connections to a worker before it sends Pause, so the
// worker closes its keep-alive connections the drain's way and confirms
// (Ack) once they are closed (at most PAUSE_CONNECTIONS_TIMEOUT_MS); Resume
// keeps connections alive again and confirms. With balance "shared" the
// worker cannot stop taking connections: it refuses (Ack WHAT_REFUSED with
// the reason), the master routes to it again and its Pause fails at once
// with FAILED_PRECONDITION (the worker keeps serving).

const http = require('http');
const net = require('net');
const {WorkerSession} = require('./session');
const {ConnectionTracker} = require('./connections');
const {processStats} = require('./process_stats');
const {durationOf, msOf, timestampNow} = require('./value');
const {load, grpc} = require('./proto');

const PAUSE_CONNECTIONS_TIMEOUT_MS = 3000;
// Our own grace for SIGTERM/SIGINT and a lost session (a Drain brings its own).
const DEFAULT_GRACE_MS = 10000;
// The bucket bounds of Heartbeat.latency, in seconds: the proto's recommended
// ones, which the master aggregates as they are (others it maps onto these).
const LATENCY_BOUNDS = Object.freeze([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1, 2.5, 5, 10]);

function log(message) {
  process.stderr.write(`cluster2-node[${process.pid}]: ${message}\n`);
}

// Runs this process as worker CLUSTER2_WORKER_ID. Resolves {server, app,
// port, clusterName, cacheAddress, workerId, master: null, worker} once it
// serves and told the master it is ready.
async function runWorker(options, {emitter, status, cache}) {
  const {app, createServer = http.createServer} = options;
  if (typeof options.configureApp === 'function') await options.configureApp(app);
  const server = createServer(app);
  const tracker = new ConnectionTracker(server);
  const session = new WorkerSession();
  emitter._expectSession();
  let welcomed;
  cache._welcome = () => welcomed.then((w) => w.cacheAddress, () => '');
  welcomed = session.attach({timeoutMs: options.helloTimeout || 10000});
  let welcome;
  try {
    welcome = await welcomed;
  } catch (error) {
    emitter._attachFailed(error);
    throw error;
  }
  emitter._attach(session);
  status._attach(session);
  status._useMaster(session.address);

  const worker = new WorkerRuntime({server, tracker, session, welcome, cache,
                                    exitOnDrain: options.exitOnDrain !== false,
                                    beforeExit: options.beforeExit});
  await listenOnFd3(server);
  if (typeof options.warmUp === 'function') {
    try {
      await options.warmUp(app, server.address());
    } catch (error) {
      log(`warmUp failed (serving anyway): ${(error && error.stack) || error}`);
    }
  }
  worker.start();
  const address = server.address();
  return {
    server,
    app,
    port: address && address.port,
    clusterName: welcome.clusterName,
    cacheAddress: welcome.cacheAddress || process.env.CLUSTER2_CACHE || '',
    workerId: session.workerId,
    master: null,
    worker,
  };
}

function listenOnFd3(server) {
  return new Promise((resolve, reject) => {
    const failed = (error) => reject(error);
    server.once('error', failed);
    server.listen({fd: 3}, () => {
      server.removeListener('error', failed);
      resolve();
    });
  });
}

// The latencies of the requests completed since the process started
// (Heartbeat.latency). Never reset: a lost beat loses nothing.
class LatencyHistogram {
  constructor() {
    this.counts = new Array(LATENCY_BOUNDS.length + 1).fill(0);
    this.sumSeconds = 0;
  }

  // Counts `seconds` in the first bucket whose bound is at or above it (a
  // latency equal to a bound is in that bound's bucket); above the last
  // bound, in the extra last bucket.
  observe(seconds) {
    let i = 0;
    while (i < LATENCY_BOUNDS.length && seconds > LATENCY_BOUNDS[i]) i++;
    this.counts[i]++;
    this.sumSeconds += seconds;
  }

  toProto() {
    return {bounds: LATENCY_BOUNDS, counts: this.counts.slice(), sum_seconds: this.sumSeconds};
  }
}

class WorkerRuntime {
  constructor({server, tracker, session, welcome, cache, exitOnDrain, beforeExit}) {
    this.server = server;
    this.tracker = tracker;
    this.session = session;
    this.cache = cache;
    this.intervalMs = welcome.heartbeatIntervalMs;
    this.exitOnDrain = exitOnDrain;
    this.beforeExit = beforeExit;
    this.draining = false;
    this.paused = false;
    this.balance = null;  // the cluster's, learnt from GetConfig
    this._beatTimer = null;
    this._drained = null;
    this.pid = process.pid;
    this.latencyHistogram = new LatencyHistogram();
    // Every request requestsTotal counts, since the process started.
    tracker.onLatency = (ms) => this.latencyHistogram.observe(ms / 1000);
  }

  start() {
    const {session} = this;
    session.on('drain', (drain) => this.drain(msOf(drain.grace) || DEFAULT_GRACE_MS,
                                             drain.reason));
    session.on('pause', () => this._pause());
    session.on('resume', () => this._resume());
    session.on('open_debugger', (request) => this._openDebugger(request));
    session.on('end', (error) => {
      if (this.draining) return;
      log(`the session with the master ended (${error ? error.message : 'closed'}): draining`);
      this.drain(DEFAULT_GRACE_MS, 'session lost');
    });
    for (const signal of ['SIGTERM', 'SIGINT']) {
      process.on(signal, () => this.drain(DEFAULT_GRACE_MS, signal));
    }
    this._learnBalance();
    session.send({ready: {}});
    this._scheduleBeat(performance.now() + this.intervalMs);
  }

  _scheduleBeat(at) {
    this._beatTimer = setTimeout(() => this._beat(at), Math.max(0, at - performance.now()));
  }

  // Sends a heartbeat scheduled for `due` (performance.now() ms): `lag` is
  // how late it fires (a blocked event loop shows here).
  _beat(due) {
    const now = performance.now();
    const stats = processStats();
    const latency = this.tracker.takeLatencies();
    this.session.send({heartbeat: {
      rss_bytes: stats.rssBytes,
      cpu_time: durationOf(stats.cpuMs),
      open_fds: stats.openFds,
      threads: stats.threads,
      uptime: durationOf(stats.uptimeMs),
      requests_total: this.tracker.requestsTotal,
      requests_in_flight: this.tracker.inFlight,
      latency_p50: durationOf(latency.p50),
      latency_p99: durationOf(latency.p99),
      latency: this.latencyHistogram.toProto(),
      sent_at: timestampNow(),
      lag: durationOf(Math.max(0, now - due)),
    }});
    let next = due + this.intervalMs;
    if (next <= now) next = now + this.intervalMs;  // after a stall: no burst of beats
    this._scheduleBeat(next);
  }

  _learnBalance() {
    const {v1} = load();
    const client = new v1.Cluster(this.session.address, grpc.credentials.createInsecure());
    client.GetConfig({}, {deadline: Date.now() + 5000}, (error, response) => {
      client.close();
      if (!error) this.balance = response.config.balance || 'even';
    });
  }

  async _pause() {
    if (this.draining) return;
    if (this.balance === 'shared') {
      const reason = 'with balance "shared" a Node worker cannot stop accepting on fd 3 ' +
          'without closing it';
      log(`pause refused: ${reason} (serving on)`);
      this.session.send({ack: {what: 'WHAT_REFUSED', reason}});
      return;
    }
    this.paused = true;
    this.tracker.startClosing();
    await this.tracker.awaitClosed(PAUSE_CONNECTIONS_TIMEOUT_MS);
    if (!this.draining) this.session.send({ack: {what: 'WHAT_PAUSED'}});
  }

  _resume() {
    if (this.draining) return;
    this.paused = false;
    this.tracker.stopClosing();
    this.session.send({ack: {what: 'WHAT_RESUMED'}});
  }

  _openDebugger(request) {
    let answer;
    if (request.protocol !== 'v8-inspector') {
      answer = {error: `this worker offers v8-inspector only, not '${request.protocol}'`};
    } else {
      try {
        const inspector = require('inspector');
        if (!inspector.url()) inspector.open(request.port, request.host || '127.0.0.1', false);
        answer = {url: inspector.url()};
      } catch (error) {
        answer = {error: `inspector.open(${request.port}, '${request.host}') failed: ` +
                         `${error.message}`};
      }
    }
    this.session.send({debugger_opened: answer});
  }

  // Drains (once): stops accepting, closes the connections, awaits
  // options.beforeExit(reason) (bounded by the grace), ends the session;
  // then exits 0 unless options.exitOnDrain is false. Resolves when done.
  drain(graceMs, reason) {
    if (this._drained) return this._drained;
    this.draining = true;
    this._drained = (async () => {
      const deadline = performance.now() + Math.max(graceMs - 500, 500);
      // Only the listener: http.Server#close would also close idle
      // connections at once, racing their clients' next requests.
      net.Server.prototype.close.call(this.server);
      this.tracker.startClosing();
      const closed = await this.tracker.awaitClosed(deadline - performance.now());
      if (!closed) {
        log(`drain (${reason}): ${this.tracker.open} connections still open at the grace's ` +
            'end: closing them');
        this.tracker.destroyAll();
      }
      this.tracker.dispose();
      if (typeof this.beforeExit === 'function') {
        // The app's last word (the session still up), within the grace.
        let timer;
        await Promise.race([
          Promise.resolve().then(() => this.beforeExit(reason)).catch((error) => {
            log(`beforeExit failed: ${(error && error.stack) || error}`);
          }),
          new Promise((r) => { timer = setTimeout(r, Math.max(0, deadline - performance.now())); }),
        ]);
        clearTimeout(timer);
      }
      clearTimeout(this._beatTimer);
      await this.session.end(Math.max(100, deadline - performance.now()));
      this.cache.close();
      if (this.exitOnDrain) process.exit(0);
    })();
    return this._drained;
  }
}

module.exports = {runWorker, WorkerRuntime, LatencyHistogram, LATENCY_BOUNDS};
