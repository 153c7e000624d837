#!/usr/bin/python3
"""A rolling restart of Python workers under keep-alive load fails no
request: each worker drains (Connection: close on the answers in flight,
idle connections closed) after its successor is ready. The load is wrk -c32
when /usr/bin/wrk is installed, and keep-alive client threads of our own in
any case."""
import http.client
import os
import re
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import Cluster, wait_until  # noqa: E402

WRK = "/usr/bin/wrk"
CONNECTIONS = 32


class KeepAliveClients:
    """CONNECTIONS threads, each sending GET / on its own keep-alive
    connection until stopped (a new connection when the server closes one);
    counts answers and failures."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.threads = [threading.Thread(target=self._run) for _ in range(CONNECTIONS)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                body = response.read()
                if response.status != 200 or not body.startswith(b"py "):
                    raise AssertionError(f"{response.status} {body!r}")
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()  # http.client reopens on the next request
                with self.lock:
                    self.ok += 1
            except Exception as error:  # every failure counts
                with self.lock:
                    self.failures.append(repr(error))
                connection.close()


class RollingRestartTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster()
        self.addCleanup(self.cluster.stop)
        self.cluster.start()

    def served(self):
        return sum(w.last_heartbeat.requests_total for w in self.cluster.workers())

    def restart(self, load_running):
        """Restarts every worker while `load_running()`; returns the pids
        before and after."""
        before = set(self.cluster.ready_pids())
        # Under load: the workers' beats count its requests.
        start = self.served()
        self.assertTrue(wait_until(lambda: self.served() > start + 100, 20))
        done = self.cluster.ctl("restart", timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr + self.cluster.master_log())
        self.assertTrue(load_running(), "the restart outlasted the load")
        self.assertTrue(wait_until(lambda: len(self.cluster.ready_pids()) == 2 and
                                   not set(self.cluster.ready_pids()) & before, 20),
                        self.cluster.master_log())
        after = set(self.cluster.ready_pids())
        # Each drained and exited 0 (the master logs it once it reaped it).
        for pid in before:
            self.assertTrue(wait_until(lambda: f"pid {pid} ended: exit 0" in
                                       self.cluster.master_log(), 10), self.cluster.master_log())
        return before, after

    @unittest.skipUnless(os.access(WRK, os.X_OK), "wrk is not installed")
    def test_restart_under_wrk_fails_no_request(self):
        wrk = subprocess.Popen([WRK, "-t2", f"-c{CONNECTIONS}", "-d12s", "--timeout", "5s",
                                f"http://127.0.0.1:{self.cluster.port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(testlib.kill_pid, wrk.pid)
        self.restart(lambda: wrk.poll() is None)
        output = wrk.communicate(timeout=60)[0]
        self.assertEqual(wrk.returncode, 0, output)
        requests = int(re.search(r"(\d+) requests in", output).group(1))
        self.assertGreater(requests, 500, output)
        self.assertNotIn("Socket errors", output)
        self.assertNotIn("Non-2xx", output)

    def test_restart_under_keep_alive_client_threads_fails_no_request(self):
        with KeepAliveClients(self.cluster.port) as clients:
            before, after = self.restart(lambda: not clients.stop.is_set())
            # Load reaches the successors too before it stops.
            start = clients.ok
            self.assertTrue(wait_until(lambda: clients.ok > start + 200, 20))
        self.assertEqual(clients.failures, [])
        self.assertGreater(clients.ok, 500)


if __name__ == "__main__":
    sys.exit(testlib.run_tests(__name__, "RollingRestartTest"))
