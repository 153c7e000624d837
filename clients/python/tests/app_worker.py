#!/usr/bin/python3
"""The worker the package's tests run: cluster2.listen() with an
http.server handler (C2T_MODE=handler, the default), a WSGI app
(C2T_MODE=wsgi) or a server of its own (C2T_MODE=serve: GET answers
"serve pid <pid>"), and the package's emitter, status and cache.

    GET /            "py <slot> pid <pid>"
    GET /info        JSON: pid, id, cluster_name, cache_address, heartbeat_interval
    GET /slow?ms=N   answers after N ms
    GET /load?key=K  cache "race": get-or-load (the loader appends a line to
                     $C2T_LOAD_LOG and takes 300 ms)
    GET /emit-note   emits "note" to self, master and an unknown pid; JSON result
    GET /emit-bad    emits a reserved name; JSON {"code": ...}
    GET /emit-big    emits over 1 MiB of args; JSON {"code": ...}
    GET /heard       the "note" events this worker heard
    POST /echo       the body back
Listeners: "seq" n -> "seq-back" [n, pid] to the master. Status
"py-test-level": a number, readable and settable.
"""
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

import cluster2
from cluster2 import cache, emitter, status

state = {"level": 0}
status.register("py-test-level", lambda: state["level"],
                lambda value: state.update(level=value))
heard = []
heard_cond = threading.Condition()


@emitter.on("seq")
def on_seq(n):
    emitter.emit("seq-back", n, os.getpid(), targets=["master"])


@emitter.on("note")
def on_note(*args):
    with heard_cond:
        heard.append(list(args))
        heard_cond.notify_all()


def load(key):
    def loader():
        with open(os.environ["C2T_LOAD_LOG"], "a") as log:
            log.write(f"{os.getpid()} {key}\n")
        time.sleep(0.3)
        return {"key": key, "by": os.getpid()}
    return cache.use("race").get(key, loader, wait=20)


def route(method, path, query, body):
    """Returns (status, content type, body bytes)."""
    worker = cluster2.current_worker()
    if path == "/":
        return 200, "text/plain", f"py {worker.id} pid {os.getpid()}\n".encode()
    if path == "/info":
        result = {"pid": os.getpid(), "id": worker.id, "cluster_name": worker.cluster_name,
                  "cache_address": worker.cache_address,
                  "heartbeat_interval": worker.heartbeat_interval}
    elif path == "/slow":
        time.sleep(int(query.get("ms", ["100"])[0]) / 1000)
        return 200, "text/plain", f"slow pid {os.getpid()}\n".encode()
    elif path == "/load":
        result = load(query["key"][0])
    elif path == "/emit-note":
        before = len(heard)
        emitted = emitter.emit("note", "a", 1, targets=["self", "master", 999999])
        with heard_cond:  # "self" comes back through the master
            heard_cond.wait_for(lambda: len(heard) > before, 5)
        result = {"delivered": emitted.delivered, "unknown_pids": emitted.unknown_pids,
                  "heard": heard[before:]}
    elif path in ("/emit-bad", "/emit-big"):
        try:
            if path == "/emit-bad":
                emitter.emit("cluster2:x")
            else:
                emitter.emit("big", "x" * ((1 << 20) + 10))
            result = {"code": "OK"}
        except cluster2.Error as error:
            result = {"code": error.code.name}
    elif path == "/heard":
        result = heard
    elif path == "/echo" and method == "POST":
        return 200, "application/octet-stream", body
    else:
        return 404, "text/plain", b"not found\n"
    return 200, "application/json", json.dumps(result).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, content_type, data = route(self.command, url.path,
                                         urllib.parse.parse_qs(url.query), body)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def wsgi_app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    code, content_type, data = route(environ["REQUEST_METHOD"], environ["PATH_INFO"],
                                     urllib.parse.parse_qs(environ["QUERY_STRING"]), body)
    start_response(f"{code} {'OK' if code == 200 else 'Not Found'}",
                   [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def serve(worker):
    """listen(serve=...): a minimal server of the app's own, one request per
    connection, until the drain."""
    import select
    listener = worker.listen_socket()
    wake_r, wake_w = os.pipe()
    worker.on_drain(lambda grace: os.write(wake_w, b"x"))
    worker.ready()
    while True:
        readable, _, _ = select.select([listener, wake_r], [], [])
        if wake_r in readable:
            return 0
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            continue
        with connection:
            connection.setblocking(True)
            connection.recv(65536)
            body = f"serve pid {os.getpid()}\n".encode()
            connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            worker.record_request(0.001)


if __name__ == "__main__":
    # Started from a shell (the launcher test), listen() starts the master
    # with these options.
    options = json.loads(os.environ.get("C2T_LISTEN", "{}"))
    if os.environ.get("C2T_MODE") == "wsgi":
        sys.exit(cluster2.listen(app=wsgi_app, **options))
    if os.environ.get("C2T_MODE") == "serve":
        sys.exit(cluster2.listen(serve=serve, **options))
    sys.exit(cluster2.listen(handler_class=Handler, **options))
