#!/usr/bin/python3
"""cluster2 from Python's own gRPC stack (Debian's python3-grpcio).

Stubs are generated from proto/cluster2/v1 with Debian's protoc and
grpc_python_plugin (clients/python's genrule under Bazel, its gen_stubs.sh
otherwise); the master runs Python workers (examples/python, on the
clients/python package); the test
drives the master as any non-C++ client would: typed Cluster calls, the
standard health service and server reflection (raw bytes, no stubs needed).
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

if os.environ.get("TEST_SRCDIR"):  # under Bazel: everything from the runfiles
    RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], os.environ.get("TEST_WORKSPACE", "cluster2"))
    MASTER = os.path.join(RUNFILES, "master/cluster2-master")
    CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
    STUBS = os.path.join(RUNFILES, "clients/python/stubs")  # the :cluster2_stubs genrule
    OWN_STUBS = None
else:  # binaries from $CLUSTER2_BIN_DIR (default bazel-bin), stubs generated here
    RUNFILES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    BIN_DIR = os.environ.get("CLUSTER2_BIN_DIR")
    MASTER = os.path.join(BIN_DIR, "cluster2-master") if BIN_DIR else \
        os.path.join(RUNFILES, "bazel-bin/master/cluster2-master")
    CTL = os.path.join(BIN_DIR, "cluster2ctl") if BIN_DIR else \
        os.path.join(RUNFILES, "bazel-bin/cli/cluster2ctl")
    STUBS = OWN_STUBS = tempfile.mkdtemp(prefix="c2py-", dir="/tmp")
    subprocess.run([os.path.join(RUNFILES, "clients/python/gen_stubs.sh"), STUBS], check=True)
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
PY_WORKER = os.path.join(RUNFILES, "examples/python/hello_worker.py")
# The worker's package (clients/python) and its stubs.
PYTHONPATH = f"{os.path.join(RUNFILES, 'clients/python')}:{STUBS}"
sys.path.insert(0, STUBS)

import grpc  # noqa: E402
from cluster2.v1 import cluster_pb2, cluster_pb2_grpc, common_pb2  # noqa: E402
from cluster2.v1 import emitter_pb2, emitter_pb2_grpc, status_pb2, status_pb2_grpc  # noqa: E402
from cluster2.v1 import ecv_pb2, ecv_pb2_grpc  # noqa: E402
from cluster2.v1 import cache_pb2, cache_pb2_grpc  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402
import threading  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_below_ephemeral():
    """A free port below ip_local_port_range, for a server that binds it only
    later (the debugger): an ephemeral port can meanwhile be taken by any
    outgoing connection of a concurrent test."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for port in random.sample(range(10000, max(low, 11000)), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def accepts(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def read_dap_response(connection, command):
    """Reads DAP messages (Content-Length framed) from `connection` until the
    response to `command`; returns it as a dict. Raises on EOF or timeout."""
    data = b""
    while True:
        header_end = data.find(b"\r\n\r\n")
        if header_end >= 0:
            headers = dict(line.split(b":", 1) for line in data[:header_end].split(b"\r\n"))
            length = int(headers[b"Content-Length"])
            if len(data) >= header_end + 4 + length:
                message = json.loads(data[header_end + 4:header_end + 4 + length])
                data = data[header_end + 4 + length:]
                if message.get("type") == "response" and message.get("command") == command:
                    return message
                continue
        chunk = connection.recv(65536)
        if not chunk:
            raise EOFError(f"the debugger closed before answering {command}")
        data += chunk


class PythonClientTest(unittest.TestCase):
    def setUp(self):
        self.channel = None
        self.dir = tempfile.mkdtemp(prefix="c2t-", dir="/tmp")
        self.port = free_port()
        self.debug_port = free_port_below_ephemeral()
        env = dict(os.environ, PYTHONPATH=PYTHONPATH)
        self.log = open(os.path.join(self.dir, "master.log"), "w+")
        self.master = subprocess.Popen(
            [MASTER, "--noWorkers=2", f"--port={self.port}", "--host=127.0.0.1", "--monPort=0",
             f"--runDir={self.dir}/run", "--heartbeatInterval=200", "--nanny.tolerance=3000", "--stopTimeout=5000",
             f"--debug.webPort={self.debug_port}", "--", "/usr/bin/python3", PY_WORKER],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        # A channel that finds no socket backs off for seconds: connect once it exists.
        socket_path = f"{self.dir}/run/master.sock"
        self.assertTrue(wait_until(lambda: os.path.exists(socket_path), 10), self.master_log())
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.cluster = cluster_pb2_grpc.ClusterStub(self.channel)
        ready = wait_until(lambda: self.ready_workers() == 2, 15)
        self.assertTrue(ready, self.master_log())

    def tearDown(self):
        if self.channel is not None:
            self.channel.close()
        if self.master.poll() is None:
            self.master.kill()
        self.master.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def master_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def ctl(self, *args):
        """Runs cluster2ctl ARGS against this cluster; the finished process."""
        return subprocess.run([CTL, "--run-dir", f"{self.dir}/run", *args], capture_output=True,
                              text=True, timeout=30)

    def workers(self):
        return self.cluster.ListWorkers(cluster_pb2.ListWorkersRequest(), timeout=2).workers

    def ready_workers(self):
        try:
            response = self.cluster.ListWorkers(cluster_pb2.ListWorkersRequest(), timeout=2)
        except grpc.RpcError:
            return 0
        return sum(w.state == common_pb2.WORKER_STATE_READY for w in response.workers)

    def test_python_workers_serve_and_report_heartbeats(self):
        pids = set()
        for _ in range(50):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as reply:
                self.assertEqual(reply.status, 200)
                words = reply.read().decode().split()
                self.assertEqual(words[:2], ["python", "worker"])
                pids.add(int(words[4]))
        self.assertEqual(len(pids), 2, "50 requests went to one worker")

        def counted():  # the next heartbeats carry the requests served
            workers = self.cluster.ListWorkers(cluster_pb2.ListWorkersRequest(), timeout=2).workers
            return (all(w.attached and w.last_heartbeat.rss_bytes > 0 for w in workers) and
                    sum(w.last_heartbeat.requests_total for w in workers) == 50)
        self.assertTrue(wait_until(counted, 5))
        response = self.cluster.ListWorkers(cluster_pb2.ListWorkersRequest(), timeout=2)
        self.assertEqual(sorted(w.pid for w in response.workers), sorted(pids))
        self.assertEqual(response.desired, 2)
        self.assertEqual(response.master_pid, self.master.pid)

    def test_errors_are_grpc_codes(self):
        with self.assertRaises(grpc.RpcError) as error:
            self.cluster.GetWorker(cluster_pb2.GetWorkerRequest(pid=1), timeout=2)
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as error:
            self.cluster.Scale(cluster_pb2.ScaleRequest(workers=0), timeout=2)
        self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as error:
            self.cluster.Pause(cluster_pb2.PauseRequest(pid=1), timeout=2)
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as error:
            self.cluster.Debug(cluster_pb2.DebugRequest(pid=1), timeout=2)
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as error:
            self.cluster.Debug(cluster_pb2.DebugRequest(end=True), timeout=2)
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_health_and_reflection(self):
        # grpc.health.v1.Health/Check with an empty HealthCheckRequest; the
        # answer is field 1 (status) = 1 (SERVING).
        # It follows the ECV: SERVING (1) once every worker is ready,
        # NOT_SERVING (2) while the cluster is marked down.
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        self.assertTrue(wait_until(lambda: check(b"", timeout=2) == b"\x08\x01", 5))
        ecv = ecv_pb2_grpc.EcvStub(self.channel)
        state = ecv.MarkDown(ecv_pb2.MarkRequest(who="python test"), timeout=2)
        self.assertEqual(state.health, ecv_pb2.EcvState.HEALTH_MARKED_DOWN)
        self.assertEqual(state.changed_by, "grpc: python test")
        self.assertEqual(check(b"", timeout=2), b"\x08\x02")
        ecv.MarkUp(ecv_pb2.MarkRequest(), timeout=2)
        self.assertEqual(check(b"", timeout=2), b"\x08\x01")
        # Watch streams the same changes.
        watch = self.channel.unary_stream("/grpc.health.v1.Health/Watch")(b"", timeout=10)
        self.assertEqual(next(watch), b"\x08\x01")
        ecv.MarkDown(ecv_pb2.MarkRequest(), timeout=2)
        self.assertEqual(next(watch), b"\x08\x02")
        ecv.MarkUp(ecv_pb2.MarkRequest(), timeout=2)
        self.assertEqual(next(watch), b"\x08\x01")
        watch.cancel()
        # ServerReflectionInfo{list_services: ""} (field 7).
        info = self.channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        answer = b"".join(info(iter([b"\x3a\x00"]), timeout=2))
        for service in (b"cluster2.v1.Cluster", b"cluster2.v1.WorkerSession", b"cluster2.v1.Emitter",
                        b"cluster2.v1.Status", b"cluster2.v1.Ecv", b"grpc.health.v1.Health"):
            self.assertIn(service, answer)

    def test_emit_subscribe_and_status_from_python(self):
        emitter = emitter_pb2_grpc.EmitterStub(self.channel)
        received = []
        subscription = emitter.Subscribe(emitter_pb2.SubscribeRequest(events=["pong", "probe"]))

        def collect():
            try:
                for event in subscription:
                    received.append(event)
            except grpc.RpcError:
                pass  # cancelled at the end
        reader = threading.Thread(target=collect)
        reader.start()
        try:
            # The subscription is live once the master's own probe arrives.
            self.assertTrue(wait_until(lambda: emitter.Emit(emitter_pb2.EmitRequest(
                event=emitter_pb2.Event(name="probe", targets=[emitter_pb2.Target(master=True)])),
                timeout=2) and any(e.name == "probe" for e in received), 10))
            reply = emitter.Emit(emitter_pb2.EmitRequest(event=emitter_pb2.Event(
                name="ping", args=[struct_pb2.Value(string_value="hi")])), timeout=2)
            self.assertEqual(reply.delivered, 3)  # the master and both Python workers
            self.assertTrue(wait_until(lambda: sum(e.name == "pong" for e in received) == 2, 10))
            pongs = [e for e in received if e.name == "pong"]
            self.assertEqual({e.args[0].string_value for e in pongs}, {"hi"})
            self.assertEqual({e.from_pid for e in pongs}, {int(e.args[1].number_value) for e in pongs})
            with self.assertRaises(grpc.RpcError) as error:
                emitter.Emit(emitter_pb2.EmitRequest(event=emitter_pb2.Event(name="cluster2:x")),
                             timeout=2)
            self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        finally:
            subscription.cancel()
            reader.join()

        status = status_pb2_grpc.StatusStub(self.channel)
        names = status.ListStatuses(status_pb2.ListStatusesRequest(), timeout=2).names
        self.assertEqual(list(names), ["python-level", "workers"])
        level = status.GetStatus(status_pb2.GetStatusRequest(name="python-level"), timeout=5)
        self.assertEqual(len(level.entries), 2)
        self.assertEqual({e.value.number_value for e in level.entries}, {0})
        status.SetStatus(status_pb2.SetStatusRequest(
            name="python-level", value=struct_pb2.Value(number_value=3)), timeout=5)
        level = status.GetStatus(status_pb2.GetStatusRequest(name="python-level"), timeout=5)
        self.assertEqual({e.value.number_value for e in level.entries}, {3})
        self.assertEqual(sorted(e.worker_id for e in level.entries), [0, 1])
        workers = status.GetStatus(status_pb2.GetStatusRequest(name="workers"), timeout=5)
        self.assertEqual(len(workers.entries[0].value.list_value.values), 2)

    def test_cache_from_python(self):
        """The master's cache server, from Python: get-or-load with leases
        tied to Hold streams (a cancelled holder hands its lease on), watch,
        the same error codes."""
        cache_path = f"{self.dir}/run/cache.sock"
        self.assertTrue(wait_until(lambda: os.path.exists(cache_path), 10), self.master_log())
        channel = grpc.insecure_channel(f"unix:{cache_path}")
        self.addCleanup(channel.close)
        cache = cache_pb2_grpc.CacheStub(channel)
        cache.Use(cache_pb2.UseRequest(namespace="py"), timeout=5, wait_for_ready=True)

        watch = cache.Watch(cache_pb2.WatchRequest(namespace="py"))
        self.addCleanup(watch.cancel)
        watch.initial_metadata()  # registered: every later change arrives

        holds = {}
        for client in ("holder", "waiter"):
            holds[client] = cache.Hold(cache_pb2.HoldRequest(client_id=client))
            next(holds[client])  # the server registered it
        self.addCleanup(holds["waiter"].cancel)

        first = cache.Get(cache_pb2.GetRequest(namespace="py", key=b"k", lease=True,
                                               client_id="holder"), timeout=5)
        self.assertTrue(first.lease_token)
        parked = {}
        waiter = threading.Thread(target=lambda: parked.update(response=cache.Get(
            cache_pb2.GetRequest(namespace="py", key=b"k", lease=True, client_id="waiter"),
            timeout=10)))
        waiter.start()

        def waiting():
            stats = cache.Stats(cache_pb2.StatsRequest(namespace="py"), timeout=2)
            return stats.namespaces[0].waiting == 1
        self.assertTrue(wait_until(waiting, 5))
        holds["holder"].cancel()  # the holder's process "dies"
        waiter.join(timeout=5)
        self.assertTrue(parked["response"].lease_token, "the waiter loads instead")
        done = cache.Set(cache_pb2.SetRequest(namespace="py", key=b"k", value=b"from python",
                                              lease_token=parked["response"].lease_token),
                         timeout=5)
        self.assertTrue(done.written)

        event = next(watch)
        self.assertEqual(event.kind, cache_pb2.WatchEvent.KIND_SET)
        self.assertEqual((event.key, event.value, event.revision), (b"k", b"from python", done.revision))
        got = cache.Get(cache_pb2.GetRequest(namespace="py", key=b"k"), timeout=5)
        self.assertEqual(got.value, b"from python")

        with self.assertRaises(grpc.RpcError) as error:
            cache.Set(cache_pb2.SetRequest(namespace="py", key=b"", value=b"v"), timeout=5)
        self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as error:
            cache.Get(cache_pb2.GetRequest(namespace="nope", key=b"k"), timeout=5)
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_debugpy_session(self):
        """`cluster2ctl debug PID` on a Python worker: the master pauses it,
        moves it out of its slot (a replacement serves) and the worker opens
        debugpy, which answers DAP; `debug --end` ends the process."""
        target = self.workers()[0].pid
        opened = self.ctl("debug", str(target), "-o", "json")
        self.assertEqual(opened.returncode, 0, opened.stderr + self.master_log())
        session = json.loads(opened.stdout)
        self.assertEqual(session["protocol"], "debugpy")
        self.assertEqual(session["pid"], target)
        self.assertEqual(session["url"], f"tcp://127.0.0.1:{self.debug_port}")
        self.assertEqual(session["address"], f"127.0.0.1:{self.debug_port}")
        self.assertEqual(session.get("gdbserverPid", 0), 0)  # no gdbserver

        host, port = session["url"][len("tcp://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as dap:
            dap.settimeout(10)
            body = json.dumps({"seq": 1, "type": "request", "command": "initialize",
                               "arguments": {"adapterID": "test"}}).encode()
            dap.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer = read_dap_response(dap, "initialize")
        self.assertTrue(answer["success"], answer)
        self.assertEqual(answer["request_seq"], 1)

        # A replacement took the slot: two ready workers, the debugged one
        # listed apart, and the HTTP port served by the others only.
        self.assertTrue(wait_until(lambda: self.ready_workers() == 2, 15), self.master_log())
        states = {w.pid: w.state for w in self.workers()}
        self.assertEqual(states[target], common_pb2.WORKER_STATE_DEBUGGING)
        for _ in range(10):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as reply:
                self.assertNotEqual(int(reply.read().decode().split()[4]), target)

        ended = self.ctl("debug", "--end", "-o", "json")
        self.assertEqual(ended.returncode, 0, ended.stderr)
        self.assertEqual(json.loads(ended.stdout)["pid"], target)
        # Gone and reaped (no /proc entry), and debugpy's adapter with it:
        # the port is free again.
        self.assertTrue(wait_until(lambda: not os.path.exists(f"/proc/{target}"), 10))
        self.assertNotIn(target, [w.pid for w in self.workers()])
        self.assertTrue(wait_until(lambda: not accepts(host, int(port)), 10))
        self.assertEqual(self.ready_workers(), 2)
        shown = self.ctl("debug")
        self.assertEqual(shown.returncode, 1, shown.stdout)
        self.assertIn("no debug session is open", shown.stderr)

    def test_effective_config_and_shutdown(self):
        config = self.cluster.GetConfig(cluster_pb2.GetConfigRequest(), timeout=2).config
        self.assertEqual(config.port, self.port)
        self.assertEqual(config.no_workers, 2)
        self.assertEqual(config.command[0], "/usr/bin/python3")
        self.cluster.Shutdown(cluster_pb2.ShutdownRequest(), timeout=2)
        self.assertEqual(self.master.wait(timeout=10), 0, self.master_log())
        self.assertFalse(os.path.exists(f"{self.dir}/run"))


if __name__ == "__main__":
    import pyjunit
    code = pyjunit.main(__name__, "PythonClientTest")
    if OWN_STUBS:
        shutil.rmtree(OWN_STUBS, ignore_errors=True)
    sys.exit(code)
