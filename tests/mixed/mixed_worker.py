#!/usr/bin/python3
"""The Python worker of tests/mixed_cluster_test.py, on clients/python:
HTTP "python worker <id> pid <pid>", /welcome as JSON, and
/ping?pid=P&n=N, which emits "ping" 1..N to worker P and answers the "pong"
numbers it got back, in the order they came (JSON list)."""
import http.server
import json
import os
import queue
import sys
import urllib.parse

import cluster2
from cluster2 import emitter

pongs = queue.Queue()
emitter.on("pong", lambda i: pongs.put(i))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/welcome":
            worker = cluster2.current_worker()
            body = json.dumps({"pid": os.getpid(), "clusterName": worker.cluster_name,
                               "cacheAddress": worker.cache_address})
        elif url.path == "/ping":
            query = urllib.parse.parse_qs(url.query)
            pid, count = int(query["pid"][0]), int(query["n"][0])
            for i in range(1, count + 1):
                emitter.emit("ping", i, targets=[pid])
            got = []
            try:
                while len(got) < count:
                    got.append(pongs.get(timeout=10))
            except queue.Empty:
                pass
            body = json.dumps(got)
        else:
            body = f"python worker {os.environ['CLUSTER2_WORKER_ID']} pid {os.getpid()}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    sys.exit(cluster2.listen(handler_class=Handler))
