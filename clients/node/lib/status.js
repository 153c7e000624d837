'use strict';
// status: named values registered by any process of the cluster and gathered
// by the master (the original's require('cluster2').status).
//
// register() keeps the view and update functions here and tells the master
// over the worker's session (StatusRegistration); the master asks
// (StatusQuery / StatusUpdate) and this module answers (StatusAnswer).
// statuses(), getStatus() and setStatus() call the master's Status service on
// CLUSTER2_MASTER and so see every process of the cluster. Without a master
// (not run by cluster2) everything is local to this process.

const {load, grpc} = require('./proto');
const {codedError, fromGrpc, status} = require('./errors');
const {toValue, fromValue, durationOf} = require('./value');

class StatusRegistry {
  constructor() {
    this._registry = new Map();  // name -> {view, update}
    this._session = null;
    this._masterAddress = null;
    this._client = null;
  }

  // Registers status `name` in this process: `view()` gives its value (a
  // JSON value or a promise of one), `update(value)` (optional) changes it.
  // Registering a name again replaces its functions. Resolves `name`.
  register(name, view, update) {
    if (typeof name !== 'string' || name === '') throw new TypeError('a status needs a name');
    if (typeof view !== 'function') throw new TypeError('a status needs a view function');
    if (update !== undefined && typeof update !== 'function') {
      throw new TypeError('a status update must be a function');
    }
    this._registry.set(name, {view, update});
    if (this._session) this._session.send({status_registration: {name, registered: true}});
    return Promise.resolve(name);
  }

  // Removes status `name` from this process. Resolves `name`.
  unregister(name) {
    if (this._registry.delete(name) && this._session) {
      this._session.send({status_registration: {name, registered: false}});
    }
    return Promise.resolve(name);
  }

  // Resolves the status names registered in the cluster (sorted), or in this
  // process without a master.
  statuses() {
    if (!this._masterAddress) return Promise.resolve([...this._registry.keys()].sort());
    return this._call('ListStatuses', {}).then((response) => response.names);
  }

  // Resolves one entry per registering process, [{pid, workerId, name,
  // status, error}] (workerId null for the master; error set, status null, for
  // a process that failed or did not answer within `wait` ms, default 1000).
  // Rejects with NOT_FOUND if no process registered `name`.
  getStatus(name, {wait} = {}) {
    if (!this._masterAddress) return this._local(name, (entry) => entry.view());
    return this._call('GetStatus', withDeadline({name}, wait)).then((r) => entries(name, r));
  }

  // Calls every registrant's update with `value`; resolves their values after
  // the update, as getStatus does.
  setStatus(name, value, {wait} = {}) {
    if (!this._masterAddress) {
      return this._local(name, async (entry) => {
        if (entry.update) await entry.update(value);
        return entry.view();
      });
    }
    const request = withDeadline({name, value: toValue(value)}, wait);
    return this._call('SetStatus', request).then((r) => entries(name, r));
  }

  _call(method, request) {
    if (!this._client) {
      const {v1} = load();
      this._client = new v1.Status(this._masterAddress, grpc.credentials.createInsecure());
    }
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + 35000;  // the service's own deadline is <= 30 s
      this._client[method](request, {deadline}, (error, response) => {
        if (error) reject(fromGrpc(error));
        else resolve(response);
      });
    });
  }

  async _local(name, fn) {
    const entry = this._registry.get(name);
    if (!entry) throw codedError(status.NOT_FOUND, `no status '${name}' is registered`);
    try {
      const value = await fn(entry);
      return [{pid: process.pid, workerId: null, name, status: value === undefined ? null : value,
               error: ''}];
    } catch (error) {
      return [{pid: process.pid, workerId: null, name, status: null, error: String(error)}];
    }
  }

  // Serves the master's queries over `session`; registers what is registered.
  _attach(session) {
    this._session = session;
    for (const name of this._registry.keys()) {
      session.send({status_registration: {name, registered: true}});
    }
    session.on('status_query', (query) => this._answer(query.id, query.name));
    session.on('status_update', (update) => this._answer(update.id, update.name, update.value));
  }

  _useMaster(address) {
    this._masterAddress = address;
  }

  // Answers a StatusQuery (value undefined) or StatusUpdate with the view's
  // value after the update, or with its error.
  async _answer(id, name, value) {
    const entry = this._registry.get(name);
    let answer;
    try {
      if (!entry) throw new Error(`status '${name}' is not registered in pid ${process.pid}`);
      if (value !== undefined && entry.update) await entry.update(fromValue(value));
      answer = {id, value: toValue(await entry.view())};
    } catch (error) {
      answer = {id, error: String((error && error.message) || error) || 'failed'};
    }
    if (this._session) this._session.send({status_answer: answer});
  }
}

function withDeadline(request, wait) {
  if (wait !== undefined) request.deadline = durationOf(wait);
  return request;
}

function entries(name, response) {
  return response.entries.map((e) => ({
    pid: e.pid,
    workerId: e.worker_id === undefined || e.worker_id === null ? null : e.worker_id,
    name,
    status: e.error ? null : fromValue(e.value),
    error: e.error,
  }));
}

module.exports = {StatusRegistry};
