#!/usr/bin/env python3
"""cluster2-cache beside Redis, both on a Unix socket, in the same run.

    bazel build -c opt //bench:cache_bench //cache_server:cluster2-cache
    python3 bench/cache_bench.py [--quick]

Workloads (100-byte values over 10,000 keys, as redis-benchmark -d 100
-r 10000):
  1. one client, one operation in flight: GET and SET ops/s, p50, p99
     (redis-benchmark -c 1);
  2. 16 operations in flight: ops/s (redis-benchmark -c 16);
  3. near-cache hot reads: ops/s against Redis GET -c 1, and the delay until
     another process's write is visible in the near-cache (p50, p99);
  4. `everysec` persistence: SET ops/s with it as a fraction of without it,
     beside the same fraction for Redis' AOF with appendfsync everysec;
and, for reference, gRPC's own floor: a plain synchronous unary call.
Prints a table with each figure next to its anchor and their ratio.
"""

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPT = os.path.join(ROOT, "bazel-out", "k8-opt", "bin")
CACHE = os.path.join(OPT, "cache_server", "cluster2-cache")
BENCH = os.path.join(OPT, "bench", "cache_bench")


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


def redis_benchmark(sock, clients, tests, n):
    out = subprocess.run(
        ["redis-benchmark", "-s", sock, "-c", str(clients), "-n", str(n),
         "-t", tests, "-d", "100", "-r", "10000", "--csv"],
        check=True, capture_output=True, text=True).stdout
    rows = {}
    for row in csv.DictReader(io.StringIO(out)):
        rows[row["test"].lower()] = {
            "ops_per_s": float(row["rps"]),
            "p50_us": float(row["p50_latency_ms"]) * 1000,
            "p99_us": float(row["p99_latency_ms"]) * 1000,
        }
    return rows


def cache_bench(sock, *flags):
    out = subprocess.run([BENCH, "--socket=" + sock, *flags], check=True,
                         capture_output=True, text=True).stdout
    # The last line is the measured run (a get first fills the keys).
    fields = dict(f.split("=", 1) for f in out.strip().splitlines()[-1].split())
    return {k: float(v) for k, v in fields.items() if k != "mode"}


def main():
    quick = "--quick" in sys.argv
    n1, n16 = (5000, 20000) if quick else (50000, 200000)
    for binary in (CACHE, BENCH):
        if not os.path.exists(binary):
            sys.exit(f"missing {binary}: bazel build -c opt //bench:cache_bench "
                     "//cache_server:cluster2-cache")
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found: apt-get install redis-server")
    tmp = tempfile.mkdtemp(prefix="c2cb")
    try:
        rows = []

        server, rsock = redis(tmp, aof=False)
        r1 = redis_benchmark(rsock, 1, "get,set", n1)
        r16 = redis_benchmark(rsock, 16, "get,set", n16)
        server.stop()
        server, rsock = redis(tmp, aof=True)
        r16_aof = redis_benchmark(rsock, 16, "set", n16)
        r1_aof = redis_benchmark(rsock, 1, "set", n1)
        server.stop()

        csock = os.path.join(tmp, "cache.sock")
        server = Server([CACHE, "--socket=" + csock,
                         "--data-dir=" + os.path.join(tmp, "cache-data")],
                        csock)
        c = {}
        for op in ("get", "set"):
            c[op + "1"] = cache_bench(csock, "--mode=" + op, f"--ops={n1}",
                                      "--inflight=1", "--ns=plain")
            c[op + "16"] = cache_bench(csock, "--mode=" + op, f"--ops={n16}",
                                       "--inflight=16", "--ns=plain")
        c["set16_persist"] = cache_bench(csock, "--mode=set", f"--ops={n16}",
                                         "--inflight=16", "--ns=durable",
                                         "--persist")
        c["set1_persist"] = cache_bench(csock, "--mode=set", f"--ops={n1}",
                                        "--inflight=1", "--ns=durable",
                                        "--persist")
        c["raw"] = cache_bench(csock, "--mode=raw-sync", f"--ops={n1}",
                               "--ns=plain")
        c["near"] = cache_bench(csock, "--mode=near", f"--ops={n16 * 10}",
                                "--ns=near")
        c["inval"] = cache_bench(csock, "--mode=invalidate",
                                 f"--ops={n1 // 10}", "--ns=inval")
        server.stop()

        def row(name, ours, anchor, unit="ops/s"):
            rows.append((name, ours, anchor, ours / anchor if anchor else 0,
                         unit))

        for op in ("get", "set"):
            row(f"{op.upper()} 1 in flight", c[op + "1"]["ops_per_s"],
                r1[op]["ops_per_s"])
            row(f"{op.upper()} 1 in flight p50", c[op + "1"]["p50_us"],
                r1[op]["p50_us"], "us")
            row(f"{op.upper()} 1 in flight p99", c[op + "1"]["p99_us"],
                r1[op]["p99_us"], "us")
        for op in ("get", "set"):
            row(f"{op.upper()} 16 in flight", c[op + "16"]["ops_per_s"],
                r16[op]["ops_per_s"])
        row("near-cache hot GET (vs Redis GET -c 1)", c["near"]["ops_per_s"],
            r1["get"]["ops_per_s"])
        row("near-cache invalidation p50 (from write issued; anchor: "
            "Redis SET -c 1 p50)", c["inval"]["p50_us"], r1["set"]["p50_us"],
            "us")
        row("near-cache invalidation p99 (from write issued; anchor: "
            "Redis SET -c 1 p99)", c["inval"]["p99_us"], r1["set"]["p99_us"],
            "us")
        ours16 = c["set16_persist"]["ops_per_s"] / c["set16"]["ops_per_s"]
        theirs16 = r16_aof["set"]["ops_per_s"] / r16["set"]["ops_per_s"]
        ours1 = c["set1_persist"]["ops_per_s"] / c["set1"]["ops_per_s"]
        theirs1 = r1_aof["set"]["ops_per_s"] / r1["set"]["ops_per_s"]
        row("everysec SET 16 in flight, fraction of non-persistent", ours16,
            theirs16, "fraction")
        row("everysec SET 1 in flight, fraction of non-persistent", ours1,
            theirs1, "fraction")

        print(f"{'workload':64} {'cluster2':>12} {'Redis':>12} {'ratio':>7}")
        for name, ours, anchor, ratio, unit in rows:
            fmt = "{:12.3f}" if unit == "fraction" else "{:12.0f}"
            print(f"{name:64} {fmt.format(ours)} {fmt.format(anchor)} "
                  f"{ratio:7.2f}  {unit}")
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
