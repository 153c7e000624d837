'use strict';
// Integration tests against the real binaries: a cluster2-master running
// node workers (test/fixtures/worker.js) on this package.
const {describe, it, before, after} = require('node:test');
const assert = require('node:assert');
const {execFile, spawn} = require('child_process');
const fs = require('fs');
const path = require('path');
const {Cluster, get, loadGenerator, waitFor, alive, readJson, haveBinaries, BIN, BIN_DIR,
       FIXTURE_WORKER, tempDir, freePort} = require('./helpers');
const {StatusRegistry} = require('../lib/status');

const skip = haveBinaries() ? false : `no cluster2 binaries in ${BIN_DIR} (set CLUSTER2_BIN_DIR)`;
const TEST_TIMEOUT = 60000;

function run(file, args, env) {
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], {env, timeout: 30000}, (error, stdout, stderr) => {
      resolve({code: error ? (error.code ?? 1) : 0, stdout, stderr});
    });
  });
}

function hasWrk() {
  return (process.env.PATH || '').split(':').some((d) => fs.existsSync(path.join(d, 'wrk')));
}

describe('a cluster of node workers', {skip, timeout: 300000}, () => {
  let cluster;
  let workers;
  let port;
  let debugPort;

  before(async () => {
    debugPort = await freePort();
    cluster = new Cluster({noWorkers: 2, flags: [`--debug.webPort=${debugPort}`]});
    workers = await cluster.ready();
    port = await cluster.port();
  });

  after(async () => {
    if (cluster) await cluster.stop();
  });

  it('serves HTTP from both workers', {timeout: TEST_TIMEOUT}, async () => {
    const seen = new Set();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const res = await get(port, '/', {agent: false});
      assert.strictEqual(res.status, 200);
      const match = /^node worker (\d) pid (\d+)\n$/.exec(res.body);
      assert.ok(match, `unexpected body ${JSON.stringify(res.body)}`);
      seen.add(Number(match[2]));
    }
    assert.deepStrictEqual([...seen].sort(), workers.map((w) => w.pid).sort());
  });

  it('gets the cluster name and cache address in its Welcome', {timeout: TEST_TIMEOUT},
     async () => {
       const seen = new Map();
       for (let i = 0; i < 40 && seen.size < 2; i++) {
         const info = JSON.parse((await get(port, '/info', {agent: false})).body);
         seen.set(info.pid, info);
       }
       assert.strictEqual(seen.size, 2);
       for (const info of seen.values()) {
         assert.strictEqual(info.clusterName, cluster.name);
         assert.strictEqual(info.cacheAddress, cluster.cacheAddress);
         assert.strictEqual(info.port, port);
         assert.ok(info.workerId === 0 || info.workerId === 1);
       }
     });

  it('sends heartbeats with real figures', {timeout: TEST_TIMEOUT}, async () => {
    const pid = workers[0].pid;
    // /slow answers after 300 ms: a beat after such requests reports them.
    let stop = false;
    const requests = (async () => {
      while (!stop) await get(port, '/slow', {agent: false});
    })();
    let worker;
    try {
      worker = await waitFor('a heartbeat with the latency of /slow', async () => {
        const w = await cluster.client.call('GetWorker', {pid});
        const beat = w.last_heartbeat;
        return beat && beat.requests_total > 0 && beat.latency_p50 &&
               Number(beat.latency_p50.nanos) >= 250e6 ? w : null;
      });
    } finally {
      stop = true;
      await requests;
    }
    const beat = worker.last_heartbeat;
    assert.ok(worker.attached);
    assert.deepStrictEqual(worker.debug_protocols, ['v8-inspector']);
    assert.ok(Number(beat.rss_bytes) > 1e6, `rss ${beat.rss_bytes}`);
    assert.ok(beat.threads >= 2, `threads ${beat.threads}`);
    assert.ok(beat.open_fds > 3, `open fds ${beat.open_fds}`);
    assert.ok(Number(beat.uptime.seconds) > 0 || beat.uptime.nanos > 0);
    assert.ok(Number(beat.cpu_time.seconds) > 0 || beat.cpu_time.nanos > 0);
    assert.ok(Number(beat.latency_p99.nanos) >= Number(beat.latency_p50.nanos));
    assert.ok(beat.lag, 'lag is set');
    // (sent_at is sent but the master does not keep it: not in last_heartbeat.)
  });

  it('routes events between two workers, in order', {timeout: TEST_TIMEOUT}, async () => {
    const [a, b] = workers.map((w) => w.pid);
    const sent = await cluster.ctl(['emit', 'start-pings', String(b), '50', '--to', String(a)]);
    assert.strictEqual(sent.code, 0, sent.stderr);
    const pongs = await waitFor('pongs', () => {
      const file = path.join(cluster.dir, `pongs-${a}.json`);
      return fs.existsSync(file) && readJson(file);
    });
    const pings = readJson(path.join(cluster.dir, `pings-${b}.json`));
    const oneTo50 = Array.from({length: 50}, (_, i) => i + 1);
    assert.deepStrictEqual(pings.pings, oneTo50);
    assert.strictEqual(pings.from, a);
    assert.deepStrictEqual(pongs.pongs, oneTo50);
  });

  it('registers a status that cluster2ctl reads and sets', {timeout: TEST_TIMEOUT}, async () => {
    const names = await cluster.ctl(['status']);
    assert.strictEqual(names.code, 0, names.stderr);
    assert.match(names.stdout, /^node-level$/m);
    const set = await cluster.ctl(['status', 'set', 'node-level', '7']);
    assert.strictEqual(set.code, 0, set.stderr);
    const read = await cluster.ctl(['-o', 'json', 'status', 'node-level']);
    assert.strictEqual(read.code, 0, read.stderr);
    const entries = JSON.parse(read.stdout).entries;
    const pids = workers.map((w) => w.pid).sort();
    assert.deepStrictEqual(entries.map((e) => e.pid).sort(), pids);
    for (const e of entries) assert.strictEqual(e.value, 7, JSON.stringify(e));
    // The same through the library's Status client.
    const registry = new StatusRegistry();
    registry._useMaster(cluster.address);
    assert.ok((await registry.statuses()).includes('node-level'));
    const after = await registry.setStatus('node-level', {deep: [1, 'two', null, true]});
    assert.deepStrictEqual(after.map((e) => e.status),
                           [{deep: [1, 'two', null, true]}, {deep: [1, 'two', null, true]}]);
    const got = await registry.getStatus('node-level');
    assert.deepStrictEqual(got.map((e) => e.pid).sort(), pids);
    assert.ok(got.every((e) => e.workerId === 0 || e.workerId === 1), JSON.stringify(got));
    await assert.rejects(registry.getStatus('no-such-status'), (e) => e.code === 5);
  });

  it('loads a cache key once when workers and other processes race for it',
     {timeout: TEST_TIMEOUT}, async () => {
       const key = 'k1';
       const env = {...process.env, TEST_DIR: cluster.dir, CLUSTER2_CACHE: cluster.cacheAddress};
       delete env.CLUSTER2_MASTER;
       const racers = [1, 2, 3].map(() => run(path.join(__dirname, 'fixtures', 'racer.js'),
                                                ['race', key, '1000'], env));
       const sent = await cluster.ctl(['emit', 'race', '"race"', `"${key}"`, '1000',
                                       '--to', 'workers']);
       assert.strictEqual(sent.code, 0, sent.stderr);
       const outcomes = (await Promise.all(racers)).map((r) => {
         assert.strictEqual(r.code, 0, r.stdout + r.stderr);
         return JSON.parse(r.stdout);
       });
       for (const w of workers) {
         const file = path.join(cluster.dir, `race-${key}-${w.pid}.json`);
         outcomes.push(await waitFor(`${file}`, () => fs.existsSync(file) && readJson(file)));
       }
       const loads = fs.readFileSync(path.join(cluster.dir, `loads-${key}`), 'utf8')
           .trim().split('\n');
       assert.strictEqual(loads.length, 1, `loaders ran in ${loads}`);
       for (const outcome of outcomes) {
         assert.deepStrictEqual(outcome, {value: {loadedBy: Number(loads[0])}});
       }
     });

  it('pauses and resumes a worker', {timeout: TEST_TIMEOUT}, async () => {
    const [a, b] = workers.map((w) => w.pid);
    const paused = await cluster.ctl(['pause', String(a)]);
    assert.strictEqual(paused.code, 0, paused.stdout + paused.stderr);
    const w = await cluster.client.call('GetWorker', {pid: a});
    assert.strictEqual(w.state, 'WORKER_STATE_PAUSED');
    for (let i = 0; i < 10; i++) {
      const res = await get(port, '/', {agent: false});
      assert.match(res.body, new RegExp(`pid ${b}\\n$`));
    }
    const resumed = await cluster.ctl(['resume', String(a)]);
    assert.strictEqual(resumed.code, 0, resumed.stdout + resumed.stderr);
    await cluster.ready();
  });

  it('opens the v8 inspector for cluster2ctl debug', {timeout: TEST_TIMEOUT}, async () => {
    const pid = workers[0].pid;
    const debug = await cluster.ctl(['debug', String(pid)]);
    assert.strictEqual(debug.code, 0, debug.stdout + debug.stderr);
    assert.match(debug.stdout, new RegExp(`ws://127\\.0\\.0\\.1:${debugPort}/[0-9a-f-]+`));
    const list = JSON.parse((await get(debugPort, '/json/list', {agent: false})).body);
    assert.strictEqual(list.length, 1);
    assert.match(list[0].webSocketDebuggerUrl, new RegExp(`:${debugPort}/`));
    const end = await cluster.ctl(['debug', '--end']);
    assert.strictEqual(end.code, 0, end.stdout + end.stderr);
    await waitFor(`pid ${pid} to end`, () => !alive(pid));
    workers = await cluster.ready();
    assert.ok(workers.every((w) => w.pid !== pid));
  });

  it('loses no request in a rolling restart under keep-alive load', {timeout: TEST_TIMEOUT},
     async () => {
       const before = new Set((await cluster.ready()).map((w) => w.pid));
       const generator = loadGenerator(port, 32);
       await waitFor('load running', () => generator.counts.ok > 500);
       const restart = await cluster.ctl(['restart']);
       assert.strictEqual(restart.code, 0, restart.stderr);
       workers = await waitFor('two new workers', async () => {
         const ready = await cluster.ready(2);
         return ready.every((w) => !before.has(w.pid)) ? ready : null;
       }, {timeoutMs: 40000});
       const okAtRestart = generator.counts.ok;
       await waitFor('load on the new workers', () => generator.counts.ok > okAtRestart + 500);
       const counts = await generator.stop();
       assert.strictEqual(counts.failed, 0, `failed: ${counts.errors.join(', ')}`);
       for (const pid of before) assert.ok(!alive(pid), `old worker ${pid} still runs`);
       for (const pid of before) {
         assert.match(cluster.log(), new RegExp(`pid ${pid} ended: exit 0`));
       }
     });

  it('loses no request in a rolling restart under wrk -c32', {
    timeout: TEST_TIMEOUT, skip: hasWrk() ? false : 'wrk is not installed',
  }, async () => {
    const before = new Set((await cluster.ready()).map((w) => w.pid));
    const wrk = new Promise((resolve) => {
      execFile('wrk', ['-c32', '-t2', '-d6s', `http://127.0.0.1:${port}/`], {timeout: 30000},
               (error, stdout, stderr) => resolve({error, stdout, stderr}));
    });
    await new Promise((r) => setTimeout(r, 1000));  // wrk has no "started" signal
    const restart = await cluster.ctl(['restart']);
    assert.strictEqual(restart.code, 0, restart.stderr);
    const {error, stdout, stderr} = await wrk;
    assert.ifError(error);
    workers = await cluster.ready();
    assert.ok(workers.every((w) => !before.has(w.pid)), 'every worker was replaced');
    assert.match(stdout, /requests in/);
    assert.doesNotMatch(stdout, /Socket errors|Non-2xx/, stdout + stderr);
  });

  it('drains a worker that gets SIGTERM: it exits 0 and is replaced', {timeout: TEST_TIMEOUT},
     async () => {
       const pid = workers[0].pid;
       const res = await get(port, '/', {agent: false});
       assert.strictEqual(res.status, 200);
       process.kill(pid, 'SIGTERM');
       await waitFor(`pid ${pid} to exit`, () => !alive(pid));
       await waitFor('its exit in the log', () => cluster.log().includes(`pid ${pid} ended: exit 0`));
       assert.deepStrictEqual(readJson(path.join(cluster.dir, `exit-${pid}.json`)),
                              {reason: 'SIGTERM'});
       workers = await cluster.ready();
     });

  it('drains a worker scaled away: in-flight requests finish, the process ends',
     {timeout: TEST_TIMEOUT}, async () => {
       const ready = await cluster.ready();
       const drained = ready.find((w) => w.id === 1).pid;
       // Requests in flight on both workers while the drain starts.
       const slow = Array.from({length: 6}, () => get(port, '/slow', {agent: false}));
       await new Promise((r) => setTimeout(r, 50));
       const scaled = await cluster.ctl(['scale', '1']);
       assert.strictEqual(scaled.code, 0, scaled.stderr);
       for (const res of await Promise.all(slow)) assert.strictEqual(res.status, 200);
       await waitFor(`pid ${drained} to exit`, () => !alive(drained));
       assert.match(cluster.log(), new RegExp(`pid ${drained} ended: exit 0`));
       assert.deepStrictEqual(readJson(path.join(cluster.dir, `exit-${drained}.json`)),
                              {reason: 'scale down'});
       await cluster.ready(1);
     });
});

describe('a cluster with balance "shared"', {skip, timeout: 120000}, () => {
  let cluster;

  before(async () => {
    cluster = new Cluster({noWorkers: 2, flags: ['--balance=shared']});
  });

  after(async () => {
    if (cluster) await cluster.stop();
  });

  it('refuses a pause it cannot do: the pause fails at once, the worker keeps serving',
     {timeout: TEST_TIMEOUT}, async () => {
       const workers = await cluster.ready();
       const pid = workers[0].pid;
       const started = Date.now();
       const paused = await cluster.ctl(['pause', String(pid)], {timeoutMs: 20000});
       assert.strictEqual(paused.code, 1, paused.stdout + paused.stderr);
       assert.match(paused.stderr, /cannot pause: with balance "shared"/);
       assert.ok(Date.now() - started < 4000, 'not after the 5 s confirmation deadline');
       const w = await cluster.client.call('GetWorker', {pid});
       assert.strictEqual(w.state, 'WORKER_STATE_READY');
       assert.match(cluster.log(), /pause refused: with balance "shared"/);
       const port = await cluster.port();
       assert.strictEqual((await get(port, '/', {agent: false})).status, 200);
     });
});

describe('listen() run from a shell', {skip, timeout: 120000}, () => {
  it('starts cluster2-master with its options and this script as the workers',
     {timeout: TEST_TIMEOUT}, async () => {
       const dir = tempDir();
       const options = {noWorkers: 2, port: 0, monPort: 0, host: '127.0.0.1',
                        name: `launch${process.pid}`, runDir: path.join(dir, 'run'),
                        heartbeatInterval: 1000, cache: {persistPath: path.join(dir, 'state')},
                        notAMasterOption: 1};
       const env = {...process.env, FIXTURE_OPTIONS: JSON.stringify(options), TEST_DIR: dir,
                    CLUSTER2_MASTER_BIN: BIN.master};
       for (const k of Object.keys(env)) if (k.startsWith('CLUSTER2_') && k !== 'CLUSTER2_MASTER_BIN' && k !== 'CLUSTER2_PROTO_DIR') delete env[k];
       const launcher = spawn(process.execPath, [FIXTURE_WORKER], {env, stdio: ['ignore', 'pipe', 'pipe']});
       let out = '';
       launcher.stdout.on('data', (d) => { out += d; });
       launcher.stderr.on('data', (d) => { out += d; });
       const exited = new Promise((resolve) => launcher.on('exit', (code, signal) => resolve({code, signal})));
       let masterPid = 0;
       try {
         const match = await waitFor(`the launcher's ready line (output: ${out})`,
                                     () => /launcher: ready on port (\d+) master (\d+)/.exec(out));
         const port = Number(match[1]);
         masterPid = Number(match[2]);
         assert.ok(port > 0);
         const seen = new Set();
         for (let i = 0; i < 40 && seen.size < 2; i++) {
           seen.add((await get(port, '/', {agent: false})).body.replace(/^node worker \d pid /, ''));
         }
         assert.strictEqual(seen.size, 2);
         launcher.kill('SIGINT');
         const {code} = await Promise.race([exited, new Promise((_, reject) =>
           setTimeout(() => reject(new Error(`no exit (output: ${out})`)), 20000))]);
         assert.strictEqual(code, 0, out);
         assert.ok(!alive(masterPid), 'the master is gone');
       } finally {
         if (launcher.exitCode === null) launcher.kill('SIGKILL');
         if (masterPid && alive(masterPid)) process.kill(-masterPid, 'SIGKILL');
         fs.rmSync(dir, {recursive: true, force: true});
       }
     });
});
