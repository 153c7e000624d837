"""cluster2 for Python: workers on python3-grpcio, the Python form of the
original cluster2's `require('cluster2')`.

    import cluster2

    class Hello(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self): ...

    if __name__ == "__main__":
        sys.exit(cluster2.listen(handler_class=Hello, port=8080, no_workers=2))

listen() is one call for both roles. Started from a shell, the script is the
master's launcher: it runs cluster2-master with the script itself as the
worker command. Started by the master, it is a worker: it serves on the
inherited socket (fd 3) with the session, heartbeats, pause and drain of
docs/api.md. Also: cluster2.emitter, cluster2.cache, cluster2.status,
cluster2.attach() for a server of your own, cluster2.Error.

The generated stubs of proto/cluster2/v1 (clients/python/gen_stubs.sh DIR)
join this package as cluster2.v1 from any sys.path entry.
"""
import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)  # cluster2.v1: the stubs

import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

try:
    import grpc  # noqa: E402,F401
    import google.protobuf  # noqa: E402,F401
except ImportError as error:  # a set-up problem: say which
    raise ImportError(
        f"cluster2 needs gRPC and protobuf for this Python ({error}): Debian's "
        "python3-grpcio and python3-protobuf with /usr/bin/python3") from error
try:
    import cluster2.v1.worker_session_pb2  # noqa: E402,F401
except ImportError as error:
    raise ImportError(
        "cluster2: the stubs cluster2.v1 are missing: run clients/python/gen_stubs.sh DIR "
        f"and put DIR on PYTHONPATH ({error})") from error

from cluster2 import cache, emitter, launcher, serving, status, values  # noqa: E402,F401
from cluster2 import worker as _worker  # noqa: E402
from cluster2._channels import set_master_address as connect  # noqa: E402,F401
from cluster2._errors import Error  # noqa: E402,F401
from cluster2.worker import EmitResult, Worker, is_worker  # noqa: E402,F401

__version__ = _worker.VERSION
# The original's idle socket timeout was 5 s; a keep-alive connection here
# may idle this long (seconds) before the worker closes it.
DEFAULT_IDLE_TIMEOUT = 60.0


def current_worker():
    """This process's attached Worker, or None."""
    return _worker.current()


def _route(kind, message):
    """The session's events and status requests to emitter and status."""
    worker = _worker.current()
    if kind == "event":
        emitter.default.deliver(message)
    elif worker is not None:
        status.answer(worker, kind, message)


def attach(attach_timeout=10.0):
    """Opens this worker's session (Worker.attach) with the package's
    emitter and status wired to it; returns the Worker. For an app that
    serves on worker.listen_socket() itself; listen() calls it."""
    worker = _worker.Worker.attach(attach_timeout=attach_timeout, on_message=_route)
    status.attached(worker)
    return worker


def listen(app=None, *, handler_class=None, serve=None, warm_up=None,
           idle_timeout=DEFAULT_IDLE_TIMEOUT, port=None, host=None, no_workers=None,
           name=None, run_dir=None, mon_port=None, config=None, config_file=None):
    """Runs this script as a cluster (see the module); returns the exit code
    for sys.exit().

    What a worker serves, exactly one of (the original's app/createServer):
      app: a WSGI application, served by wsgiref on the keep-alive-safe server;
      handler_class: an http.server.BaseHTTPRequestHandler subclass, served
        by the same server (HTTP/1.1 keep-alive if its protocol_version says);
      serve: serve(worker) for any other server: serve on
        worker.listen_socket(), call worker.ready(), return the exit code
        after worker.wait_for_drain() and the drain of your connections.
    warm_up(): runs in each worker before it accepts and reports ready.
    idle_timeout: seconds a keep-alive connection may idle (None: no limit).

    The master's configuration, used when this process starts the master
    (ignored in a worker): port, host, no_workers, name, run_dir, mon_port;
    config: any other ClusterConfig fields by their JSON names (or
    snake_case), nested as dicts, e.g. {"heartbeatInterval": 200,
    "nanny": {"tolerance": 3000}}; config_file: a JSON configuration file.

    TypeError for a wrong combination of options. cluster2.Error
    FAILED_PRECONDITION in a process of a cluster that is not a worker,
    NOT_FOUND without a cluster2-master binary, and as Worker.attach.
    """
    if sum(option is not None for option in (app, handler_class, serve)) != 1:
        raise TypeError("listen() takes exactly one of app, handler_class and serve")
    if handler_class is not None and not (isinstance(handler_class, type) and
                                          hasattr(handler_class, "handle_one_request")):
        raise TypeError("handler_class is an http.server.BaseHTTPRequestHandler subclass")
    if app is not None and not callable(app):
        raise TypeError("app is a WSGI application (a callable)")
    if not is_worker():
        if os.environ.get("CLUSTER2_MASTER"):
            raise Error(grpc.StatusCode.FAILED_PRECONDITION,
                        "listen() in a process of a cluster that is not its worker "
                        "(CLUSTER2_MASTER is set, LISTEN_FDS is not ours)")
        argv = launcher.master_argv(
            launcher.find_master(), launcher.worker_command(), config=config,
            config_file=config_file, port=port, host=host, no_workers=no_workers, name=name,
            run_dir=run_dir, mon_port=mon_port)
        return launcher.run_master(argv)
    worker = attach()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (the master's way to stop a worker without a session) and
        # SIGINT drain.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.drain())
    if serve is not None:
        try:
            return serve(worker)
        finally:
            worker.close()
    return _serve_http(worker, app, handler_class, warm_up, idle_timeout)


def _serve_http(worker, app, handler_class, warm_up, idle_timeout):
    """The worker role of listen() with the package's HTTP server."""
    listener = worker.listen_socket()
    connections = serving.Connections(idle_timeout=idle_timeout,
                                      on_request=worker.record_request,
                                      on_in_flight=worker.set_requests_in_flight)
    if app is not None:
        server = serving.Server(listener, serving.WSGIRequestHandler, connections, wsgi_app=app)
    else:
        server = serving.Server(listener, serving.tracking_handler(handler_class), connections)
    drain_started = [None]

    def drain(grace):
        drain_started[0] = (time.monotonic(), grace)
        connections.drain()
    worker.on_drain(drain)
    worker.on_pause(connections.pause, connections.resume)
    if warm_up is not None:
        warm_up()
    worker.ready()
    serving.serve(listener, server, connections)
    # Drained: nothing new comes in; requests in flight finish (their
    # answers close their connections), idle keep-alive connections close.
    # Requests still running when the grace is nearly over are cut off.
    began, grace = drain_started[0] or (time.monotonic(), _worker.LOST_SESSION_GRACE)
    connections.await_closed(began + max(grace - 0.5, 0.5))
    worker.close()
    return 0
