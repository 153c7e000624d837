#!/usr/bin/python3
"""Worker groups and config reload against the real master, C++ workers and
wrk: groups run their own commands in one cluster and are shown, scaled and
restarted by name; `cluster2ctl reload` of a changed command replaces every
worker under wrk load without a failed request; an invalid file changes
nothing and says why; SIGHUP reloads and replaces every worker."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")

from e2e import Wrk, free_port, run_ctl, scrape, stop_process, wait_until  # noqa: E402


def http_get(port, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as reply:
        return reply.status, reply.read().decode()


class Cluster:
    """A master started on a config file, in its own /tmp directory."""

    def __init__(self, config):
        self.dir = tempfile.mkdtemp(prefix="c2g-", dir="/tmp")
        self.port, self.mon_port = free_port(), free_port()
        self.config_path = os.path.join(self.dir, "cluster.json")
        self.write_config(config)
        self.log_path = os.path.join(self.dir, "master.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [MASTER, "--config", self.config_path], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.ready_count() == self.desired(), 20, "every worker ready")

    def write_config(self, config):
        config = dict(config, port=self.port, host="127.0.0.1", monPort=self.mon_port,
                      runDir=f"{self.dir}/run", heartbeatInterval=200, name="groups-test")
        config.setdefault("cache", {"enable": False})
        with open(self.config_path + ".new", "w") as out:
            json.dump(config, out)
        os.rename(self.config_path + ".new", self.config_path)

    def write_raw(self, text):
        with open(self.config_path, "w") as out:
            out.write(text)

    def ctl(self, *args, check=True):
        return run_ctl(CTL, f"{self.dir}/run", *args, check=check)

    def workers(self):
        return json.loads(self.ctl("workers", "-o", "json").stdout)

    def ready(self):
        return [w for w in self.workers()["workers"] if w.get("state") == "WORKER_STATE_READY"]

    def ready_count(self):
        return len(self.ready())

    def desired(self):
        return self.workers().get("desired", 0)

    def stop(self):
        stop_process(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class GroupsTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster({"groups": [
            {"name": "web", "command": [HELLO], "noWorkers": 2, "env": {"KIND": "web"}},
            {"name": "side", "command": [HELLO, "--threads", "1"]},
        ]})

    def tearDown(self):
        self.cluster.stop()

    def test_groups_run_in_one_cluster_and_are_named_everywhere(self):
        workers = self.cluster.ready()
        self.assertEqual(sorted((w["id"], w["group"]) for w in workers),
                         [(0, "web"), (1, "web"), (2, "side")])
        table = self.cluster.ctl("workers").stdout
        self.assertIn("GROUP", table.splitlines()[0])
        self.assertRegex(table, r"\n2\s+side\s+\d+\s+ready")
        # Every worker serves the shared port.
        seen = set()
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            status, body = http_get(self.cluster.port)
            self.assertEqual(status, 200)
            seen.add(int(body.split()[3]))
        self.assertEqual(seen, {w["pid"] for w in workers})
        with urllib.request.urlopen(f"http://127.0.0.1:{self.cluster.mon_port}/metrics", timeout=5) as reply:
            metrics = reply.read().decode()
        self.assertRegex(metrics, r'cluster2_worker_restarts_total\{cluster="[^"]*",group="side",slot="2"\} 0')

    def test_scale_and_restart_take_a_group(self):
        refused = self.cluster.ctl("scale", "3", check=False)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("several worker groups: name one", refused.stderr)
        unknown = self.cluster.ctl("scale", "3", "--group", "nope", check=False)
        self.assertEqual(unknown.returncode, 1)
        self.assertIn("no worker group 'nope' (groups: web, side)", unknown.stderr)
        self.assertIn("scaled group 'side' from 1 to 2 workers",
                      self.cluster.ctl("scale", "2", "--group", "side").stdout)
        wait_until(lambda: self.cluster.ready_count() == 4, 20, "4 ready workers")
        side = {w["pid"] for w in self.cluster.ready() if w["group"] == "side"}
        web = {w["pid"] for w in self.cluster.ready() if w["group"] == "web"}
        self.cluster.ctl("restart", "--group", "side")
        wait_until(lambda: not side & {w["pid"] for w in self.cluster.ready()}
                   and self.cluster.ready_count() == 4, 30, "the side group replaced")
        self.assertEqual(web, {w["pid"] for w in self.cluster.ready() if w["group"] == "web"},
                         "the web group is not restarted")


class MetricsDuringRestartTest(unittest.TestCase):
    """/metrics stays valid while workers are replaced: every scrape passes
    promtool and holds no series twice (a successor shares its slot's id)."""

    def setUp(self):
        self.cluster = Cluster({"noWorkers": 2, "command": [HELLO]})

    def tearDown(self):
        self.cluster.stop()

    def scrape(self):
        return scrape(self.cluster.mon_port)

    def test_scrapes_during_rolling_restarts_are_valid_and_hold_no_duplicate_series(self):
        # Scrapes back to back on a thread while the main thread runs three
        # rolling restarts: every moment of a replacement is seen.
        scrapes, done = [], threading.Event()

        def scrape_until_done():
            while not done.is_set():
                scrapes.append(self.scrape())

        scraper = threading.Thread(target=scrape_until_done)
        scraper.start()
        try:
            for _ in range(3):
                before = {w["pid"] for w in self.cluster.ready()}
                self.cluster.ctl("restart")
                wait_until(lambda: not before & {w["pid"] for w in self.cluster.ready()}
                           and self.cluster.ready_count() == 2, 60, "the restart to finish")
        finally:
            done.set()
            scraper.join(timeout=30)
        self.assertGreater(len(scrapes), 20)
        for text in scrapes:
            series = [line.rsplit(" ", 1)[0] for line in text.splitlines()
                      if line and not line.startswith("#")]
            duplicates = {s for s in series if series.count(s) > 1}
            self.assertFalse(duplicates, text)
        for text in scrapes[:: max(1, len(scrapes) // 10)]:
            check = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text,
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr + text)
        print(f"{len(scrapes)} scrapes during 3 rolling restarts: no duplicate series")


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.config = {"noWorkers": 3, "command": [HELLO]}
        self.cluster = Cluster(self.config)

    def tearDown(self):
        self.cluster.stop()

    def test_a_changed_command_replaces_every_worker_under_wrk_without_a_failure(self):
        before = {w["pid"] for w in self.cluster.ready()}
        load = Wrk(self.cluster.port)
        try:
            wait_until(lambda: os.path.exists(f"/proc/{load.proc.pid}"), 5, "wrk")
            time.sleep(0.5)  # wrk has its 32 keep-alive connections open
            self.cluster.write_config(dict(self.config, command=[HELLO, "--threads", "3"]))
            answer = self.cluster.ctl("reload").stdout
            self.assertIn("replacing the workers of default by a rolling restart", answer)
            wait_until(lambda: not before & {w["pid"] for w in self.cluster.ready()}
                       and self.cluster.ready_count() == 3, 60, "every worker replaced")
            time.sleep(0.5)  # requests to the new workers too
        finally:
            requests, failures, output = load.stop()
        print(f"wrk during the reload: {requests} requests, {failures} failed")
        self.assertGreater(requests, 100, output)
        self.assertEqual(failures, 0, output)
        config = json.loads(self.cluster.ctl("config").stdout)
        self.assertEqual(config["command"], [HELLO, "--threads", "3"])

    def test_an_invalid_file_changes_nothing_and_says_why(self):
        before = {w["pid"] for w in self.cluster.ready()}
        self.cluster.write_raw('{"noWorkers": 5, "command": ["/bin/sh"],')
        refused = self.cluster.ctl("reload", check=False)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("invalid JSON", refused.stderr)
        self.assertEqual(len(refused.stderr.strip().splitlines()), 1, refused.stderr)
        self.cluster.write_config(dict(self.config, noWorkers=2000))
        refused = self.cluster.ctl("reload", check=False)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("field 'noWorkers': must be at most 1024", refused.stderr)
        self.assertEqual({w["pid"] for w in self.cluster.ready()}, before)
        self.assertEqual(self.cluster.desired(), 3)
        with open(self.cluster.log_path) as log:
            self.assertIn("reload refused, nothing changed", log.read())

    def test_counts_apply_at_once_and_fixed_fields_are_listed(self):
        before = {w["pid"] for w in self.cluster.ready()}
        self.cluster.write_config(dict(self.config, noWorkers=4, surge=2, backlog=128))
        answer = self.cluster.ctl("reload").stdout
        self.assertIn("group 'default' workers: 3 -> 4", answer)
        self.assertIn("surge: 1 -> 2", answer)
        self.assertIn("not applied (they need a new master): backlog", answer)
        wait_until(lambda: self.cluster.ready_count() == 4, 20, "4 ready workers")
        self.assertTrue(before <= {w["pid"] for w in self.cluster.ready()}, "no worker replaced")

    def test_the_ecv_mode_and_monitor_check_apply_at_once(self):
        def ecv_status():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.cluster.mon_port}/ecv", timeout=5) as reply:
                    return reply.status
            except urllib.error.HTTPError as error:
                return error.code
        self.assertEqual(ecv_status(), 200)
        # The app answers 404 on /nope: the monitor check fails.
        self.cluster.write_config(dict(self.config, ecv={"mode": "monitor", "monitor": "/nope",
                                                         "monitorInterval": 200}))
        answer = self.cluster.ctl("reload").stdout
        self.assertIn("ecv: mode control -> monitor, monitor /nope", answer)
        self.assertEqual(ecv_status(), 503, "down at once: the first check ran in the reload")
        self.cluster.write_config(dict(self.config, ecv={"mode": "monitor", "monitor": "/"}))
        self.cluster.ctl("reload")
        self.assertEqual(ecv_status(), 200)
        self.cluster.write_config(dict(self.config, ecv={"root": "/lb"}))
        self.assertIn("not applied (they need a new master): ecv.root",
                      self.cluster.ctl("reload").stdout)
        self.assertEqual(ecv_status(), 200)

    def test_sighup_reloads_and_replaces_every_worker(self):
        before = {w["pid"] for w in self.cluster.ready()}
        self.cluster.write_config(dict(self.config, noWorkers=2))
        self.cluster.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.cluster.desired() == 2 and self.cluster.ready_count() == 2
                   and not before & {w["pid"] for w in self.cluster.ready()}, 60,
                   "2 new workers")


if __name__ == "__main__":
    import pyjunit
    sys.exit(pyjunit.main(__name__, "GroupsReloadTest"))
