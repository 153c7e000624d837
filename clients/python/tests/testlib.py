"""Shared pieces of the cluster2 Python package's tests: where the binaries,
the package and the stubs are, and a Cluster fixture around a real master.

Under Bazel (TEST_SRCDIR set) everything comes from the runfiles: the
binaries (//master, //cache_server, //cli), the package's sources and the
stubs of the :cluster2_stubs genrule. Outside Bazel the binaries come from
$CLUSTER2_BIN_DIR (cluster2-master, cluster2-cache, cluster2ctl side by
side; default <repo>/bazel-bin layout) and the stubs are generated into a
temporary directory with gen_stubs.sh.

Every process a test starts is killed by its pid in cleanup; run directories
are short paths under /tmp; ports are free loopback ports chosen at run time.
"""
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(HERE)  # clients/python

if os.environ.get("TEST_SRCDIR"):
    RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], os.environ.get("TEST_WORKSPACE", "cluster2"))
    MASTER = os.path.join(RUNFILES, "master/cluster2-master")
    CACHE = os.path.join(RUNFILES, "cache_server/cluster2-cache")
    CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
    PACKAGE_DIR = os.path.join(RUNFILES, "clients/python")
    STUBS = os.path.join(RUNFILES, "clients/python/stubs")
    sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
else:
    REPO = os.path.dirname(os.path.dirname(PACKAGE_DIR))
    BIN_DIR = os.environ.get("CLUSTER2_BIN_DIR")
    if BIN_DIR:
        MASTER, CACHE, CTL = (os.path.join(BIN_DIR, name) for name in
                              ("cluster2-master", "cluster2-cache", "cluster2ctl"))
    else:
        MASTER = os.path.join(REPO, "bazel-bin/master/cluster2-master")
        CACHE = os.path.join(REPO, "bazel-bin/cache_server/cluster2-cache")
        CTL = os.path.join(REPO, "bazel-bin/cli/cluster2ctl")
    STUBS = tempfile.mkdtemp(prefix="c2stubs-", dir="/tmp")
    atexit.register(shutil.rmtree, STUBS, True)
    subprocess.run([os.path.join(PACKAGE_DIR, "gen_stubs.sh"), STUBS], check=True)
    sys.path.insert(0, os.path.join(REPO, "tests/testing"))

sys.path[:0] = [PACKAGE_DIR, STUBS]
PYTHONPATH = f"{PACKAGE_DIR}:{STUBS}"
APP_WORKER = os.path.join(HERE, "app_worker.py")
if os.environ.get("TEST_SRCDIR"):
    APP_WORKER = os.path.join(RUNFILES, "clients/python/tests/app_worker.py")

import grpc  # noqa: E402
from cluster2.v1 import cluster_pb2, cluster_pb2_grpc, common_pb2  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, interval=0.02):
    """Polls `condition` until it is true or `timeout` seconds passed (for
    states the binaries offer no event for); returns its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def kill_pid(pid):
    """SIGKILLs `pid` if it still exists (it is one of ours)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def alive(pid):
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def http_get(port, path="/", timeout=10):
    """GET on a new connection; returns (status, body text, headers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        connection.close()


def http_json(port, path, timeout=10):
    status, body, _ = http_get(port, path, timeout)
    if status != 200:
        raise AssertionError(f"GET {path}: {status} {body}")
    return json.loads(body)


class Cluster:
    """A real cluster2-master running `command` (default: the test worker
    app) as `workers` workers on a free loopback port. Use as a context
    manager or call start()/stop(); every pid it saw is killed on stop."""

    def __init__(self, workers=2, command=None, flags=(), env=None, name=None):
        self.dir = tempfile.mkdtemp(prefix="c2p-", dir="/tmp")
        self.run_dir = f"{self.dir}/run"
        self.port = free_port()
        self.name = name or f"py{os.getpid()}-{os.path.basename(self.dir)[4:]}"
        self.workers_wanted = workers
        self.command = command or ["/usr/bin/python3", APP_WORKER]
        self.flags = list(flags)
        self.env = dict(os.environ, PYTHONPATH=PYTHONPATH, XDG_STATE_HOME=f"{self.dir}/state",
                        **(env or {}))
        for name in ("CLUSTER2_MASTER", "CLUSTER2_CACHE", "LISTEN_FDS", "LISTEN_PID"):
            self.env.pop(name, None)
        self.master = None
        self.channel = None
        self.seen_pids = set()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, ready_timeout=20):
        self.log = open(f"{self.dir}/master.log", "w+")
        self.master = subprocess.Popen(
            [MASTER, f"--noWorkers={self.workers_wanted}", f"--port={self.port}",
             "--host=127.0.0.1", "--monPort=0", f"--runDir={self.run_dir}", f"--name={self.name}",
             "--heartbeatInterval=200", "--nanny.tolerance=5000", "--stopTimeout=10000",
             *self.flags, "--", *self.command],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        socket_path = f"{self.run_dir}/master.sock"
        if not wait_until(lambda: os.path.exists(socket_path) or self.master.poll() is not None,
                          10) or self.master.poll() is not None:
            raise AssertionError("the master did not start:\n" + self.master_log())
        # A channel that finds no socket backs off for seconds: open it once
        # the socket exists.
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.cluster = cluster_pb2_grpc.ClusterStub(self.channel)
        if not wait_until(lambda: self.ready_count() == self.workers_wanted, ready_timeout):
            raise AssertionError(f"{self.workers_wanted} workers not ready:\n" + self.master_log())
        return self

    def stop(self):
        if self.channel is not None:
            self.channel.close()
        if self.master is not None:
            if self.master.poll() is None:
                self.master.kill()
            self.master.wait(timeout=10)
            self.log.close()
        # The workers die with the master (parent-death signal); make sure.
        for pid in self.seen_pids:
            kill_pid(pid)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def master_address(self):
        return f"unix:{self.run_dir}/master.sock"

    @property
    def cache_address(self):
        return f"unix:{self.run_dir}/cache.sock"

    def master_log(self):
        self.log.flush()
        with open(f"{self.dir}/master.log") as log:
            return log.read()

    def workers(self):
        listed = self.cluster.ListWorkers(cluster_pb2.ListWorkersRequest(), timeout=5).workers
        self.seen_pids.update(w.pid for w in listed if w.pid)
        return listed

    def ready_count(self):
        try:
            return sum(w.state == common_pb2.WORKER_STATE_READY for w in self.workers())
        except grpc.RpcError:
            return 0

    def ready_pids(self):
        return sorted(w.pid for w in self.workers() if w.state == common_pb2.WORKER_STATE_READY)

    def ctl(self, *args, timeout=30):
        """cluster2ctl ARGS against this cluster: the finished process."""
        return subprocess.run([CTL, "--run-dir", self.run_dir, *args], capture_output=True,
                              text=True, timeout=timeout, env=self.env)


class CacheServer:
    """cluster2-cache alone on a socket under a short /tmp directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="c2c-", dir="/tmp")
        self.address = f"unix:{self.dir}/cache.sock"

    def __enter__(self):
        self.log = open(f"{self.dir}/cache.log", "w+")
        self.process = subprocess.Popen([CACHE, f"--socket={self.dir}/cache.sock"],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        channel = grpc.insecure_channel(self.address)
        try:
            from cluster2.v1 import cache_pb2, cache_pb2_grpc
            cache_pb2_grpc.CacheStub(channel).Stats(cache_pb2.StatsRequest(), timeout=10,
                                                     wait_for_ready=True)
        finally:
            channel.close()
        return self

    def __exit__(self, *exc):
        kill_pid(self.process.pid)
        self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_tests(module_name, suite_name):
    """Runs the module's tests with pyjunit (JUnit XML under Bazel)."""
    import pyjunit
    return pyjunit.main(module_name, suite_name)
