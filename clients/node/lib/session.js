'use strict';
// WorkerSession: this worker's one stream to the master (Attach), as the
// master's environment describes it (CLUSTER2_MASTER, CLUSTER2_WORKER_ID,
// CLUSTER2_WORKER_TOKEN).
//
// attach() sends Hello and resolves with the Welcome. Afterwards the session
// emits one event per MasterMessage kind ('drain', 'pause', 'resume',
// 'event', 'status_query', 'status_update', 'emit_reply', 'open_debugger')
// with the message's payload, and 'end' (once, with an Error or null) when
// the stream ends either way. Everything runs on Node's event loop.

const EventEmitter = require('events');
const {load, grpc} = require('./proto');
const {codedError, fromGrpc, status} = require('./errors');
const {msOf} = require('./value');

const VERSION = require('../package.json').version;

class WorkerSession extends EventEmitter {
  // env: the process environment (injected for tests).
  constructor(env = process.env) {
    super();
    this.address = env.CLUSTER2_MASTER;
    this.workerId = Number(env.CLUSTER2_WORKER_ID || 0);
    this.token = env.CLUSTER2_WORKER_TOKEN || '';
    this.call = null;
    this.client = null;
    this.ended = false;
    this.welcome = null;
  }

  // Opens the stream, sends Hello and resolves with the Welcome as
  // {heartbeatIntervalMs, clusterName, cacheAddress}. Rejects (coded error)
  // if the stream ends first or no Welcome comes within `timeoutMs`.
  attach({debugProtocols = ['v8-inspector'], timeoutMs = 10000} = {}) {
    const {v1} = load();
    this.client = new v1.WorkerSession(this.address, grpc.credentials.createInsecure());
    this.call = this.client.Attach();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(codedError(status.DEADLINE_EXCEEDED,
                          `no Welcome from the master within ${timeoutMs} ms`));
        this.close();
      }, timeoutMs);
      this.call.on('data', (message) => {
        if (!this.welcome) {
          if (message.kind !== 'welcome') {
            clearTimeout(timer);
            reject(codedError(status.INTERNAL, `the master sent ${message.kind} before Welcome`));
            this.close();
            return;
          }
          const w = message.welcome;
          this.welcome = {
            heartbeatIntervalMs: msOf(w.heartbeat_interval) || 5000,
            clusterName: w.cluster_name,
            cacheAddress: w.cache_address,
          };
          clearTimeout(timer);
          resolve(this.welcome);
          return;
        }
        this.emit(message.kind, message[message.kind]);
      });
      const finish = (error) => {
        if (this.ended) return;
        this.ended = true;
        clearTimeout(timer);
        if (!this.welcome) {
          reject(error || codedError(status.UNAVAILABLE, 'the session ended before Welcome'));
        }
        this.emit('end', error || null);
      };
      this.call.on('error', (error) => {
        // CANCELLED is our own close().
        finish(error.code === status.CANCELLED ? null : fromGrpc(error));
      });
      this.call.on('end', () => finish(null));
      this.call.on('status', () => finish(null));
      this.send({hello: {
        worker_id: this.workerId,
        token: this.token,
        pid: process.pid,
        client: `cluster2-node/${VERSION}`,
        debug_protocols: debugProtocols,
      }});
    });
  }

  // Writes one WorkerMessage ({hello|ready|heartbeat|event|...: payload}).
  // Dropped once the session ended.
  send(message) {
    if (this.ended || !this.call) return false;
    this.call.write(message);
    return true;
  }

  // Half-closes our side (the master then ends the stream) and closes the
  // channel once it has; `timeoutMs` later it cancels regardless.
  end(timeoutMs = 1000) {
    if (!this.call) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.close();
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      if (this.ended) return done();
      this.once('end', done);
      this.call.end();
    });
  }

  // Cancels the stream and closes the channel at once.
  close() {
    if (this.call && !this.ended) this.call.cancel();
    if (this.client) this.client.close();
  }
}

module.exports = {WorkerSession, VERSION};
