#!/usr/bin/python3
"""cluster2.listen() workers run by the real master: HTTP on the inherited
socket (http.server handler and WSGI), the Welcome's cluster name and cache
address, heartbeats with request figures, pause/resume, drain on SIGTERM
and on the master's Drain, and listen() starting the master itself."""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import Cluster, alive, http_get, http_json, wait_until  # noqa: E402

import grpc  # noqa: E402
from cluster2.v1 import cluster_pb2, cluster_pb2_grpc, common_pb2  # noqa: E402


def pids_serving(port, requests=10):
    """The pids that answered `requests` GET / on new connections."""
    pids = set()
    for _ in range(requests):
        status, body, _ = http_get(port)
        assert status == 200, body
        pids.add(int(body.split()[3]))
    return pids


def pids_answering(port, expected, attempts=50):
    """GET / on new connections until every pid of `expected` answered (or
    `attempts` ran out): balancing by source port needs a few connections."""
    pids = set()
    for _ in range(attempts):
        pids |= pids_serving(port, 1)
        if pids >= set(expected):
            break
    return pids


class ClusterTest(unittest.TestCase):
    def start(self, **kwargs):
        cluster = Cluster(**kwargs)
        self.addCleanup(cluster.stop)
        return cluster.start()

    def test_workers_serve_http_and_know_their_cluster(self):
        cluster = self.start()
        pids = pids_answering(cluster.port, cluster.ready_pids())
        self.assertEqual(pids, set(cluster.ready_pids()))
        infos = {}
        for _ in range(50):  # until both answered
            info = http_json(cluster.port, "/info")
            infos[info["pid"]] = info
            if set(infos) == pids:
                break
        for info in infos.values():
            self.assertEqual(info["cluster_name"], cluster.name)
            self.assertEqual(info["cache_address"], cluster.cache_address)
            self.assertEqual(info["heartbeat_interval"], 0.2)
        self.assertEqual(sorted(info["id"] for info in infos.values()), [0, 1])
        for worker in cluster.workers():
            self.assertTrue(worker.attached)
            self.assertEqual(list(worker.debug_protocols), ["debugpy"])

    def test_heartbeats_carry_process_and_request_figures(self):
        cluster = self.start(workers=1)
        [pid] = cluster.ready_pids()
        for _ in range(10):
            self.assertEqual(http_get(cluster.port, "/slow?ms=40")[0], 200)
        beats = []

        def sampled():  # every beat since the requests, until one has their figures
            beat = cluster.workers()[0].last_heartbeat
            if not beats or beats[-1] != beat:
                beats.append(beat)
            return beat.requests_total == 10 and any(
                b.latency_p50.ToNanoseconds() >= 40e6 for b in beats)
        self.assertTrue(wait_until(sampled, 5), beats[-1:])
        with_latency = [b for b in beats if b.latency_p50.ToNanoseconds() >= 40e6][0]
        self.assertGreaterEqual(with_latency.latency_p99.ToNanoseconds(),
                                with_latency.latency_p50.ToNanoseconds())
        self.assertLess(with_latency.latency_p99.ToNanoseconds(), 2e9)
        # Beats after them carry no latency: p50/p99 are per beat.
        self.assertTrue(wait_until(lambda: cluster.workers()[0].last_heartbeat.latency_p50
                                   .ToNanoseconds() == 0, 5))
        beat = cluster.workers()[0].last_heartbeat
        self.assertGreater(beat.rss_bytes, 1 << 20)
        self.assertGreater(beat.threads, 2)
        self.assertGreater(beat.open_fds, 3)
        self.assertGreater(beat.cpu_time.ToNanoseconds(), 0)
        self.assertGreater(beat.uptime.ToNanoseconds(), 0)
        # (sent_at is checked in unit_test: the master does not list it.)
        self.assertGreaterEqual(beat.lag.ToNanoseconds(), 0)
        self.assertLess(beat.lag.ToNanoseconds(), 0.5e9)

        # A request in flight shows in the beats while it runs.
        slow = threading.Thread(target=http_get, args=(cluster.port, "/slow?ms=1500"))
        slow.start()
        self.addCleanup(slow.join)
        self.assertTrue(wait_until(lambda: cluster.workers()[0].last_heartbeat
                                   .requests_in_flight == 1, 5))
        slow.join(10)
        self.assertTrue(wait_until(lambda: cluster.workers()[0].last_heartbeat
                                   .requests_total == 11, 5))
        self.assertEqual(cluster.workers()[0].last_heartbeat.requests_in_flight, 0)

    def test_keep_alive_connections_for_handlers_and_wsgi(self):
        for mode in ("handler", "wsgi"):
            with self.subTest(mode=mode):
                cluster = self.start(workers=1, env={"C2T_MODE": mode})
                connection = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=10)
                self.addCleanup(connection.close)
                connection.request("GET", "/")
                first = connection.getresponse()
                self.assertEqual(first.status, 200)
                self.assertTrue(first.read().startswith(b"py 0 pid "))
                sock = connection.sock
                for size in (0, 1, 70000):
                    body = os.urandom(size)
                    connection.request("POST", "/echo", body=body)
                    echoed = connection.getresponse()
                    self.assertEqual((echoed.status, echoed.read()), (200, body))
                connection.request("GET", "/nothing")
                missing = connection.getresponse()
                self.assertEqual(missing.status, 404)
                missing.read()
                self.assertIs(connection.sock, sock, "the connection was not kept")
                cluster.stop()

    def test_a_server_of_the_apps_own_with_serve(self):
        cluster = self.start(workers=1, env={"C2T_MODE": "serve"})
        [pid] = cluster.ready_pids()
        status, body, _ = http_get(cluster.port)
        self.assertEqual((status, body), (200, f"serve pid {pid}\n"))
        self.assertTrue(wait_until(lambda: cluster.workers()[0].last_heartbeat
                                   .requests_total == 1, 5))
        os.kill(pid, signal.SIGTERM)  # drains: serve() returns 0
        self.assertTrue(wait_until(lambda: f"pid {pid} ended: exit 0" in cluster.master_log(),
                                   10), cluster.master_log())

    def test_pause_and_resume_are_acknowledged(self):
        cluster = self.start()
        paused, other = cluster.ready_pids()
        done = cluster.ctl("pause", str(paused))
        self.assertEqual(done.returncode, 0, done.stderr + cluster.master_log())
        states = {w.pid: w.state for w in cluster.workers()}
        self.assertEqual(states[paused], common_pb2.WORKER_STATE_PAUSED)
        self.assertEqual(pids_serving(cluster.port, 6), {other})
        done = cluster.ctl("resume", str(paused))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual({w.pid: w.state for w in cluster.workers()}[paused],
                         common_pb2.WORKER_STATE_READY)
        self.assertEqual(pids_answering(cluster.port, {paused, other}), {paused, other})

    def test_sigterm_drains_a_keep_alive_connection_without_losing_its_request(self):
        cluster = self.start(workers=1)
        [pid] = cluster.ready_pids()
        connection = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=10)
        self.addCleanup(connection.close)
        connection.request("GET", "/")
        connection.getresponse().read()
        connection.request("GET", "/slow?ms=1000")  # in flight on the kept connection
        self.assertTrue(wait_until(lambda: cluster.workers()[0].last_heartbeat
                                   .requests_in_flight == 1, 5))
        os.kill(pid, signal.SIGTERM)
        answer = connection.getresponse()
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.read().decode(), f"slow pid {pid}\n")
        self.assertEqual(answer.headers["Connection"], "close")
        self.assertTrue(wait_until(lambda: not alive(pid), 10), cluster.master_log())
        self.assertTrue(wait_until(lambda: f"pid {pid} ended: exit 0" in cluster.master_log(), 5),
                        cluster.master_log())
        # Its replacement serves.
        self.assertTrue(wait_until(lambda: cluster.ready_count() == 1, 15))
        self.assertNotEqual(pids_serving(cluster.port, 2), {pid})

    def test_master_drain_closes_idle_keep_alive_connections_and_exits(self):
        cluster = self.start()
        drained = [w.pid for w in cluster.workers() if w.id == 1][0]  # scale 1 drains slot 1
        idle = None
        for _ in range(50):  # one of the first connections is its
            connection = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=10)
            self.addCleanup(connection.close)
            connection.request("GET", "/")
            if int(connection.getresponse().read().split()[3]) == drained:
                idle = connection
                break
        self.assertIsNotNone(idle, "no connection reached the worker of slot 1")
        done = cluster.ctl("scale", "1")
        self.assertEqual(done.returncode, 0, done.stderr)
        # Its idle keep-alive connection is closed, not left hanging, and it
        # exits 0.
        idle.sock.settimeout(10)
        self.assertEqual(idle.sock.recv(1), b"")
        self.assertTrue(wait_until(lambda: not alive(drained), 10), cluster.master_log())
        self.assertTrue(wait_until(lambda: f"pid {drained} ended: exit 0" in cluster.master_log(),
                                   5), cluster.master_log())
        self.assertEqual(len(cluster.ready_pids()), 1)

    def test_listen_from_a_shell_starts_the_master(self):
        directory = tempfile.mkdtemp(prefix="c2l-", dir="/tmp")
        port = testlib.free_port()
        name = f"pyl{os.getpid()}"
        options = {"port": port, "host": "127.0.0.1", "no_workers": 2, "mon_port": 0,
                   "name": name, "run_dir": f"{directory}/run",
                   "config": {"heartbeat_interval": 200}}
        env = dict(os.environ, PYTHONPATH=testlib.PYTHONPATH, CLUSTER2_MASTER_BIN=testlib.MASTER,
                   C2T_LISTEN=json.dumps(options), XDG_STATE_HOME=f"{directory}/state")
        for variable in ("CLUSTER2_MASTER", "CLUSTER2_CACHE", "LISTEN_FDS", "LISTEN_PID"):
            env.pop(variable, None)
        log = open(f"{directory}/launcher.log", "w+")
        launcher = subprocess.Popen(["/usr/bin/python3", testlib.APP_WORKER], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        pids = set()

        def cleanup():
            testlib.kill_pid(launcher.pid)
            launcher.wait(10)
            for pid in pids:
                testlib.kill_pid(pid)
            log.close()
            import shutil
            shutil.rmtree(directory, ignore_errors=True)
        self.addCleanup(cleanup)

        socket_path = f"{directory}/run/master.sock"
        log.flush()
        self.assertTrue(wait_until(lambda: os.path.exists(socket_path), 20),
                        open(log.name).read())
        channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.addCleanup(channel.close)
        stub = cluster_pb2_grpc.ClusterStub(channel)

        def listed():
            try:
                return stub.ListWorkers(cluster_pb2.ListWorkersRequest(), timeout=5)
            except grpc.RpcError:
                return None
        self.assertTrue(wait_until(lambda: (listed() or cluster_pb2.ListWorkersResponse())
                                   .workers and sum(w.state == common_pb2.WORKER_STATE_READY
                                                    for w in listed().workers) == 2, 20),
                        open(log.name).read())
        workers = listed()
        pids.update([workers.master_pid] + [w.pid for w in workers.workers])
        expected = {w.pid for w in workers.workers}
        self.assertEqual(pids_answering(port, expected), expected)
        config = cluster_pb2_grpc.ClusterStub(channel).GetConfig(
            cluster_pb2.GetConfigRequest(), timeout=5).config
        self.assertEqual(config.heartbeat_interval, 200)
        self.assertEqual(list(config.command), ["/usr/bin/python3", testlib.APP_WORKER])
        launcher.send_signal(signal.SIGINT)  # a terminal's Ctrl-C: a graceful stop
        self.assertEqual(launcher.wait(20), 0)
        for pid in pids:
            self.assertTrue(wait_until(lambda: not alive(pid), 5), pid)


if __name__ == "__main__":
    sys.exit(testlib.run_tests(__name__, "ClusterTest"))
