#!/usr/bin/python3
"""cluster2.cache against a real cluster2-cache: get-or-load raced by
several Python processes runs its loader once, a failing loader, set/get/
delete/keys with JSON values, watch/unwatch, expiry, the error codes."""
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import CacheServer, wait_until  # noqa: E402

import grpc  # noqa: E402
import cluster2  # noqa: E402
from cluster2 import cache  # noqa: E402

# A racer: joins the namespace, says "ready", waits for "go" on stdin, then
# get-or-loads key "k" (its loader logs its pid and takes 0.5 s).
RACER = r"""
import json, os, sys, time
from cluster2 import cache
ns = cache.use("race")
print("ready", flush=True)
sys.stdin.readline()
def loader():
    with open(os.environ["C2T_LOAD_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")
    time.sleep(0.5)
    return {"loaded_by": os.getpid()}
print(json.dumps(ns.get("k", loader, wait=20)), flush=True)
"""


class CacheTest(unittest.TestCase):
    def setUp(self):
        self.server = CacheServer().__enter__()
        self.addCleanup(self.server.__exit__)

    def use(self, name, **options):
        return cache.use(name, address=self.server.address, **options)

    def test_get_or_load_raced_by_processes_runs_the_loader_once(self):
        log_path = f"{self.server.dir}/loads"
        env = dict(os.environ, PYTHONPATH=testlib.PYTHONPATH, CLUSTER2_CACHE=self.server.address,
                   C2T_LOAD_LOG=log_path)
        env.pop("CLUSTER2_MASTER", None)
        racers = [subprocess.Popen(["/usr/bin/python3", "-c", RACER], env=env, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                  for _ in range(6)]
        for racer in racers:
            self.addCleanup(racer.wait, 10)
            self.addCleanup(testlib.kill_pid, racer.pid)
        deadline = time.monotonic() + 20
        for racer in racers:  # all connected before any starts
            self.assertTrue(select.select([racer.stdout], [], [], deadline - time.monotonic())[0])
            self.assertEqual(racer.stdout.readline(), "ready\n")
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        answers = [json.loads(racer.communicate(timeout=30)[0]) for racer in racers]
        self.assertEqual([racer.returncode for racer in racers], [0] * 6)
        with open(log_path) as log:
            loaders = log.read().split()
        self.assertEqual(len(loaders), 1, loaders)
        self.assertEqual(answers, [{"loaded_by": int(loaders[0])}] * 6)
        stats = self.use("race").stats()
        self.assertEqual(stats["loads"], 1)
        self.assertEqual(stats["keys"], 1)

    def test_a_failing_loader_fails_its_caller_and_the_parked_ones(self):
        ns = self.use("fail")
        loading, release = threading.Event(), threading.Event()
        results = queue.Queue()

        def failing_loader():
            loading.set()
            release.wait(10)
            raise ValueError("no data")

        def get(loader):
            try:
                results.put(ns.get("k", loader, wait=10))
            except Exception as error:  # the outcome under test
                results.put(error)
        holder = threading.Thread(target=get, args=(failing_loader,))
        holder.start()
        self.assertTrue(loading.wait(5))
        parked = threading.Thread(target=get, args=(lambda: "never",))
        parked.start()
        self.assertTrue(wait_until(lambda: ns.stats()["waiting"] == 1, 5))
        release.set()
        holder.join(10)
        parked.join(10)
        outcomes = [results.get(timeout=1), results.get(timeout=1)]
        self.assertEqual(sorted(type(o).__name__ for o in outcomes), ["Error", "ValueError"])
        aborted = [o for o in outcomes if isinstance(o, cluster2.Error)][0]
        self.assertEqual(aborted.code, grpc.StatusCode.ABORTED)
        self.assertIn("no data", aborted.message)
        # Nothing was stored: the next caller loads.
        self.assertEqual(ns.get("k", lambda: "second"), "second")

    def test_a_parked_get_times_out_with_deadline_exceeded(self):
        ns = self.use("slow")
        loading, release = threading.Event(), threading.Event()

        def loader():
            loading.set()
            return release.wait(10) and 1
        holder = threading.Thread(target=ns.get, args=("k", loader))
        holder.start()
        self.addCleanup(holder.join, 10)
        self.addCleanup(release.set)
        self.assertTrue(loading.wait(5))
        started = time.monotonic()
        with self.assertRaises(cluster2.Error) as error:
            ns.get("k", lambda: 2, wait=0.3)
        self.assertEqual(error.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(error.exception.reason, "WAIT_EXPIRED")
        self.assertLess(time.monotonic() - started, 3)

    def test_set_get_delete_keys_with_json_values(self):
        ns = self.use("json")
        values = {"d": {"a": [1, 2.5, None, True], "b": {}}, "s": "h\u00e9", "n": 7, "l": [],
                  "f": False}
        for key, value in values.items():
            self.assertTrue(ns.set(key, value))
        for key, value in values.items():
            self.assertEqual(ns.get(key), value)
        self.assertIsNone(ns.get("missing"))
        self.assertFalse(ns.set("n", 8, leave_if_not_null=True))
        self.assertEqual(ns.get("n"), 7)
        self.assertTrue(ns.set("n", 8))
        self.assertEqual(ns.get("n"), 8)
        self.assertEqual(ns.keys(), sorted(values))
        self.assertEqual(ns.keys(prefix="d"), ["d"])
        self.assertEqual(ns.keys(limit=2), ["d", "f"])
        self.assertEqual(ns.delete("s"), "h\u00e9")
        self.assertIsNone(ns.del_("s"))
        self.assertIsNone(ns.get("s"))
        # The same bytes other clients read and write: JSON text.
        ctl = [testlib.CTL, "--cache-socket", self.server.address[len("unix:"):], "cache"]
        shown = subprocess.run(ctl + ["get", "json", "d"], capture_output=True, text=True,
                               timeout=10)
        self.assertEqual(json.loads(shown.stdout), values["d"])
        for raw, expected in (('{"x":1}', {"x": 1}), ("hello", "hello")):
            written = subprocess.run(ctl + ["set", "json", "raw", raw], capture_output=True,
                                     text=True, timeout=10)
            self.assertEqual(written.returncode, 0, written.stderr)
            self.assertEqual(ns.get("raw"), expected)
        with self.assertRaises(TypeError):
            ns.set("bad", {1, 2})

    def test_a_value_of_the_largest_size_reads_back(self):
        # 4 MiB of JSON text (a string of 4 MiB - 2 characters and its
        # quotes): the reply is over gRPC's default 4 MiB receive limit.
        ns = self.use("big")
        value = "x" * ((4 << 20) - 2)
        self.assertTrue(ns.set("k", value))
        self.assertEqual(ns.get("k"), value)

    def test_watch_and_unwatch(self):
        ns = self.use("watched")
        on_key, on_all = queue.Queue(), queue.Queue()

        def key_fn(value, key):
            on_key.put((value, key))
        ns.watch("k", key_fn)
        ns.watch(None, lambda value, key: on_all.put((value, key)))
        other = self.use("watched")  # another client's writes look the same
        other.set("k", {"v": 1})
        other.set("j", 2)
        other.delete("k")
        self.assertEqual(on_key.get(timeout=5), ({"v": 1}, "k"))
        self.assertEqual(on_key.get(timeout=5), (None, "k"))
        self.assertEqual([on_all.get(timeout=5) for _ in range(3)],
                         [({"v": 1}, "k"), (2, "j"), (None, "k")])
        self.assertTrue(ns.unwatch("k", key_fn))
        self.assertFalse(ns.unwatch("k", key_fn))
        other.set("k", 3)
        self.assertEqual(on_all.get(timeout=5), (3, "k"))  # delivered after the key's
        self.assertTrue(on_key.empty())

    def test_expiry_and_namespace_options(self):
        ns = self.use("short", expire=0.3)
        self.assertEqual(ns.expire, 0.3)
        self.assertFalse(ns.conflict)
        gone = queue.Queue()
        ns.watch("k", lambda value, key: gone.put(value))
        ns.set("k", "v")
        self.assertEqual(gone.get(timeout=5), "v")
        self.assertIsNone(gone.get(timeout=5))  # KIND_EXPIRE
        self.assertIsNone(ns.get("k"))
        again = self.use("short", expire=5)
        self.assertTrue(again.conflict)
        self.assertEqual(again.expire, 0.3)
        ns.set("ttl", 1, ttl=60)
        self.assertEqual(ns.get("ttl"), 1)

    def test_error_codes(self):
        with self.assertRaises(cluster2.Error) as error:
            self.use("bad name")
        self.assertEqual(error.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        ns = self.use("errors")
        with self.assertRaises(cluster2.Error) as error:
            ns.set("", 1)
        self.assertEqual(error.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(cluster2.Error) as error:
            ns.set("big", "x" * (5 << 20))
        self.assertEqual(error.exception.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        with self.assertRaises(cluster2.Error) as error:
            self.use("persisted", persist=True)  # the server has no data directory
        self.assertEqual(error.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(error.exception.reason, "PERSISTENCE_UNAVAILABLE")
        saved = os.environ.pop("CLUSTER2_CACHE", None)
        try:
            with self.assertRaises(cluster2.Error) as error:
                cache.use("anywhere")
            self.assertEqual(error.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        finally:
            if saved is not None:
                os.environ["CLUSTER2_CACHE"] = saved


if __name__ == "__main__":
    sys.exit(testlib.run_tests(__name__, "CacheTest"))
