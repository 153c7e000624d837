'use strict';
// emitter: cluster-wide events, the original cluster2's
// require('cluster2').emitter, routed by the master.
//
// In a worker, events travel over its WorkerSession (WorkerMessage.event
// numbered by `sequence`, answered by MasterMessage.emit_reply); events
// addressed to this process come back on it (also those to 'self', so a
// process sees its own events in the order the master routed them). In a
// process that is not a worker but knows the master (CLUSTER2_MASTER, e.g. a
// tool), emit uses the Emitter service. With no master at all, it works
// locally: only 'self' is delivered, as the original's non-cluster mode.
//
// Listeners run on the event loop, synchronously, in registration order;
// `this` in a listener (a `function`, not an arrow) is {name, fromPid,
// sequence}. A listener that throws is logged and the others still run.

const {load, grpc} = require('./proto');
const {codedError, fromGrpc, status} = require('./errors');
const {toValue, fromValue} = require('./value');

// Targets as users write them: 'self', 'master', 'workers', 'cluster'
// (every host sharing the emitter bridge), a pid (number or numeric
// string), or an array of those. Returns the proto Targets.
// Throws an INVALID_ARGUMENT error for anything else.
function toTargets(targets) {
  const list = Array.isArray(targets) ? targets : [targets];
  return list.map((target) => {
    if (target === 'self') return {self: true};
    if (target === 'master') return {master: true};
    if (target === 'workers') return {workers: true};
    if (target === 'cluster') return {cluster: true};
    const pid = typeof target === 'string' && /^\d+$/.test(target) ? Number(target) : target;
    if (Number.isInteger(pid) && pid > 0) return {pid};
    throw codedError(status.INVALID_ARGUMENT,
                     `bad event target ${JSON.stringify(target)}: 'self', 'master', ` +
                     `'workers', 'cluster' or a pid`);
  });
}

class Emitter {
  constructor() {
    this._listeners = new Map();  // name -> [{fn, once}]
    this._session = null;         // WorkerSession once attached
    this._pendingSession = false; // a worker whose session is not attached yet
    this._queue = [];             // emits waiting for the session
    this._sequence = 0;
    this._replies = new Map();    // sequence -> {resolve, reject}
    this._client = null;          // Emitter service stub (non-worker mode)
    this._masterAddress = null;
  }

  // Adds `fn` for events named `name`. Returns this.
  on(name, fn) {
    checkListener(name, fn);
    this._list(name).push({fn, once: false});
    return this;
  }

  // Adds `fn` for the next event named `name` only. Returns this.
  once(name, fn) {
    checkListener(name, fn);
    this._list(name).push({fn, once: true});
    return this;
  }

  // Removes the last registration of `fn` for `name` (also a pending once).
  // Returns this.
  removeListener(name, fn) {
    const list = this._listeners.get(name);
    if (!list) return this;
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i].fn === fn) {
        list.splice(i, 1);
        break;
      }
    }
    if (list.length === 0) this._listeners.delete(name);
    return this;
  }

  off(name, fn) {
    return this.removeListener(name, fn);
  }

  // Removes every listener of `name`, or of every name without one. Only
  // this emitter's listeners: process events are not touched.
  removeAllListeners(name) {
    if (name === undefined) this._listeners.clear();
    else this._listeners.delete(name);
    return this;
  }

  // The listener functions of `name`, in order.
  listeners(name) {
    return (this._listeners.get(name) || []).map((l) => l.fn);
  }

  // Sends event `name` with JSON `args` to the default targets: from a
  // worker, itself and the master (the original's ['master', 'self']); from
  // a non-worker client, the master and every worker. Resolves
  // {delivered, unknownPids}; rejects with a coded error (INVALID_ARGUMENT
  // for a bad or reserved name, RESOURCE_EXHAUSTED for args over 1 MiB,
  // UNAVAILABLE without a session).
  emit(name, ...args) {
    return this._send(name, [], args);
  }

  // The same to `targets` ('self', 'master', 'workers', pids, or an array).
  // The original's form emitTo(targets, [name, ...args]) works too.
  emitTo(targets, name, ...args) {
    if (Array.isArray(name) && args.length === 0) [name, ...args] = name;
    let protoTargets;
    try {
      protoTargets = toTargets(targets);
    } catch (error) {
      return Promise.reject(error);
    }
    return this._send(name, protoTargets, args);
  }

  // The original's to(targets).emit(name, ...args).
  to(targets) {
    return {emit: (name, ...args) => this.emitTo(targets, name, ...args)};
  }

  _list(name) {
    let list = this._listeners.get(name);
    if (!list) this._listeners.set(name, (list = []));
    return list;
  }

  _send(name, targets, args) {
    if (typeof name !== 'string' || name === '') {
      return Promise.reject(codedError(status.INVALID_ARGUMENT, 'an event needs a name'));
    }
    let values;
    try {
      values = args.map(toValue);
    } catch (error) {
      return Promise.reject(codedError(status.INVALID_ARGUMENT,
                                       `event ${name}: args are not JSON: ${error.message}`));
    }
    if (this._session) return this._sendOnSession(name, targets, values);
    if (this._pendingSession) {
      return new Promise((resolve, reject) => {
        this._queue.push({name, targets, values, resolve, reject});
      });
    }
    if (this._masterAddress) return this._sendOnService(name, targets, values);
    return Promise.resolve(this._deliverLocally(name, targets, args));
  }

  _sendOnSession(name, targets, values) {
    if (this._session.ended) {
      return Promise.reject(codedError(status.UNAVAILABLE, 'the session with the master ended'));
    }
    const sequence = ++this._sequence;
    return new Promise((resolve, reject) => {
      this._replies.set(sequence, {resolve, reject});
      this._session.send({event: {name, args: values, sequence, targets}});
    });
  }

  _sendOnService(name, targets, values) {
    if (!this._client) {
      const {v1} = load();
      this._client = new v1.Emitter(this._masterAddress, grpc.credentials.createInsecure());
    }
    return new Promise((resolve, reject) => {
      this._client.Emit({event: {name, args: values, targets}}, (error, response) => {
        if (error) return reject(fromGrpc(error));
        resolve({delivered: response.delivered, unknownPids: response.unknown_pids});
      });
    });
  }

  // No master: 'self' (and the empty default) reach this process; other
  // targets reach nobody and pids are unknown.
  _deliverLocally(name, targets, args) {
    const unknownPids = [];
    let self = targets.length === 0;
    for (const target of targets) {
      if (target.self || target.pid === process.pid) self = true;
      else if (target.pid) unknownPids.push(target.pid);
    }
    if (self) {
      const event = {name, from_pid: process.pid, sequence: ++this._sequence, args: []};
      process.nextTick(() => this._dispatch(event, args));
    }
    return {delivered: self ? 1 : 0, unknownPids};
  }

  // Called by listen() in a worker before its session exists: emits wait.
  _expectSession() {
    this._pendingSession = true;
  }

  // Routes this emitter over `session` (a WorkerSession with its Welcome).
  _attach(session) {
    this._session = session;
    this._pendingSession = false;
    session.on('event', (event) => this._dispatch(event));
    session.on('emit_reply', (reply) => this._reply(reply));
    session.on('end', () => {
      const error = codedError(status.UNAVAILABLE, 'the session with the master ended');
      for (const {reject} of this._replies.values()) reject(error);
      this._replies.clear();
    });
    const queued = this._queue.splice(0);
    for (const q of queued) {
      this._sendOnSession(q.name, q.targets, q.values).then(q.resolve, q.reject);
    }
  }

  // The session could not be opened: queued emits fail.
  _attachFailed(error) {
    this._pendingSession = false;
    for (const q of this._queue.splice(0)) q.reject(error);
  }

  // Uses the master's Emitter service (a non-worker process of a cluster).
  _useMaster(address) {
    this._masterAddress = address;
  }

  _reply(reply) {
    const pending = this._replies.get(Number(reply.sequence));
    if (!pending) return;
    this._replies.delete(Number(reply.sequence));
    if (reply.error) {
      pending.reject(codedError(reply.error_code || status.INVALID_ARGUMENT, reply.error));
    } else {
      pending.resolve({delivered: reply.delivered, unknownPids: reply.unknown_pids || []});
    }
  }

  // Calls the listeners of a received event (args decoded unless given).
  _dispatch(event, args) {
    const list = this._listeners.get(event.name);
    if (!list || list.length === 0) return;
    const values = args || (event.args || []).map(fromValue);
    const context = {name: event.name, fromPid: event.from_pid, sequence: Number(event.sequence)};
    for (const listener of list.slice()) {
      if (listener.once) this._removeEntry(event.name, listener);
      try {
        listener.fn.apply(context, values);
      } catch (error) {
        process.stderr.write(`cluster2: a listener of event ${event.name} threw: ` +
                             `${(error && error.stack) || error}\n`);
      }
    }
  }

  _removeEntry(name, entry) {
    const list = this._listeners.get(name);
    if (!list) return;
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this._listeners.delete(name);
  }
}

function checkListener(name, fn) {
  if (typeof name !== 'string' || name === '') throw new TypeError('an event needs a name');
  if (typeof fn !== 'function') throw new TypeError('a listener must be a function');
}

module.exports = {Emitter, toTargets};
