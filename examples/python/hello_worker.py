#!/usr/bin/python3
"""A cluster2 worker in Python, on Python's own gRPC stack (python3-grpcio).

It serves HTTP on the socket the master passes as fd 3, attaches its
WorkerSession, reports ready, sends heartbeats (with its requests in flight)
and drains when told to (or on SIGTERM): it stops accepting, finishes the
requests in flight (their answers say Connection: close), closes idle
keep-alive connections, then exits. A Pause does the same without exiting
and is confirmed (Ack) once its connections are closed; Resume accepts
again. It offers debugpy (Debian's python3-debugpy) as its debugger: an
OpenDebugger starts `debugpy.listen((host, port))` and answers its URL,
tcp://HOST:PORT. The same protocol as the C++ library (docs/api.md). It
also speaks the emitter and status parts: it answers the event "ping" [x]
with "pong" [x, pid] to the master, and registers the status "python-level"
(a number anyone can read and set).

The stubs come from proto/cluster2/v1 (see gen_stubs.sh):
    examples/python/gen_stubs.sh /tmp/c2py
    PYTHONPATH=/tmp/c2py cluster2-master -- /usr/bin/python3 examples/python/hello_worker.py
"""
import http.server
import os
import queue
import resource
import select
import signal
import socket
import sys
import threading
import time

import grpc
from cluster2.v1 import emitter_pb2
from cluster2.v1 import worker_session_pb2 as session_pb2
from google.protobuf import struct_pb2
from cluster2.v1 import worker_session_pb2_grpc as session_grpc

# How long a pause waits for its connections to close before it confirms
# anyway: below the master's 5 s, and a connection a paused worker still
# holds would hang once a debugger stops the process.
PAUSE_CONNECTIONS_TIMEOUT = 3.0
# A connection that has not sent its first request yet is given this long
# before a pause or drain closes it as idle (its request may be on the way).
FIRST_REQUEST_GRACE = 1.0
# While pausing or draining, a keep-alive connection without a request for
# this long is closed; a busier one is answered with Connection: close.
IDLE_BEFORE_CLOSE = 0.2


class Connections:
    """The HTTP connections of this worker and whether it accepts more.

    Thread-safe: the accept loop (main thread), the handler threads and the
    session's reader change it under `cond`.
    """

    def __init__(self):
        self.cond = threading.Condition()
        self.open = 0          # accepted and not closed yet
        self.in_flight = 0     # requests being handled
        self.served = 0        # requests completed since start
        self.paused = False
        self.draining = False
        self.accepting = False  # what the accept loop does now
        # Readable while paused or draining: wakes idle connections so
        # they close. Written once per change to "closing", read empty on
        # resume.
        self._closing_r, self._closing_w = os.pipe()
        os.set_blocking(self._closing_r, False)
        # Written on every change the accept loop must see.
        self.wake_r, self._wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self._wake_w, False)

    @property
    def closing(self):
        return self.paused or self.draining

    def _changed(self, was_closing):
        """Wakes the accept loop and, on a change of `closing`, the idle
        connections. Called with `cond` held."""
        if self.closing and not was_closing:
            os.write(self._closing_w, b"x")
        elif was_closing and not self.closing:
            while True:
                try:
                    os.read(self._closing_r, 64)
                except BlockingIOError:
                    break
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the loop has wake-ups pending already
        self.cond.notify_all()

    def pause(self):
        """Stops accepting; returns once the accept loop stopped and the
        open connections closed (at most PAUSE_CONNECTIONS_TIMEOUT)."""
        deadline = time.monotonic() + PAUSE_CONNECTIONS_TIMEOUT
        with self.cond:
            was_closing = self.closing
            self.paused = True
            self._changed(was_closing)
            self.cond.wait_for(lambda: not self.accepting and self.open == 0,
                               deadline - time.monotonic())

    def resume(self):
        """Accepts again (unless draining); returns once the loop does."""
        with self.cond:
            was_closing = self.closing
            self.paused = False
            self._changed(was_closing)
            self.cond.wait_for(lambda: self.accepting or self.draining, 1.0)

    def drain(self):
        """Stops accepting for good; idle connections close, busy ones
        close after their answer."""
        with self.cond:
            was_closing = self.closing
            self.draining = True
            self._changed(was_closing)

    def await_closed(self, deadline):
        """Waits until every connection is closed or `deadline` (monotonic)."""
        with self.cond:
            self.cond.wait_for(lambda: self.open == 0, deadline - time.monotonic())

    def await_request(self, handler):
        """Waits for the next request on `handler`'s connection. Returns True
        once its bytes (or the client's close) are there; False when the
        connection is idle while pausing or draining, and should close."""
        connection = handler.connection
        # A request the client pipelined may already sit in rfile's buffer:
        # peek without blocking.
        connection.setblocking(False)
        try:
            if handler.rfile.peek(1):
                return True
        except OSError:
            return True  # reset: readline reports it
        finally:
            connection.setblocking(True)
        while True:
            readable, _, _ = select.select([connection, self._closing_r], [], [])
            if connection in readable:
                return True
            with self.cond:
                if not self.closing:
                    continue  # a resume emptied the pipe meanwhile
            # Closing. A client still using this connection sends its next
            # request soon and is answered with Connection: close; one idle
            # for longer is closed (the keep-alive race any HTTP client
            # handles). A new connection's first request may be on the way.
            patience = IDLE_BEFORE_CLOSE if handler.served else FIRST_REQUEST_GRACE
            remaining = handler.last_active + patience - time.monotonic()
            if remaining > 0 and select.select([connection], [], [], remaining)[0]:
                return True
            with self.cond:
                if self.closing:
                    return False

    def accepted(self):
        with self.cond:
            self.open += 1

    def closed(self):
        with self.cond:
            self.open -= 1
            self.cond.notify_all()

    def request_started(self):
        with self.cond:
            self.in_flight += 1

    def request_finished(self, answered):
        with self.cond:
            self.in_flight -= 1
            self.served += answered
            self.cond.notify_all()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.last_active = time.monotonic()  # opened, or last answered
        self.served = 0

    def handle_one_request(self):
        connections = self.server.connections
        if not connections.await_request(self):
            self.close_connection = True
            return
        connections.request_started()
        self.raw_requestline = b""
        try:
            super().handle_one_request()
        finally:
            answered = bool(self.raw_requestline)  # not the client's close
            self.served += answered
            self.last_active = time.monotonic()
            connections.request_finished(answered)

    def do_GET(self):
        body = f"python worker {os.environ['CLUSTER2_WORKER_ID']} pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if self.server.connections.closing:
            self.send_header("Connection", "close")  # sets close_connection
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    """Handles the connections the accept loop gives it, one thread each."""

    def __init__(self, listener, connections):
        super().__init__(listener.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.connections = connections

    def shutdown_request(self, request):
        super().shutdown_request(request)
        self.connections.closed()


def serve(listener, server, connections):
    """Accepts connections on `listener` until a drain, not while paused."""
    while True:
        with connections.cond:
            if connections.draining:
                connections.accepting = False
                connections.cond.notify_all()
                return
            if connections.accepting != (not connections.paused):
                connections.accepting = not connections.paused
                connections.cond.notify_all()
            accepting = connections.accepting
        readable, _, _ = select.select([listener, connections.wake_r] if accepting
                                       else [connections.wake_r], [], [])
        if connections.wake_r in readable:
            try:
                os.read(connections.wake_r, 512)
            except BlockingIOError:
                pass
            continue  # look at the state again before accepting
        try:
            # Every worker is woken for each connection and only one wins it.
            connection, address = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        connection.setblocking(True)
        connections.accepted()
        server.process_request(connection, address)


def open_debugger(request):
    """Opens the debugger the master asks for; returns a DebuggerOpened."""
    opened = session_pb2.DebuggerOpened()
    if request.protocol != "debugpy":
        opened.error = f"this worker offers debugpy only, not {request.protocol!r}"
        return opened
    try:
        import debugpy
    except ImportError as error:
        opened.error = f"cannot import debugpy ({error}): install python3-debugpy"
        return opened
    try:
        host, port = debugpy.listen((request.host, request.port))
    except Exception as error:  # debugpy raises RuntimeError, OSError, ...
        opened.error = f"debugpy.listen(({request.host!r}, {request.port})) failed: {error}"
        return opened
    opened.url = f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
    return opened


def main():
    listener = socket.socket(fileno=3)  # LISTEN_FDS=1: the shared port
    # Every worker is woken for each connection and only one wins it: a
    # blocking accept would hang the losers.
    listener.setblocking(False)
    connections = Connections()
    server = Server(listener, connections)

    outbox = queue.Queue()
    channel = grpc.insecure_channel(os.environ["CLUSTER2_MASTER"])
    replies = session_grpc.WorkerSessionStub(channel).Attach(iter(outbox.get, None))
    outbox.put(session_pb2.WorkerMessage(hello=session_pb2.Hello(
        worker_id=int(os.environ["CLUSTER2_WORKER_ID"]),
        token=os.environ["CLUSTER2_WORKER_TOKEN"], pid=os.getpid(),
        client=f"python-grpc/{grpc.__version__}", debug_protocols=["debugpy"])))

    welcome = next(replies).welcome
    interval = welcome.heartbeat_interval.ToTimedelta().total_seconds() or 5.0
    drained = threading.Event()
    grace = [10.0]  # seconds: a drain's, or ours for SIGTERM or a lost session

    level = struct_pb2.Value(number_value=0)
    sequence = [0]

    def answer_status(request_id, value=None):
        if value is not None:
            level.CopyFrom(value)
        outbox.put(session_pb2.WorkerMessage(status_answer=session_pb2.StatusAnswer(
            id=request_id, value=level)))

    def answer_debugger(request):
        outbox.put(session_pb2.WorkerMessage(debugger_opened=open_debugger(request)))

    def read_master():
        try:
            for message in replies:
                if message.HasField("drain"):
                    grace[0] = message.drain.grace.ToTimedelta().total_seconds() or grace[0]
                    break
                if message.HasField("pause"):
                    connections.pause()
                    outbox.put(session_pb2.WorkerMessage(ack=session_pb2.Ack(
                        what=session_pb2.Ack.WHAT_PAUSED)))
                elif message.HasField("resume"):
                    connections.resume()
                    outbox.put(session_pb2.WorkerMessage(ack=session_pb2.Ack(
                        what=session_pb2.Ack.WHAT_RESUMED)))
                elif message.HasField("open_debugger"):
                    # debugpy.listen takes about half a second (it starts its
                    # adapter): keep answering the master meanwhile.
                    threading.Thread(target=answer_debugger, args=(message.open_debugger,),
                                     daemon=True).start()
                elif message.HasField("event") and message.event.name == "ping":
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
        connections.drain()

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
            with connections.cond:
                heartbeat.heartbeat.requests_total = connections.served
                heartbeat.heartbeat.requests_in_flight = connections.in_flight
            heartbeat.heartbeat.sent_at.GetCurrentTime()
            outbox.put(heartbeat)

    # SIGTERM drains too (the handler runs on the main thread, in serve()).
    signal.signal(signal.SIGTERM, lambda *_: connections.drain())
    threading.Thread(target=read_master, daemon=True).start()
    threading.Thread(target=beat, daemon=True).start()
    outbox.put(session_pb2.WorkerMessage(status_registration=session_pb2.StatusRegistration(
        name="python-level", registered=True)))
    outbox.put(session_pb2.WorkerMessage(ready=session_pb2.Ready()))
    serve(listener, server, connections)
    # Drained: nothing new comes in; requests in flight finish (their
    # answers close their connections), idle keep-alive connections close.
    # Requests still running when the grace is nearly over are cut off.
    connections.await_closed(time.monotonic() + max(grace[0] - 0.5, 0.5))
    drained.set()
    outbox.put(None)  # closes our side of the session
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
