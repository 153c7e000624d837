'use strict';
// The emitter's listeners, targets and replies, without a master: a fake
// session stands in for the WorkerSession.
const {describe, it} = require('node:test');
const assert = require('node:assert');
const EventEmitter = require('events');
const {Emitter, toTargets} = require('../lib/emitter');
const {toValue} = require('../lib/value');

class FakeSession extends EventEmitter {
  constructor() {
    super();
    this.sent = [];
    this.ended = false;
  }
  send(message) {
    this.sent.push(message);
    return true;
  }
}

function event(name, args, extra = {}) {
  return {name, args: args.map(toValue), from_pid: 4242, sequence: 1, ...extra};
}

describe('emitter', () => {
  it('calls listeners in registration order with the decoded args', () => {
    const emitter = new Emitter();
    const session = new FakeSession();
    emitter._attach(session);
    const calls = [];
    emitter.on('e', (a, b) => calls.push(['first', a, b]));
    emitter.on('e', function(a) {
      calls.push(['second', a, this.fromPid, this.name]);
    });
    session.emit('event', event('e', [{x: 1}, [2, 'three']]));
    assert.deepStrictEqual(calls, [['first', {x: 1}, [2, 'three']],
                                   ['second', {x: 1}, 4242, 'e']]);
  });

  it('calls a once listener once, and removeListener removes it too', () => {
    const emitter = new Emitter();
    const session = new FakeSession();
    emitter._attach(session);
    let once = 0;
    let removed = 0;
    emitter.once('e', () => once++);
    const fn = () => removed++;
    emitter.once('e', fn);
    emitter.removeListener('e', fn);
    session.emit('event', event('e', []));
    session.emit('event', event('e', []));
    assert.strictEqual(once, 1);
    assert.strictEqual(removed, 0);
    assert.deepStrictEqual(emitter.listeners('e'), []);
  });

  it('removes all listeners of one name or of all names, and only its own', () => {
    const emitter = new Emitter();
    const session = new FakeSession();
    emitter._attach(session);
    const calls = [];
    emitter.on('a', () => calls.push('a'));
    emitter.on('b', () => calls.push('b'));
    const exitListeners = process.listenerCount('exit');
    emitter.on('exit', () => calls.push('exit'));
    emitter.removeAllListeners('a');
    session.emit('event', event('a', []));
    session.emit('event', event('b', []));
    emitter.removeAllListeners();
    session.emit('event', event('b', []));
    session.emit('event', event('exit', []));
    assert.deepStrictEqual(calls, ['b']);
    assert.strictEqual(process.listenerCount('exit'), exitListeners);
  });

  it('keeps calling listeners after one throws', () => {
    const emitter = new Emitter();
    const session = new FakeSession();
    emitter._attach(session);
    const calls = [];
    emitter.on('e', () => {
      throw new Error('listener failure (expected in this test)');
    });
    emitter.on('e', () => calls.push('after'));
    const write = process.stderr.write;
    process.stderr.write = () => true;  // the logged stack
    try {
      session.emit('event', event('e', []));
    } finally {
      process.stderr.write = write;
    }
    assert.deepStrictEqual(calls, ['after']);
  });

  it('numbers its events and resolves each by its EmitReply', async () => {
    const emitter = new Emitter();
    const session = new FakeSession();
    emitter._attach(session);
    const first = emitter.emit('hello', 1, 'two');
    const second = emitter.to(['workers', 1234]).emit('hi');
    assert.deepStrictEqual(session.sent.map((m) => m.event.sequence), [1, 2]);
    assert.deepStrictEqual(session.sent[0].event.targets, []);  // self + master
    assert.deepStrictEqual(session.sent[0].event.args,
                           [{numberValue: 1}, {stringValue: 'two'}]);
    assert.deepStrictEqual(session.sent[1].event.targets, [{workers: true}, {pid: 1234}]);
    session.emit('emit_reply', {sequence: 2, delivered: 2, unknown_pids: [1234], error: '',
                                error_code: 0});
    session.emit('emit_reply', {sequence: 1, delivered: 2, unknown_pids: [], error: '',
                                error_code: 0});
    assert.deepStrictEqual(await first, {delivered: 2, unknownPids: []});
    assert.deepStrictEqual(await second, {delivered: 2, unknownPids: [1234]});
  });

  it('rejects with the reply error code (INVALID_ARGUMENT for an old master)', async () => {
    const emitter = new Emitter();
    const session = new FakeSession();
    emitter._attach(session);
    const big = emitter.emit('big', 'x');
    const old = emitter.emit('cluster2:reserved');
    session.emit('emit_reply', {sequence: 1, delivered: 0, unknown_pids: [],
                                error: 'too large', error_code: 8});
    session.emit('emit_reply', {sequence: 2, delivered: 0, unknown_pids: [],
                                error: 'reserved', error_code: 0});
    await assert.rejects(big, (e) => e.code === 8 && e.codeName === 'RESOURCE_EXHAUSTED');
    await assert.rejects(old, (e) => e.code === 3 && e.codeName === 'INVALID_ARGUMENT');
  });

  it('queues emits until the session is attached, fails them when it ends', async () => {
    const emitter = new Emitter();
    emitter._expectSession();
    const queued = emitter.emit('early', 1);
    const session = new FakeSession();
    emitter._attach(session);
    assert.strictEqual(session.sent.length, 1);
    const pending = emitter.emit('late');
    session.emit('emit_reply', {sequence: 1, delivered: 1, unknown_pids: [], error: '',
                                error_code: 0});
    assert.deepStrictEqual(await queued, {delivered: 1, unknownPids: []});
    session.ended = true;
    session.emit('end', null);
    await assert.rejects(pending, (e) => e.codeName === 'UNAVAILABLE');
    await assert.rejects(emitter.emit('after'), (e) => e.codeName === 'UNAVAILABLE');
  });

  it('delivers to itself only without a master', async () => {
    const emitter = new Emitter();
    const got = [];
    emitter.on('local', (...args) => got.push(args));
    assert.deepStrictEqual(await emitter.emit('local', {a: 1}), {delivered: 1, unknownPids: []});
    assert.deepStrictEqual(await emitter.emitTo([999999], 'local', 2),
                           {delivered: 0, unknownPids: [999999]});
    // The original's emitTo(targets, [name, ...args]).
    assert.deepStrictEqual(await emitter.emitTo(['self'], ['local', 3, 4]),
                           {delivered: 1, unknownPids: []});
    await new Promise((r) => setImmediate(r));
    assert.deepStrictEqual(got, [[{a: 1}], [3, 4]]);
  });

  it('checks names, targets and args', async () => {
    const emitter = new Emitter();
    assert.throws(() => emitter.on('', () => {}), TypeError);
    assert.throws(() => emitter.on('x', 'not a function'), TypeError);
    await assert.rejects(emitter.emit(''), (e) => e.code === 3);
    await assert.rejects(emitter.emitTo(['everyone'], 'x'), (e) => e.code === 3);
    await assert.rejects(emitter.emit('x', 1n), (e) => e.code === 3);
    assert.deepStrictEqual(toTargets(['self', 'master', '77', 78]),
                           [{self: true}, {master: true}, {pid: 77}, {pid: 78}]);
    assert.deepStrictEqual(toTargets('workers'), [{workers: true}]);
    assert.throws(() => toTargets([0]), (e) => e.code === 3);
  });
});
