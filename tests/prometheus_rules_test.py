#!/usr/bin/python3
"""deploy/prometheus/cluster2-rules.yml against promtool and a live master:
the rules parse (promtool check rules), fire on synthetic series as
cluster2-rules.test.yml expects (promtool test rules), and name only
metrics that a running master exports."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
RULES_DIR = os.path.join(RUNFILES, "deploy/prometheus")
RULES = os.path.join(RULES_DIR, "cluster2-rules.yml")
PROMTOOL = "/usr/bin/promtool"

from e2e import free_port, stop_process, wait_until  # noqa: E402


def promtool(*args):
    # promtool test rules reads rule_files relative to the working directory.
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                          cwd=RULES_DIR)


class PrometheusRulesTest(unittest.TestCase):
    def test_rules_parse(self):
        result = promtool("check", "rules", RULES)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SUCCESS: 9 rules found", result.stdout)

    def test_alerts_fire_on_synthetic_series(self):
        result = promtool("test", "rules", "cluster2-rules.test.yml")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_every_metric_the_rules_name_is_exported_by_a_master(self):
        with open(RULES) as f:
            names = set(re.findall(r"\b(cluster2_[a-z0-9_]+)", "\n".join(
                line for line in f if "expr:" in line or line.startswith("            ")
                or line.startswith("          "))))
        # Only the names inside expressions: drop annotation words.
        names = {n for n in names if not n.startswith("cluster2_rules")}
        self.assertGreater(len(names), 5, names)
        work = tempfile.mkdtemp(prefix="c2r-", dir="/tmp")
        mon_port = free_port()
        master = subprocess.Popen(
            [MASTER, "--noWorkers=1", "--port=0", "--host=127.0.0.1", f"--monPort={mon_port}",
             f"--runDir={work}/run", f"--cache.persistPath={work}/data",
             "--cache.maxMemory=1000000", "--recycle.maxRssBytes=1000000000",
             "--heartbeatInterval=200", "--", HELLO],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def scrape():
                with urllib.request.urlopen(f"http://127.0.0.1:{mon_port}/metrics", timeout=5) as r:
                    return r.read().decode()
            # Per-worker series need a heartbeat; cache series the probe's
            # first answer. (Every series carries the label cluster.)
            wait_until(lambda: "cluster2_worker_heartbeat_lag_seconds{" in scrape()
                       and re.search(r"^cluster2_cache_up(\{[^}]*\})? 1$", scrape(), re.M),
                       30, "heartbeats and cache figures")
            # A namespace with a key, so that per-namespace series exist.
            for verb in (["use", "ns"], ["set", "ns", "k", "v"]):
                done = subprocess.run([CTL, "--run-dir", f"{work}/run", "cache", *verb],
                                      capture_output=True, text=True, timeout=30)
                self.assertEqual(done.returncode, 0, done.stderr)
            wait_until(lambda: "cluster2_cache_bytes{" in scrape(), 10, "cache figures")
            text = scrape()
            exported = set(re.findall(r"^# TYPE (cluster2_[a-z0-9_]+) ", text, re.M))
            histograms = set(re.findall(r"^# TYPE (cluster2_[a-z0-9_]+) histogram$", text, re.M))
            # A histogram's series are its name plus _bucket, _sum, _count.
            base = {n: re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
            names = {base[n] if base[n] in histograms else n for n in names}
            self.assertEqual(names - exported, set(), f"exported: {sorted(exported)}")
        finally:
            stop_process(master)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import pyjunit
    sys.exit(pyjunit.main(__name__, "PrometheusRulesTest"))
