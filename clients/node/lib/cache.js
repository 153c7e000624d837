'use strict';
// cache: the cluster's shared key/value cache (the original's
// require('cluster2').cacheManager / cluster-cache), a client of the Cache
// service of cluster2-cache (proto/cluster2/v1/cache.proto, docs/cache.md).
//
// use(ns, options) returns a CacheNamespace at once; its methods wait for the
// namespace's Use. Keys are strings, values JSON values (stored as their JSON
// text; a value someone else stored that is not JSON reads as its string).
// get(key, loader) is the cluster-wide single-flight get-or-load: the first
// caller of a missing key gets a lease (tied to this process's Hold stream,
// so the lease passes on if this process dies) and runs the loader; every
// other caller, in any process, is parked by the server and gets the value
// the loader produced.
//
// The server's address: configure({address}), else $CLUSTER2_CACHE, else the
// master's Welcome.cache_address in a worker.

const crypto = require('crypto');
const {load, grpc} = require('./proto');
const {codedError, fromGrpc, status} = require('./errors');
const {durationOf, msOf} = require('./value');

const ERROR_METADATA = 'cluster2-cache-error';
// Margin of the client's deadline over a server-side `wait`.
const DEADLINE_MARGIN_MS = 5000;
const DEFAULT_WAIT_MS = 10000;  // the server's default `wait`

function encode(value) {
  return Buffer.from(JSON.stringify(value === undefined ? null : value) ?? 'null');
}

function decode(bytes) {
  const text = Buffer.from(bytes).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (_) {
    return text;  // written by another client (cluster2ctl cache set) as raw text
  }
}

// The CacheErrorReason of a failed call (from its trailing metadata), or ''.
function reasonOf(error) {
  const values = error && error.metadata && error.metadata.get(ERROR_METADATA);
  return values && values.length ? String(values[0]) : '';
}

function grpcError(error) {
  fromGrpc(error);
  if (error && error.reason === undefined) error.reason = reasonOf(error);
  return error;
}

class Cache {
  constructor() {
    this._explicitAddress = null;
    this._welcome = null;       // () => Promise<address|''> in a worker
    this._client = null;
    this._clientId = `${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
    this._hold = null;          // Promise of the live Hold stream's call
    this._namespaces = new Map();
  }

  // Sets the cache server's address ("unix:/path/cache.sock") explicitly.
  configure({address} = {}) {
    this._explicitAddress = address || null;
    return this;
  }

  // Returns the namespace `name`, created with {persist, expire (ms), fsync
  // ('always'|'everysec'|'no')} by the first use anywhere in the cluster;
  // later different options are ignored (meta() shows the namespace's).
  use(name, options = {}) {
    let ns = this._namespaces.get(name);
    if (!ns) {
      ns = new CacheNamespace(this, name, options);
      this._namespaces.set(name, ns);
    }
    return ns;
  }

  // Closes the Hold stream, the watches and the channel (pending calls fail).
  close() {
    for (const ns of this._namespaces.values()) ns._closeWatches();
    this._namespaces.clear();
    if (this._hold) this._hold.then((call) => call.cancel(), () => {});
    this._hold = null;
    if (this._client) this._client.close();
    this._client = null;
  }

  async _address() {
    const address = this._explicitAddress || process.env.CLUSTER2_CACHE ||
                    (this._welcome ? await this._welcome() : '');
    if (!address) {
      throw codedError(status.UNAVAILABLE,
                       'no cache server: not run by cluster2 with the cache enabled, and no ' +
                       'CLUSTER2_CACHE or cache.configure({address})');
    }
    return address;
  }

  async _stub() {
    if (!this._client) {
      const address = await this._address();
      if (!this._client) {
        const {v1} = load();
        this._client = new v1.Cache(address, grpc.credentials.createInsecure());
      }
    }
    return this._client;
  }

  // Unary call `method`; `waitMs` bounds it (plus a margin for the server).
  async _call(method, request, waitMs = DEFAULT_WAIT_MS) {
    const stub = await this._stub();
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + waitMs + DEADLINE_MARGIN_MS;
      stub[method](request, {deadline}, (error, response) => {
        if (error) reject(grpcError(error));
        else resolve(response);
      });
    });
  }

  // Resolves this process's client_id once its Hold stream is registered.
  async _holdId() {
    if (!this._hold) {
      const stub = await this._stub();
      this._hold = new Promise((resolve, reject) => {
        const call = stub.Hold({client_id: this._clientId});
        let registered = false;
        call.on('data', () => {
          registered = true;
          resolve(call);
        });
        call.on('error', (error) => {
          this._dropHold(call);
          if (!registered && error.code !== status.CANCELLED) reject(grpcError(error));
        });
        call.on('end', () => this._dropHold(call));
      });
      this._hold.catch(() => { this._hold = null; });
    }
    await this._hold;
    return this._clientId;
  }

  _dropHold(call) {
    if (!this._hold) return;
    const hold = this._hold;
    hold.then((current) => {
      if (current === call && this._hold === hold) this._hold = null;
    }, () => {});
  }
}

const FSYNC = {always: 'FSYNC_ALWAYS', everysec: 'FSYNC_EVERYSEC', no: 'FSYNC_NO'};

class CacheNamespace {
  constructor(cache, name, options) {
    this._cache = cache;
    this.name = name;
    this._options = options;
    this._used = null;
    this._meta = null;
    this._stats = {hit: 0, miss: 0, load: 0, error: 0};
    this._watches = new Map();  // key ('' = all) -> Watch
  }

  // Resolves the namespace's options {persist, expire (ms), fsync, conflict}.
  async meta() {
    await this._use();
    return {...this._meta};
  }

  // Counters of this process for this namespace: {hit, miss, load, error}.
  stat() {
    return {...this._stats};
  }

  _use(again = false) {
    if (!this._used || again) {
      const {persist = false, expire = 0, fsync} = this._options;
      const options = {persist: Boolean(persist), expire: durationOf(expire)};
      if (fsync) {
        if (!FSYNC[fsync]) {
          return Promise.reject(codedError(status.INVALID_ARGUMENT, `bad fsync '${fsync}'`));
        }
        options.fsync = FSYNC[fsync];
      }
      this._used = this._cache._call('Use', {namespace: this.name, options}).then((response) => {
        const o = response.options || {};
        this._meta = {persist: o.persist, expire: msOf(o.expire),
                      fsync: (o.fsync || '').replace('FSYNC_', '').toLowerCase() || 'everysec',
                      conflict: response.conflict};
      });
      this._used.catch(() => { this._used = null; });
    }
    return this._used;
  }

  // Runs `fn` after Use; once more after a Use again if the server lost the
  // namespace (it restarted).
  async _withNamespace(fn) {
    await this._use();
    try {
      return await fn();
    } catch (error) {
      if (error.reason !== 'NAMESPACE_NOT_FOUND') throw error;
      await this._use(true);
      return fn();
    }
  }

  // Resolves the value of `key`, or null if it is absent and there is no
  // loader. With `loader` (a function returning a value or a promise), a
  // missing key is loaded once across the cluster: this caller runs the
  // loader if it gets the lease, else waits for the value another loads.
  // `wait` (ms, default 10 s) bounds the wait: DEADLINE_EXCEEDED. A failed
  // loader rejects its caller with the loader's error, and the callers that
  // waited for it with a coded error (ABORTED, `loadError` its message).
  async get(key, loader, {wait} = {}) {
    if (loader !== undefined && loader !== null && typeof loader !== 'function') {
      throw new TypeError('a loader must be a function');
    }
    const waitMs = wait === undefined ? DEFAULT_WAIT_MS : wait;
    const keyBytes = Buffer.from(String(key));
    if (!loader) {
      const response = await this._withNamespace(() => this._cache._call(
          'Get', {namespace: this.name, key: keyBytes, wait: durationOf(waitMs)}, waitMs));
      if (response.found) {
        this._stats.hit++;
        return decode(response.value);
      }
      this._stats.miss++;
      return null;
    }
    for (let attempt = 0;; attempt++) {
      let response;
      try {
        const clientId = await this._cache._holdId();
        response = await this._withNamespace(() => this._cache._call('Get', {
          namespace: this.name, key: keyBytes, lease: true, client_id: clientId,
          wait: durationOf(waitMs),
        }, waitMs));
      } catch (error) {
        // Our Hold stream ended (or the server restarted): open it again.
        if ((error.reason === 'HOLD_MISSING' || error.reason === 'HOLD_LOST') && attempt < 3) {
          this._cache._hold = null;
          continue;
        }
        this._stats.error++;
        throw error;
      }
      if (response.found) {
        this._stats.hit++;
        return decode(response.value);
      }
      if (response.load_error) {
        this._stats.error++;
        throw codedError(status.ABORTED, `the loader of '${key}' failed in another process: ` +
                         response.load_error, {loadError: response.load_error});
      }
      if (!response.lease_token) {
        this._stats.error++;
        throw codedError(status.INTERNAL, `the server answered neither a value nor a lease`);
      }
      return this._load(keyBytes, response.lease_token, loader);
    }
  }

  async _load(keyBytes, token, loader) {
    this._stats.miss++;
    let value;
    try {
      value = await loader();
    } catch (error) {
      this._stats.error++;
      const message = String((error && error.message) || error) || 'the loader failed';
      await this._cache._call('ReleaseLease', {namespace: this.name, key: keyBytes,
                                                lease_token: token, error: message})
          .catch(() => {});  // the lease passes on anyway when it expires
      throw error;
    }
    this._stats.load++;
    if (value === undefined) value = null;
    try {
      await this._cache._call('Set', {namespace: this.name, key: keyBytes, value: encode(value),
                                      lease_token: token});
    } catch (error) {
      // The lease passed on (the key was deleted or written meanwhile): the
      // loaded value goes to this caller only, never over the newer state.
      if (error.reason !== 'LEASE_NOT_HELD') throw error;
    }
    return value;
  }

  // Writes `key`. With leaveIfNotNull (also spelled leaveIfNonNull, as the
  // original's code did) only if it is absent. `ttl` (ms) overrides the
  // namespace's expire. Resolves whether it was written.
  async set(key, value, {leaveIfNotNull, leaveIfNonNull, ttl} = {}) {
    const request = {namespace: this.name, key: Buffer.from(String(key)), value: encode(value),
                     leave_if_not_null: Boolean(leaveIfNotNull || leaveIfNonNull)};
    if (ttl !== undefined) request.ttl = durationOf(ttl);
    const response = await this._withNamespace(() => this._cache._call('Set', request));
    return response.written;
  }

  // Deletes `key`; resolves its old value, or null if it was absent.
  async del(key) {
    const response = await this._withNamespace(() => this._cache._call(
        'Delete', {namespace: this.name, key: Buffer.from(String(key))}));
    return response.found ? decode(response.old_value) : null;
  }

  // Resolves every key of the namespace (with `prefix`, those starting with
  // it), sorted.
  async keys(prefix = '') {
    const keys = [];
    let pageToken = Buffer.alloc(0);
    do {
      const response = await this._withNamespace(() => this._cache._call('Keys', {
        namespace: this.name, prefix: Buffer.from(prefix), limit: 10000, page_token: pageToken,
      }));
      for (const k of response.keys) keys.push(Buffer.from(k).toString('utf8'));
      pageToken = response.next_page_token;
    } while (pageToken && pageToken.length);
    return keys;
  }

  // Calls fn(value, key) on every change of `key` (null: of every key of the
  // namespace) made by any process; value is undefined when the key was
  // deleted, expired or evicted. Resolves once the server watches (every
  // later change is delivered). The watch resumes by itself if its stream
  // breaks.
  async watch(key, fn) {
    if (typeof fn !== 'function') throw new TypeError('watch needs a function');
    await this._use();
    const k = key === null || key === undefined ? '' : String(key);
    let watch = this._watches.get(k);
    if (!watch) {
      watch = new Watch(this, k);
      this._watches.set(k, watch);
    }
    watch.fns.push(fn);
    await watch.registered;
  }

  // Stops calling `fn` (every function without one) for `key` (null: the
  // namespace's watch).
  async unwatch(key, fn) {
    const k = key === null || key === undefined ? '' : String(key);
    const watch = this._watches.get(k);
    if (!watch) return;
    if (fn) {
      const i = watch.fns.lastIndexOf(fn);
      if (i >= 0) watch.fns.splice(i, 1);
    } else {
      watch.fns.length = 0;
    }
    if (watch.fns.length === 0) {
      watch.close();
      this._watches.delete(k);
    }
  }

  _closeWatches() {
    for (const watch of this._watches.values()) watch.close();
    this._watches.clear();
  }
}

// One Watch stream of a namespace (or one key of it), shared by the
// functions watching it in this process; resumed from its last revision when
// it breaks.
class Watch {
  constructor(ns, key) {
    this.ns = ns;
    this.key = key;
    this.fns = [];
    this.revision = 0;
    this.closed = false;
    this.call = null;
    this.timer = null;
    this.registered = new Promise((resolve, reject) => {
      this._registered = resolve;
      this._failed = reject;
    });
    this.registered.catch(() => {});
    this._open();
  }

  async _open() {
    let stub;
    try {
      stub = await this.ns._cache._stub();
    } catch (error) {
      this._failed(error);
      return;
    }
    if (this.closed) return;
    const call = stub.Watch({namespace: this.ns.name, key: Buffer.from(this.key),
                             from_revision: this.revision});
    this.call = call;
    call.on('metadata', () => this._registered());
    call.on('data', (event) => {
      this.revision = Math.max(this.revision, Number(event.revision) || 0);
      if (event.resync || event.kind === 'KIND_UNSPECIFIED') return;
      const key = Buffer.from(event.key).toString('utf8');
      const value = event.kind === 'KIND_SET' ? decode(event.value) : undefined;
      for (const fn of this.fns.slice()) {
        try {
          fn(value, key);
        } catch (error) {
          process.stderr.write(`cluster2: a cache watcher of ${this.ns.name}/${key} threw: ` +
                               `${(error && error.stack) || error}\n`);
        }
      }
    });
    const again = () => {
      if (this.closed || this.call !== call) return;
      this.call = null;
      this.timer = setTimeout(() => this._open(), 500);
    };
    call.on('error', (error) => {
      if (error.reason === undefined) grpcError(error);
      if (error.reason === 'NAMESPACE_NOT_FOUND') {
        this.ns._use(true).catch(() => {});
      }
      again();
    });
    call.on('end', again);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.call) this.call.cancel();
    this.call = null;
  }
}

module.exports = {Cache, CacheNamespace, encode, decode};
