'use strict';
// ConnectionTracker: the HTTP connections of a worker's server, its request
// figures for heartbeats, and closing them without losing a request when the
// worker pauses or drains.
//
// Closing keep-alive connections races the client's next request on them.
// The rules (those of examples/python/hello_worker.py):
// - a response started while closing says `Connection: close`, and Node
//   closes its connection after it;
// - a connection without a request in progress is closed once it has been
//   idle for IDLE_BEFORE_CLOSE_MS after its last response (a client still
//   using it sends its next request sooner and is answered with close), or,
//   if it never carried a request, FIRST_REQUEST_GRACE_MS after it was
//   accepted (its first request may be on the way);
// - a connection with bytes of a request read but not yet parsed is busy.
// Everything runs on Node's event loop.

const IDLE_BEFORE_CLOSE_MS = 200;
const FIRST_REQUEST_GRACE_MS = 1000;
const SWEEP_EVERY_MS = 50;
// At most this many latency samples are kept between two heartbeats
// (reservoir sampling beyond).
const MAX_SAMPLES = 10000;

class ConnectionTracker {
  // server: an http(s).Server (or anything emitting 'connection' and
  // 'request' the same way). now: () => milliseconds (injected for tests).
  constructor(server, {now = () => performance.now()} = {}) {
    this.server = server;
    this.now = now;
    this.sockets = new Map();  // socket -> {inFlight, served, lastActive, bytesAtIdle}
    this.requestsTotal = 0;
    this.inFlight = 0;
    this.closing = false;
    this._samples = [];
    this._seen = 0;
    // Called with every completed request's latency in ms (the worker
    // counts them into its histogram); null: nobody.
    this.onLatency = null;
    this._sweeper = null;
    this._waiters = [];
    server.on('connection', (socket) => this._accepted(socket));
    // Before the app's listener: it may answer synchronously.
    server.prependListener('request', (req, res) => this._request(req, res));
  }

  _accepted(socket) {
    const state = {inFlight: 0, served: 0, lastActive: this.now(), bytesAtIdle: 0};
    this.sockets.set(socket, state);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this._changed();
    });
  }

  _request(req, res) {
    const socket = req.socket;
    const state = this.sockets.get(socket);
    if (state) state.inFlight++;
    this.inFlight++;
    const started = this.now();
    if (this.closing) res.shouldKeepAlive = false;  // Connection: close
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      this.inFlight--;
      if (res.writableFinished) {
        this.requestsTotal++;
        const ms = this.now() - started;
        this._sample(ms);
        if (this.onLatency) this.onLatency(ms);
      }
      if (state) {
        state.inFlight--;
        state.served++;
        state.lastActive = this.now();
        state.bytesAtIdle = socket.bytesRead;
      }
      this._changed();
    };
    res.once('finish', finished);
    res.once('close', finished);
  }

  _sample(ms) {
    this._seen++;
    if (this._samples.length < MAX_SAMPLES) {
      this._samples.push(ms);
    } else {
      const i = Math.floor(Math.random() * this._seen);
      if (i < MAX_SAMPLES) this._samples[i] = ms;
    }
  }

  // Returns {p50, p99} in ms of the requests completed since the last call
  // (0 without any) and starts a new period.
  takeLatencies() {
    const samples = this._samples.sort((a, b) => a - b);
    this._samples = [];
    this._seen = 0;
    if (samples.length === 0) return {p50: 0, p99: 0};
    const at = (q) => samples[Math.min(samples.length - 1, Math.ceil(q * samples.length) - 1)];
    return {p50: at(0.5), p99: at(0.99)};
  }

  get open() {
    return this.sockets.size;
  }

  // Starts closing: later responses say Connection: close, idle connections
  // close by the rules above. Responses whose headers are not sent yet are
  // switched to close too.
  startClosing() {
    if (this.closing) return;
    this.closing = true;
    for (const socket of this.sockets.keys()) {
      const res = socket._httpMessage;
      if (res && !res.headersSent) res.shouldKeepAlive = false;
    }
    this._sweep();
    this._sweeper = setInterval(() => this._sweep(), SWEEP_EVERY_MS);
  }

  // Stops closing (a Resume): connections are kept alive again.
  stopClosing() {
    this.closing = false;
    clearInterval(this._sweeper);
    this._sweeper = null;
  }

  // Closes the idle connections that may be closed now.
  _sweep() {
    const now = this.now();
    for (const [socket, state] of this.sockets) {
      if (state.inFlight > 0) continue;
      if (socket.bytesRead !== state.bytesAtIdle) continue;  // a request is arriving
      const patience = state.served ? IDLE_BEFORE_CLOSE_MS : FIRST_REQUEST_GRACE_MS;
      if (now - state.lastActive >= patience) socket.destroy();
    }
  }

  // Resolves true once no connection is open, false at `timeoutMs`.
  awaitClosed(timeoutMs) {
    if (this.open === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {resolve, timer: null};
      waiter.timer = setTimeout(() => {
        this._waiters = this._waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this._waiters.push(waiter);
    });
  }

  // Destroys every connection at once (the grace is over).
  destroyAll() {
    for (const socket of this.sockets.keys()) socket.destroy();
  }

  _changed() {
    if (this.open !== 0) return;
    for (const waiter of this._waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.resolve(true);
    }
  }

  // Stops the sweeper (the process is done).
  dispose() {
    clearInterval(this._sweeper);
  }
}

module.exports = {ConnectionTracker, IDLE_BEFORE_CLOSE_MS, FIRST_REQUEST_GRACE_MS};
