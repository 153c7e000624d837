'use strict';
// A Node process racing a get-or-load (tests/mixed_cluster_test.py), as
// tests/testing/cache_worker does in C++: prints "ready", waits for the key
// "go" of namespace "barrier" (a watch), then get-or-loads KEY of NS; the
// loader prints "loading <pid>", takes 300 ms and returns "value-<pid>".
// Prints "got <value>".   node cache_racer.js SOCKET NS KEY
const cluster2 = require(process.env.MIXED_NODE_PACKAGE);

async function main() {
  const [address, ns, key] = process.argv.slice(2);
  cluster2.cache.configure({address});
  const barrier = cluster2.cache.use('barrier');
  let started;
  const go = new Promise((resolve) => { started = resolve; });
  await barrier.watch('go', (value) => { if (value !== undefined && value !== null) started(); });
  console.log('ready');
  await go;
  const value = await cluster2.cache.use(ns).get(key, () => {
    console.log(`loading ${process.pid}`);
    return new Promise((resolve) => setTimeout(() => resolve(`value-${process.pid}`), 300));
  }, {wait: 30000});
  console.log(`got ${value}`);
  process.exit(0);
}

main().catch((error) => {
  console.log(`error ${error.message}`);
  process.exit(1);
});
