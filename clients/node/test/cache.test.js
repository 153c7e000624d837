'use strict';
// The cache client against a real cluster2-cache server (no master).
const {describe, it, before, after} = require('node:test');
const assert = require('node:assert');
const {spawn} = require('child_process');
const fs = require('fs');
const path = require('path');
const {Cache} = require('../lib/cache');
const {BIN, BIN_DIR, tempDir, waitFor} = require('./helpers');

const skip = fs.existsSync(BIN.cache) ? false : `no cluster2-cache in ${BIN_DIR}`;
const T = {timeout: 30000};

describe('cache', {skip, timeout: 120000}, () => {
  let dir;
  let server;
  let exited;
  let cache;
  let other;  // a second client, as another process would be
  let n = 0;
  const fresh = (options) => cache.use(`ns${++n}`, options);

  before(async () => {
    dir = tempDir();
    const socket = path.join(dir, 'cache.sock');
    server = spawn(BIN.cache, [`--socket=${socket}`], {stdio: 'ignore'});
    exited = new Promise((resolve) => server.on('exit', resolve));
    cache = new Cache().configure({address: `unix:${socket}`});
    other = new Cache().configure({address: `unix:${socket}`});
    await waitFor('the cache server', () => fs.existsSync(socket));
    await waitFor('the cache server to answer',
                  () => cache.use('probe').keys().then(() => true), {everyMs: 100});
  });

  after(async () => {
    if (cache) cache.close();
    if (other) other.close();
    if (server && server.exitCode === null) {
      server.kill('SIGKILL');
      await exited;
    }
    if (dir) fs.rmSync(dir, {recursive: true, force: true});
  });

  it('gets null for a missing key, then what was set', T, async () => {
    const ns = fresh();
    assert.strictEqual(await ns.get('k'), null);
    assert.strictEqual(await ns.set('k', {a: [1, 2]}), true);
    assert.deepStrictEqual(await ns.get('k'), {a: [1, 2]});
    assert.deepStrictEqual(await other.use(ns.name).get('k'), {a: [1, 2]});
    assert.deepStrictEqual(ns.stat(), {hit: 1, miss: 1, load: 0, error: 0});
  });

  it('keeps falsy values as values', T, async () => {
    const ns = fresh();
    for (const [key, value] of [['zero', 0], ['false', false], ['empty', ''], ['null', null]]) {
      await ns.set(key, value);
      let loaded = false;
      assert.strictEqual(await ns.get(key, () => { loaded = true; }), value);
      assert.strictEqual(loaded, false, key);
    }
  });

  it('writes with leaveIfNotNull only when absent', T, async () => {
    const ns = fresh();
    assert.strictEqual(await ns.set('k', 1, {leaveIfNotNull: true}), true);
    assert.strictEqual(await ns.set('k', 2, {leaveIfNotNull: true}), false);
    assert.strictEqual(await ns.set('k', 3, {leaveIfNonNull: true}), false);
    assert.strictEqual(await ns.get('k'), 1);
    assert.strictEqual(await ns.set('k', 4), true);
    assert.strictEqual(await ns.get('k'), 4);
  });

  it('deletes, answering the old value', T, async () => {
    const ns = fresh();
    await ns.set('k', 'v');
    assert.strictEqual(await ns.del('k'), 'v');
    assert.strictEqual(await ns.del('k'), null);
    assert.strictEqual(await ns.get('k'), null);
  });

  it('lists keys, sorted, by prefix', T, async () => {
    const ns = fresh();
    for (const k of ['b', 'a', 'ab', 'c']) await ns.set(k, 1);
    assert.deepStrictEqual(await ns.keys(), ['a', 'ab', 'b', 'c']);
    assert.deepStrictEqual(await ns.keys('a'), ['a', 'ab']);
  });

  it('loads a missing key once for concurrent callers, then serves it', T, async () => {
    const ns = fresh();
    let loads = 0;
    const loader = () => new Promise((r) => setTimeout(() => r(`v${++loads}`), 200));
    const values = await Promise.all([
      ns.get('k', loader), ns.get('k', loader), other.use(ns.name).get('k', loader),
    ]);
    assert.deepStrictEqual(values, ['v1', 'v1', 'v1']);
    assert.strictEqual(await ns.get('k', loader), 'v1');
    assert.strictEqual(loads, 1);
    assert.strictEqual(ns.stat().load, 1);
  });

  it('fails the loader\'s caller and its waiters when the loader fails', T, async () => {
    const ns = fresh();
    let release;
    const gate = new Promise((r) => { release = r; });
    const failing = ns.get('k', async () => {
      await gate;
      throw new Error('no data');
    });
    // Parked behind the failing loader (its lease is granted first).
    await new Promise((r) => setTimeout(r, 100));
    const waiter = other.use(ns.name).get('k', () => 'never');
    await new Promise((r) => setTimeout(r, 100));
    release();
    await assert.rejects(failing, /no data/);
    await assert.rejects(waiter, (e) => e.codeName === 'ABORTED' && e.loadError === 'no data');
    // The key is free again: the next caller loads.
    assert.strictEqual(await ns.get('k', () => 'loaded'), 'loaded');
  });

  it('watches one key and a whole namespace until unwatched', T, async () => {
    const ns = fresh();
    const one = [];
    const all = [];
    const onOne = (value, key) => one.push([key, value]);
    const onAll = (value, key) => all.push([key, value]);
    await ns.watch('k', onOne);
    await ns.watch(null, onAll);
    const writer = other.use(ns.name);
    await writer.set('k', 1);
    await writer.set('j', 2);
    await writer.del('k');
    await waitFor('the changes', () => one.length === 2 && all.length === 3);
    assert.deepStrictEqual(one, [['k', 1], ['k', undefined]]);
    assert.deepStrictEqual(all, [['k', 1], ['j', 2], ['k', undefined]]);
    await ns.unwatch('k', onOne);
    await writer.set('k', 3);
    await waitFor('the namespace watch', () => all.length === 4);
    assert.strictEqual(one.length, 2);
    await ns.unwatch(null);
  });

  it('expires keys after the namespace\'s expire', T, async () => {
    const ns = fresh({expire: 300});
    await ns.set('k', 'v');
    assert.strictEqual(await ns.get('k'), 'v');
    await waitFor('expiry', async () => (await ns.get('k')) === null, {timeoutMs: 5000});
    assert.strictEqual((await ns.meta()).expire, 300);
  });

  it('keeps the first use\'s options', T, async () => {
    const ns = fresh({expire: 1000});
    await ns.meta();
    const again = other.use(ns.name, {expire: 5000});
    const meta = await again.meta();
    assert.strictEqual(meta.expire, 1000);
    assert.strictEqual(meta.conflict, true);
  });

  it('refuses persist without a data directory, with its reason', T, async () => {
    const ns = fresh({persist: true});
    await assert.rejects(ns.get('k'), (e) => e.codeName === 'FAILED_PRECONDITION' &&
                                             e.reason === 'PERSISTENCE_UNAVAILABLE');
  });

  it('refuses a bad key with INVALID_ARGUMENT', T, async () => {
    await assert.rejects(fresh().set('', 1), (e) => e.codeName === 'INVALID_ARGUMENT');
  });
});
