#!/usr/bin/python3
"""/metrics under chaos: a thread scrapes the master back to back while the
workers go through three rolling restarts, scaling 2 -> 4 -> 1 -> 2 and the
cache server is SIGKILLed (and restarted by the master), with requests and
cache reads going on. Every scrape must answer 200, pass `promtool check
metrics`, hold no series twice, and no counter (nor histogram bucket, sum or
count) may go backwards: per-slot series between consecutive scrapes, cache
counters across the cache server's restart (docs/metrics.md)."""
import collections
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
PROMTOOL = "/usr/bin/promtool"
OUTPUTS = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")

from e2e import free_port, run_ctl, scrape, stop_process, wait_until  # noqa: E402

SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})? (\S+)$")


def parse(text):
    """({series: value}, {family: type}); a series is its sample line
    without the value (name{labels} exactly as printed)."""
    values, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            match = SAMPLE.match(line)
            if match:
                values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values, types


def duplicates(text):
    series = collections.Counter(line.rsplit(" ", 1)[0] for line in text.splitlines()
                                 if line and not line.startswith("#"))
    return sorted(s for s, n in series.items() if n > 1)


def monotonic_names(types):
    """The sample names that must never decrease: counters, and a
    histogram's buckets, sum and count."""
    names = set()
    for name, kind in types.items():
        if kind == "counter":
            names.add(name)
        elif kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


def children(pid, comm):
    """Pids of the children of `pid` whose command name is `comm`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid and name == comm:
            found.append(int(entry))
    return found


class Cluster:
    """A master with hello workers and a cache server, in /tmp/c2x-*."""

    def __init__(self, workers):
        self.dir = tempfile.mkdtemp(prefix="c2x-", dir="/tmp")
        self.port, self.mon_port = free_port(), free_port()
        config = {"name": "chaos", "noWorkers": workers, "command": [HELLO], "port": self.port,
                  "host": "127.0.0.1", "monPort": self.mon_port, "runDir": f"{self.dir}/run",
                  "heartbeatInterval": 200, "cache": {"persistPath": f"{self.dir}/data"}}
        with open(f"{self.dir}/cluster.json", "w") as out:
            json.dump(config, out)
        self.log = open(f"{self.dir}/master.log", "w")
        self.proc = subprocess.Popen([MASTER, "--config", f"{self.dir}/cluster.json"],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def ctl(self, *args, check=True):
        return run_ctl(CTL, f"{self.dir}/run", *args, check=check)

    def workers(self):
        return json.loads(self.ctl("workers", "-o", "json").stdout)

    def ready_pids(self):
        return {w["pid"] for w in self.workers()["workers"] if w.get("state") == "WORKER_STATE_READY"}

    def settled(self, n):
        """`n` workers desired, listed and ready (no successor, no draining
        process left)."""
        workers = self.workers()
        states = [w.get("state") for w in workers["workers"]]
        return workers.get("desired") == n and states == ["WORKER_STATE_READY"] * n

    def scrape(self):
        return scrape(self.mon_port)

    def stop(self):
        stop_process(self.proc)
        self.log.close()
        try:
            if OUTPUTS:
                os.makedirs(OUTPUTS, exist_ok=True)
                shutil.copy(f"{self.dir}/master.log", os.path.join(OUTPUTS, "chaos-master.log"))
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class MetricsChaosTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(2)
        self.addCleanup(self.cluster.stop)  # also when setUp fails
        wait_until(lambda: self.cluster.settled(2), 30, "2 ready workers")

    def latest(self, pattern):
        """The values of the series of the current scrape matching `pattern`."""
        values, _ = parse(self.cluster.scrape())
        return {s: v for s, v in values.items() if re.fullmatch(pattern, s)}

    def requests_by_slot(self):
        by_slot = collections.Counter()
        for series, value in self.latest(r"cluster2_worker_requests_total\{.*\}").items():
            by_slot[int(re.search(r'slot="(\d+)"', series).group(1))] += value
        return by_slot

    def wait_for_requests_in_every_slot(self, what):
        """Until every ready worker's slot counts more requests than now:
        the new processes' heartbeats are in before the next step."""
        before = self.requests_by_slot()
        slots = {w["id"] for w in self.cluster.workers()["workers"]}
        wait_until(lambda: all(self.requests_by_slot()[slot] > before[slot] for slot in slots),
                   30, f"requests counted in slots {sorted(slots)} after {what}")

    def cache_reads(self, hits, misses):
        for _ in range(hits):
            self.assertEqual(self.cluster.ctl("cache", "get", "ns", "k").stdout, "v")
        for _ in range(misses):
            self.assertEqual(self.cluster.ctl("cache", "get", "ns", "nope", check=False).returncode, 1)

    def test_scrapes_during_restarts_scaling_and_a_cache_server_kill(self):
        ctl = self.cluster.ctl
        # A persistent namespace comes back with the restarted cache server.
        ctl("cache", "use", "ns", "--persist")
        ctl("cache", "set", "ns", "k", "v")
        self.cache_reads(hits=3, misses=2)
        hits_series = r'cluster2_cache_hits_total\{.*namespace="ns".*\}'
        misses_series = r'cluster2_cache_misses_total\{.*namespace="ns".*\}'
        wait_until(lambda: sum(self.latest(hits_series).values()) == 3, 10,
                   "the cache hits in /metrics")

        scrapes, errors, done = [], [], threading.Event()
        requests = {"ok": 0, "failed": 0}

        def scrape_until_done():
            while not done.is_set():
                try:
                    scrapes.append((time.monotonic(), self.cluster.scrape()))
                except OSError as error:
                    errors.append(f"{time.monotonic():.3f} {error}")

        def load_until_done():
            # Paced requests: the counters move, the machine is not swamped.
            while not done.wait(0.005):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.cluster.port}/",
                                                timeout=10) as reply:
                        reply.read()
                    requests["ok"] += 1
                except OSError:
                    requests["failed"] += 1

        threads = [threading.Thread(target=scrape_until_done), threading.Thread(target=load_until_done)]
        for thread in threads:
            thread.start()
        phases = []
        started = time.monotonic()
        try:
            for i in range(3):
                before = self.cluster.ready_pids()
                ctl("restart")
                wait_until(lambda: not before & self.cluster.ready_pids() and self.cluster.settled(2),
                           90, f"rolling restart {i + 1} to finish")
                self.wait_for_requests_in_every_slot(f"restart {i + 1}")
                phases.append((f"restart {i + 1}", time.monotonic()))
            for n in (4, 1, 2):
                ctl("scale", str(n))
                wait_until(lambda: self.cluster.settled(n), 60, f"{n} ready workers")
                self.wait_for_requests_in_every_slot(f"scale {n}")
                phases.append((f"scale {n}", time.monotonic()))

            # SIGKILL the cache server; the master starts another.
            pids = children(self.cluster.proc.pid, "cluster2-cache")
            self.assertEqual(len(pids), 1, "one cache server, a child of the master")
            restarts = self.latest(r"cluster2_cache_server_restarts_total(\{.*\})?")
            self.assertEqual(len(restarts), 1, restarts)
            (restarts_series, restarts_before), = restarts.items()
            os.kill(pids[0], signal.SIGKILL)

            def replaced():
                now = children(self.cluster.proc.pid, "cluster2-cache")
                return len(now) == 1 and now != pids
            # (cluster2_cache_up stays 1 for 3 s after the server's last
            # answer: wait for the new server to answer first.)
            wait_until(lambda: (replaced()
                                and self.cluster.ctl("cache", "stats", check=False).returncode == 0
                                and self.latest(re.escape(restarts_series))[restarts_series]
                                == restarts_before + 1),
                       60, "a new cache server, answering and counted")
            wait_until(lambda: (set(self.latest(r"cluster2_cache_up(\{.*\})?").values()) == {1}
                                and self.latest(r'cluster2_cache_keys\{.*namespace="ns".*\}')),
                       30, "cluster2_cache_up 1 and the namespace's figures again")
            phases.append(("cache server killed and back", time.monotonic()))
            # Reads on the new server: its counts add to the old one's.
            hits_before = sum(self.latest(hits_series).values())
            misses_before = sum(self.latest(misses_series).values())
            self.cache_reads(hits=2, misses=1)

            def reads_counted():
                return (sum(self.latest(hits_series).values()),
                        sum(self.latest(misses_series).values()))
            try:
                wait_until(lambda: reads_counted() == (hits_before + 2, misses_before + 1), 10,
                           "the new server's reads in /metrics")
            except AssertionError as error:
                self.fail(f"{error}: (hits, misses) {reads_counted()}, not "
                          f"{(hits_before + 2, misses_before + 1)}: the new server's counts do "
                          f"not add to the old one's")
            phases.append(("reads on the new cache server", time.monotonic()))
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=60)
        duration = time.monotonic() - started
        print(f"{len(scrapes)} scrapes in {duration:.1f}s; requests {requests['ok']} ok, "
              f"{requests['failed']} failed; phases: "
              + ", ".join(f"{name} at {at - started:.1f}s" for name, at in phases))
        self.assertEqual(errors, [], "every scrape answered")
        self.assertGreater(len(scrapes), 20)

        # No series twice in a scrape.
        for at, text in scrapes:
            self.assertEqual(duplicates(text), [], f"duplicate series at {at - started:.3f}s:\n{text}")

        # Counters, buckets, sums and counts never go backwards: per slot
        # between consecutive scrapes that both hold the series; the cache's
        # counters also across scrapes without them (the server restarting).
        previous, last_seen, backwards = {}, {}, []
        for at, text in scrapes:
            values, types = parse(text)
            monotonic = monotonic_names(types)
            for series, value in values.items():
                name = series.split("{", 1)[0]
                if name not in monotonic:
                    continue
                before = previous.get(series)
                if name.startswith("cluster2_cache_"):
                    before = last_seen.get(series)
                if before is not None and value < before[1]:
                    backwards.append(f"at {at - started:.3f}s: {series} {before[1]:g} "
                                     f"(at {before[0] - started:.3f}s) -> {value:g}")
                last_seen[series] = (at, value)
            previous = {s: (at, v) for s, v in values.items()}
        self.assertEqual(backwards, [], "counters went backwards:\n" + "\n".join(backwards[:50]))

        final, _ = parse(scrapes[-1][1])
        self.assertEqual(final[restarts_series], restarts_before + 1)
        # Slot 0 ran through the three rolling restarts: three successors.
        slot0 = [v for s, v in final.items()
                 if re.fullmatch(r'cluster2_worker_restarts_total\{.*slot="0".*\}', s)]
        self.assertEqual(len(slot0), 1, final)
        self.assertGreaterEqual(slot0[0], 3)

        # promtool on every scrape (2 at a time; identical texts once).
        distinct = {}
        for at, text in scrapes:
            distinct.setdefault(text, at)

        def check(text):
            result = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                                    capture_output=True, text=True, timeout=60)
            return result.returncode, result.stdout + result.stderr

        checked = time.monotonic()
        failures = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for (text, at), (code, output) in zip(distinct.items(), pool.map(check, distinct)):
                if code != 0:
                    failures.append(f"at {at - started:.3f}s: {output}\n{text}")
        self.assertEqual(failures, [], failures[:3])
        print(f"{len(scrapes)} scrapes ({len(distinct)} distinct) during 3 rolling restarts, "
              f"scaling 2-4-1-2 and a cache server kill: valid, no duplicate series, no counter "
              f"backwards; promtool on each in {time.monotonic() - checked:.1f}s")


if __name__ == "__main__":
    import pyjunit
    sys.exit(pyjunit.main(__name__, "MetricsChaosTest"))
