"""cluster2.status: named values any process registers and anyone reads,
gathered by the master (proto/cluster2/v1/status.proto), the original's
`require('cluster2').status`.

    from cluster2 import status
    level = {"value": 0}
    status.register("level", lambda: level["value"],
                    lambda value: level.update(value=value))
    status.get_status("level")     # [StatusEntry(pid=..., worker_id=0, value=0, error='')]
    status.set_status("level", 3)  # every registrant's update, then its view

register() works in a worker (the registration travels on its session,
sent when it attaches if registered before); the view and update run on the
library's dispatch thread and take/return JSON values. statuses(),
get_status() and set_status() call the master's Status service
(CLUSTER2_MASTER) from any process. Errors are cluster2.Error: NOT_FOUND
for a name nobody registered, UNAVAILABLE without a master,
FAILED_PRECONDITION outside a cluster.

Thread-safe.
"""
import threading

import grpc

from cluster2 import _channels
from cluster2 import values as _values
from cluster2._errors import Error, from_rpc_error

_lock = threading.Lock()
_registry = {}  # name -> (view, update)
_session = None  # the attached Worker


class StatusEntry:
    """One registrant's answer: its pid, its worker slot (None for the
    master), its value (JSON), or `error` if it failed or did not answer."""

    __slots__ = ("pid", "worker_id", "value", "error")

    def __init__(self, pid, worker_id, value, error):
        self.pid = pid
        self.worker_id = worker_id
        self.value = value
        self.error = error

    def __repr__(self):
        return (f"StatusEntry(pid={self.pid}, worker_id={self.worker_id}, "
                f"value={self.value!r}, error={self.error!r})")


def register(name, view, update=None):
    """Registers status `name` in this process: view() returns its value,
    update(value) (optional) changes it. Registering a name again replaces
    its functions. Returns `name`."""
    if not isinstance(name, str) or not name:
        raise Error(grpc.StatusCode.INVALID_ARGUMENT, f"a status name is a non-empty str: {name!r}")
    with _lock:
        _registry[name] = (view, update)
        if _session is not None:
            _session.register_status(name, True)
    return name


def unregister(name):
    """Unregisters `name`; returns whether it was registered here."""
    with _lock:
        found = _registry.pop(name, None) is not None
        if found and _session is not None:
            _session.register_status(name, False)
    return found


def registered():
    """The names this process registered, sorted."""
    with _lock:
        return sorted(_registry)


def statuses(timeout=5.0):
    """The names registered anywhere in the cluster, sorted."""
    from cluster2.v1 import status_pb2
    response = _call("ListStatuses", status_pb2.ListStatusesRequest(), timeout)
    return list(response.names)


def get_status(name, wait=1.0):
    """One StatusEntry per registering process, gathered within `wait`
    seconds (a process that does not answer is an entry with `error`)."""
    from cluster2.v1 import status_pb2
    request = status_pb2.GetStatusRequest(name=name)
    request.deadline.FromNanoseconds(int(wait * 1e9))
    return _entries(_call("GetStatus", request, wait + 5.0))


def set_status(name, value, wait=1.0):
    """Calls every registrant's update with `value` (JSON); returns their
    values after it, one StatusEntry each."""
    from cluster2.v1 import status_pb2
    request = status_pb2.SetStatusRequest(name=name, value=_values.to_value(value))
    request.deadline.FromNanoseconds(int(wait * 1e9))
    return _entries(_call("SetStatus", request, wait + 5.0))


def _call(method, request, timeout):
    from cluster2.v1 import status_pb2_grpc
    stub = status_pb2_grpc.StatusStub(_channels.channel(_channels.master_address()))
    try:
        return getattr(stub, method)(request, timeout=timeout, wait_for_ready=True)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


def _entries(response):
    return [StatusEntry(entry.pid, entry.worker_id if entry.HasField("worker_id") else None,
                        _values.from_value(entry.value) if not entry.error else None, entry.error)
            for entry in response.entries]


# --- the worker side (called by cluster2's session glue)

def attached(worker):
    """Sends this process's registrations on `worker`'s new session."""
    global _session
    with _lock:
        _session = worker
        for name in _registry:
            worker.register_status(name, True)


def answer(worker, kind, request):
    """Answers a StatusQuery ("status_query") or StatusUpdate
    ("status_update") from the master, on the dispatch thread."""
    with _lock:
        functions = _registry.get(request.name)
    if functions is None:
        worker.answer_status(request.id, error=f"status {request.name!r} is not registered here")
        return
    view, update = functions
    try:
        if kind == "status_update" and update is not None:
            update(_values.from_value(request.value))
        value = _values.to_value(view())
    except Exception as error:  # the app's view or update failed
        worker.answer_status(request.id, error=f"{type(error).__name__}: {error}")
        return
    worker.answer_status(request.id, value)
