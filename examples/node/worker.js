'use strict';
// A cluster2 worker in Node.js on the cluster2 package (clients/node):
// answers every request with "node worker <id> pid <pid>".
//
//   cluster2-master --noWorkers=2 --port=9090 -- node examples/node/worker.js
//
// Run directly (`node examples/node/worker.js`) it starts cluster2-master
// itself, with these options, and this script as its workers.
const http = require('http');
const cluster2 = require('../../clients/node');

const port = Number(process.env.PORT || 9090);

function app(req, res) {
  const body = `node worker ${process.env.CLUSTER2_WORKER_ID} pid ${process.pid}\n`;
  res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
}

cluster2.listen({createServer: http.createServer, app, port, noWorkers: 2, monPort: port + 1})
    .then((resolved) => {
      if (resolved.worker) {
        console.log(`node worker ${resolved.workerId} pid ${process.pid} serves ` +
                    `cluster ${resolved.clusterName} on port ${resolved.port}`);
      } else {
        console.log(`cluster ready on port ${resolved.port} (master pid ${resolved.master.pid})`);
      }
    })
    .catch((error) => {
      console.error(`cluster2: ${error.message}`);
      process.exit(1);
    });
