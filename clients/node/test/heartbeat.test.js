'use strict';
// The heartbeats of WorkerRuntime: a real HTTP server and ConnectionTracker
// on loopback with a fake clock (exact latencies), a fake session that keeps
// what is sent, and the beats checked through the real WorkerMessage encoder.
const {describe, it, beforeEach, afterEach} = require('node:test');
const assert = require('node:assert');
const http = require('http');
const {ConnectionTracker} = require('../lib/connections');
const {WorkerRuntime, LatencyHistogram, LATENCY_BOUNDS} = require('../lib/worker');
const {load} = require('../lib/proto');
const {get, waitFor} = require('./helpers');

const T = {timeout: 15000};
// Heartbeat.latency's recommended bounds, written out as in common.proto.
const RECOMMENDED = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// `message` as the master receives it (snake_case fields, uint64 as Number).
function wire(message) {
  const type = load().definition['cluster2.v1.WorkerMessage'];
  return type.deserialize(type.serialize(message));
}

// The expected counts: one per bucket index in `buckets`.
function countsOf(buckets) {
  const counts = new Array(RECOMMENDED.length + 1).fill(0);
  for (const i of buckets) counts[i]++;
  return counts;
}

describe('heartbeat', () => {
  let server;
  let tracker;
  let runtime;
  let port;
  let clock = 0;  // ms; a request's handler adds its latency
  const sent = [];

  beforeEach(async () => {
    sent.length = 0;
    server = http.createServer((req, res) => {
      clock += Number(new URL(req.url, 'http://x').searchParams.get('ms'));
      res.end('ok');
    });
    tracker = new ConnectionTracker(server, {now: () => clock});
    const session = {send: (message) => sent.push(message)};
    runtime = new WorkerRuntime({server, tracker, session, welcome: {heartbeatIntervalMs: 60000},
                                 cache: null, exitOnDrain: false});
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    port = server.address().port;
  });

  afterEach(async () => {
    clearTimeout(runtime._beatTimer);
    tracker.dispose();
    tracker.destroyAll();
    await new Promise((r) => server.close(r));
  });

  // One request that takes exactly `ms` on the fake clock (from 0: no
  // rounding), counted before it returns (the next one resets the clock).
  async function serve(ms) {
    const before = tracker.requestsTotal;
    clock = 0;
    await get(port, `/?ms=${ms}`, {agent: false});
    await waitFor('the request counted', () => tracker.requestsTotal === before + 1,
                  {everyMs: 2});
  }

  // Sends a beat now and returns it as the master decodes it.
  function beat() {
    runtime._beat(performance.now());
    clearTimeout(runtime._beatTimer);
    return wire(sent[sent.length - 1]).heartbeat;
  }

  it('uses the recommended bounds', () => {
    assert.deepStrictEqual([...LATENCY_BOUNDS], RECOMMENDED);
    assert.ok(Object.isFrozen(LATENCY_BOUNDS));
  });

  it('sends the histogram, all zero, before any request', T, () => {
    const b = beat();
    assert.ok(b.latency, 'latency is set');
    assert.deepStrictEqual(b.latency.bounds, RECOMMENDED);
    assert.deepStrictEqual(b.latency.counts, countsOf([]));
    assert.strictEqual(b.latency.counts.length, b.latency.bounds.length + 1);
    assert.strictEqual(b.latency.sum_seconds, 0);
  });

  it('counts each request in its bucket, a bound in its own, above 10 s in the last', T,
     async () => {
       // ms -> bucket: at most bounds[i] is bucket i.
       const cases = [[0.5, 0], [1, 0], [1.1, 1], [2.5, 1], [10, 3], [300, 8], [1000, 9],
                      [10000, 12], [10500, 13], [60000, 13]];
       for (const [ms] of cases) await serve(ms);
       const b = beat();
       assert.strictEqual(b.requests_total, cases.length);
       assert.deepStrictEqual(b.latency.counts, countsOf(cases.map(([, i]) => i)));
       const sum = cases.reduce((s, [ms]) => s + ms / 1000, 0);
       assert.ok(Math.abs(b.latency.sum_seconds - sum) < 1e-9, `${b.latency.sum_seconds} ${sum}`);
     });

  it('keeps totals since the start across beats (p50/p99 are per beat)', T, async () => {
    await serve(20);
    await serve(3000);
    const first = beat();
    const expected = countsOf([4, 11]);
    assert.deepStrictEqual(first.latency.counts, expected);
    const idle = beat();
    assert.strictEqual(Number(idle.latency_p50.nanos), 0);
    assert.deepStrictEqual(idle.latency.counts, expected);
    assert.ok(Math.abs(idle.latency.sum_seconds - 3.02) < 1e-9);
    await serve(2);
    const later = beat();
    assert.deepStrictEqual(later.latency.counts, countsOf([1, 4, 11]));
    assert.ok(Math.abs(later.latency.sum_seconds - 3.022) < 1e-9);
    assert.strictEqual(later.latency.counts.reduce((a, c) => a + c, 0), later.requests_total);
  });

  it('LatencyHistogram puts a value on a bound in that bound\'s bucket', () => {
    const h = new LatencyHistogram();
    for (const bound of RECOMMENDED) h.observe(bound);
    h.observe(10.000001);
    assert.deepStrictEqual(h.toProto().counts, new Array(RECOMMENDED.length + 1).fill(1));
  });
});
