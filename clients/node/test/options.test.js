'use strict';
// listen()'s option handling: which options go to cluster2-master, where
// the master binary and its run directory are, the worker/launcher switch.
const {describe, it} = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const {masterConfig, findMasterBinary, runDirOf} = require('../lib/launcher');
const {protoDir} = require('../lib/proto');

describe('listen() options', () => {
  it('passes the ClusterConfig fields to the master, in either spelling, and no others', () => {
    const config = masterConfig({
      app: () => {}, createServer: () => {}, configureApp() {},
      port: 9090, noWorkers: 2, monPort: 9091, heartbeat_interval: 1000, name: 'x',
      ecv: {mode: 'control', markUp: '/up', bogus: 1},
      cache: {enable: true, persistPath: '/tmp/p'},
      debug: {webPort: 9092, debugPort: 5858, saveLiveEdit: true},
      nanny: {tolerance: 9000},
      env: {A: 'b'},
      command: ['evil'], timeout: undefined, notAnOption: 1, shouldKill: () => true,
    });
    assert.deepStrictEqual(config, {
      name: 'x', noWorkers: 2, port: 9090, monPort: 9091, heartbeat_interval: 1000,
      env: {A: 'b'}, ecv: {mode: 'control', markUp: '/up'},
      cache: {enable: true, persistPath: '/tmp/p'},
      debug: {webPort: 9092, debugPort: 5858, saveLiveEdit: true},
      nanny: {tolerance: 9000},
    });
  });

  it('finds cluster2-master by $CLUSTER2_MASTER_BIN, then PATH', () => {
    assert.strictEqual(findMasterBinary({CLUSTER2_MASTER_BIN: '/x/m', PATH: '/bin'}), '/x/m');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2opt-'));
    try {
      const bin = path.join(dir, 'cluster2-master');
      fs.writeFileSync(bin, '#!/bin/sh\n', {mode: 0o755});
      assert.strictEqual(findMasterBinary({PATH: `/nonexistent:${dir}`}), bin);
    } finally {
      fs.rmSync(dir, {recursive: true, force: true});
    }
  });

  it('says where it looked when there is no cluster2-master', () => {
    const repoBin = path.resolve(__dirname, '..', '..', '..', 'bazel-bin', 'master',
                                 'cluster2-master');
    if (fs.existsSync(repoBin)) {
      assert.strictEqual(findMasterBinary({PATH: '/nonexistent'}), repoBin);
    } else {
      assert.throws(() => findMasterBinary({PATH: '/nonexistent'}),
                    (e) => e.codeName === 'NOT_FOUND' && /CLUSTER2_MASTER_BIN/.test(e.message));
    }
  });

  it('computes the master run directory as the master does', () => {
    assert.strictEqual(runDirOf({runDir: '/r'}, {}), '/r');
    assert.strictEqual(runDirOf({name: 'n'}, {XDG_RUNTIME_DIR: '/run/user/7'}),
                       '/run/user/7/cluster2/n');
    assert.strictEqual(runDirOf({}, {}), `/tmp/cluster2-${process.getuid()}/default`);
  });

  it('loads the protos from the repository, or $CLUSTER2_PROTO_DIR', () => {
    assert.strictEqual(protoDir(), process.env.CLUSTER2_PROTO_DIR ||
                                   path.resolve(__dirname, '..', '..', '..', 'proto'));
    assert.ok(fs.existsSync(path.join(protoDir(), 'cluster2', 'v1', 'worker_session.proto')));
  });

  it('requires app, and is a launcher outside a cluster', () => {
    const cluster2 = require('..');
    assert.throws(() => cluster2.listen({}), {name: 'AssertionError'});
    assert.strictEqual(cluster2.isWorker, false);
    assert.strictEqual(cluster2.isMaster, true);
    assert.strictEqual(cluster2.cacheManager, cluster2.cache);
  });
});
