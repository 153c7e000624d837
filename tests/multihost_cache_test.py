#!/usr/bin/python3
"""The cache of three hosts on one shared Redis (cache.backend): one real
redis-server on a Unix socket, three hosts (network namespaces on veth
pairs, as in multihost_test.py), each a cluster2-master with
`--cache.backend=unix:<the socket>` whose cluster2-cache serves its own
<runDir>/cache.sock. The clients are small Python processes on the cluster2
package (clients/python), each run "on" a host (`ip netns exec NS`) against
that host's cache socket:

  a. one get-or-load of a key raced by a client on every host: the loader
     runs once, all three get its value;
  b. a lease holder on host1 is SIGKILLed: a parked client on host2 or host3
     loads within 1 s, both end with its value;
  c. a watcher on host1 sees host2's 50 writes in order with increasing
     revisions; a read on host3 sees host2's write at once (the Python
     client has no near-cache: that part is skipped, and says so);
  d. Redis SIGKILLed: cache calls fail with UNAVAILABLE ("redis at ...")
     in < 2 s, `cluster2ctl cache get` exits 3 saying the cache server
     cannot reach its Redis, the workers serve HTTP; Redis restarted on the
     same socket (empty): every host can Use, set and get again, reads the
     others' writes, and a get-or-load race across hosts loads once again.

Needs root (ip netns, veth). Without network namespaces the three masters run
side by side on 127.0.0.1 with their own ports, and the test says so loudly.
Unix sockets are files: a cache server in a namespace reaches the Redis of
the root namespace, and the test reaches every host's cache socket."""
import atexit
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
CACHE = os.path.join(RUNFILES, "cache_server/cluster2-cache")  # the master finds it beside itself
REDIS = "/usr/bin/redis-server"
PACKAGE = os.path.join(RUNFILES, "clients/python")
# The :cluster2_stubs genrule's output under Bazel; outside it (runfiles
# whose clients/ is the source tree) the stubs are generated here.
STUBS = os.path.join(RUNFILES, "clients/python/stubs")
if not os.path.exists(os.path.join(STUBS, "cluster2/v1/cache_pb2.py")):
    STUBS = tempfile.mkdtemp(prefix="c2mcstubs-", dir="/tmp")
    atexit.register(shutil.rmtree, STUBS, True)
    subprocess.run([os.path.join(PACKAGE, "gen_stubs.sh"), STUBS, os.path.join(RUNFILES, "proto")],
                   check=True)
sys.path[:0] = [PACKAGE, STUBS]
PYTHONPATH = f"{PACKAGE}:{STUBS}"

from e2e import stop_process, wait_until  # noqa: E402
from hosts import Fleet as BaseFleet, Host as BaseHost, Timer, clean_env, http_status, main  # noqa: E402
from cluster2 import cache  # noqa: E402

HOSTS = 3
SERVICE_PORT, MON_PORT = 8080, 8081  # a master's ports inside its namespace


# The client processes: one script, run by the test as
# `[ip netns exec NS] python3 -u client.py MODE JSON`. Every record it makes
# is one JSON line appended to args["out"]; times are time.monotonic()
# (CLOCK_MONOTONIC: one clock for every process of the machine).
CLIENT = r'''
import json, os, sys, threading, time
import grpc
from cluster2 import cache, Error

mode, a = sys.argv[1], json.loads(sys.argv[2])
host = a["host"]


def out(**record):
    record.setdefault("t", time.monotonic())
    record.setdefault("host", host)
    with open(a["out"], "a") as f:
        f.write(json.dumps(record, default=repr) + "\n")


def wait_file(path, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            out(event="timeout", waiting_for=path)
            sys.exit(5)
        time.sleep(0.002)


def attempt(op, fn):
    """Runs fn(); records its outcome and duration."""
    start = time.monotonic()
    try:
        value = fn()
        out(event="op", op=op, ok=True, value=value, seconds=time.monotonic() - start)
        return True, value
    except Error as error:
        out(event="op", op=op, ok=False, code=error.code.name, message=error.message,
            reason=error.reason, seconds=time.monotonic() - start)
        return False, None


if mode == "race":  # a: every host gets `key` at the same moment
    ns = cache.use(a["ns"], address=a["address"])
    ns.get("warm-" + host, lambda: 1)  # the Hold stream is open before the race

    def loader():
        with open(a["loads"], "a") as f:
            f.write(host + "\n")
        out(event="loader")
        time.sleep(0.5)
        return {"from": host}
    out(event="ready")
    wait_file(a["go"], 30)
    out(event="get")
    value = ns.get(a["key"], loader, wait=20)
    out(event="value", value=value)

elif mode == "handoff":  # b: the holder's loader blocks until it is killed
    ns = cache.use(a["ns"], address=a["address"])
    ns.get("warm-" + host, lambda: 1)

    def loader():
        out(event="loader")
        if a["block"]:
            wait_file(a["never"], 120)  # SIGKILLed long before
        return {"from": host}
    out(event="ready")
    value = ns.get(a["key"], loader, wait=30)
    out(event="value", value=value)

elif mode == "watch":  # c: the client's watch, and a raw Watch for revisions
    from cluster2.v1 import cache_pb2, cache_pb2_grpc
    ns = cache.use(a["ns"], address=a["address"])
    seen = []
    done = threading.Event()

    def on_change(value, key):
        seen.append(key)
        out(event="watch", key=key, value=value)
        if len(seen) >= a["count"]:
            done.set()
    ns.watch(None, on_change)
    stub = cache_pb2_grpc.CacheStub(grpc.insecure_channel(a["address"]))
    call = stub.Watch(cache_pb2.WatchRequest(namespace=a["ns"]), timeout=60, wait_for_ready=True)
    call.initial_metadata()  # registered
    out(event="ready")
    n = 0
    for event in call:
        out(event="raw", key=event.key.decode(), kind=cache_pb2.WatchEvent.Kind.Name(event.kind),
            revision=event.revision, value=event.value.decode(), resync=event.resync)
        n += 1
        if n >= a["count"]:
            break
    call.cancel()
    done.wait(20)
    out(event="done", watched=len(seen))

elif mode == "phased":  # d (and c's reader): ops in phases, each on a go file
    ns = None
    for phase, ops in enumerate(a["phases"]):
        wait_file(os.path.join(a["dir"], f"go-{phase}"), 120)
        for op in ops:
            name, args, wait = op[0], op[1:], a.get("wait", 5.0)
            if name == "use":
                ok, used = attempt("use", lambda: cache.use(a["ns"], address=a["address"], timeout=wait))
                if ok:
                    ns = used
            elif name == "get":
                attempt("get " + args[0], lambda: ns.get(args[0], wait=wait))
            elif name == "set":
                attempt("set " + args[0], lambda: ns.set(args[0], args[1], wait=wait))
            elif name == "load":
                attempt("load " + args[0], lambda: ns.get(args[0], lambda: args[1], wait=wait))
            elif name == "poll":  # until `key` reads `value`, at most `wait`
                def poll():
                    deadline = time.monotonic() + wait
                    while True:
                        got = ns.get(args[0], wait=wait)
                        if got == args[1] or time.monotonic() > deadline:
                            return got
                        time.sleep(0.001)
                attempt("poll " + args[0], poll)
        out(event="phase", phase=phase)
'''


class Client:
    """One client process on `host`; its records are JSON lines in a file."""

    def __init__(self, fleet, host, name, mode, **args):
        self.name = f"{name}@{host.name}"
        self.out = os.path.join(fleet.clients_dir, f"{name}-{host.name}.jsonl")
        self.log_path = os.path.join(fleet.clients_dir, f"{name}-{host.name}.log")
        args = dict(args, host=host.name, address=host.cache_address, out=self.out)
        command = host.on(sys.executable, "-u", fleet.client_script, mode, json.dumps(args))
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         env=clean_env(PYTHONPATH=PYTHONPATH))
        fleet.clients.append(self)

    def records(self, event=None):
        try:
            with open(self.out) as f:
                records = [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []
        return [r for r in records if event is None or r["event"] == event]

    def log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()[-3000:]

    def wait_for(self, event, timeout, count=1):
        """The first `count` records of `event`, waiting up to `timeout`;
        fails with the client's log if it exits or times out first."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.records(event)
            if len(found) >= count:
                return found[:count]
            if self.proc.poll() is not None:
                found = self.records(event)
                if len(found) >= count:
                    return found[:count]
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before {count} "
                                     f"'{event}' record(s): {self.records()}\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {count} '{event}' record(s) in {timeout}s: "
                                     f"{self.records()}\n{self.log()}")
            time.sleep(0.01)

    def finish(self, timeout):
        """Waits for the process to exit (0); fails (and kills it) otherwise."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} still running after {timeout}s: {self.records()}\n{self.log()}")
        if code != 0:
            raise AssertionError(f"{self.name} exited {code}: {self.records()}\n{self.log()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Redis:
    """redis-server on a Unix socket, without persistence."""

    def __init__(self, directory):
        self.dir = directory
        self.sock = os.path.join(directory, "redis.sock")
        self.log_path = os.path.join(directory, "redis.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [REDIS, "--port", "0", "--unixsocket", self.sock, "--save", "", "--appendonly", "no",
                 "--dir", self.dir], stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.ping, 10, f"redis-server to answer on {self.sock}")

    def ping(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited ({self.proc.returncode}):\n{self.log()}")
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(1)
            client.connect(self.sock)
            client.sendall(b"PING\r\n")
            return client.recv(64).startswith(b"+PONG")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def stop(self):
        if self.proc:
            stop_process(self.proc, timeout=10)

    def log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()[-3000:]


class Host(BaseHost):
    """A host's master, with its service and monitoring ports (fixed in a
    namespace, free ones on 127.0.0.1: hosts.Host.ports) and its cache
    server's socket, cache_address."""

    def __init__(self, fleet, n, address, netns):
        super().__init__(n, address, netns, fleet.dir)
        self.port, self.mon_port = self.ports(SERVICE_PORT, MON_PORT)
        self.cache_address = f"unix:{self.run_dir}/cache.sock"

    @property
    def url(self):
        return f"http://{self.address}:{self.port}/"

    def start(self, backend):
        self.start_master([MASTER, "--noWorkers=1", f"--host={self.bind}", f"--port={self.port}",
                           f"--monHost={self.bind}", f"--monPort={self.mon_port}", f"--runDir={self.run_dir}",
                           f"--cache.backend={backend}", f"--cache.persistPath={self.dir}/cache-data",
                           "--heartbeatInterval=200", "--nanny.tolerance=10000", "--", HELLO], env=clean_env())

    def wait_ready(self, timeout=30):
        def ready():
            self.check_running()
            if self.ecv() != 200:
                return False
            if not os.path.exists(f"{self.run_dir}/cache.sock"):
                return False
            try:  # the cache server answers, through Redis
                cache.use("ready", address=self.cache_address, timeout=1)
                return True
            except cache.Error:
                return False
        wait_until(ready, timeout, f"{self.name}'s ECV and its cache (through Redis) to answer")

    def ctl(self, *args, timeout=30):
        """cluster2ctl on this host (in its namespace) against its run dir."""
        return subprocess.run(self.on(CTL, "--run-dir", self.run_dir, *args), capture_output=True, text=True,
                              timeout=timeout, env=clean_env())


class Fleet(BaseFleet):
    """Redis, the three hosts (network namespaces on 10.198.x, see
    hosts.Hosts) and the client processes. close() undoes whatever was done,
    in any state (hosts.Fleet)."""

    def __init__(self):
        super().__init__(Host, HOSTS, tag="c2mc", subnet="10.198", logs="multihost_cache")
        self.clients_dir = os.path.join(self.dir, "clients")
        os.makedirs(self.clients_dir)
        self.client_script = os.path.join(self.dir, "client.py")
        with open(self.client_script, "w") as f:
            f.write(CLIENT)
        self.clients = []
        self.redis = Redis(self.dir)

    def start(self):
        super().start()  # the hosts: namespaces, or (loudly) 127.0.0.1
        with Timer("redis-server"):
            self.redis.start()
        with Timer("three masters ready, their caches on Redis"):
            for host in self.hosts:
                host.start(f"unix:{self.redis.sock}")
            for host in self.hosts:
                host.wait_ready()

    def client(self, host, name, mode, **args):
        return Client(self, host, name, mode, **args)

    def file(self, name):
        return os.path.join(self.dir, name)

    def touch(self, name):
        with open(self.file(name), "w"):
            pass

    def reap_clients(self):
        for client in self.clients:
            client.kill()

    def stop(self):
        self.reap_clients()
        super().stop()
        try:
            self.redis.stop()
        except Exception as error:
            print(f"stopping redis-server: {error!r}")

    def saved_logs(self):
        return [("redis.log", self.redis.log_path)], [("clients", self.clients_dir)]


def waiting(host, namespace):
    """The number of get-or-load calls parked on `host`'s cache server."""
    return cache.use(namespace, address=host.cache_address, timeout=2).stats(wait=2)["waiting"]


class MultiHostCacheTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        print("\nsetting up Redis and three hosts:", flush=True)
        cls.fleet = Fleet()
        cls.fleet.setup()
        print(cls.fleet.describe(lambda h: f"{h.name} {h.address}:{h.port} cache {h.cache_address}")
              + f"; Redis unix:{cls.fleet.redis.sock}", flush=True)

    @classmethod
    def tearDownClass(cls):
        cls.fleet.close()

    def setUp(self):
        self.hosts = self.fleet.hosts

    def tearDown(self):
        self.fleet.reap_clients()

    def race(self, namespace):
        """A get-or-load of one key by a client on every host at once (the
        loader sleeps 0.5 s): asserts the loader ran once and every host got
        its value; returns how long each get took."""
        fleet = self.fleet
        loads, go = fleet.file(f"{namespace}-loads"), fleet.file(f"{namespace}-go")
        clients = [fleet.client(h, namespace, "race", ns=namespace, key="the-key", loads=loads, go=go)
                   for h in self.hosts]
        for client in clients:
            client.wait_for("ready", 30)
        with open(go, "w"):
            pass
        for client in clients:
            client.finish(30)
        values = {c.name: c.records("value")[0]["value"] for c in clients}
        starts = [c.records("get")[0]["t"] for c in clients]
        with open(loads) as f:
            loaders = f.read().split()
        spread = max(starts) - min(starts)
        took = {c.name: round(c.records("value")[0]["t"] - c.records("get")[0]["t"], 3) for c in clients}
        print(f"  {namespace}: loaders run: {loaders}; values: {values}; gets started within "
              f"{spread * 1000:.1f} ms; each get took (s): {took}")
        # A real race: every get was issued while the loader (0.5 s) ran.
        self.assertLess(spread, 0.4, "the three gets did not start together")
        self.assertEqual(len(loaders), 1, f"the loader ran {len(loaders)} times: {loaders}")
        self.assertEqual(set(json.dumps(v, sort_keys=True) for v in values.values()),
                         {json.dumps({"from": loaders[0]})}, values)
        return took

    def test_a_get_or_load_raced_by_every_host_loads_once(self):
        self.race("race")

    def test_b_lease_of_a_killed_holder_passes_to_another_host_within_a_second(self):
        fleet = self.fleet
        h1, h2, h3 = self.hosts
        holder = fleet.client(h1, "holder", "handoff", ns="handoff", key="k", block=True,
                              never=fleet.file("handoff-never"))
        holder.wait_for("loader", 30)  # it holds the lease
        parked = [fleet.client(h, "parked", "handoff", ns="handoff", key="k", block=False) for h in (h2, h3)]
        for client in parked:
            client.wait_for("ready", 30)
        for host in (h2, h3):  # parked on their servers, behind host1's lease
            wait_until(lambda: waiting(host, "handoff") >= 1, 10, f"a parked get-or-load on {host.name}")
        for client in parked:
            self.assertEqual(client.records("loader"), [], f"{client.name} loaded while host1 held the lease")
        killed_at = time.monotonic()
        holder.kill()
        for client in parked:
            client.finish(20)
        loaders = [r for c in parked for r in c.records("loader")]
        values = {c.name: c.records("value")[0]["value"] for c in parked}
        self.assertEqual(len(loaders), 1, f"loaders after the kill: {loaders}")
        delay = loaders[0]["t"] - killed_at
        print(f"  host1's holder SIGKILLed: {loaders[0]['host']} loaded {delay * 1000:.1f} ms later; "
              f"values: {values}")
        self.assertLess(delay, 1.0, "the lease did not pass on within 1 s of the holder's death")
        self.assertEqual(list(values.values()), [{"from": loaders[0]["host"]}] * 2, values)
        # Every host reads it now.
        for host in self.hosts:
            self.assertEqual(cache.use("handoff", address=host.cache_address).get("k"),
                             {"from": loaders[0]["host"]}, host.name)

    def test_c_watch_on_one_host_sees_another_hosts_writes_in_order(self):
        fleet = self.fleet
        h1, h2, h3 = self.hosts
        count = 50
        watcher = fleet.client(h1, "watcher", "watch", ns="watch", count=count)
        watcher.wait_for("ready", 30)
        reader_dir = os.path.join(fleet.dir, "reader")
        os.makedirs(reader_dir)
        reader = fleet.client(h3, "reader", "phased", ns="watch", dir=reader_dir, wait=2.0,
                              phases=[[["use"], ["get", "fresh"]], [["poll", "fresh", "new"]]])
        with open(os.path.join(reader_dir, "go-0"), "w"):
            pass
        reader.wait_for("phase", 30)
        writer_dir = os.path.join(fleet.dir, "writer")
        os.makedirs(writer_dir)
        writes = [["set", f"k{i}", f"v{i}"] for i in range(count)]
        writer = fleet.client(h2, "writer", "phased", ns="watch", dir=writer_dir,
                              phases=[[["use"], *writes, ["set", "fresh", "new"]]])
        with open(os.path.join(writer_dir, "go-0"), "w"):
            pass
        writer.finish(60)
        self.assertTrue(all(r["ok"] for r in writer.records("op")), writer.records("op"))
        with open(os.path.join(reader_dir, "go-1"), "w"):
            pass
        reader.finish(30)
        watcher.finish(30)
        expected = [f"k{i}" for i in range(count)]
        raw = watcher.records("raw")
        seen = watcher.records("watch")
        revisions = [r["revision"] for r in raw]
        print(f"  host1 saw {len(raw)} raw events, revisions {revisions[0]}..{revisions[-1]} "
              f"(strictly increasing: {all(b > a for a, b in zip(revisions, revisions[1:]))}), "
              f"{len(seen)} through the client's watch")
        self.assertEqual([r["key"] for r in raw], expected, raw)
        self.assertEqual({r["kind"] for r in raw}, {"KIND_SET"}, raw)
        self.assertEqual([r["value"] for r in raw], [json.dumps(f"v{i}") for i in range(count)], raw)
        self.assertFalse(any(r["resync"] for r in raw), raw)
        self.assertTrue(all(b > a for a, b in zip(revisions, revisions[1:])), revisions)
        self.assertEqual([(r["key"], r["value"]) for r in seen[:count]],
                         [(f"k{i}", f"v{i}") for i in range(count)], seen)
        # host3 reads host2's write once it was acknowledged (no near-cache:
        # every read goes to Redis).
        before, after = reader.records("op")[1], reader.records("op")[2]
        self.assertEqual((before["ok"], before["value"]), (True, None), before)
        print(f"  host3 read host2's write after {after['seconds'] * 1000:.1f} ms: {after['value']!r}")
        self.assertTrue(after["ok"], after)
        self.assertEqual(after["value"], "new", after)
        self.assertLess(after["seconds"], 2.0, after)

    def test_c_near_cache_on_one_host_sees_another_hosts_write(self):
        if "near_cache" not in inspect.signature(cache.use).parameters:
            print("  SKIPPED: the Python client (clients/python/cluster2/cache.py) has no near-cache")
            self.skipTest("the Python client has no near-cache")
        self.fail("the Python client has a near-cache now: write this test (tests/multihost_cache_test.py)")

    def test_d_redis_down_fails_fast_workers_serve_and_every_host_recovers(self):
        fleet = self.fleet
        wait = 5.0  # each call's deadline
        clients = []
        for host in self.hosts:
            directory = os.path.join(fleet.dir, f"outage-{host.name}")
            os.makedirs(directory)
            mine, lost = f"after-{host.name}", f"before-{host.name}"
            clients.append((directory, fleet.client(host, "outage", "phased", ns="outage", dir=directory,
                                                    wait=wait, phases=[
                # 0: Redis up
                [["use"], ["set", lost, "v0"], ["get", lost]],
                # 1: Redis down
                [["get", lost], ["set", mine, "x"], ["load", f"load-{host.name}", "y"], ["use"]],
                # 2: Redis back, empty: Use again, set, get, get-or-load
                [["use"], ["get", lost], ["set", mine, host.name], ["get", mine],
                 ["load", f"load-{host.name}", host.name]],
                # 3: every host reads the others' writes
                [["get", f"after-{h.name}"] for h in self.hosts],
            ])))

        def phase(n):
            for directory, _ in clients:
                with open(os.path.join(directory, f"go-{n}"), "w"):
                    pass
            results = {}
            for _, client in clients:
                client.wait_for("phase", 60, count=n + 1)
                results[client.name] = [r for r in client.records("op")]
            return results

        # 0: Redis up.
        ops = phase(0)
        for name, records in ops.items():
            self.assertTrue(all(r["ok"] for r in records), (name, records))
        # 1: Redis killed.
        fleet.redis.kill()
        killed_at = time.monotonic()
        print("  redis-server SIGKILLed")
        ops = phase(1)
        for name, records in ops.items():
            outage = records[3:]
            for r in outage:
                print(f"    {name} {r['op']}: {r.get('code', 'ok')} in {r['seconds'] * 1000:.1f} ms: "
                      f"{r.get('message', r.get('value'))}")
            self.assertEqual(len(outage), 4, records)
            for r in outage:
                self.assertFalse(r["ok"], (name, r))
                self.assertEqual(r["code"], "UNAVAILABLE", (name, r))
                self.assertRegex(r["message"], r"^redis at unix:" + re.escape(fleet.redis.sock) + ": ", (name, r))
                self.assertLess(r["seconds"], 2.0, (name, r))
        # cluster2ctl on host1: exit 3, the cache server cannot reach its Redis.
        h1 = self.hosts[0]
        start = time.monotonic()
        got = h1.ctl("cache", "get", "outage", "before-host1")
        print(f"  cluster2ctl cache get (host1) during the outage: exit {got.returncode} in "
              f"{time.monotonic() - start:.2f}s: {got.stderr.strip()}")
        self.assertEqual(got.returncode, 3, got.stdout + got.stderr)
        self.assertIn("cannot reach its Redis", got.stderr)
        self.assertIn(f"redis at unix:{fleet.redis.sock}", got.stderr)
        # The workers serve HTTP all along.
        for host in self.hosts:
            statuses = []
            for _ in range(5):
                statuses.append(http_status(host.url))
                time.sleep(0.05)
            print(f"  {host.name} GET {host.url} during the outage: {statuses}")
            self.assertEqual(statuses, [200] * 5, host.name)
        for host in self.hosts:
            self.assertIsNone(host.proc.poll(), f"{host.name}'s master exited:\n{host.log()}")
        print(f"  outage lasted {time.monotonic() - killed_at:.1f}s; redis-server restarted on the same socket")
        # 2: Redis restarted, without the data.
        fleet.redis.start()
        ops = phase(2)
        for name, records in ops.items():
            back = records[7:]
            print(f"    {name} after the restart: " + ", ".join(
                f"{r['op']} {'ok' if r['ok'] else r['code']} {r['seconds'] * 1000:.1f} ms" for r in back))
            self.assertEqual(len(back), 5, records)
            for r in back:
                self.assertTrue(r["ok"], (name, r))
            host = name.split("@")[1]
            self.assertEqual([r["value"] for r in back[1:]], [None, True, host, host], (name, back))
        # 3: every host reads every host's write.
        ops = phase(3)
        for name, records in ops.items():
            reads = records[12:]
            self.assertEqual([(r["ok"], r["value"]) for r in reads], [(True, h.name) for h in self.hosts],
                             (name, reads))
        for _, client in clients:
            client.finish(30)
        # Parked get-or-loads are woken across hosts again (each cache
        # server's "redis-events" follows the new Redis).
        self.race("race-after-restart")


if __name__ == "__main__":
    main(__name__, "multihost_cache")  # cleans up on SIGTERM (bazel's timeout) too
