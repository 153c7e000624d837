#!/usr/bin/python3
"""A cluster2 worker in Python, on the cluster2 package (clients/python).

cluster2.listen() serves HTTP on the socket the master passes as fd 3,
attaches the WorkerSession, reports ready, sends heartbeats and drains when
told to (or on SIGTERM) without losing a request, keep-alive connections
included; it pauses and resumes, and opens debugpy when the master asks.
This worker also answers the event "ping" [x] with "pong" [x, pid] to the
master and registers the status "python-level" (a number anyone can read
and set).

The stubs come from proto/cluster2/v1 (clients/python/gen_stubs.sh):
    clients/python/gen_stubs.sh /tmp/c2py
    PYTHONPATH=clients/python:/tmp/c2py cluster2-master -- \\
        /usr/bin/python3 examples/python/hello_worker.py
or, run from a shell, it starts the master itself (cluster2-master on PATH,
$CLUSTER2_MASTER_BIN or bazel-bin):
    PYTHONPATH=clients/python:/tmp/c2py examples/python/hello_worker.py
"""
import http.server
import os
import sys

try:
    import cluster2
except ImportError:  # run from a checkout without PYTHONPATH for the package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "clients", "python"))
    import cluster2
from cluster2 import emitter, status

level = 0


def set_level(value):
    global level
    level = value


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"python worker {os.environ['CLUSTER2_WORKER_ID']} pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@emitter.on("ping")
def ping(*args):
    emitter.emit("pong", *args[:1], os.getpid(), targets=["master"])


status.register("python-level", lambda: level, set_level)

if __name__ == "__main__":
    sys.exit(cluster2.listen(handler_class=Hello, port=8080))
