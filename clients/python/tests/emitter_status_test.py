#!/usr/bin/python3
"""cluster2.emitter and cluster2.status with the real master and Python
workers: an event round trip in order, a worker's emit result and error
codes, emitting from a process that is not a worker, a status registered in
Python read and set with cluster2ctl and with the package, get-or-load in
workers through the cache address of their Welcome."""
import json
import os
import queue
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import Cluster, http_json  # noqa: E402

import grpc  # noqa: E402
import cluster2  # noqa: E402
from cluster2 import emitter, status  # noqa: E402


class EmitterStatusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(env={"C2T_LOAD_LOG": "/dev/null"})
        try:
            cls.cluster.start()
        except BaseException:
            cls.cluster.stop()
            raise
        cluster2.connect(cls.cluster.master_address)

    @classmethod
    def tearDownClass(cls):
        cluster2.connect(None)
        cls.cluster.stop()

    def test_events_round_trip_in_order(self):
        backs = queue.Queue()
        probes = queue.Queue()
        emitter.on("seq-back", lambda n, pid: backs.put((n, pid)))
        emitter.on("probe", probes.put)
        self.addCleanup(emitter.remove_all_listeners, "seq-back")
        self.addCleanup(emitter.remove_all_listeners, "probe")
        # Our Subscribe stream is live once it hears a probe of ours.
        for attempt in range(50):
            emitter.emit("probe", attempt, targets=["master"])
            try:
                probes.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        else:
            self.fail("the subscription never heard a probe")
        pids = self.cluster.ready_pids()
        for n in range(100):
            result = emitter.emit("seq", n, targets=["workers"])
            self.assertEqual(result.delivered, 2)
        heard = {pid: [] for pid in pids}
        for _ in range(200):
            n, pid = backs.get(timeout=10)
            heard[pid].append(n)
        self.assertEqual(heard, {pid: list(range(100)) for pid in pids})

    def test_a_workers_emit_result_and_error_codes(self):
        emitted = http_json(self.cluster.port, "/emit-note")
        self.assertEqual(emitted, {"delivered": 2, "unknown_pids": [999999],
                                   "heard": [["a", 1]]})
        self.assertEqual(http_json(self.cluster.port, "/emit-bad"), {"code": "INVALID_ARGUMENT"})
        self.assertEqual(http_json(self.cluster.port, "/emit-big"),
                         {"code": "RESOURCE_EXHAUSTED"})

    def test_emit_from_a_process_that_is_not_a_worker(self):
        self.assertEqual(emitter.emit("nobody-listens").delivered, 3)  # master + 2 workers
        result = emitter.to(123456789).emit("x")
        self.assertEqual((result.delivered, result.unknown_pids), (0, [123456789]))
        for name, targets, code in (("cluster2:x", None, grpc.StatusCode.INVALID_ARGUMENT),
                                    ("", None, grpc.StatusCode.INVALID_ARGUMENT),
                                    ("x", ["everyone"], grpc.StatusCode.INVALID_ARGUMENT)):
            with self.assertRaises(cluster2.Error) as error:
                emitter.emit(name, targets=targets)
            self.assertEqual(error.exception.code, code)
        with self.assertRaises(cluster2.Error) as error:
            emitter.emit("big", "x" * ((1 << 20) + 10))
        self.assertEqual(error.exception.code, grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_status_registered_in_python_read_and_set_with_cluster2ctl(self):
        shown = self.cluster.ctl("-o", "json", "status", "py-test-level")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        entries = json.loads(shown.stdout)["entries"]
        self.assertEqual(sorted((e["workerId"], e["value"]) for e in entries), [(0, 0), (1, 0)])
        done = self.cluster.ctl("status", "set", "py-test-level", '{"level": 7}')
        self.assertEqual(done.returncode, 0, done.stderr)
        entries = status.get_status("py-test-level")
        self.assertEqual(sorted(e.worker_id for e in entries), [0, 1])
        self.assertEqual({json.dumps(e.value) for e in entries}, {'{"level": 7}'})
        self.assertEqual({e.error for e in entries}, {""})
        self.assertEqual(set(e.pid for e in entries), set(self.cluster.ready_pids()))
        entries = status.set_status("py-test-level", 3)
        self.assertEqual([e.value for e in entries], [3, 3])
        shown = self.cluster.ctl("-o", "json", "status", "py-test-level")
        self.assertEqual([e["value"] for e in json.loads(shown.stdout)["entries"]], [3, 3])
        self.assertEqual(status.statuses(), ["py-test-level", "workers"])
        with self.assertRaises(cluster2.Error) as error:
            status.get_status("nope")
        self.assertEqual(error.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_get_or_load_in_workers_runs_the_loader_once(self):
        # The workers' loaders log to /dev/null here: the cache server's
        # figures count the loads.
        answers, threads = queue.Queue(), []
        for _ in range(6):  # new connections: both workers, round robin
            thread = threading.Thread(target=lambda: answers.put(
                http_json(self.cluster.port, "/load?key=shared", timeout=30)))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(30)
        values = [answers.get(timeout=1) for _ in threads]
        self.assertEqual(len({json.dumps(v) for v in values}), 1, values)
        self.assertIn(values[0]["by"], self.cluster.ready_pids())
        stats = cluster2.cache.use("race", address=self.cluster.cache_address).stats()
        self.assertEqual(stats["loads"], 1)


if __name__ == "__main__":
    sys.exit(testlib.run_tests(__name__, "EmitterStatusTest"))
