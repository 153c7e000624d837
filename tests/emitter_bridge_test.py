#!/usr/bin/python3
"""The emitter bridge (config emitter.bridge) end to end: one real
redis-server on a Unix socket and three masters ("hosts" A, B and C: their
own run directories and ports, the same cluster name, no cache) that share
it, each running two Python workers on the cluster2 package. Every worker
appends one JSON line per event it hears ("tick", "other", "fence") to a file
of its own; the test reads those files.

- 50 "tick" events to `cluster` from A reach each of the 6 workers exactly
  once and in order, and a `cluster2ctl subscribe` on B's master too, with
  Event.from_host "<hostname>/<A's master pid>";
- A and C sending 30 events each at the same time: every worker gets each
  sender's events once, in that sender's order;
- `workers` stays on its host: A's two workers only;
- Redis stopped (SIGSTOP) and Redis killed and restarted empty on the same
  socket: 10 events to `cluster` emitted from A meanwhile return at once and
  reach every worker once, in order, when Redis is back.

"Everything arrived" is a fence: after its events, each sender emits a
"fence" event to `cluster`; the bridge keeps one sender's order, so once
every worker heard every sender's fence, whatever those senders emitted
before has arrived (or never will).

Python handlers get the event's arguments only (emitter.on(name, fn) calls
fn(*args)); from_pid and from_host are on the Event proto the package hands
to emitter.default.deliver(), which the worker wraps to record them."""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
PACKAGE = os.path.join(RUNFILES, "clients/python")
REDIS_SERVER = "/usr/bin/redis-server"
OUTPUTS = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
WORKERS_PER_HOST = 2
HOSTNAME = socket.gethostname()

from e2e import free_port, run_ctl, stop_process, wait_until  # noqa: E402


def stubs_dir():
    """The stubs of proto/cluster2/v1: the :cluster2_stubs genrule's under
    Bazel, else generated into a temporary directory with gen_stubs.sh."""
    built = os.path.join(PACKAGE, "stubs")
    if os.path.isdir(os.path.join(built, "cluster2", "v1")):
        return built
    generated = tempfile.mkdtemp(prefix="c2eb-stubs-", dir="/tmp")
    atexit.register(shutil.rmtree, generated, True)
    subprocess.run([os.path.join(PACKAGE, "gen_stubs.sh"), generated,
                    os.path.join(RUNFILES, "proto")], check=True)
    return generated


# The worker: two of them per master. Records every event it hears, with
# what the Event proto says about its sender.
WORKER = r'''
import json
import os
import sys

import cluster2
from cluster2 import emitter

out = open(os.path.join(os.environ["C2EB_OUT"],
                        "%s-%d.jsonl" % (os.environ["C2EB_HOST"], os.getpid())), "a")
# Handlers get the arguments only; the Event itself passes through
# emitter.default.deliver() on the dispatch thread, just before them.
current = {}
deliver = emitter.default.deliver


def deliver_and_remember(event):
    current["event"] = event
    deliver(event)


emitter.default.deliver = deliver_and_remember


def recorder(name):
    def record(*args):
        event = current.get("event")
        line = {"name": name, "args": list(args), "pid": os.getpid()}
        if event is not None and event.name == name:
            line.update(from_pid=event.from_pid, from_host=event.from_host,
                        sequence=event.sequence)
        out.write(json.dumps(line) + "\n")
        out.flush()
    return record


for name in ("tick", "other", "fence"):
    emitter.on(name, recorder(name))


def serve(worker):
    worker.ready()
    worker.wait_for_drain()
    return 0


sys.exit(cluster2.listen(serve=serve))
'''

# One client process per master (not a worker): reads a JSON list of events
# per stdin line, emits them in order with the package's emitter.emit, and
# answers one JSON line with each emit's result and duration.
CLIENT = r'''
import json
import sys
import time

import cluster2
from cluster2 import emitter

cluster2.connect(sys.argv[1])
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    results = []
    for name, args, targets in json.loads(line):
        began = time.monotonic()
        try:
            result = emitter.emit(name, *args, targets=targets)
            results.append({"delivered": result.delivered,
                            "seconds": time.monotonic() - began})
        except cluster2.Error as error:
            results.append({"error": "%s: %s" % (error.code, error),
                            "seconds": time.monotonic() - began})
    print(json.dumps(results), flush=True)
'''


def resp(sock_path, *args, timeout=2):
    """One Redis command over its Unix socket; the raw reply (bytes)."""
    command = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (str(x).encode() for x in args))
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(command)
        return s.recv(65536)


class Redis:
    def __init__(self, directory):
        self.dir = directory
        self.socket = os.path.join(directory, "r.sock")
        self.log_path = os.path.join(directory, "redis.log")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self.answers, 10, "redis-server answering PING")

    def answers(self):
        return resp(self.socket, "PING", timeout=0.5).startswith(b"+PONG")

    def stream_length(self, name):
        try:
            return resp(self.socket, "XLEN", f"c2:events:{{{name}}}").decode().strip(":\r\n")
        except OSError as error:
            return f"({error})"

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            stop_process(self.proc, timeout=10)
        self.log.close()


class Host:
    """One master with its two Python workers, and a client process of the
    package attached to it for emitting."""

    def __init__(self, label, base, name, bridge, worker_script, client_script, env):
        self.label = label
        self.dir = os.path.join(base, label)
        os.makedirs(self.dir)
        self.run_dir = os.path.join(self.dir, "run")
        self.log_path = os.path.join(self.dir, "master.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [MASTER, f"--name={name}", f"--runDir={self.run_dir}", f"--port={free_port()}",
             "--host=127.0.0.1", f"--monPort={free_port()}", f"--noWorkers={WORKERS_PER_HOST}",
             "--heartbeatInterval=200", "--nanny.tolerance=10000", "--cache.enable=false", f"--emitter.bridge={bridge}",
             "--", "/usr/bin/python3", worker_script],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(env, C2EB_HOST=label))
        self.client = None
        self.client_script = client_script
        self.env = env

    def ctl(self, *args, check=True):
        return run_ctl(CTL, self.run_dir, *args, check=check)

    def wait_ready(self):
        def ready():
            listing = json.loads(self.ctl("workers", "-o", "json").stdout)
            ready = [w["pid"] for w in listing["workers"] if w.get("state") == "WORKER_STATE_READY"]
            if len(ready) == WORKERS_PER_HOST:
                self.master_pid = listing["masterPid"]
                self.worker_pids = sorted(ready)
                return True
            return False
        wait_until(ready, 60, f"host {self.label}: {WORKERS_PER_HOST} ready workers")
        self.from_host = f"{HOSTNAME}/{self.master_pid}"
        self.client = subprocess.Popen(
            ["/usr/bin/python3", self.client_script, f"unix:{self.run_dir}/master.sock"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env)
        line = self.client.stdout.readline()
        if json.loads(line or "{}").get("ready") is not True:
            raise AssertionError(f"host {self.label}: the emitting client said {line!r}")

    def send(self, events):
        """Hands `events` ([name, args, targets]) to the client; see answer()."""
        self.client.stdin.write(json.dumps(events) + "\n")
        self.client.stdin.flush()

    def answer(self):
        line = self.client.stdout.readline()
        if not line:
            raise AssertionError(f"host {self.label}: the emitting client exited "
                                 f"({self.client.poll()})")
        return json.loads(line)

    def emit(self, events):
        """Emits `events` in order from the client; a result per event."""
        self.send(events)
        return self.answer()

    def log_text(self):
        with open(self.log_path) as log:
            return log.read()

    def stop(self):
        if self.client is not None and self.client.poll() is None:
            self.client.stdin.close()
            try:
                self.client.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.client.kill()
                self.client.wait()
        stop_process(self.proc)
        self.log.close()


class Subscriber:
    """`cluster2ctl subscribe -o json` on a master: what its listeners hear."""

    def __init__(self, host):
        self.proc = subprocess.Popen([CTL, "--run-dir", host.run_dir, "subscribe", "-o", "json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.events = []
        self.junk = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            with self.lock:
                if isinstance(event, dict):
                    self.events.append(event)
                else:
                    self.junk.append(line)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=10)


class EmitterBridgeTest(unittest.TestCase):
    maxDiff = None  # a failure shows every worker's record

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="c2eb-", dir="/tmp")
        cls.out_dir = os.path.join(cls.base, "events")
        os.makedirs(cls.out_dir)
        cls.name = f"eb{os.getpid()}"
        worker_script = os.path.join(cls.base, "worker.py")
        client_script = os.path.join(cls.base, "client.py")
        with open(worker_script, "w") as out:
            out.write(WORKER)
        with open(client_script, "w") as out:
            out.write(CLIENT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTER2_")}
        env.update(PYTHONPATH=f"{PACKAGE}:{stubs_dir()}", C2EB_OUT=cls.out_dir)
        cls.redis = None
        cls.hosts = []
        cls.subscriber = None
        cls.fences = 0
        try:
            cls.redis = Redis(cls.base)
            bridge = f"unix:{cls.redis.socket}"
            cls.hosts = [Host(label, cls.base, cls.name, bridge, worker_script, client_script, env)
                         for label in ("A", "B", "C")]
            for host in cls.hosts:
                host.wait_ready()
            cls.A, cls.B, cls.C = cls.hosts
            cls.subscriber = Subscriber(cls.B)
            cls.wait_subscribed()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def wait_subscribed(cls):
        """Until the subscriber hears an event to B's master: its Subscribe
        stream is open (cluster2ctl prints nothing before)."""
        deadline = time.monotonic() + 30
        for attempt in range(1000):
            token = f"subscribed-{attempt}"
            cls.B.emit([["fence", [token], ["master"]]])
            try:
                wait_until(lambda: any(e.get("args") == [token] for e in cls.subscriber.snapshot()),
                           1, "the subscriber")
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"cluster2ctl subscribe on B heard nothing in 30 s: "
                                         f"{cls.subscriber.junk}") from None

    @classmethod
    def tearDownClass(cls):
        if cls.subscriber is not None:
            cls.subscriber.stop()
        for host in cls.hosts:
            host.stop()
        if cls.redis is not None:
            cls.redis.stop()
        if OUTPUTS:
            os.makedirs(OUTPUTS, exist_ok=True)
            for host in cls.hosts:
                shutil.copy(host.log_path, os.path.join(OUTPUTS, f"emitter-bridge-{host.label}.log"))
            if os.path.exists(os.path.join(cls.base, "redis.log")):
                shutil.copy(os.path.join(cls.base, "redis.log"),
                            os.path.join(OUTPUTS, "emitter-bridge-redis.log"))
            for name in os.listdir(cls.out_dir):
                shutil.copy(os.path.join(cls.out_dir, name),
                            os.path.join(OUTPUTS, f"emitter-bridge-events-{name}"))
        shutil.rmtree(cls.base, ignore_errors=True)

    # --- what the workers heard

    def workers(self, hosts=None):
        """(host, pid) of every worker of `hosts` (default: all)."""
        return [(host, pid) for host in hosts or self.hosts for pid in host.worker_pids]

    def heard(self, host, pid):
        """Every complete line worker `pid` of `host` wrote, parsed."""
        path = os.path.join(self.out_dir, f"{host.label}-{pid}.jsonl")
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.split("\n")[:-1]]

    def marks(self):
        """Where every worker's record and the subscriber stand now."""
        return ({(host.label, pid): len(self.heard(host, pid)) for host, pid in self.workers()},
                len(self.subscriber.snapshot()))

    def since(self, marks, host, pid, names=("tick", "other")):
        """What worker `pid` of `host` heard since `marks`, fences left out."""
        return [r for r in self.heard(host, pid)[marks[0][(host.label, pid)]:] if r["name"] in names]

    def subscriber_since(self, marks, names=("tick", "other")):
        return [e for e in self.subscriber.snapshot()[marks[1]:] if e.get("name") in names]

    def fence(self, senders, timeout=30):
        """Each of `senders` emits a "fence" to `cluster` after what it sent;
        waits until every worker and the subscriber heard all of them."""
        tokens = []
        for host in senders:
            type(self).fences += 1
            token = f"fence-{host.label}-{self.fences}"
            [result] = host.emit([["fence", [token], ["cluster"]]])
            self.assertNotIn("error", result, f"the fence from {host.label}: {result}")
            tokens.append(token)

        def missing():
            gone = []
            for host, pid in self.workers():
                have = {r["args"][0] for r in self.heard(host, pid) if r["name"] == "fence"}
                gone += [f"{host.label}/{pid}: {t}" for t in tokens if t not in have]
            have = {e["args"][0] for e in self.subscriber.snapshot() if e.get("name") == "fence"}
            gone += [f"subscriber on B: {t}" for t in tokens if t not in have]
            return gone
        try:
            wait_until(lambda: not missing(), timeout, "the fences")
        except AssertionError:
            raise AssertionError(f"after {timeout} s, not heard: {missing()}; stream length "
                                 f"{self.redis.stream_length(self.name)}") from None

    def assert_emitted_at_once(self, results, host, limit=1.0):
        """Every emit was routed (no error), to the host's master and its
        workers, and returned within `limit` seconds."""
        for i, result in enumerate(results):
            self.assertNotIn("error", result, f"emit #{i} from {host.label}: {result}")
            self.assertEqual(result["delivered"], 1 + WORKERS_PER_HOST,
                             f"emit #{i} from {host.label}: {result}")
            self.assertLess(result["seconds"], limit, f"emit #{i} from {host.label}: {result}")

    def assert_everywhere(self, marks, expected, hosts=None, subscriber=True):
        """Every worker of `hosts` (and the subscriber on B) heard exactly
        `expected` ([(name, args)]) since `marks`, fences left out; all of
        them compared at once."""
        got = {f"worker {pid} of {host.label}": [(r["name"], r["args"]) for r in
                                                  self.since(marks, host, pid)]
               for host, pid in self.workers(hosts)}
        if subscriber:
            got["cluster2ctl subscribe on B"] = [(e["name"], e.get("args"))
                                                 for e in self.subscriber_since(marks)]
        self.assertEqual(got, {where: expected for where in got})

    def assert_sender(self, record, host, where):
        self.assertEqual(record.get("from_pid"), host.master_pid, f"{where}: {record}")
        self.assertEqual(record.get("from_host"), host.from_host, f"{where}: {record}")

    # --- the tests

    def test_a_fifty_ticks_to_cluster_reach_every_worker_of_every_host_once_in_order(self):
        marks = self.marks()
        began = time.monotonic()
        results = self.A.emit([["tick", [i], ["cluster"]] for i in range(50)])
        emitted = time.monotonic() - began
        self.assert_emitted_at_once(results, self.A)
        self.fence([self.A])
        print(f"\n50 ticks: emitted in {emitted:.3f} s, heard everywhere after "
              f"{time.monotonic() - began:.3f} s", file=sys.stderr)
        self.assert_everywhere(marks, [("tick", [i]) for i in range(50)])
        for host, pid in self.workers():
            for record in self.since(marks, host, pid):
                self.assert_sender(record, self.A, f"worker {pid} of {host.label}")
        for event in self.subscriber_since(marks):
            self.assertEqual(event.get("fromPid"), self.A.master_pid, event)
            self.assertEqual(event.get("fromHost"), self.A.from_host, event)

    def test_b_two_senders_at_once_keep_their_own_order(self):
        marks = self.marks()
        senders = (self.A, self.C)
        began = time.monotonic()
        for host in senders:  # both batches in flight before either answers
            host.send([["other", [host.label, i], ["cluster"]] for i in range(30)])
        for host in senders:
            self.assert_emitted_at_once(host.answer(), host)
        self.fence(senders)
        print(f"\n2 x 30 events from A and C: heard everywhere after "
              f"{time.monotonic() - began:.3f} s", file=sys.stderr)
        per_sender, expected = {}, {}
        for host, pid in self.workers():
            got = self.since(marks, host, pid)
            where = f"worker {pid} of {host.label}"
            print(f"  {where}: {''.join(r['args'][0] for r in got)}", file=sys.stderr)
            for sender in senders:
                mine = [r for r in got if r["args"][0] == sender.label]
                per_sender[f"{where}, from {sender.label}"] = [r["args"][1] for r in mine]
                expected[f"{where}, from {sender.label}"] = list(range(30))
                for record in mine:
                    self.assert_sender(record, sender, where)
            per_sender[f"{where}, from neither"] = [r["args"] for r in got
                                                    if r["args"][0] not in ("A", "C")]
            expected[f"{where}, from neither"] = []
        self.assertEqual(per_sender, expected)
        heard = self.subscriber_since(marks)
        for sender in senders:
            self.assertEqual([e["args"][1] for e in heard if e["args"][0] == sender.label],
                             list(range(30)), f"cluster2ctl subscribe on B, from {sender.label}")

    def test_c_workers_target_stays_on_its_host(self):
        marks = self.marks()
        [result] = self.A.emit([["other", ["workers-only", 1], ["workers"]]])
        self.assertEqual(result.get("delivered"), WORKERS_PER_HOST, result)
        self.fence([self.A])
        self.assert_everywhere(marks, [("other", ["workers-only", 1])], [self.A], False)
        self.assert_everywhere(marks, [], [self.B, self.C])
        for pid in self.A.worker_pids:
            [record] = self.since(marks, self.A, pid)
            self.assertEqual(record.get("from_pid"), self.A.master_pid, record)
            self.assertEqual(record.get("from_host"), "", f"a local event: {record}")

    def outage(self, interrupt, resume, tag):
        """Emits 10 events to `cluster` from A while Redis is away
        (`interrupt`, until `resume`); asserts every worker (and B's
        subscriber) hears them all once, in order, after it is back."""
        marks = self.marks()
        log_before = self.A.log_text().count("events wait for it")
        interrupt()
        try:
            began = time.monotonic()
            results = self.A.emit([["other", [tag, i], ["cluster"]] for i in range(10)])
            print(f"\n{tag}: 10 emits returned in {time.monotonic() - began:.3f} s",
                  file=sys.stderr)
            self.assert_emitted_at_once(results, self.A)
            # The master noticed the outage: the events are queued, not sent.
            wait_until(lambda: self.A.log_text().count("events wait for it") > log_before, 15,
                       "A's master logging that events wait for Redis")
        finally:
            resume()
        back = time.monotonic()
        self.fence([self.A], timeout=60)
        print(f"{tag}: heard everywhere {time.monotonic() - back:.3f} s after Redis was back",
              file=sys.stderr)
        self.assert_everywhere(marks, [("other", [tag, i]) for i in range(10)])
        for host, pid in self.workers():
            for record in self.since(marks, host, pid):
                self.assert_sender(record, self.A, f"worker {pid} of {host.label}")
        for event in self.subscriber_since(marks):
            self.assertEqual(event.get("fromHost"), self.A.from_host, event)

    def test_d1_redis_stopped_events_wait_and_arrive_once_in_order(self):
        proc = self.redis.proc
        self.outage(lambda: proc.send_signal(signal.SIGSTOP),
                    lambda: proc.send_signal(signal.SIGCONT), "outage-sigstop")

    def test_d2_redis_killed_and_restarted_empty_events_arrive_once_in_order(self):
        self.outage(self.redis.kill, self.redis.start, "outage-sigkill")


if __name__ == "__main__":
    import pyjunit
    sys.exit(pyjunit.main(__name__, "EmitterBridgeTest"))
