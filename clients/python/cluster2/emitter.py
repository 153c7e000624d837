"""cluster2.emitter: events between the processes of a cluster, the
original's `require('cluster2').emitter`.

    from cluster2 import emitter
    emitter.on("ping", lambda x: emitter.emit("pong", x, targets=["master"]))
    result = emitter.emit("reload", {"what": "config"}, targets=["workers"])

Listeners get the event's arguments (JSON values) as positional arguments.
Targets are "self", "master", "workers", "cluster" (every process of every
host on the emitter bridge) or a worker's pid; None is the
original's default: in a worker itself and the master; elsewhere the master
and every worker. emit() returns once the master routed the event (an
EmitResult: `delivered`, `unknown_pids`) or raises cluster2.Error with the
gRPC code: INVALID_ARGUMENT (empty or reserved "cluster2:" name, a bad
target, arguments that are no JSON), RESOURCE_EXHAUSTED (arguments over
1 MiB), UNAVAILABLE (no session), DEADLINE_EXCEEDED (no answer in `timeout`).

Where events travel:
- in a worker: on its WorkerSession (numbered Events, one EmitReply each);
  listeners run in order on the library's dispatch thread;
- in another process of the cluster (CLUSTER2_MASTER set, or
  cluster2.connect(address)): emit() calls Emitter.Emit; listeners hear what
  the master's listeners hear (an Emitter.Subscribe stream, opened with the
  first listener) on a thread of their own;
- with no cluster at all: this process is the whole cluster; emit() runs
  the listeners at once on the caller's thread.

Thread-safe.
"""
import os
import threading
import time
import traceback

import grpc

from cluster2 import _channels
from cluster2 import values as _values
from cluster2 import worker as _worker
from cluster2._errors import Error, from_rpc_error
from cluster2.worker import EmitResult

RESERVED_PREFIX = "cluster2:"
DEFAULT_TIMEOUT = 5.0


def _target(target):
    """A Target proto for "self", "master", "workers", "cluster" (every host
    sharing the emitter bridge) or a pid."""
    from cluster2.v1 import emitter_pb2
    if target in ("self", "master", "workers", "cluster"):
        return emitter_pb2.Target(**{target: True})
    if isinstance(target, int) and not isinstance(target, bool) and target > 0:
        return emitter_pb2.Target(pid=target)
    raise Error(grpc.StatusCode.INVALID_ARGUMENT,
                f"a target is 'self', 'master', 'workers', 'cluster' or a pid, not {target!r}")


class _Listener:
    __slots__ = ("handler", "once")

    def __init__(self, handler, once):
        self.handler = handler
        self.once = once


class Emitter:
    """Listeners by event name and the way to the master (see the module)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._listeners = {}  # name -> [_Listener], in registration order
        self._subscription = None  # the Subscribe call outside a worker

    # --- listeners

    def on(self, name, handler=None):
        """Calls handler(*args) for every event `name` this process gets.
        Returns the handler; without one, a decorator."""
        if handler is None:
            return lambda handler: self.on(name, handler)
        self._add(name, _Listener(handler, False))
        return handler

    def once(self, name, handler=None):
        """As on(), for the next event `name` only."""
        if handler is None:
            return lambda handler: self.once(name, handler)
        self._add(name, _Listener(handler, True))
        return handler

    def remove_listener(self, name, handler):
        """Removes the first registration of `handler` for `name` (a pending
        once() included). Returns whether there was one."""
        with self._lock:
            listeners = self._listeners.get(name, [])
            for index, listener in enumerate(listeners):
                if listener.handler == handler:
                    del listeners[index]
                    return True
        return False

    def remove_all_listeners(self, name=None):
        """Removes the listeners of `name`, or of every event."""
        with self._lock:
            if name is None:
                self._listeners.clear()
            else:
                self._listeners.pop(name, None)

    def listeners(self, name):
        """The handlers of `name`, in the order they run."""
        with self._lock:
            return [listener.handler for listener in self._listeners.get(name, [])]

    def _add(self, name, listener):
        with self._lock:
            self._listeners.setdefault(name, []).append(listener)
        self._maybe_subscribe()

    def dispatch(self, name, args):
        """Runs the listeners of `name` with `args` (JSON values) in order on
        this thread; returns how many ran. A listener's exception is printed
        and the others run."""
        with self._lock:
            listeners = list(self._listeners.get(name, ()))
            remaining = [item for item in self._listeners.get(name, ()) if not item.once]
            if name in self._listeners:
                self._listeners[name] = remaining
        for listener in listeners:
            try:
                listener.handler(*args)
            except Exception:
                traceback.print_exc()
        return len(listeners)

    def deliver(self, event):
        """Dispatches an emitter_pb2.Event that arrived from the master."""
        self.dispatch(event.name, _values.from_values(event.args))

    # --- emitting

    def emit(self, name, *args, targets=None, timeout=DEFAULT_TIMEOUT):
        """Emits event `name` with `args` to `targets` (see the module);
        returns an EmitResult or raises cluster2.Error."""
        from cluster2.v1 import emitter_pb2
        if not isinstance(name, str) or not name or name.startswith(RESERVED_PREFIX):
            raise Error(grpc.StatusCode.INVALID_ARGUMENT,
                        f"an event name is a non-empty str not starting with "
                        f"{RESERVED_PREFIX!r}: {name!r}")
        if isinstance(targets, (str, int)):
            targets = [targets]
        target_protos = [_target(target) for target in targets or ()]
        try:
            arg_values = _values.to_values(args)
        except TypeError as error:
            raise Error(grpc.StatusCode.INVALID_ARGUMENT, f"event {name!r}: {error}") from None
        event = emitter_pb2.Event(name=name, args=arg_values, targets=target_protos)
        worker = _worker.current()
        if worker is not None:
            return worker.emit(event, timeout)
        if _in_cluster():
            stub = emitter_pb2_grpc().EmitterStub(_channels.channel(_channels.master_address()))
            try:
                reply = stub.Emit(emitter_pb2.EmitRequest(event=event), timeout=timeout,
                                  wait_for_ready=True)
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None
            return EmitResult(reply.delivered, reply.unknown_pids)
        return self._emit_locally(name, args, targets)

    def to(self, *targets):
        """emitter.to("master", 1234).emit(name, *args): emit() with these
        targets (the original's `to(targets).emit`)."""
        if len(targets) == 1 and isinstance(targets[0], (list, tuple)):
            targets = tuple(targets[0])
        emitter = self

        class _Targeted:
            def emit(self, name, *args, timeout=DEFAULT_TIMEOUT):
                return emitter.emit(name, *args, targets=list(targets), timeout=timeout)
        return _Targeted()

    def _emit_locally(self, name, args, targets):
        """No cluster: this process is master, self and the only worker."""
        me = {"self", "master", "workers", "cluster", os.getpid()}
        unknown = [t for t in targets or () if isinstance(t, int) and t != os.getpid()]
        if targets and not any(t in me for t in targets):
            return EmitResult(0, unknown)
        self.dispatch(name, list(args))
        return EmitResult(1, unknown)

    # --- outside a worker: hear what the master hears

    def _maybe_subscribe(self):
        if _worker.is_worker() or _worker.current() is not None or not _in_cluster():
            return
        with self._lock:
            if self._subscription is not None:
                return
            self._subscription = threading.Thread(target=self._subscribe,
                                                  name="cluster2-subscribe", daemon=True)
        self._subscription.start()

    def _subscribe(self):
        from cluster2.v1 import emitter_pb2
        delay = 0.1
        while True:
            stub = emitter_pb2_grpc().EmitterStub(_channels.channel(_channels.master_address()))
            try:
                for event in stub.Subscribe(emitter_pb2.SubscribeRequest(), wait_for_ready=True):
                    delay = 0.1
                    self.deliver(event)
            except grpc.RpcError:
                pass
            time.sleep(delay)  # the master went away: try again, backing off
            delay = min(delay * 2, 2.0)


def _in_cluster():
    try:
        _channels.master_address()
        return True
    except Error:
        return False


def emitter_pb2_grpc():
    from cluster2.v1 import emitter_pb2_grpc as module
    return module


# The process's emitter and its methods as module functions.
default = Emitter()
on = default.on
once = default.once
remove_listener = default.remove_listener
remove_all_listeners = default.remove_all_listeners
listeners = default.listeners
emit = default.emit
to = default.to
