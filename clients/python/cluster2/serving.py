"""The keep-alive-safe HTTP server of a Python worker (stdlib http.server).

`Connections` tracks a worker's HTTP connections and whether it accepts;
`Server` serves one thread per connection on the inherited listening
socket; `serve()` is the accept loop. Pause and drain stop the accept loop,
finish the requests in flight (their answers say Connection: close), close
idle keep-alive connections, and (for a drain) let the process exit: no
request is lost, keep-alive connections included.

Handlers: any http.server.BaseHTTPRequestHandler subclass (wrapped with
`RequestTracking`), or a WSGI app through `WSGIRequestHandler` (wsgiref's
handler on HTTP/1.1 keep-alive).

Threads: the accept loop (the caller of serve(), normally the main thread),
one thread per connection, and whoever calls pause/resume/drain (the
session's control thread). They share `Connections` under its `cond`.
"""
import http.server
import os
import select
import sys
import threading
import time
import urllib.parse
import wsgiref.handlers

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

    Thread-safe: the accept loop, the handler threads and the session's
    control thread change it under `cond`. Optional callbacks, called on a
    handler's thread: `on_request(latency)` for each answered request,
    `on_in_flight(count)` under `cond` (in order) when the requests in
    flight change; neither may take `cond`'s users' locks.
    """

    def __init__(self, idle_timeout=None, on_request=None, on_in_flight=None):
        self.cond = threading.Condition()
        self.idle_timeout = idle_timeout  # seconds a keep-alive connection may idle
        self.on_request = on_request
        self.on_in_flight = on_in_flight
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
        close after their answer. Does not block: safe in a signal handler."""
        with self.cond:
            was_closing = self.closing
            self.draining = True
            self._changed(was_closing)

    def await_closed(self, deadline):
        """Waits until every connection is closed or `deadline` (monotonic).
        Returns whether they all closed."""
        with self.cond:
            return self.cond.wait_for(lambda: self.open == 0, deadline - time.monotonic())

    def await_request(self, handler):
        """Waits for the next request on `handler`'s connection. Returns True
        once its bytes (or the client's close) are there; False when the
        connection should close: idle while pausing or draining, or idle for
        `idle_timeout`."""
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
            timeout = None
            if self.idle_timeout is not None:
                timeout = handler.last_active + self.idle_timeout - time.monotonic()
                if timeout <= 0:
                    return False
            readable, _, _ = select.select([connection, self._closing_r], [], [], timeout)
            if connection in readable:
                return True
            if not readable:
                continue  # the idle timeout: checked above
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
            if self.on_in_flight is not None:
                self.on_in_flight(self.in_flight)

    def request_finished(self, answered, latency):
        with self.cond:
            self.in_flight -= 1
            self.served += answered
            if self.on_in_flight is not None:
                self.on_in_flight(self.in_flight)
            self.cond.notify_all()
        if answered and self.on_request is not None:
            self.on_request(latency)


class RequestTracking:
    """Mixin (first base) for a BaseHTTPRequestHandler subclass: waits for
    each request without blocking a pause or drain, counts requests and
    their latency, and answers Connection: close while closing."""

    def setup(self):
        super().setup()
        self.last_active = time.monotonic()  # opened, or last answered
        self.served = 0
        self._connection_header_sent = False

    def handle_one_request(self):
        connections = self.server.connections
        if not connections.await_request(self):
            self.close_connection = True
            return
        connections.request_started()
        self.raw_requestline = b""
        self._connection_header_sent = False
        started = time.monotonic()
        try:
            super().handle_one_request()
        finally:
            answered = bool(self.raw_requestline)  # not the client's close
            self.served += answered
            self.last_active = time.monotonic()
            connections.request_finished(answered, self.last_active - started)

    def send_header(self, keyword, value):
        if keyword.lower() == "connection":
            self._connection_header_sent = True
        super().send_header(keyword, value)

    def end_headers(self):
        if self.server.connections.closing and not self._connection_header_sent:
            self.send_header("Connection", "close")  # sets close_connection
        elif self.server.connections.closing:
            self.close_connection = True
        super().end_headers()


def tracking_handler(handler_class):
    """`handler_class` with RequestTracking mixed in (once)."""
    if issubclass(handler_class, RequestTracking):
        return handler_class
    return type(handler_class.__name__, (RequestTracking, handler_class), {})


class Server(http.server.ThreadingHTTPServer):
    """Handles the connections the accept loop gives it, one thread each.
    The app's handler class and state are reachable as in http.server
    (`self.server` in a handler); `self.server.connections` is ours."""

    def __init__(self, listener, handler_class, connections, wsgi_app=None):
        address = listener.getsockname()
        super().__init__(address[:2] if isinstance(address, tuple) else ("", 0),
                         handler_class, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.connections = connections
        self.wsgi_app = wsgi_app
        host, port = (address[:2] if isinstance(address, tuple) else ("", 0))
        self.server_name = host or "localhost"
        self.server_port = port

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
            # With balance=shared every worker is woken for each connection
            # and only one wins it.
            connection, address = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as error:  # EMFILE and the like: not fatal
            print(f"cluster2: accept failed: {error}", file=sys.stderr)
            select.select([connections.wake_r], [], [], 0.1)
            continue
        connection.setblocking(True)
        connections.accepted()
        server.process_request(connection, address)


class _BoundedReader:
    """wsgi.input: at most `length` bytes of `rfile` (the request body), so
    an app that reads "everything" does not read into the next request."""

    def __init__(self, rfile, length):
        self._rfile = rfile
        self.remaining = length

    def read(self, size=-1):
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self._rfile.read(size) if size else b""
        self.remaining -= len(data)
        return data

    def readline(self, size=-1):
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self._rfile.readline(size) if size else b""
        self.remaining -= len(data)
        return data

    def readlines(self, hint=-1):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


class _WSGIResponse(wsgiref.handlers.SimpleHandler):
    """wsgiref's handler for one request on a keep-alive connection: HTTP/1.1,
    Connection: close when the length is unknown or the worker closes."""

    http_version = "1.1"
    os_environ = {}  # not the process's environment (its worker token)

    def __init__(self, request_handler, stdin, environ):
        super().__init__(stdin, request_handler.wfile, sys.stderr, environ,
                         multithread=True, multiprocess=True)
        self.request_handler = request_handler
        self.server_software = request_handler.version_string()

    def cleanup_headers(self):
        super().cleanup_headers()
        handler = self.request_handler
        keep = ("Content-Length" in self.headers and not handler.close_connection and
                not handler.server.connections.closing and
                self.headers.get("Connection", "").lower() != "close" and
                self.environ["REQUEST_METHOD"] != "HEAD")
        if not keep:
            handler.close_connection = True
            if "Connection" in self.headers:
                del self.headers["Connection"]
            self.headers["Connection"] = "close"


class WSGIRequestHandler(RequestTracking, http.server.BaseHTTPRequestHandler):
    """Serves `server.wsgi_app` (PEP 3333) with wsgiref, keeping HTTP/1.1
    connections open between requests. Request bodies need Content-Length
    (a chunked body is refused with 411)."""

    protocol_version = "HTTP/1.1"

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._run_app
        raise AttributeError(name)

    def _environ(self):
        path, _, query = self.path.partition("?")
        environ = {
            "SERVER_NAME": self.server.server_name,
            "SERVER_PORT": str(self.server.server_port),
            "SERVER_PROTOCOL": self.request_version,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SCRIPT_NAME": "",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "REMOTE_ADDR": (self.client_address[0] if isinstance(self.client_address, tuple)
                            else ""),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": self.headers.get("Content-Length", ""),
        }
        for key, value in self.headers.items():
            key = key.replace("-", "_").upper()
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                continue
            name = "HTTP_" + key
            environ[name] = f"{environ[name]},{value}" if name in environ else value
        return environ

    def _run_app(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "a request body needs Content-Length")
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            self.close_connection = True
            return
        body = _BoundedReader(self.rfile, max(length, 0))
        _WSGIResponse(self, body, self._environ()).run(self.server.wsgi_app)
        if body.remaining:  # the app did not read its body: skip it
            while body.read(65536):
                pass

    def log_message(self, *args):
        pass
