"""Worker: this process's WorkerSession with its master.

A worker is started by cluster2-master with its service socket on fd 3
(LISTEN_FDS=1) and CLUSTER2_* variables. Worker.attach() opens the session
(Hello, then the master's Welcome), after which the app serves on
listen_socket(), calls ready(), reports its requests (record_request) and
stops when told to drain (on_drain / wait_for_drain). Heartbeats go out on
the library's thread at the interval the master asks for. If the session is
lost, the worker drains as if the master had asked (docs/api.md).

Threads, each named: "cluster2-session" reads the master's messages and
answers emit replies inline; "cluster2-control" runs pause/resume/drain
callbacks in order; "cluster2-dispatch" runs event listeners, status views
and updates in order (they may emit and wait); "cluster2-heartbeat" sends
the beats. gRPC consumes the outgoing queue on its own thread. Every public
method is thread-safe.
"""
import bisect
import os
import queue
import resource
import socket
import threading
import time

import grpc

from cluster2 import _errors
from cluster2._errors import Error
from cluster2.v1 import worker_session_pb2 as session_pb2
from cluster2.v1 import worker_session_pb2_grpc as session_grpc

VERSION = "1.0.0"
CLIENT = f"cluster2-python/{VERSION}"
# The grace a worker gives itself when the session is lost or on SIGTERM.
LOST_SESSION_GRACE = 10.0
# The bucket bounds of Heartbeat.latency, in seconds: the proto's recommended
# ones, which the master aggregates as they are (others it maps onto these).
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_current = None
_current_lock = threading.Lock()


def current():
    """The attached Worker of this process, or None."""
    return _current


def is_worker(environ=None):
    """Whether this process was started by a cluster2 master as a worker:
    CLUSTER2_MASTER and CLUSTER2_WORKER_TOKEN are set and LISTEN_FDS=1 is
    meant for this pid (LISTEN_PID unset or ours, or our parent's when the
    master started us under a debugger: CLUSTER2_UNDER_DEBUGGER=1)."""
    environ = os.environ if environ is None else environ
    listen_pid = environ.get("LISTEN_PID")
    ours = (not listen_pid or listen_pid == str(os.getpid()) or
            (environ.get("CLUSTER2_UNDER_DEBUGGER") == "1" and listen_pid == str(os.getppid())))
    return bool(environ.get("CLUSTER2_MASTER") and environ.get("CLUSTER2_WORKER_TOKEN") and
                environ.get("LISTEN_FDS") == "1" and ours)


def _percentile(samples, fraction):
    """The C++ library's percentile: the sample at fraction*n (0 if none)."""
    if not samples:
        return 0.0
    samples.sort()
    return samples[min(len(samples) - 1, int(fraction * len(samples)))]


def _process_figures():
    """rss_bytes, threads, open_fds of this process from /proc; cpu seconds."""
    rss = threads = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    try:
        fds = len(os.listdir("/proc/self/fd")) - 1  # the listing's own fd
    except OSError:
        fds = 0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return rss, threads, max(fds, 0), usage.ru_utime + usage.ru_stime


def _process_started_monotonic():
    """When this process started, on time.monotonic()'s clock (CLOCK_MONOTONIC
    counts from boot, as /proc/self/stat's start time does)."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return time.monotonic()


class EmitResult:
    """What the master did with an emitted event: `delivered` processes got
    it; `unknown_pids` are target pids that are no workers."""

    __slots__ = ("delivered", "unknown_pids")

    def __init__(self, delivered, unknown_pids):
        self.delivered = delivered
        self.unknown_pids = list(unknown_pids)

    def __repr__(self):
        return f"EmitResult(delivered={self.delivered}, unknown_pids={self.unknown_pids})"

    def __eq__(self, other):
        return (isinstance(other, EmitResult) and self.delivered == other.delivered and
                self.unknown_pids == other.unknown_pids)


class Worker:
    """This worker process's session with its master. Create with attach()."""

    def __init__(self, channel, environ, client, on_message):
        self._channel = channel
        self.id = int(environ["CLUSTER2_WORKER_ID"])
        self.pid = os.getpid()
        self._token = environ["CLUSTER2_WORKER_TOKEN"]
        self.master_address = environ["CLUSTER2_MASTER"]
        self.cluster_name = environ.get("CLUSTER2_NAME", "")
        self.cache_address = ""
        self.heartbeat_interval = 5.0
        self._on_message = on_message  # (kind, message) -> None, on the dispatcher
        self._outbox = queue.SimpleQueue()
        # Reentrant: drain() may run in a signal handler on a thread that
        # holds it.
        self._lock = threading.RLock()
        self._welcomed = threading.Event()
        self._welcome_received = False
        self._ended = threading.Event()
        self._closed = False
        self._ready_sent = False
        self._session_error = None
        self._drain = threading.Event()
        self._drain_grace = LOST_SESSION_GRACE
        self._drain_callbacks = []
        self._pause_callbacks = None
        self._sequence = 0
        self._pending = {}  # sequence -> [threading.Event, reply]
        self._stats_lock = threading.Lock()
        self._requests_total = 0
        self._in_flight = 0
        self._latencies = []
        # Since the process started, never reset: a lost beat loses nothing.
        self._latency_counts = [0] * (len(LATENCY_BOUNDS) + 1)
        self._latency_sum = 0.0
        self._started = _process_started_monotonic()
        self._listener = None
        self._control = queue.SimpleQueue()
        self._dispatch = queue.SimpleQueue()
        self._call = session_grpc.WorkerSessionStub(channel).Attach(
            iter(self._outbox.get, None))

    # --- life cycle

    @classmethod
    def attach(cls, client=CLIENT, attach_timeout=10.0, environ=None, on_message=None):
        """Attaches to the master named in the environment and waits for its
        Welcome. Error FAILED_PRECONDITION if this process is not a worker
        (is_worker()), UNAVAILABLE if the master refuses or cannot be
        reached, DEADLINE_EXCEEDED after `attach_timeout` seconds.
        `on_message(kind, message)` receives events and status requests on
        the dispatcher thread (the package's emitter and status do)."""
        global _current
        environ = os.environ if environ is None else environ
        if not is_worker(environ):
            raise Error(grpc.StatusCode.FAILED_PRECONDITION,
                        "not a cluster2 worker (no CLUSTER2_MASTER, CLUSTER2_WORKER_TOKEN "
                        "or LISTEN_FDS=1 for this pid)")
        channel = grpc.insecure_channel(environ["CLUSTER2_MASTER"])
        worker = cls(channel, environ, client, on_message)
        worker._outbox.put(session_pb2.WorkerMessage(hello=session_pb2.Hello(
            worker_id=worker.id, token=worker._token, pid=worker.pid, client=client,
            debug_protocols=["debugpy"])))
        threading.Thread(target=worker._read, name="cluster2-session", daemon=True).start()
        if not worker._welcomed.wait(attach_timeout):
            worker._call.cancel()
            channel.close()
            raise Error(grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"no Welcome from {worker.master_address} in {attach_timeout} s")
        if not worker._welcome_received:
            channel.close()
            raise Error(grpc.StatusCode.UNAVAILABLE,
                        f"the master refused the session: {worker._session_error}")
        threading.Thread(target=worker._run_queue, args=(worker._control,),
                         name="cluster2-control", daemon=True).start()
        threading.Thread(target=worker._run_queue, args=(worker._dispatch,),
                         name="cluster2-dispatch", daemon=True).start()
        threading.Thread(target=worker._beat, name="cluster2-heartbeat", daemon=True).start()
        # The socket is ours now: children must not take LISTEN_FDS for theirs.
        for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            environ.pop(name, None)
        with _current_lock:
            _current = worker
        return worker

    def close(self):
        """Closes the session (the master then expects the process to exit).
        Idempotent."""
        global _current
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._outbox.put(None)  # half-closes our side
        # The master ends the stream once it read ours: wait a little for it
        # so that our last messages are not cut off.
        self._ended.wait(2.0)
        self._channel.close()
        with _current_lock:
            if _current is self:
                _current = None

    def listen_socket(self):
        """The service socket (fd 3), non-blocking, owned by this process.
        The same object on every call."""
        with self._lock:
            if self._listener is None:
                self._listener = socket.socket(fileno=3)
                # With balance=shared every worker is woken for each
                # connection and only one wins it: a blocking accept would
                # hang the losers.
                self._listener.setblocking(False)
            return self._listener

    def ready(self):
        """Tells the master this worker serves. Idempotent."""
        with self._lock:
            if self._ready_sent:
                return
            self._ready_sent = True
        self._send(session_pb2.WorkerMessage(ready=session_pb2.Ready()))

    # --- drain and pause

    def on_drain(self, callback):
        """Registers callback(grace_seconds), run once on the control thread
        when the master asks this worker to drain, the session is lost, or
        drain() is called. It must not block long. Runs at once (on the
        caller's thread) if the drain was requested already."""
        with self._lock:
            if not self._drain.is_set():
                self._drain_callbacks.append(callback)
                return
        callback(self._drain_grace)

    def drain(self, grace=LOST_SESSION_GRACE):
        """Starts the drain from inside the process (SIGTERM does). Safe to
        call more than once; only the first grace counts."""
        self._start_drain(grace)

    def wait_for_drain(self, timeout=None):
        """Blocks until a drain is requested; returns its grace in seconds,
        or None after `timeout` seconds."""
        if not self._drain.wait(timeout):
            return None
        return self._drain_grace

    @property
    def draining(self):
        return self._drain.is_set()

    def on_pause(self, pause, resume):
        """Registers pause() and resume(), run on the control thread when the
        master asks this worker to stop accepting new connections (and to
        accept again); each is confirmed (Ack) when it returns. A worker
        that registers none cannot be paused."""
        self._pause_callbacks = (pause, resume)

    # --- request figures

    def record_request(self, latency):
        """Reports one completed request and its latency in seconds; the
        heartbeats carry the total, p50/p99 since the previous beat and the
        latency histogram since the process started."""
        with self._stats_lock:
            self._requests_total += 1
            self._latencies.append(latency)
            # bisect_left: a latency equal to a bound counts in that bound's
            # bucket (at most bounds[i]); above the last, in the extra one.
            self._latency_counts[bisect.bisect_left(LATENCY_BOUNDS, latency)] += 1
            self._latency_sum += latency

    def set_requests_in_flight(self, count):
        """Reports how many requests are in flight now."""
        with self._stats_lock:
            self._in_flight = count

    # --- used by cluster2.emitter and cluster2.status

    def emit(self, event, timeout):
        """Sends `event` (an emitter_pb2.Event; its sequence is set here) and
        waits for the master's EmitReply. Returns an EmitResult; raises Error
        (INVALID_ARGUMENT, RESOURCE_EXHAUSTED from the master; UNAVAILABLE
        without a session; DEADLINE_EXCEEDED after `timeout` seconds)."""
        waiter = [threading.Event(), None]
        with self._lock:
            if self._ended.is_set() or self._closed:
                raise Error(grpc.StatusCode.UNAVAILABLE, "the session with the master ended")
            self._sequence += 1
            sequence = event.sequence = self._sequence
            self._pending[sequence] = waiter
            # Under the lock: the wire order is the sequence order.
            self._outbox.put(session_pb2.WorkerMessage(event=event))
        if not waiter[0].wait(timeout):
            with self._lock:
                self._pending.pop(sequence, None)
            raise Error(grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"no answer from the master for event {event.name!r} in {timeout} s")
        reply = waiter[1]
        if isinstance(reply, Error):
            raise reply
        if reply.error:
            code = _errors.code_from_number(reply.error_code or grpc.StatusCode.INVALID_ARGUMENT.value[0])
            raise Error(code, reply.error)
        return EmitResult(reply.delivered, reply.unknown_pids)

    def register_status(self, name, registered=True):
        """Tells the master this worker (un)registers status `name`."""
        self._send(session_pb2.WorkerMessage(status_registration=session_pb2.StatusRegistration(
            name=name, registered=registered)))

    def answer_status(self, request_id, value=None, error=""):
        """Answers a StatusQuery/StatusUpdate: `value` (a struct_pb2.Value) or
        `error`."""
        answer = session_pb2.StatusAnswer(id=request_id, error=error)
        if value is not None and not error:
            answer.value.CopyFrom(value)
        self._send(session_pb2.WorkerMessage(status_answer=answer))

    # --- internals

    def _send(self, message):
        with self._lock:
            if not self._closed:
                self._outbox.put(message)

    def _start_drain(self, grace):
        with self._lock:
            if self._drain.is_set():
                return
            self._drain_grace = grace
            self._drain.set()
            callbacks, self._drain_callbacks = self._drain_callbacks, []
        for callback in callbacks:
            self._control.put(lambda callback=callback: callback(grace))

    def _run_queue(self, work):
        while True:
            job = work.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a user's callback: report, keep serving
                import traceback
                traceback.print_exc()

    def _read(self):
        try:
            for message in self._call:
                kind = message.WhichOneof("kind")
                if kind == "welcome":
                    welcome = message.welcome
                    self.heartbeat_interval = (
                        welcome.heartbeat_interval.ToTimedelta().total_seconds() or 5.0)
                    self.cluster_name = welcome.cluster_name or self.cluster_name
                    self.cache_address = welcome.cache_address
                    self._welcome_received = True
                    self._welcomed.set()
                elif kind == "emit_reply":
                    with self._lock:
                        waiter = self._pending.pop(message.emit_reply.sequence, None)
                    if waiter is not None:
                        waiter[1] = message.emit_reply
                        waiter[0].set()
                elif kind == "drain":
                    grace = message.drain.grace.ToTimedelta().total_seconds()
                    self._start_drain(grace or LOST_SESSION_GRACE)
                elif kind == "pause":
                    self._control.put(lambda: self._pause_or_resume(0, session_pb2.Ack.WHAT_PAUSED))
                elif kind == "resume":
                    self._control.put(lambda: self._pause_or_resume(1, session_pb2.Ack.WHAT_RESUMED))
                elif kind == "open_debugger":
                    # debugpy.listen takes about half a second (it starts its
                    # adapter): keep answering the master meanwhile.
                    threading.Thread(target=self._open_debugger, args=(message.open_debugger,),
                                     name="cluster2-debugger", daemon=True).start()
                elif kind in ("event", "status_query", "status_update") and self._on_message:
                    self._dispatch.put(lambda kind=kind, message=getattr(message, kind):
                                       self._on_message(kind, message))
        except grpc.RpcError as error:
            self._session_error = _errors.from_rpc_error(error)
        else:
            self._session_error = Error(grpc.StatusCode.UNAVAILABLE, "the master closed the session")
        self._ended.set()
        self._welcomed.set()  # attach() sees the error
        with self._lock:
            pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter[1] = Error(grpc.StatusCode.UNAVAILABLE, "the session with the master ended")
            waiter[0].set()
        if not self._closed:
            self._start_drain(LOST_SESSION_GRACE)

    def _pause_or_resume(self, which, what):
        if self._pause_callbacks is None:
            return  # cannot pause: the master's Pause times out
        self._pause_callbacks[which]()
        self._send(session_pb2.WorkerMessage(ack=session_pb2.Ack(what=what)))

    def _open_debugger(self, request):
        self._send(session_pb2.WorkerMessage(debugger_opened=open_debugger(request)))

    def _beat(self):
        scheduled = time.monotonic()
        while True:
            interval = self.heartbeat_interval
            scheduled += interval
            if self._ended.wait(max(scheduled - time.monotonic(), 0)) or self._closed:
                return
            now = time.monotonic()
            message = session_pb2.WorkerMessage()
            beat = message.heartbeat
            rss, threads, fds, cpu = _process_figures()
            beat.rss_bytes = rss
            beat.threads = threads
            beat.open_fds = fds
            beat.cpu_time.FromNanoseconds(int(cpu * 1e9))
            beat.uptime.FromNanoseconds(int(max(now - self._started, 0) * 1e9))
            with self._stats_lock:
                latencies, self._latencies = self._latencies, []
                beat.requests_total = self._requests_total
                beat.requests_in_flight = self._in_flight
                beat.latency.counts.extend(self._latency_counts)
                beat.latency.sum_seconds = self._latency_sum
            beat.latency.bounds.extend(LATENCY_BOUNDS)
            beat.latency_p50.FromNanoseconds(int(_percentile(latencies, 0.5) * 1e9))
            beat.latency_p99.FromNanoseconds(int(_percentile(latencies, 0.99) * 1e9))
            beat.sent_at.GetCurrentTime()
            beat.lag.FromNanoseconds(int((now - scheduled) * 1e9))
            # A stalled process catches up with one beat, not a burst.
            if now - scheduled > interval:
                scheduled = now
            self._send(message)


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
