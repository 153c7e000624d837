#!/usr/bin/python3
"""A cluster2 worker in Python, on Python's own gRPC stack (python3-grpcio).

It serves HTTP on the socket the master passes as fd 3, attaches its
WorkerSession, reports ready, sends heartbeats and drains when told to:
the same protocol as the C++ library (docs/api.md). It also speaks the
emitter and status parts: it answers the event "ping" [x] with "pong"
[x, pid] to the master, and registers the status "python-level" (a number
anyone can read and set).

The stubs come from proto/cluster2/v1 (see gen_stubs.sh):
    examples/python/gen_stubs.sh /tmp/c2py
    PYTHONPATH=/tmp/c2py cluster2-master -- /usr/bin/python3 examples/python/hello_worker.py
"""
import http.server
import os
import queue
import resource
import socket
import sys
import threading
import time

import grpc
from cluster2.v1 import emitter_pb2
from cluster2.v1 import worker_session_pb2 as session_pb2
from google.protobuf import struct_pb2
from cluster2.v1 import worker_session_pb2_grpc as session_grpc


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests = 0

    def do_GET(self):
        body = f"python worker {os.environ['CLUSTER2_WORKER_ID']} pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        Handler.requests += 1

    def log_message(self, *args):
        pass


def main():
    listener = socket.socket(fileno=3)  # LISTEN_FDS=1: the shared port
    # Every worker is woken for each connection and only one wins it: a
    # blocking accept would hang the losers (socketserver polls, then accepts).
    listener.setblocking(False)
    server = http.server.ThreadingHTTPServer(listener.getsockname()[:2], Handler,
                                             bind_and_activate=False)
    server.socket.close()
    server.socket = listener

    outbox = queue.Queue()
    channel = grpc.insecure_channel(os.environ["CLUSTER2_MASTER"])
    replies = session_grpc.WorkerSessionStub(channel).Attach(iter(outbox.get, None))
    outbox.put(session_pb2.WorkerMessage(hello=session_pb2.Hello(
        worker_id=int(os.environ["CLUSTER2_WORKER_ID"]),
        token=os.environ["CLUSTER2_WORKER_TOKEN"], pid=os.getpid(),
        client=f"python-grpc/{grpc.__version__}")))

    welcome = next(replies).welcome
    interval = welcome.heartbeat_interval.ToTimedelta().total_seconds() or 5.0
    drained = threading.Event()

    level = struct_pb2.Value(number_value=0)
    sequence = [0]

    def answer_status(request_id, value=None):
        if value is not None:
            level.CopyFrom(value)
        outbox.put(session_pb2.WorkerMessage(status_answer=session_pb2.StatusAnswer(
            id=request_id, value=level)))

    def read_master():
        try:
            for message in replies:
                if message.HasField("drain"):
                    break
                if message.HasField("event") and message.event.name == "ping":
                    sequence[0] += 1
                    pong = emitter_pb2.Event(name="pong", sequence=sequence[0],
                                             targets=[emitter_pb2.Target(master=True)])
                    pong.args.extend(list(message.event.args[:1]) +
                                     [struct_pb2.Value(number_value=os.getpid())])
                    outbox.put(session_pb2.WorkerMessage(event=pong))
                elif message.HasField("status_query"):
                    answer_status(message.status_query.id)
                elif message.HasField("status_update"):
                    answer_status(message.status_update.id, message.status_update.value)
        except grpc.RpcError:
            pass  # the session ended: drain as well
        drained.set()
        server.shutdown()  # stops serve_forever; in-flight handlers finish

    def beat():
        started = time.monotonic()
        while not drained.wait(interval):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            heartbeat = session_pb2.WorkerMessage()
            heartbeat.heartbeat.rss_bytes = usage.ru_maxrss * 1024
            heartbeat.heartbeat.cpu_time.FromNanoseconds(
                int((usage.ru_utime + usage.ru_stime) * 1e9))
            heartbeat.heartbeat.threads = threading.active_count()
            heartbeat.heartbeat.uptime.FromNanoseconds(int((time.monotonic() - started) * 1e9))
            heartbeat.heartbeat.requests_total = Handler.requests
            heartbeat.heartbeat.sent_at.GetCurrentTime()
            outbox.put(heartbeat)

    threading.Thread(target=read_master, daemon=True).start()
    threading.Thread(target=beat, daemon=True).start()
    outbox.put(session_pb2.WorkerMessage(status_registration=session_pb2.StatusRegistration(
        name="python-level", registered=True)))
    outbox.put(session_pb2.WorkerMessage(ready=session_pb2.Ready()))
    server.serve_forever()
    outbox.put(None)  # closes our side of the session
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
