#!/usr/bin/python3
"""Unit tests of the cluster2 package without the real binaries: JSON <->
google.protobuf.Value, the emitter's listeners and local dispatch, listen()
and launcher options, status answers, and the worker session against a fake
master (a WorkerSession server in this process): Hello, Welcome, Ready,
heartbeat figures, pause/resume acks, emit replies, events, drain."""
import concurrent.futures
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402,F401  (sys.path: the package and its stubs)

import grpc  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402

import cluster2  # noqa: E402
from cluster2 import emitter as emitter_module  # noqa: E402
from cluster2 import launcher, status, values  # noqa: E402
from cluster2 import worker as worker_module  # noqa: E402
from cluster2.v1 import emitter_pb2, worker_session_pb2 as session_pb2  # noqa: E402
from cluster2.v1 import worker_session_pb2_grpc as session_grpc  # noqa: E402


class ValuesTest(unittest.TestCase):
    def test_round_trip(self):
        for obj in (None, True, False, 0, -3, 2 ** 53, 1.5, "", "h\u00e9", [], {},
                    [1, [2, {"a": None}]], {"x": {"y": [True, "z", 0.25]}}):
            self.assertEqual(values.from_value(values.to_value(obj)), obj)

    def test_kinds_on_the_wire(self):
        self.assertEqual(values.to_value(True).WhichOneof("kind"), "bool_value")
        self.assertEqual(values.to_value(1).WhichOneof("kind"), "number_value")
        self.assertEqual(values.to_value(None).WhichOneof("kind"), "null_value")
        self.assertEqual(values.to_value({}).WhichOneof("kind"), "struct_value")
        self.assertEqual(values.to_value([]).WhichOneof("kind"), "list_value")
        self.assertEqual(values.to_value((1, 2)), values.to_value([1, 2]))

    def test_numbers(self):
        self.assertIsInstance(values.from_value(values.to_value(7)), int)
        self.assertIsInstance(values.from_value(values.to_value(7.0)), int)
        self.assertIsInstance(values.from_value(values.to_value(2.5)), float)
        self.assertIsInstance(values.from_value(values.to_value(2.0 ** 60)), float)
        self.assertIsNone(values.from_value(struct_pb2.Value()))  # unset

    def test_not_json(self):
        for obj in (b"x", {1, 2}, object(), {1: "x"}, [b"x"]):
            with self.assertRaises(TypeError):
                values.to_value(obj)

    def test_cache_bytes(self):
        self.assertEqual(values.encode_json({"a": [1, "\u00e9"]}), '{"a":[1,"\u00e9"]}'.encode())
        self.assertEqual(values.decode_json(b'{"a":1}'), {"a": 1})
        self.assertEqual(values.decode_json(b"hello"), "hello")
        self.assertEqual(values.decode_json(b"\xff\x00"), b"\xff\x00")
        with self.assertRaises(ValueError):
            values.encode_json(float("nan"))


class EmitterDispatchTest(unittest.TestCase):
    def setUp(self):
        self.emitter = emitter_module.Emitter()
        self.calls = []

    def test_listeners_run_in_order_with_the_args(self):
        self.emitter.on("e", lambda *a: self.calls.append(("first", a)))
        self.emitter.on("e", lambda *a: self.calls.append(("second", a)))
        self.emitter.on("other", lambda *a: self.calls.append(("other", a)))
        self.assertEqual(self.emitter.dispatch("e", [1, "x"]), 2)
        self.assertEqual(self.calls, [("first", (1, "x")), ("second", (1, "x"))])

    def test_once_fires_once_and_remove_listener_removes_it_too(self):
        self.emitter.once("e", lambda *a: self.calls.append("once"))
        self.emitter.dispatch("e", [])
        self.emitter.dispatch("e", [])
        self.assertEqual(self.calls, ["once"])
        handler = self.emitter.once("e", lambda: self.calls.append("removed"))
        self.assertTrue(self.emitter.remove_listener("e", handler))  # the original could not
        self.assertFalse(self.emitter.remove_listener("e", handler))
        self.emitter.dispatch("e", [])
        self.assertEqual(self.calls, ["once"])

    def test_decorators_and_remove_all_listeners(self):
        @self.emitter.on("a")
        def on_a():
            self.calls.append("a")

        @self.emitter.once("b")
        def on_b():
            self.calls.append("b")
        self.assertEqual(self.emitter.listeners("a"), [on_a])
        self.emitter.remove_all_listeners("a")
        self.assertEqual(self.emitter.dispatch("a", []), 0)
        self.emitter.on("a", on_a)
        self.emitter.remove_all_listeners()
        self.assertEqual((self.emitter.listeners("a"), self.emitter.listeners("b")), ([], []))

    def test_a_failing_listener_does_not_stop_the_others(self):
        def boom(*_):
            raise RuntimeError("listener bug")
        self.emitter.on("e", boom)
        self.emitter.on("e", lambda *a: self.calls.append(a))
        stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
        try:
            self.emitter.dispatch("e", [1])
        finally:
            sys.stderr.close()
            sys.stderr = stderr
        self.assertEqual(self.calls, [(1,)])

    def test_without_a_cluster_emit_is_local(self):
        saved = os.environ.pop("CLUSTER2_MASTER", None)
        self.addCleanup(lambda: saved and os.environ.update(CLUSTER2_MASTER=saved))
        self.emitter.on("e", lambda *a: self.calls.append(a))
        self.assertEqual(self.emitter.emit("e", 1, {"k": [2]}), cluster2.EmitResult(1, []))
        self.assertEqual(self.emitter.to("master").emit("e", 3).delivered, 1)
        self.assertEqual(self.emitter.emit("e", 4, targets=[999999999]),
                         cluster2.EmitResult(0, [999999999]))
        self.assertEqual(self.emitter.emit("e", 5, targets=["self", 999999999]),
                         cluster2.EmitResult(1, [999999999]))
        self.assertEqual(self.calls, [(1, {"k": [2]}), (3,), (5,)])

    def test_emit_checks_name_targets_and_args(self):
        for name, kwargs in (("", {}), ("cluster2:x", {}), (None, {}),
                             ("x", {"targets": ["everyone"]}), ("x", {"targets": [True]}),
                             ("x", {"targets": [-1]})):
            with self.assertRaises(cluster2.Error) as error:
                self.emitter.emit(name, **kwargs)
            self.assertEqual(error.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(cluster2.Error) as error:
            self.emitter.emit("x", b"bytes")
        self.assertEqual(error.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_targets(self):
        self.assertEqual(emitter_module._target("self"), emitter_pb2.Target(self=True))
        self.assertEqual(emitter_module._target("workers"), emitter_pb2.Target(workers=True))
        self.assertEqual(emitter_module._target(42), emitter_pb2.Target(pid=42))


class OptionsTest(unittest.TestCase):
    def test_master_argv(self):
        argv = launcher.master_argv(
            "/bin/m", ["/usr/bin/python3", "/a/app.py", "-v"], port=9090, no_workers=2,
            host=None, config={"heartbeat_interval": 200, "nanny": {"tolerance": 3000},
                               "ecv": {"mode": "control"}, "skipCheckBusyPorts": True})
        self.assertEqual(argv, ["/bin/m", "--port=9090", "--noWorkers=2",
                                "--heartbeatInterval=200", "--nanny.tolerance=3000",
                                "--ecv.mode=control", "--skipCheckBusyPorts=true",
                                "--", "/usr/bin/python3", "/a/app.py", "-v"])
        self.assertEqual(launcher.master_argv("/bin/m", ["w"], config_file="/c.json"),
                         ["/bin/m", "--config", "/c.json", "--", "w"])
        with self.assertRaises(TypeError):
            launcher.master_argv("/bin/m", ["w"], colour="blue")
        with self.assertRaises(TypeError):
            launcher.config_flags({"command": ["a"]})

    def test_camel_case(self):
        self.assertEqual(launcher.camel_case("no_workers"), "noWorkers")
        self.assertEqual(launcher.camel_case("heartbeatInterval"), "heartbeatInterval")

    def test_worker_command_is_this_script_again(self):
        command = launcher.worker_command()
        self.assertEqual(command[0], sys.executable)
        self.assertEqual(command[1], os.path.abspath(sys.argv[0]))

    def test_find_master(self):
        self.assertEqual(launcher.find_master({"CLUSTER2_MASTER_BIN": testlib.MASTER,
                                               "PATH": ""}), testlib.MASTER)

    def test_listen_takes_exactly_one_server(self):
        for kwargs in ({}, {"app": lambda e, s: [], "handler_class": object},
                       {"handler_class": object}, {"app": 3}):
            with self.assertRaises(TypeError):
                cluster2.listen(**kwargs)

    def test_listen_inside_a_cluster_but_not_as_its_worker(self):
        os.environ["CLUSTER2_MASTER"] = "unix:/nonexistent"
        self.addCleanup(os.environ.pop, "CLUSTER2_MASTER")
        with self.assertRaises(cluster2.Error) as error:
            cluster2.listen(app=lambda environ, start_response: [])
        self.assertEqual(error.exception.code, grpc.StatusCode.FAILED_PRECONDITION)

    def test_is_worker(self):
        env = {"CLUSTER2_MASTER": "unix:/m", "CLUSTER2_WORKER_TOKEN": "t", "LISTEN_FDS": "1"}
        self.assertTrue(cluster2.is_worker(env))
        self.assertTrue(cluster2.is_worker(dict(env, LISTEN_PID=str(os.getpid()))))
        self.assertFalse(cluster2.is_worker(dict(env, LISTEN_PID="1")))
        # Under a debugger the master started, LISTEN_PID names our parent.
        parent = dict(env, LISTEN_PID=str(os.getppid()))
        self.assertFalse(cluster2.is_worker(parent))
        self.assertTrue(cluster2.is_worker(dict(parent, CLUSTER2_UNDER_DEBUGGER="1")))
        self.assertFalse(cluster2.is_worker(dict(env, LISTEN_FDS="2")))
        self.assertFalse(cluster2.is_worker({"LISTEN_FDS": "1"}))

    def test_percentile(self):
        self.assertEqual(worker_module._percentile([], 0.5), 0.0)
        samples = [0.005 * i for i in range(100, 0, -1)]
        self.assertEqual(worker_module._percentile(samples, 0.5), 0.005 * 51)
        self.assertEqual(worker_module._percentile(samples, 0.99), 0.5)


class FakeSession:
    """What status.answer needs of a Worker."""

    def __init__(self):
        self.answers = []

    def answer_status(self, request_id, value=None, error=""):
        self.answers.append((request_id, values.from_value(value) if value else None, error))


class StatusAnswerTest(unittest.TestCase):
    def test_view_update_unknown_and_failing(self):
        level = {"v": 1}
        status.register("unit-level", lambda: level["v"], lambda v: level.update(v=v))
        status.register("unit-ro", lambda: "fixed")
        status.register("unit-bad", lambda: 1 / 0)
        self.addCleanup(lambda: [status.unregister(n) for n in ("unit-level", "unit-ro",
                                                                 "unit-bad")])
        session = FakeSession()
        status.answer(session, "status_query", session_pb2.StatusQuery(id=1, name="unit-level"))
        status.answer(session, "status_update", session_pb2.StatusUpdate(
            id=2, name="unit-level", value=values.to_value({"x": 2})))
        status.answer(session, "status_update", session_pb2.StatusUpdate(
            id=3, name="unit-ro", value=values.to_value(5)))
        status.answer(session, "status_query", session_pb2.StatusQuery(id=4, name="unknown"))
        status.answer(session, "status_query", session_pb2.StatusQuery(id=5, name="unit-bad"))
        self.assertEqual(session.answers[:3], [(1, 1, ""), (2, {"x": 2}, ""), (3, "fixed", "")])
        self.assertEqual(session.answers[3][:2], (4, None))
        self.assertIn("not registered", session.answers[3][2])
        self.assertIn("ZeroDivisionError", session.answers[4][2])
        self.assertIn("unit-level", status.registered())
        self.assertTrue(status.unregister("unit-ro"))
        self.assertFalse(status.unregister("unit-ro"))


class FakeMaster(session_grpc.WorkerSessionServicer):
    """A WorkerSession server: records what the worker sends, sends what
    the test puts in `outgoing` (None ends the stream)."""

    def __init__(self):
        self.received = queue.Queue()
        self.outgoing = queue.Queue()

    def Attach(self, requests, context):
        first = next(requests)
        self.received.put(first)
        if first.hello.token == "refused":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no such token")

        def read():
            try:
                for message in requests:
                    self.received.put(message)
            except Exception:  # the stream ended
                pass
            self.received.put(None)
        threading.Thread(target=read, daemon=True).start()
        while True:
            message = self.outgoing.get()
            if message is None:
                return
            yield message


class SessionTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="c2u-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.master = FakeMaster()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        session_grpc.add_WorkerSessionServicer_to_server(self.master, self.server)
        self.server.add_insecure_port(f"unix:{self.dir}/m.sock")
        self.server.start()
        self.addCleanup(self.server.stop, None)
        self.environ = {"CLUSTER2_MASTER": f"unix:{self.dir}/m.sock", "CLUSTER2_WORKER_ID": "3",
                        "CLUSTER2_WORKER_TOKEN": "token-3", "LISTEN_FDS": "1",
                        "CLUSTER2_NAME": "from-env"}
        self.messages = []

    def attach(self, interval=0.05):
        welcome = session_pb2.MasterMessage(welcome=session_pb2.Welcome(
            cluster_name="unit", cache_address="unix:/c/cache.sock"))
        welcome.welcome.heartbeat_interval.FromNanoseconds(int(interval * 1e9))
        self.master.outgoing.put(welcome)
        worker = worker_module.Worker.attach(
            environ=self.environ, attach_timeout=10,
            on_message=lambda kind, message: self.messages.append((kind, message)))
        self.addCleanup(worker.close)
        self.addCleanup(self.master.outgoing.put, None)
        return worker

    def next_of(self, kind, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            message = self.master.received.get(timeout=max(deadline - time.monotonic(), 0.01))
            if message is not None and message.WhichOneof("kind") == kind:
                return getattr(message, kind)

    def test_hello_welcome_ready_and_heartbeats(self):
        worker = self.attach()
        hello = self.next_of("hello")
        self.assertEqual((hello.worker_id, hello.token, hello.pid, hello.client),
                         (3, "token-3", os.getpid(), f"cluster2-python/{cluster2.__version__}"))
        self.assertEqual(list(hello.debug_protocols), ["debugpy"])
        self.assertEqual((worker.id, worker.cluster_name, worker.cache_address,
                          worker.heartbeat_interval), (3, "unit", "unix:/c/cache.sock", 0.05))
        self.assertIs(cluster2.current_worker(), worker)
        self.assertNotIn("LISTEN_FDS", self.environ)  # not for our children
        worker.ready()
        worker.ready()
        self.next_of("ready")
        worker.set_requests_in_flight(2)
        for latency in (0.010, 0.030, 0.020):
            worker.record_request(latency)
        beat = self.next_of("heartbeat")
        while beat.requests_total != 3:
            beat = self.next_of("heartbeat")
        self.assertEqual(beat.requests_in_flight, 2)
        self.assertEqual(beat.latency_p50.ToNanoseconds(), 20_000_000)
        self.assertEqual(beat.latency_p99.ToNanoseconds(), 30_000_000)
        self.assertLess(abs(time.time() - beat.sent_at.ToNanoseconds() / 1e9), 2)
        self.assertGreaterEqual(beat.lag.ToNanoseconds(), 0)
        self.assertLess(beat.lag.ToNanoseconds(), 1e9)
        self.assertGreater(beat.rss_bytes, 0)
        self.assertGreater(beat.threads, 1)
        self.assertGreater(beat.uptime.ToNanoseconds(), 0)
        later = self.next_of("heartbeat")  # the latencies were per beat
        self.assertEqual((later.requests_total, later.latency_p50.ToNanoseconds()), (3, 0))
        # No ready twice.
        worker.close()
        while (message := self.master.received.get(timeout=5)) is not None:
            self.assertNotEqual(message.WhichOneof("kind"), "ready")

    def test_heartbeats_carry_the_latency_histogram_since_start(self):
        # The proto's recommended bounds, written out: the master aggregates
        # these without remapping.
        bounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
        self.assertEqual(list(worker_module.LATENCY_BOUNDS), bounds)
        worker = self.attach()
        beat = self.next_of("heartbeat")  # no request yet: set, all zero
        self.assertTrue(beat.HasField("latency"))
        self.assertEqual(list(beat.latency.bounds), bounds)
        self.assertEqual(list(beat.latency.counts), [0] * (len(bounds) + 1))
        self.assertEqual(beat.latency.sum_seconds, 0)

        # On a bound: that bound's bucket (at most bounds[i]); above 10 s: the last.
        first = (0.0005, 0.001, 0.0011, 0.0025, 0.01, 0.3, 1.0, 10.0, 10.5, 60.0)
        for latency in first:
            worker.record_request(latency)
        expected = [0] * (len(bounds) + 1)
        for bucket in (0, 0, 1, 1, 3, 8, 9, 12, 13, 13):
            expected[bucket] += 1
        beat = self.next_of("heartbeat")
        while beat.requests_total != len(first):
            beat = self.next_of("heartbeat")
        self.assertEqual(len(beat.latency.counts), len(beat.latency.bounds) + 1)
        self.assertEqual(list(beat.latency.counts), expected)
        self.assertAlmostEqual(beat.latency.sum_seconds, sum(first))

        # Totals since start: a beat without requests keeps them (p50 does not).
        later = self.next_of("heartbeat")
        self.assertEqual(later.latency_p50.ToNanoseconds(), 0)
        self.assertEqual(list(later.latency.counts), expected)
        self.assertAlmostEqual(later.latency.sum_seconds, sum(first))

        # ... and later requests add to them.
        second = (0.002, 0.01, 11.0)
        for latency in second:
            worker.record_request(latency)
        for bucket in (1, 3, 13):
            expected[bucket] += 1
        beat = self.next_of("heartbeat")
        while beat.requests_total != len(first) + len(second):
            beat = self.next_of("heartbeat")
        self.assertEqual(list(beat.latency.counts), expected)
        self.assertEqual(sum(beat.latency.counts), beat.requests_total)
        self.assertAlmostEqual(beat.latency.sum_seconds, sum(first) + sum(second))

    def test_a_stalled_process_reports_its_lag(self):
        self.attach(interval=0.1)
        self.next_of("heartbeat")
        import ctypes
        # Hold the GIL for 0.4 s (a C call that does not release it): the
        # heartbeat thread cannot run on time.
        libc = ctypes.PyDLL(None)
        libc.usleep(400_000)
        lags = [self.next_of("heartbeat").lag.ToNanoseconds() for _ in range(2)]
        self.assertGreater(max(lags), 200_000_000, lags)

    def test_pause_resume_are_acknowledged_after_their_callbacks(self):
        worker = self.attach()
        calls = []
        worker.on_pause(lambda: calls.append("pause"), lambda: calls.append("resume"))
        self.master.outgoing.put(session_pb2.MasterMessage(pause=session_pb2.Pause()))
        self.assertEqual(self.next_of("ack").what, session_pb2.Ack.WHAT_PAUSED)
        self.assertEqual(calls, ["pause"])
        self.master.outgoing.put(session_pb2.MasterMessage(resume=session_pb2.Resume()))
        self.assertEqual(self.next_of("ack").what, session_pb2.Ack.WHAT_RESUMED)
        self.assertEqual(calls, ["pause", "resume"])

    def test_emit_replies_events_and_status_requests(self):
        worker = self.attach()
        results = queue.Queue()

        def emit(name):
            try:
                results.put(worker.emit(emitter_pb2.Event(name=name), 5))
            except cluster2.Error as error:
                results.put(error)
        for name, reply in (("ok", session_pb2.EmitReply(delivered=2, unknown_pids=[7])),
                            ("big", session_pb2.EmitReply(error="too big", error_code=8)),
                            ("old", session_pb2.EmitReply(error="refused"))):
            threading.Thread(target=emit, args=(name,)).start()
            event = self.next_of("event")
            self.assertEqual(event.name, name)
            reply.sequence = event.sequence
            self.master.outgoing.put(session_pb2.MasterMessage(emit_reply=reply))
            results_item = results.get(timeout=5)
            if name == "ok":
                self.assertEqual(event.sequence, 1)
                self.assertEqual(results_item, cluster2.EmitResult(2, [7]))
            elif name == "big":
                self.assertEqual(results_item.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
            else:  # a master without error_code: INVALID_ARGUMENT
                self.assertEqual(results_item.code, grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(cluster2.Error) as error:
            worker.emit(emitter_pb2.Event(name="unanswered"), 0.2)
        self.assertEqual(error.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.master.outgoing.put(session_pb2.MasterMessage(event=emitter_pb2.Event(name="in")))
        self.master.outgoing.put(session_pb2.MasterMessage(
            status_query=session_pb2.StatusQuery(id=9, name="s")))
        self.assertTrue(testlib.wait_until(lambda: len(self.messages) == 2, 5))
        self.assertEqual([(kind, m.name) for kind, m in self.messages],
                         [("event", "in"), ("status_query", "s")])
        worker.answer_status(9, values.to_value(4))
        self.assertEqual(self.next_of("status_answer"), session_pb2.StatusAnswer(
            id=9, value=values.to_value(4)))

    def test_drain_and_a_lost_session(self):
        worker = self.attach()
        graces = queue.Queue()
        worker.on_drain(graces.put)
        drain = session_pb2.MasterMessage(drain=session_pb2.Drain(reason="restart"))
        drain.drain.grace.FromSeconds(7)
        self.master.outgoing.put(drain)
        self.assertEqual(graces.get(timeout=5), 7.0)
        self.assertEqual(worker.wait_for_drain(5), 7.0)
        self.assertTrue(worker.draining)
        worker.on_drain(graces.put)  # late: runs at once
        self.assertEqual(graces.get_nowait(), 7.0)
        # The master ends the stream: emits fail with UNAVAILABLE.
        self.master.outgoing.put(None)
        self.assertTrue(testlib.wait_until(lambda: worker._ended.is_set(), 5))
        with self.assertRaises(cluster2.Error) as error:
            worker.emit(emitter_pb2.Event(name="late"), 1)
        self.assertEqual(error.exception.code, grpc.StatusCode.UNAVAILABLE)

    def test_a_lost_session_drains(self):
        worker = self.attach()
        self.master.outgoing.put(None)
        self.assertEqual(worker.wait_for_drain(5), worker_module.LOST_SESSION_GRACE)

    def test_a_refused_session_is_unavailable(self):
        self.environ["CLUSTER2_WORKER_TOKEN"] = "refused"
        with self.assertRaises(cluster2.Error) as error:
            worker_module.Worker.attach(environ=self.environ, attach_timeout=5)
        self.assertEqual(error.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn("FAILED_PRECONDITION", error.exception.message)

    def test_not_a_worker(self):
        with self.assertRaises(cluster2.Error) as error:
            worker_module.Worker.attach(environ={})
        self.assertEqual(error.exception.code, grpc.StatusCode.FAILED_PRECONDITION)


if __name__ == "__main__":
    sys.exit(testlib.run_tests(__name__, "UnitTest"))
