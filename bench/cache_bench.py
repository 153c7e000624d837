#!/usr/bin/env python3
"""cluster2-cache beside Redis, both on a Unix socket, in the same run.

    bazel build -c opt //bench:cache_bench //cache_server:cluster2-cache
    python3 bench/cache_bench.py [--quick] [--backend-redis]

Workloads (100-byte values over 10,000 keys, as redis-benchmark -d 100
-r 10000), each run against Redis and cluster2-cache back to back (three
times without --quick; medians), with the servers' context switches per
operation (and our client's):
  1. one client, one operation in flight: GET and SET ops/s, p50, p99
     (redis-benchmark -c 1);
  2. 16 operations in flight through the asynchronous API (-c 16);
  3. 16 threads calling the blocking API (-c 16);
  4. 128 operations in flight (redis-benchmark -c 16 -P 8, pipelined);
  3. near-cache hot reads: ops/s against Redis GET -c 1, and the delay until
     another process's write is visible in the near-cache (p50, p99);
  4. `everysec` persistence: SET ops/s with it as a fraction of without it,
     beside the same fraction for Redis' AOF with appendfsync everysec;
and, for reference, gRPC's own floor: a plain synchronous unary call.
Prints a table with each figure next to its anchor and their ratio.

--backend-redis: also a second cluster2-cache with --backend=unix:<the same
redis-server's socket> (cache.backend: its keys in that Redis), and workloads
1 and 2 (GET and SET, 1 and 16 in flight) run three ways back to back,
`reps` times: Redis (redis-benchmark), the local cluster2-cache, the
Redis-backed one; a second table gives the Redis-backed figures next to
Redis and next to the local cluster2-cache, with ratios.

Binaries: bazel-out/k8-opt/bin by default; CLUSTER2_CACHE_BIN and
CLUSTER2_CACHE_BENCH_BIN point at others (e.g. a fastbuild copy, for
checking the script with --quick: its figures are not -c opt's).
"""

import csv
import io
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPT = os.path.join(ROOT, "bazel-out", "k8-opt", "bin")
CACHE = (os.environ.get("CLUSTER2_CACHE_BIN")
         or os.path.join(OPT, "cache_server", "cluster2-cache"))
BENCH = (os.environ.get("CLUSTER2_CACHE_BENCH_BIN")
         or os.path.join(OPT, "bench", "cache_bench"))


def wait_for_socket(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)
                return
            except OSError:
                pass
            finally:
                probe.close()
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {path}")


class Server:
    def __init__(self, argv, sock):
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for_socket(sock)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def redis(tmp, aof):
    sock = os.path.join(tmp, "redis.sock")
    data = os.path.join(tmp, "redis-aof" if aof else "redis")
    os.makedirs(data, exist_ok=True)
    argv = ["redis-server", "--port", "0", "--unixsocket", sock,
            "--save", "", "--dir", data,
            "--appendonly", "yes" if aof else "no"]
    if aof:
        argv += ["--appendfsync", "everysec"]
    return Server(argv, sock), sock


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of pid."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                for line in status:
                    if "ctxt_switches:" in line:
                        total += int(line.split(":")[1])
        except FileNotFoundError:
            pass  # the thread ended meanwhile
    return total


def redis_benchmark(server, sock, clients, tests, n, pipeline=1):
    before = context_switches(server.proc.pid)
    out = subprocess.run(
        ["redis-benchmark", "-s", sock, "-c", str(clients), "-n", str(n),
         "-P", str(pipeline), "-t", tests, "-d", "100", "-r", "10000",
         "--csv"],
        check=True, capture_output=True, text=True).stdout
    switches = context_switches(server.proc.pid) - before
    rows = {}
    for row in csv.DictReader(io.StringIO(out)):
        rows[row["test"].lower()] = {
            "ops_per_s": float(row["rps"]),
            "p50_us": float(row["p50_latency_ms"]) * 1000,
            "p99_us": float(row["p99_latency_ms"]) * 1000,
            # over all tests of the run: per operation of each
            "cs_server": switches / (n * len(tests.split(","))),
        }
    return rows


def cache_bench(sock, *flags):
    run = subprocess.run([BENCH, "--socket=" + sock, *flags], check=True,
                         capture_output=True, text=True)
    out = run.stdout
    # A failed operation is counted in ops/s all the same: no figure then.
    failed = [line for line in run.stderr.splitlines() if "failed" in line]
    failed += re.findall(r"\bfailed=[1-9]\d*", out)  # the blocking modes
    if failed:
        sys.exit(f"cache_bench {' '.join(flags)} on {sock}: operations failed: "
                 f"{failed[:3]} ({len(failed)} lines) {out.strip()}")
    # The last line is the measured run (a get first fills the keys).
    fields = dict(f.split("=", 1) for f in out.strip().splitlines()[-1].split())
    return {k: float(v) for k, v in fields.items() if k != "mode"}


def median_rows(runs):
    """The median of each figure over repeated runs (dicts of floats)."""
    return {key: statistics.median(run[key] for run in runs)
            for key in runs[0]}


def main():
    quick = "--quick" in sys.argv
    backend_redis = "--backend-redis" in sys.argv
    unknown = [a for a in sys.argv[1:]
               if a not in ("--quick", "--backend-redis")]
    if unknown:
        sys.exit("usage: cache_bench.py [--quick] [--backend-redis] "
                 f"(not {' '.join(unknown)})")
    n1, n16 = (5000, 20000) if quick else (30000, 150000)
    reps = 1 if quick else 3
    for binary in (CACHE, BENCH):
        if not os.path.exists(binary):
            sys.exit(f"missing {binary}: bazel build -c opt //bench:cache_bench "
                     "//cache_server:cluster2-cache (or set CLUSTER2_CACHE_BIN, "
                     "CLUSTER2_CACHE_BENCH_BIN)")
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found: apt-get install redis-server")
    tmp = tempfile.mkdtemp(prefix="c2cb")
    servers = []
    try:
        rows = []
        rserver, rsock = redis(tmp, aof=False)
        servers.append(rserver)
        csock = os.path.join(tmp, "cache.sock")
        cserver = Server([CACHE, "--socket=" + csock,
                          "--data-dir=" + os.path.join(tmp, "cache-data")],
                         csock)
        servers.append(cserver)
        pid = f"--server-pid={cserver.proc.pid}"
        if backend_redis:  # the cache on the same redis-server
            bsock = os.path.join(tmp, "cache-redis.sock")
            bserver = Server([CACHE, "--socket=" + bsock,
                              "--backend=unix:" + rsock], bsock)
            servers.append(bserver)

        # Each workload: Redis, then ours, back to back, `reps` times; the
        # medians. Both servers stay up (an idle one costs nothing).
        workloads = {
            # name: (redis clients, pipeline, our flags)
            "1": (1, 1, ["--inflight=1"], n1),
            "16": (16, 1, ["--inflight=16"], n16),
            "blocking16": (16, 1, ["--threads=16"], n16),
            "pipelined": (16, 8, ["--inflight=128"], n16 * 2),
        }
        r, c = {}, {}
        for name, (clients, pipeline, flags, n) in workloads.items():
            for op in ("get", "set"):
                mode = op + ("-blocking" if name == "blocking16" else "")
                theirs, ours = [], []
                for _ in range(reps):
                    theirs.append(redis_benchmark(rserver, rsock, clients, op,
                                                  n, pipeline)[op])
                    ours.append(cache_bench(csock, "--mode=" + mode,
                                            f"--ops={n}", "--ns=plain", pid,
                                            *flags))
                r[op + name] = median_rows(theirs)
                c[op + name] = median_rows(ours)

        # The Redis-backed cache server: 1 and 16 in flight, each rep
        # Redis, the local server and the Redis-backed one back to back.
        b = {}  # name -> (Redis, local, Redis-backed) medians
        if backend_redis:
            bpid = f"--server-pid={bserver.proc.pid}"
            for name in ("1", "16"):
                clients, pipeline, flags, n = workloads[name]
                for op in ("get", "set"):
                    theirs, ours, backed = [], [], []
                    for _ in range(reps):
                        theirs.append(redis_benchmark(rserver, rsock, clients,
                                                      op, n, pipeline)[op])
                        ours.append(cache_bench(csock, "--mode=" + op,
                                                f"--ops={n}", "--ns=plain",
                                                pid, *flags))
                        backed.append(cache_bench(bsock, "--mode=" + op,
                                                  f"--ops={n}",
                                                  "--ns=redisbacked", bpid,
                                                  *flags))
                    b[op + name] = (median_rows(theirs), median_rows(ours),
                                    median_rows(backed))

        c["raw"] = cache_bench(csock, "--mode=raw-sync", f"--ops={n1}",
                               "--ns=plain")
        c["near"] = cache_bench(csock, "--mode=near", f"--ops={n16 * 10}",
                                "--ns=near")
        c["inval"] = cache_bench(csock, "--mode=invalidate",
                                 f"--ops={n1 // 10}", "--ns=inval")
        c["set16_persist"] = cache_bench(csock, "--mode=set", f"--ops={n16}",
                                         "--inflight=16", "--ns=durable",
                                         "--persist")
        c["set1_persist"] = cache_bench(csock, "--mode=set", f"--ops={n1}",
                                        "--inflight=1", "--ns=durable",
                                        "--persist")
        for server in servers:
            server.stop()
        servers = []
        aserver, asock = redis(tmp, aof=True)
        servers.append(aserver)
        r16_aof = redis_benchmark(aserver, asock, 16, "set", n16)
        r1_aof = redis_benchmark(aserver, asock, 1, "set", n1)
        aserver.stop()
        servers = []

        def row(name, ours, anchor, unit="ops/s"):
            rows.append((name, ours, anchor, ours / anchor if anchor else 0,
                         unit))

        titles = {
            "1": ("1 in flight", "-c 1"),
            "16": ("16 in flight (async API)", "-c 16"),
            "blocking16": ("16 threads, blocking API", "-c 16"),
            "pipelined": ("128 in flight (async API)", "-c 16 -P 8"),
        }
        for name, (title, anchor) in titles.items():
            for op in ("get", "set"):
                ours, theirs = c[op + name], r[op + name]
                label = f"{op.upper()} {title} vs Redis {anchor}"
                row(label, ours["ops_per_s"], theirs["ops_per_s"])
                if name in ("1", "blocking16"):
                    row("  p50", ours["p50_us"], theirs["p50_us"], "us")
                    row("  p99", ours["p99_us"], theirs["p99_us"], "us")
                row("  server context switches per op", ours["cs_server"],
                    theirs["cs_server"], "cs/op")
                row("  client context switches per op (Redis: not measured)",
                    ours["cs_client"], 0, "cs/op")
        row("near-cache hot GET (vs Redis GET -c 1)", c["near"]["ops_per_s"],
            r["get1"]["ops_per_s"])
        row("near-cache invalidation p50 (from write issued; anchor: "
            "Redis SET -c 1 p50)", c["inval"]["p50_us"], r["set1"]["p50_us"],
            "us")
        row("near-cache invalidation p99 (from write issued; anchor: "
            "Redis SET -c 1 p99)", c["inval"]["p99_us"], r["set1"]["p99_us"],
            "us")
        ours16 = c["set16_persist"]["ops_per_s"] / c["set16"]["ops_per_s"]
        theirs16 = r16_aof["set"]["ops_per_s"] / r["set16"]["ops_per_s"]
        ours1 = c["set1_persist"]["ops_per_s"] / c["set1"]["ops_per_s"]
        theirs1 = r1_aof["set"]["ops_per_s"] / r["set1"]["ops_per_s"]
        row("everysec SET 16 in flight, fraction of non-persistent", ours16,
            theirs16, "fraction")
        row("everysec SET 1 in flight, fraction of non-persistent", ours1,
            theirs1, "fraction")

        print(f"medians of {reps} back-to-back pair(s) per workload")
        print(f"{'workload':64} {'cluster2':>12} {'Redis':>12} {'ratio':>7}")
        for name, ours, anchor, ratio, unit in rows:
            fmt = "{:12.0f}" if unit in ("ops/s", "us") else "{:12.3f}"
            ratio_text = f"{ratio:7.2f}" if anchor else f"{'-':>7}"
            print(f"{name:64} {fmt.format(ours)} {fmt.format(anchor)} "
                  f"{ratio_text}  {unit}")
        print(f"(gRPC's own floor: a synchronous unary Batch of one GET, "
              f"{c['raw']['ops_per_s']:.0f} ops/s, p50 {c['raw']['p50_us']:.0f} us, "
              f"p99 {c['raw']['p99_us']:.0f} us)")
        print(f"(cluster2 near-cache invalidation from the write's "
              f"acknowledgement: p50 {c['inval']['ack_p50_us']:.0f} us, "
              f"p99 {c['inval']['ack_p99_us']:.0f} us)")
        print(f"(raw everysec SET ops/s: cluster2 {c['set16_persist']['ops_per_s']:.0f}"
              f" / {c['set1_persist']['ops_per_s']:.0f}, Redis AOF "
              f"{r16_aof['set']['ops_per_s']:.0f} / {r1_aof['set']['ops_per_s']:.0f}"
              " at 16 / 1 in flight)")
        if backend_redis:
            print()
            print(f"cluster2-cache --backend=unix:<the same redis-server>: "
                  f"medians of {reps} back-to-back triple(s) (Redis, local "
                  "cluster2-cache, Redis-backed) per workload")
            print(f"{'workload':64} {'redis-backed':>12} {'anchor':>12} "
                  f"{'ratio':>7}")
            for name, title, anchor in (("1", "1 in flight", "-c 1"),
                                        ("16", "16 in flight (async API)",
                                         "-c 16")):
                for op in ("get", "set"):
                    theirs, ours, backed = b[op + name]
                    for label, anchor_row, unit, key in (
                            (f"{op.upper()} {title} vs Redis {anchor}",
                             theirs, "ops/s", "ops_per_s"),
                            ("  vs local cluster2-cache (same workload)",
                             ours, "ops/s", "ops_per_s"),
                            ("  p50 vs Redis", theirs, "us", "p50_us"),
                            ("  p50 vs local cluster2-cache", ours, "us",
                             "p50_us"),
                            ("  p99 vs Redis", theirs, "us", "p99_us")):
                        mine, other = backed[key], anchor_row[key]
                        ratio = f"{mine / other:7.2f}" if other else f"{'-':>7}"
                        print(f"{label:64} {mine:12.0f} {other:12.0f} "
                              f"{ratio}  {unit}")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
