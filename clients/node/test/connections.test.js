'use strict';
// ConnectionTracker on a real HTTP server on loopback: how a drain or pause
// closes keep-alive connections without losing a request.
const {describe, it, beforeEach, afterEach} = require('node:test');
const assert = require('node:assert');
const http = require('http');
const net = require('net');
const {ConnectionTracker, IDLE_BEFORE_CLOSE_MS, FIRST_REQUEST_GRACE_MS} =
    require('../lib/connections');
const {get} = require('./helpers');

const T = {timeout: 15000};

describe('ConnectionTracker', () => {
  let server;
  let tracker;
  let port;
  let release = null;  // answers the pending /hold request

  beforeEach(async () => {
    server = http.createServer((req, res) => {
      const answer = () => res.end('ok');
      if (req.url === '/hold') release = answer;
      else answer();
    });
    tracker = new ConnectionTracker(server);
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    port = server.address().port;
  });

  afterEach(async () => {
    tracker.dispose();
    tracker.destroyAll();
    await new Promise((r) => server.close(r));
  });

  it('counts requests and reports latency percentiles per period', T, async () => {
    const agent = new http.Agent({keepAlive: true});
    for (let i = 0; i < 5; i++) await get(port, '/', {agent});
    agent.destroy();
    assert.strictEqual(tracker.requestsTotal, 5);
    assert.strictEqual(tracker.inFlight, 0);
    const first = tracker.takeLatencies();
    assert.ok(first.p50 > 0 && first.p99 >= first.p50, JSON.stringify(first));
    assert.deepStrictEqual(tracker.takeLatencies(), {p50: 0, p99: 0});
  });

  it('answers with Connection: close once closing, and the connection ends', T, async () => {
    const agent = new http.Agent({keepAlive: true, maxSockets: 1});
    const before = await get(port, '/', {agent});
    assert.strictEqual(before.headers.connection, 'keep-alive');
    tracker.startClosing();
    const during = await get(port, '/', {agent});
    assert.strictEqual(during.status, 200);
    assert.strictEqual(during.headers.connection, 'close');
    assert.ok(await tracker.awaitClosed(2000));
    agent.destroy();
  });

  it('switches a response in flight to Connection: close', T, async () => {
    const agent = new http.Agent({keepAlive: true, maxSockets: 1});
    const held = get(port, '/hold', {agent});
    await new Promise((r) => server.once('request', () => setImmediate(r)));
    tracker.startClosing();
    release();
    const res = await held;
    assert.strictEqual(res.headers.connection, 'close');
    assert.ok(await tracker.awaitClosed(2000));
    agent.destroy();
  });

  it('closes an idle keep-alive connection only after it idled', T, async () => {
    const agent = new http.Agent({keepAlive: true, maxSockets: 1});
    await get(port, '/', {agent});
    const started = performance.now();
    tracker.startClosing();
    assert.ok(await tracker.awaitClosed(3000));
    const waited = performance.now() - started;
    assert.ok(waited >= IDLE_BEFORE_CLOSE_MS - 60 && waited < FIRST_REQUEST_GRACE_MS,
              `closed after ${waited} ms`);
    agent.destroy();
  });

  it('gives a new connection time for its first request', T, async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    await new Promise((r) => setTimeout(r, 50));  // accepted by the server
    tracker.startClosing();
    await new Promise((r) => setTimeout(r, IDLE_BEFORE_CLOSE_MS + 200));
    assert.strictEqual(tracker.open, 1, 'still open past the idle limit');
    const answer = new Promise((resolve) => {
      let data = '';
      socket.on('data', (d) => { data += d; });
      socket.on('close', () => resolve(data));
    });
    socket.write(`GET / HTTP/1.1\r\nHost: x\r\n\r\n`);
    const text = await answer;
    assert.match(text, /^HTTP\/1.1 200/);
    assert.match(text, /Connection: close/i);
  });

  it('stops closing on resume', T, async () => {
    tracker.startClosing();
    tracker.stopClosing();
    const agent = new http.Agent({keepAlive: true, maxSockets: 1});
    const res = await get(port, '/', {agent});
    assert.strictEqual(res.headers.connection, 'keep-alive');
    await new Promise((r) => setTimeout(r, IDLE_BEFORE_CLOSE_MS + 100));
    assert.strictEqual(tracker.open, 1);
    agent.destroy();
  });
});
