#!/usr/bin/python3
"""Supervision benchmarks (issue: supervision and robustness).

Each figure is printed beside its anchor, measured in the same run:

1. Rolling restart under load: 4 hello workers behind wrk (keep-alive, 64
   connections) for the whole `cluster2ctl restart`: failed requests (socket
   errors + non-2xx) over total. Goal 0.
2. A worker SIGKILLed every second for 10 s under the same load: failed
   requests, beside the connections the killed workers held when killed
   (the requests that can be lost: one per open connection at most).
3. Crash to replacement ready, p50/p99 over 50 SIGKILLs (each a first crash:
   the backoff of crash loops is not what is measured), beside the time the
   same workers took to start and get ready at the cluster's start.
4. Master cost: idle CPU % and RSS with 16 workers at 1 s heartbeats, beside
   one worker's own idle CPU % and RSS.

Usage (after `bazel build -c opt //master:cluster2-master //cli:cluster2ctl
//examples/hello:hello_worker`): bench/supervision_bench.py [--quick]
"""
import datetime
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bazel-bin")
MASTER = os.path.join(BIN, "master/cluster2-master")
CTL = os.path.join(BIN, "cli/cluster2ctl")
HELLO = os.path.join(BIN, "examples/hello/hello_worker")
QUICK = "--quick" in sys.argv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, workers, heartbeat_ms=200, extra=()):
        self.dir = tempfile.mkdtemp(prefix="c2b-", dir="/tmp")
        self.port = free_port()
        self.log = os.path.join(self.dir, "master.log")
        self.proc = subprocess.Popen(
            [MASTER, f"--noWorkers={workers}", f"--port={self.port}", "--host=127.0.0.1",
             "--monPort=0", f"--runDir={self.dir}/run", f"--heartbeatInterval={heartbeat_ms}",
             f"--logFile={self.log}", *extra, "--", HELLO],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers = workers
        deadline = time.time() + 20
        while len(self.ready()) != workers:
            if time.time() > deadline:
                raise RuntimeError("cluster did not get ready")
            time.sleep(0.15)

    def ctl(self, *args):
        return subprocess.run([CTL, "--run-dir", f"{self.dir}/run", *args],
                              capture_output=True, text=True, check=True).stdout

    def list(self):
        try:
            return json.loads(self.ctl("workers", "-o", "json")).get("workers", [])
        except subprocess.CalledProcessError:
            return []

    def ready(self):
        return [w for w in self.list() if w.get("state") == "WORKER_STATE_READY"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", self.dir])


def wrk(port, seconds, connections=64):
    return subprocess.Popen(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        stdout=subprocess.PIPE, text=True)


def parse_wrk(output):
    total = int(re.search(r"(\d+) requests in", output).group(1))
    errors = 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if match:
        errors += sum(int(x) for x in match.groups())
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if match:
        errors += int(match.group(1))
    return total, errors


def established_connections(pid, port):
    """TCP connections on `port` that process `pid` holds (from /proc)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return 0
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].split(":")[1], 16)
                if local_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def rolling_restart():
    cluster = Cluster(4)
    try:
        seconds = 4 if QUICK else 8
        load = wrk(cluster.port, seconds)
        time.sleep(1)
        before = {w["pid"] for w in cluster.ready()}
        cluster.ctl("restart")
        deadline = time.time() + seconds
        while time.time() < deadline:
            now = {w["pid"] for w in cluster.ready()}
            if len(now) == 4 and not now & before:
                break
            time.sleep(0.02)
        replaced = len(before - {w["pid"] for w in cluster.ready()})
        total, failed = parse_wrk(load.communicate()[0])
        print(f"rolling restart under load: {failed} failed of {total} requests "
              f"({100.0 * failed / max(total, 1):.4f}%), {replaced}/4 workers replaced "
              f"during the run; goal 0 failed")
    finally:
        cluster.stop()


def kill_every_second():
    cluster = Cluster(4)
    try:
        kills = 5 if QUICK else 10
        load = wrk(cluster.port, kills + 2)
        time.sleep(1)
        held = 0
        for _ in range(kills):
            victims = cluster.ready()
            if victims:
                pid = random.choice(victims)["pid"]
                held += established_connections(pid, cluster.port)
                os.kill(pid, signal.SIGKILL)
            time.sleep(1)
        total, failed = parse_wrk(load.communicate()[0])
        print(f"SIGKILL every second x{kills} under load: {failed} failed of {total} requests, "
              f"beside {held} connections held by the killed workers at their death")
    finally:
        cluster.stop()


def log_times(path, pattern):
    """(time, slot, pid) of log lines matching `pattern` (group 1 slot, 2 pid)."""
    found = []
    with open(path) as log:
        for line in log:
            match = re.search(pattern, line)
            if match:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")
                stamp = stamp.replace(tzinfo=datetime.timezone.utc).timestamp()
                found.append((stamp, int(match.group(1)), int(match.group(2))))
    return found


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))]


def crash_to_ready():
    # Every kill is a first crash (stablePeriod 100 ms): this measures the
    # replacement itself, not the backoff that protects crash loops.
    cluster = Cluster(4, extra=("--crashLoopLimit=0", "--restartBackoff.stablePeriod=100"))
    try:
        kills = 20 if QUICK else 50
        delays = []
        for _ in range(kills):
            ready = cluster.ready()
            victim = random.choice(ready)
            killed_at = time.time()
            os.kill(victim["pid"], signal.SIGKILL)
            while True:  # the slot's replacement is ready
                now = [w for w in cluster.ready() if w["id"] == victim["id"]]
                if now and now[0]["pid"] != victim["pid"]:
                    break
                time.sleep(0.001)
            # Precise: from the kill to the master's "ready" line of the successor.
            lines = log_times(cluster.log, r"worker (\d+) pid (\d+) ready")
            ready_at = [t for t, slot, pid in lines if pid == now[0]["pid"]]
            delays.append((ready_at[0] - killed_at) * 1000)
            time.sleep(0.05)
        started = {pid: t for t, slot, pid in log_times(cluster.log, r"worker (\d+) pid (\d+) started")}
        initial = [(t - started[pid]) * 1000
                   for t, slot, pid in log_times(cluster.log, r"worker (\d+) pid (\d+) ready")[:4]
                   if pid in started]
        print(f"crash to replacement ready over {kills} SIGKILLs: p50 {percentile(delays, 0.5):.1f} ms, "
              f"p99 {percentile(delays, 0.99):.1f} ms, beside the workers' own start to ready at "
              f"cluster start: p50 {percentile(initial, 0.5):.1f} ms")
    finally:
        cluster.stop()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def master_cost():
    cluster = Cluster(16, heartbeat_ms=1000)
    try:
        seconds = 10 if QUICK else 30
        worker = cluster.ready()[0]["pid"]
        time.sleep(2)
        master_before, worker_before = cpu_seconds(cluster.proc.pid), cpu_seconds(worker)
        time.sleep(seconds)
        master_cpu = 100 * (cpu_seconds(cluster.proc.pid) - master_before) / seconds
        worker_cpu = 100 * (cpu_seconds(worker) - worker_before) / seconds
        print(f"master idle with 16 workers at 1 s heartbeats: CPU {master_cpu:.2f}%, "
              f"RSS {rss_mib(cluster.proc.pid):.1f} MiB, beside one idle worker: "
              f"CPU {worker_cpu:.2f}%, RSS {rss_mib(worker):.1f} MiB")
    finally:
        cluster.stop()


if __name__ == "__main__":
    rolling_restart()
    kill_every_second()
    crash_to_ready()
    master_cost()
