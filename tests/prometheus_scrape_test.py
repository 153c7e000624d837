#!/usr/bin/python3
"""A real Prometheus (Debian's) scraping a master every second while hello
workers serve a load of known latency (/sleep?ms=N: 95% at 30 ms, 5% at
300 ms): histogram_quantile over cluster2_worker_request_duration_seconds
gives p50 and p99 in the buckets that hold the true quantiles of the
requests the workers counted (computed from /metrics; histogram quantiles
are only bucket-accurate), and every query of the Grafana dashboard
evaluates without error (its label_values variables too), as do the alert
rules."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
DASHBOARD = os.path.join(RUNFILES, "deploy/grafana/cluster2.json")
RULES = os.path.join(RUNFILES, "deploy/prometheus/cluster2-rules.yml")
PROMETHEUS = "/usr/bin/prometheus"
OUTPUTS = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")

from e2e import free_port, run_ctl, scrape, stop_process, wait_until  # noqa: E402

HISTOGRAM = "cluster2_worker_request_duration_seconds"
BUCKET = re.compile(r'^' + HISTOGRAM + r'_bucket\{(.*)\} (\S+)$', re.M)
FAST_MS, SLOW_MS, SLOW_EVERY = 30, 300, 20  # 1 request in 20 is slow: 5%
LOAD_THREADS = 4
WINDOW = "15s"


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read().decode())


def buckets(text):
    """{upper bound: count} summed over every slot's series."""
    totals = {}
    for labels, value in BUCKET.findall(text):
        le = re.search(r'le="([^"]*)"', labels).group(1)
        bound = math.inf if le == "+Inf" else float(le)
        totals[bound] = totals.get(bound, 0.0) + float(value)
    return totals


def quantile_bucket(q, counts):
    """The (lower, upper] bucket holding the q-quantile of cumulative
    `counts` ({upper bound: count}), as histogram_quantile ranks it."""
    bounds = sorted(counts)
    rank = q * counts[math.inf]
    lower = 0.0
    for bound in bounds:
        if counts[bound] >= rank:
            return lower, bound
        lower = bound
    raise AssertionError(f"no bucket for rank {rank} in {counts}")


class PrometheusScrapeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="c2x-", dir="/tmp")
        self.port, self.mon_port, self.web = free_port(), free_port(), free_port()
        # More server threads than load threads: a slow request does not
        # hold up fast ones queued behind it on the same thread.
        config = {"name": "promscrape", "noWorkers": 2, "command": [HELLO, "--threads", "4"],
                  "port": self.port, "host": "127.0.0.1", "monPort": self.mon_port,
                  "runDir": f"{self.dir}/run", "heartbeatInterval": 200,
                  "recycle": {"maxRssBytes": 1000000000},
                  "cache": {"persistPath": f"{self.dir}/data", "maxMemory": 1000000}}
        with open(f"{self.dir}/cluster.json", "w") as out:
            json.dump(config, out)
        self.master_log = open(f"{self.dir}/master.log", "w")
        self.master = subprocess.Popen([MASTER, "--config", f"{self.dir}/cluster.json"],
                                       stdout=self.master_log, stderr=subprocess.STDOUT)
        self.prometheus = None
        self.prometheus_log = open(f"{self.dir}/prometheus.log", "w")

    def tearDown(self):
        try:
            if self.prometheus is not None:
                stop_process(self.prometheus)
        finally:
            stop_process(self.master)
        self.master_log.close()
        self.prometheus_log.close()
        try:
            if OUTPUTS:
                os.makedirs(OUTPUTS, exist_ok=True)
                for name in ("master.log", "prometheus.log"):
                    shutil.copy(f"{self.dir}/{name}", os.path.join(OUTPUTS, f"scrape-{name}"))
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def ctl(self, *args, check=True):
        return run_ctl(CTL, f"{self.dir}/run", *args, check=check)

    def scrape(self):
        return scrape(self.mon_port)

    def start_prometheus(self):
        with open(f"{self.dir}/prometheus.yml", "w") as cfg:
            cfg.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES}
scrape_configs:
  - job_name: cluster2
    static_configs:
      - targets: ['127.0.0.1:{self.mon_port}']
""")
        self.prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir}/prometheus.yml",
             f"--storage.tsdb.path={self.dir}/tsdb", f"--web.listen-address=127.0.0.1:{self.web}"],
            stdout=self.prometheus_log, stderr=subprocess.STDOUT)

    def query(self, promql):
        """The instant query's result (a list of series); fails on an error."""
        answer = get_json(f"http://127.0.0.1:{self.web}/api/v1/query?"
                          + urllib.parse.urlencode({"query": promql}))
        self.assertEqual(answer["status"], "success", f"{promql}: {answer}")
        return answer["data"]["result"]

    def scalar(self, promql):
        """The value of a query answering one series; None without one."""
        result = self.query(promql)
        self.assertLessEqual(len(result), 1, result)
        return float(result[0]["value"][1]) if result else None

    def test_quantiles_from_the_histogram_and_every_dashboard_query(self):
        def all_ready():
            workers = json.loads(self.ctl("workers", "-o", "json").stdout)["workers"]
            return len([w for w in workers if w.get("state") == "WORKER_STATE_READY"]) == 2
        wait_until(all_ready, 30, "2 ready workers")
        self.ctl("cache", "use", "ns")
        self.ctl("cache", "set", "ns", "k", "v")
        self.start_prometheus()

        # Warm-up: a few fast requests, so that the slots' histograms exist
        # before the load (the baseline subtracts them).
        for _ in range(20):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/sleep?ms=1", timeout=10) as r:
                r.read()
        wait_until(lambda: buckets(self.scrape()).get(math.inf, 0) >= 20, 20,
                   "the warm-up requests in the histogram")
        wait_until(lambda: [t["health"] for t in get_json(
            f"http://127.0.0.1:{self.web}/api/v1/targets")["data"]["activeTargets"]] == ["up"],
            60, "Prometheus scraping the master")
        baseline = buckets(self.scrape())

        done, sent, failed = threading.Event(), [0] * LOAD_THREADS, [0] * LOAD_THREADS

        def load(index):
            i = index * (SLOW_EVERY // LOAD_THREADS)  # slow requests spread over threads
            while not done.is_set():
                ms = SLOW_MS if i % SLOW_EVERY == 0 else FAST_MS
                i += 1
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/sleep?ms={ms}",
                                                timeout=10) as reply:
                        reply.read()
                    sent[index] += 1
                except OSError:
                    failed[index] += 1

        threads = [threading.Thread(target=load, args=(i,)) for i in range(LOAD_THREADS)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        try:
            # Enough requests in Prometheus' window, then both quantiles.
            count = f"sum(increase({HISTOGRAM}_count[{WINDOW}]))"
            wait_until(lambda: (self.scalar(count) or 0) >= 500, 90,
                       f"500 requests in Prometheus' {WINDOW} window")
            results = {}

            def quantiles():
                for q in (0.5, 0.99):
                    value = self.scalar(f"histogram_quantile({q}, sum by (le) "
                                        f"(rate({HISTOGRAM}_bucket[{WINDOW}])))")
                    if value is None or not math.isfinite(value):
                        return False
                    results[q] = value
                return True
            wait_until(quantiles, 30, "finite quantiles from Prometheus")
            counted = buckets(self.scrape())
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=30)
        load_seconds = time.monotonic() - started
        self.assertEqual(sum(failed), 0, "no request of the load failed")

        delta = {bound: counted[bound] - baseline.get(bound, 0.0) for bound in counted}
        # (Fewer than Prometheus' increase(), which extrapolates.)
        self.assertGreaterEqual(delta[math.inf], 200, delta)
        # The requests landed where their latencies put them: fast ones in
        # (25 ms, 50 ms], slow ones in (250 ms, 500 ms].
        expected = {q: quantile_bucket(q, delta) for q in (0.5, 0.99)}
        self.assertEqual(expected[0.5], (0.025, 0.05), delta)
        self.assertEqual(expected[0.99], (0.25, 0.5), delta)
        for q, (lower, upper) in expected.items():
            self.assertTrue(lower <= results[q] <= upper,
                            f"p{q * 100:g} {results[q]} not in ({lower}, {upper}]: {delta}")
        print(f"load {load_seconds:.1f}s, {sum(sent)} requests ({delta[math.inf]:g} counted); "
              f"Prometheus p50 {results[0.5] * 1000:.1f} ms in {expected[0.5]}, "
              f"p99 {results[0.99] * 1000:.1f} ms in {expected[0.99]}")

        self.check_dashboard_queries()
        self.check_rules()

    def check_rules(self):
        """The alert rules, loaded by this Prometheus, evaluate on the live
        series without error; none fires for this healthy cluster."""
        def evaluated():
            groups = get_json(f"http://127.0.0.1:{self.web}/api/v1/rules")["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return len(rules) == 9 and all(rule["health"] == "ok" for rule in rules) and rules
        wait_until(evaluated, 30, "every alert rule evaluated")
        for rule in evaluated():
            self.assertEqual(rule["state"], "inactive", rule)

    def check_dashboard_queries(self):
        """Every PromQL query of the dashboard, its variables replaced as
        Grafana would, evaluates; the panels of this cluster's load answer."""
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        empty, evaluated = [], 0
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = (target["expr"].replace("$cluster", "promscrape").replace("$slot", ".*")
                        .replace("$__rate_interval", WINDOW))
                self.assertNotIn("$", expr)
                result = self.query(expr)
                evaluated += 1
                if not result:
                    empty.append(f"{panel['title']} {target['refId']}")
        for title in ("Requests/s per slot", "Latency (cluster)", "Latency p50 per slot",
                      "Latency p99 per slot", "Workers by state", "Resident memory per slot",
                      "Keys per namespace"):
            self.assertFalse([e for e in empty if e.startswith(title + " ")], f"{title} has data")
        # The variables: label_values(metric{matchers}, label).
        values = {}
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            query = variable["query"]["query"].replace("$cluster", "promscrape")
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
            self.assertTrue(match, query)
            answer = get_json(f"http://127.0.0.1:{self.web}/api/v1/label/{match.group(2)}/values?"
                              + urllib.parse.urlencode({"match[]": match.group(1)}))
            self.assertEqual(answer["status"], "success", answer)
            values[variable["name"]] = answer["data"]
        self.assertEqual(values["cluster"], ["promscrape"])
        self.assertEqual(sorted(values["slot"]), ["0", "1"])
        print(f"{evaluated} dashboard queries evaluated; without data here: {empty}")


if __name__ == "__main__":
    import pyjunit
    sys.exit(pyjunit.main(__name__, "PrometheusScrapeTest"))
