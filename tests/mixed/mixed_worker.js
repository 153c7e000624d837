'use strict';
// The Node worker of tests/mixed_cluster_test.py, on clients/node
// ($MIXED_NODE_PACKAGE): HTTP "node worker <id> pid <pid>", /welcome as
// JSON, answers the event "ping" [i] with "pong" [i] to its sender, and
// registers the status "node-level" (a number anyone can read and set).
const http = require('http');
const cluster2 = require(process.env.MIXED_NODE_PACKAGE);

let welcome = {};
let level = 0;

cluster2.status.register('node-level', () => level, (value) => { level = value; });
cluster2.emitter.on('ping', function (i) {
  cluster2.emitter.emitTo([this.fromPid], 'pong', i).catch((error) => {
    console.error(`pong ${i} to ${this.fromPid}: ${error.message}`);
  });
});

function app(req, res) {
  const body = req.url === '/welcome'
    ? JSON.stringify(welcome)
    : `node worker ${process.env.CLUSTER2_WORKER_ID} pid ${process.pid}\n`;
  res.writeHead(200, {'Content-Length': Buffer.byteLength(body)});
  res.end(body);
}

cluster2.listen({createServer: http.createServer, app})
  .then((resolved) => {
    welcome = {pid: process.pid, clusterName: resolved.clusterName, cacheAddress: resolved.cacheAddress};
  })
  .catch((error) => {
    console.error(`mixed_worker.js: ${error.message}`);
    process.exit(1);
  });
