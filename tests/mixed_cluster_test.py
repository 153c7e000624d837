#!/usr/bin/python3
"""A mixed cluster: two C++ workers, one Python worker (clients/python) and
one Node worker (clients/node) as worker groups of one master, with the
cache server. All four serve HTTP; a rolling restart under wrk -c32 fails no
request; a get-or-load raced from C++, Python and Node processes runs its
loader once; events go from Python to Node and back in order; a status
registered in Node is read and set with cluster2ctl; Welcome gives Python
and Node the cluster's name and the cache's address.

Node's dependencies come from `npm ci` in clients/node (make test runs it);
the package is used from the source tree, where its node_modules are."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
CACHE_WORKER = os.path.join(RUNFILES, "tests/testing/cache_worker")
MIXED = os.path.join(RUNFILES, "tests/mixed")
PYTHONPATH = ":".join(os.path.join(RUNFILES, d) for d in ("clients/python", "clients/python/stubs"))
# The Node package where its node_modules are: the source tree.
NODE_PACKAGE = os.path.dirname(os.path.realpath(os.path.join(RUNFILES, "clients/node/index.js")))
NODE = shutil.which("node") or "/usr/bin/node"
NAME = "mixed"

from e2e import Wrk, free_port, run_ctl, stop_process, wait_until  # noqa: E402


def http_get(port, path="/", timeout=15):
    """(status, body) of GET path; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class MixedCluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="c2m-", dir="/tmp")
        self.run_dir = os.path.join(self.dir, "run")
        self.port, self.mon_port = free_port(), free_port()
        config = {
            "name": NAME, "port": self.port, "host": "127.0.0.1", "monPort": self.mon_port,
            "runDir": self.run_dir, "heartbeatInterval": 200,
            "cache": {"persistPath": os.path.join(self.dir, "data")},
            "groups": [
                {"name": "cpp", "command": [HELLO], "noWorkers": 2},
                {"name": "py", "command": ["/usr/bin/python3", os.path.join(MIXED, "mixed_worker.py")],
                 "env": {"PYTHONPATH": PYTHONPATH}},
                {"name": "node", "command": [NODE, os.path.join(MIXED, "mixed_worker.js")],
                 "env": {"MIXED_NODE_PACKAGE": NODE_PACKAGE}},
            ],
        }
        path = os.path.join(self.dir, "cluster.json")
        with open(path, "w") as out:
            json.dump(config, out)
        self.log_path = os.path.join(self.dir, "master.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([MASTER, "--config", path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: len(self.ready()) == 4, 60, "4 ready workers")
        except AssertionError:
            self.stop()
            raise

    def ctl(self, *args, check=True):
        return run_ctl(CTL, self.run_dir, *args, check=check)

    def ready(self):
        workers = json.loads(self.ctl("workers", "-o", "json").stdout)["workers"]
        return [w for w in workers if w.get("state") == "WORKER_STATE_READY"]

    def pid_of(self, group):
        return next(w["pid"] for w in self.ready() if w["group"] == group)

    def stop(self):
        stop_process(self.proc)
        self.log.close()
        outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if outputs:  # the master's log among the test's outputs
            shutil.copy(self.log_path, os.path.join(outputs, "mixed-master.log"))
        shutil.rmtree(self.dir, ignore_errors=True)


class MixedClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(NODE_PACKAGE, "node_modules", "@grpc", "grpc-js")):
            raise AssertionError(f"{NODE_PACKAGE}/node_modules is missing: run `npm ci` there "
                                 "(make test does)")
        cls.cluster = MixedCluster()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def answers_until(self, path, accept, want, timeout=20):
        """GETs `path` until `want(answers)` holds for the accepted answers."""
        answers = []
        deadline = time.monotonic() + timeout
        while not want(answers):
            self.assertLess(time.monotonic(), deadline, f"answers to {path}: {answers}")
            status, body = http_get(self.cluster.port, path)
            if accept(status, body):
                answers.append(body)
        return answers

    def test_every_group_serves_http(self):
        pids = {w["pid"]: w["group"] for w in self.cluster.ready()}
        seen = {}
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            status, body = http_get(self.cluster.port)
            self.assertEqual(status, 200, body)
            pid = int(body.split()[-1])
            seen[pid] = body.split()[0]
        self.assertEqual(set(seen), set(pids))
        kinds = sorted(seen[pid] for pid in seen)
        self.assertEqual(kinds, ["node", "python", "worker", "worker"], seen)

    def test_welcome_gives_python_and_node_the_cluster_and_the_cache(self):
        def welcome(status, body):
            return status == 200 and body.startswith("{")
        answers = self.answers_until("/welcome", welcome,
                                     lambda got: len({json.loads(a)["pid"] for a in got}) == 2)
        cache = f"unix:{self.cluster.run_dir}/cache.sock"
        for answer in answers:
            self.assertEqual(json.loads(answer)["clusterName"], NAME, answer)
            self.assertEqual(json.loads(answer)["cacheAddress"], cache, answer)

    def test_events_go_from_python_to_node_and_back_in_order(self):
        node = self.cluster.pid_of("node")
        answers = self.answers_until(f"/ping?pid={node}&n=50",
                                     lambda status, body: status == 200 and body.startswith("["),
                                     lambda got: len(got) == 1, timeout=30)
        self.assertEqual(json.loads(answers[0]), list(range(1, 51)))

    def test_a_status_registered_in_node_is_read_and_set_with_cluster2ctl(self):
        node = self.cluster.pid_of("node")
        entries = json.loads(self.cluster.ctl("status", "node-level", "-o", "json").stdout)
        self.assertIn(str(node), json.dumps(entries))
        self.cluster.ctl("status", "set", "node-level", "7")
        shown = self.cluster.ctl("status", "node-level").stdout
        self.assertRegex(shown, rf"{node}.*\b7\b", shown)

    def test_a_get_or_load_raced_from_cpp_python_and_node_loads_once(self):
        socket_path = os.path.join(self.cluster.run_dir, "cache.sock")
        env = dict(os.environ, PYTHONPATH=PYTHONPATH, MIXED_NODE_PACKAGE=NODE_PACKAGE)
        racers = [
            subprocess.Popen([CACHE_WORKER, f"--socket=unix:{socket_path}", "--ns=race", "--key=k",
                              "--load-ms=300", "--barrier"], stdout=subprocess.PIPE, text=True),
            subprocess.Popen(["/usr/bin/python3", os.path.join(MIXED, "cache_racer.py"),
                              f"unix:{socket_path}", "race", "k"], stdout=subprocess.PIPE,
                             text=True, env=env),
            subprocess.Popen([NODE, os.path.join(MIXED, "cache_racer.js"), f"unix:{socket_path}",
                              "race", "k"], stdout=subprocess.PIPE, text=True, env=env),
        ]
        try:
            for racer in racers:
                self.assertEqual(racer.stdout.readline().strip(), "ready")
            self.cluster.ctl("cache", "set", "barrier", "go", "1")
            outputs = [racer.communicate(timeout=60)[0] for racer in racers]
        finally:
            for racer in racers:
                if racer.poll() is None:
                    racer.kill()
                    racer.wait()
        everything = "".join(outputs)
        loads = re.findall(r"^loading (\d+)$", everything, re.M)
        self.assertEqual(len(loads), 1, everything)
        # "got VALUE" (Python, Node: the JSON value), "got SUCCESSES BYTES"
        # (C++: the stored bytes). Python and Node store JSON text, so a
        # value they loaded reaches C++ as '"value-<pid>"'; one C++ loaded
        # (raw bytes, not JSON) reaches them as the string.
        def decoded(token):
            try:
                return json.loads(token)
            except ValueError:
                return token
        got = [decoded(line.split()[-1]) for out in outputs for line in out.splitlines()
               if line.startswith("got ")]
        self.assertEqual(got, [f"value-{loads[0]}"] * 3, everything)

    def test_zz_a_rolling_restart_under_wrk_fails_no_request(self):
        before = {w["pid"] for w in self.cluster.ready()}
        load = Wrk(self.cluster.port)
        try:
            time.sleep(0.5)  # wrk's 32 keep-alive connections are open
            self.cluster.ctl("restart")
            wait_until(lambda: not before & {w["pid"] for w in self.cluster.ready()}
                       and len(self.cluster.ready()) == 4, 90, "every worker replaced")
            time.sleep(0.5)
        finally:
            requests, failures, output = load.stop()
        print(f"wrk during the rolling restart of the mixed cluster: {requests} requests, "
              f"{failures} failed")
        self.assertGreater(requests, 100, output)
        self.assertEqual(failures, 0, output)
        groups = sorted(w["group"] for w in self.cluster.ready())
        self.assertEqual(groups, ["cpp", "cpp", "node", "py"])


if __name__ == "__main__":
    import pyjunit
    sys.exit(pyjunit.main(__name__, "MixedClusterTest"))
