#!/usr/bin/python3
"""The monitor port against real peers, all from Debian: HAProxy health
checks on the ECV (markDown drains, markUp restores, no request fails), a
real Prometheus scraping /metrics, and headless Chromium showing the monitor
page, its live update after a worker is killed and its markDown/markUp
buttons (a POST with the page's control token; screenshot kept in the test's
outputs), and its charts, cache figures and event timeline under load with
the cache server and a recycle policy (screenshot monitor_charts.png)."""
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
OUTPUTS = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", tempfile.gettempdir())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    return False


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.status, reply.read().decode()


class Cluster:
    """A master with `workers` hello workers; with `cache`, the cache server
    (cluster2-cache, found beside the master in the runfiles) with its files
    in the cluster's directory. `flags`: more master flags."""

    def __init__(self, workers=2, cache=False, flags=()):
        self.dir = tempfile.mkdtemp(prefix="c2p-", dir="/tmp")
        self.port, self.mon_port = free_port(), free_port()
        self.log = open(os.path.join(self.dir, "master.log"), "w")
        cache_flags = [f"--cache.persistPath={self.dir}/cache"] if cache else ["--cache.enable=false"]
        self.proc = subprocess.Popen(
            [MASTER, f"--noWorkers={workers}", f"--port={self.port}", "--host=127.0.0.1",
             f"--monPort={self.mon_port}", f"--runDir={self.dir}/run", "--heartbeatInterval=200", "--nanny.tolerance=3000",
             *cache_flags, *flags, "--", HELLO], stdout=self.log, stderr=subprocess.STDOUT)
        assert wait_until(lambda: get(f"http://127.0.0.1:{self.mon_port}/ecv")[0] == 200, 15)

    def page_url(self):
        return f"http://127.0.0.1:{self.mon_port}/"

    def ctl(self, *args):
        return subprocess.run([CTL, "--run-dir", f"{self.dir}/run", *args], capture_output=True,
                              text=True, check=True).stdout

    def pids(self):
        workers = json.loads(self.ctl("workers", "-o", "json"))["workers"]
        return [w["pid"] for w in workers if w["state"] == "WORKER_STATE_READY"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class HaproxyTest(unittest.TestCase):
    def test_mark_down_drains_and_mark_up_restores_without_a_failed_request(self):
        a, b = Cluster(), Cluster()
        workdir = tempfile.mkdtemp(prefix="c2h-", dir="/tmp")
        front = free_port()
        stats = os.path.join(workdir, "stats.sock")
        with open(os.path.join(workdir, "haproxy.cfg"), "w") as cfg:
            cfg.write(f"""global
  stats socket {stats} mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  retries 2
  option redispatch
frontend web
  bind 127.0.0.1:{front}
  default_backend clusters
backend clusters
  balance roundrobin
  option httpchk GET /ecv
  http-check disable-on-404
  server a 127.0.0.1:{a.port} check port {a.mon_port} inter 200ms fall 2 rise 1
  server b 127.0.0.1:{b.port} check port {b.mon_port} inter 200ms fall 2 rise 1
""")
        haproxy = subprocess.Popen(["/usr/sbin/haproxy", "-f", os.path.join(workdir, "haproxy.cfg")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def server_status():
            client = socket.socket(socket.AF_UNIX)
            client.connect(stats)
            client.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
            client.close()
            result = {}
            for line in data.decode().splitlines():
                fields = line.split(",")
                if len(fields) > 17 and fields[0] == "clusters" and fields[1] in ("a", "b"):
                    result[fields[1]] = fields[17]
            return result

        served, failures, stop = {"a": 0, "b": 0}, [], threading.Event()
        pids_a = set()

        def load():
            while not stop.is_set():
                try:
                    status, body = get(f"http://127.0.0.1:{front}/", timeout=5)
                    if status != 200:
                        failures.append(status)
                    pid = int(body.split()[3])
                    served["a" if pid in pids_a else "b"] += 1
                except Exception as error:  # every failure counts
                    failures.append(repr(error))
        try:
            self.assertTrue(wait_until(lambda: server_status() == {"a": "UP", "b": "UP"}, 15),
                            server_status())
            pids_a.update(a.pids())
            loader = threading.Thread(target=load)
            loader.start()
            self.assertTrue(wait_until(lambda: served["a"] > 50 and served["b"] > 50, 15))
            a.ctl("markdown")
            self.assertTrue(wait_until(lambda: server_status()["a"] in ("NOLB", "DRAIN"), 10),
                            server_status())
            drained_at = dict(served)
            time.sleep(1.0)  # one second of traffic while drained
            during = {k: served[k] - drained_at[k] for k in served}
            self.assertEqual(during["a"], 0, "a drained cluster still got new requests")
            self.assertGreater(during["b"], 50)
            a.ctl("markup")
            self.assertTrue(wait_until(lambda: server_status()["a"] == "UP", 10), server_status())
            back = served["a"]
            self.assertTrue(wait_until(lambda: served["a"] > back + 50, 10))
            stop.set()
            loader.join()
            self.assertEqual(failures, [], "requests failed across the switch")
        finally:
            stop.set()
            haproxy.terminate()
            haproxy.wait(timeout=10)
            a.stop()
            b.stop()
            shutil.rmtree(workdir, ignore_errors=True)


class PrometheusTest(unittest.TestCase):
    def test_a_real_prometheus_scrapes_the_worker_count(self):
        cluster = Cluster(workers=3)
        workdir = tempfile.mkdtemp(prefix="c2m-", dir="/tmp")
        web = free_port()
        with open(os.path.join(workdir, "prometheus.yml"), "w") as cfg:
            cfg.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: cluster2
    static_configs:
      - targets: ['127.0.0.1:{cluster.mon_port}']
""")
        prometheus = subprocess.Popen(
            ["/usr/bin/prometheus", f"--config.file={workdir}/prometheus.yml",
             f"--storage.tsdb.path={workdir}/data", f"--web.listen-address=127.0.0.1:{web}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            query = urllib.parse.quote('cluster2_workers{state="ready"}')

            def ready_workers():
                status, body = get(f"http://127.0.0.1:{web}/api/v1/query?query={query}")
                result = json.loads(body)["data"]["result"]
                return result and result[0]["value"][1]
            self.assertTrue(wait_until(lambda: ready_workers() == "3", 60))
            status, body = get(f"http://127.0.0.1:{web}/api/v1/targets")
            target = json.loads(body)["data"]["activeTargets"][0]
            self.assertEqual(target["health"], "up", target.get("lastError"))
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=20)
            cluster.stop()
            shutil.rmtree(workdir, ignore_errors=True)


class DevTools:
    """A minimal Chrome DevTools Protocol client over a WebSocket (stdlib)."""

    def __init__(self, ws_url):
        host_port, path = ws_url[len("ws://"):].split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert accept in response.decode(), response
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _recv_exact(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("devtools closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _read_message(self):
        message = b""
        while True:
            head = self._recv_exact(2)
            fin, length = head[0] & 0x80, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._recv_exact(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._recv_exact(8))[0]
            message += self._recv_exact(length)
            if fin:
                return json.loads(message)

    def call(self, method, **params):
        self.next_id += 1
        payload = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)
        while True:
            message = self._read_message()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(message["error"])
                return message["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


class Chromium:
    """Headless Chromium showing `url`; `tools` is its page's DevTools."""

    def __init__(self, url):
        self.profile = tempfile.mkdtemp(prefix="c2c-", dir="/tmp")
        debug_port = free_port()
        self.proc = subprocess.Popen(
            ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={self.profile}", f"--remote-debugging-port={debug_port}",
             "--window-size=1200,700", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pages = []

            def page_target():
                pages[:] = [t for t in json.loads(get(f"http://127.0.0.1:{debug_port}/json")[1])
                            if t["type"] == "page"]
                return pages
            assert wait_until(page_target, 30), "chromium did not open the page"
            self.tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        except BaseException:
            self.stop()
            raise

    def screenshot(self, name, full_page=False):
        """Writes the page (the window, or all of it) to OUTPUTS/name."""
        params = {"format": "png"}
        if full_page:
            height = self.tools.evaluate("document.documentElement.scrollHeight")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": 1200, "height": height, "scale": 1})
        shot = self.tools.call("Page.captureScreenshot", **params)["data"]
        with open(os.path.join(OUTPUTS, name), "wb") as png:
            png.write(base64.b64decode(shot))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        shutil.rmtree(self.profile, ignore_errors=True)


class BrowserTest(unittest.TestCase):
    def test_headless_chromium_shows_the_workers_and_a_live_update(self):
        cluster = Cluster(workers=2)
        chromium = None
        try:
            chromium = Chromium(cluster.page_url())
            tools = chromium.tools
            rows = "Array.from(document.querySelectorAll('#workers tbody tr')).map(r => r.dataset.pid)"
            self.assertTrue(wait_until(lambda: len(tools.evaluate(rows) or []) == 2, 15))
            before = set(tools.evaluate(rows))
            self.assertEqual(before, {str(p) for p in cluster.pids()})
            victim = int(sorted(before)[0])
            os.kill(victim, signal.SIGKILL)
            # No reload: the page learns of the replacement from /api/events.
            self.assertTrue(wait_until(
                lambda: str(victim) not in tools.evaluate(rows) and len(tools.evaluate(rows)) == 2,
                15), tools.evaluate(rows))
            self.assertEqual(tools.evaluate("document.getElementById('ecv').textContent"), "up")
            # The page's buttons POST with the control token: markDown drains.
            tools.evaluate("document.getElementById('markdown').click()")
            self.assertTrue(wait_until(
                lambda: tools.evaluate("document.getElementById('ecv').textContent") == "marked down",
                10), tools.evaluate("document.getElementById('error').textContent"))
            with self.assertRaises(urllib.error.HTTPError) as drained:
                get(f"http://127.0.0.1:{cluster.mon_port}/ecv")
            self.assertEqual(drained.exception.code, 404)
            tools.evaluate("document.getElementById('markup').click()")
            self.assertTrue(wait_until(
                lambda: tools.evaluate("document.getElementById('ecv').textContent") == "up", 10))
            # A worker's "stacks" button: gdb's view of its threads, by name.
            tools.evaluate("document.querySelector('#workers tbody tr button.stacks').click()")
            names = "Array.from(document.querySelectorAll('#stacks .thread-name')).map(h => h.textContent)"
            self.assertTrue(wait_until(
                lambda: any('"c2-heartbeat"' in n for n in tools.evaluate(names) or []), 40),
                (tools.evaluate(names), tools.evaluate("document.getElementById('error').textContent")))
            chromium.screenshot("monitor_page.png")
        finally:
            if chromium:
                chromium.stop()
            cluster.stop()

    def test_charts_cache_figures_and_the_timeline_under_load(self):
        # A worker is recycled by policy after 100 requests (the default
        # budget lets one policy recycle through per minute).
        cluster = Cluster(workers=2, cache=True,
                          flags=["--recycle.maxRequests=100", "--recycle.jitterPercent=0"])
        stop, served = threading.Event(), [0]

        def load():
            while not stop.is_set():
                try:
                    get(f"http://127.0.0.1:{cluster.port}/")
                    served[0] += 1
                except Exception:  # pylint: disable=broad-except  (a worker recycled under it)
                    stop.wait(0.01)
        loader = threading.Thread(target=load)
        chromium = None
        try:
            loader.start()
            for verb in (["use", "ns"], ["set", "ns", "k", "v"]):
                cluster.ctl("cache", *verb)
            chromium = Chromium(cluster.page_url())
            tools = chromium.tools

            def points(chart):  # per line of the chart: its number of points
                return tools.evaluate(f"Array.from(document.querySelectorAll('#{chart} svg polyline'))"
                                      ".map(p => p.points.numberOfItems)") or []
            # The requests chart draws a line from the samples (every 2 s).
            self.assertTrue(wait_until(lambda: max(points("chart-requests") or [0]) >= 2, 30),
                            (points("chart-requests"), served))
            # The recycle, with the policy's reason, in the timeline.
            recycled = ("Array.from(document.querySelectorAll('#timeline tbody tr[data-kind=\"recycled\"]'))"
                        ".map(r => r.textContent)")
            self.assertTrue(wait_until(
                lambda: any(re.search(r"max_?requests", row, re.I)
                            for row in tools.evaluate(recycled) or []), 30),
                (tools.evaluate("document.getElementById('timeline').textContent"), served))
            # The cache: its namespace in the table and a line in the keys chart.
            self.assertFalse(tools.evaluate("document.getElementById('chart-cache-keys').hidden"))
            self.assertTrue(wait_until(lambda: max(points("chart-cache-keys") or [0]) >= 2, 30),
                            tools.evaluate("document.getElementById('cache').textContent"))
            namespaces = ("Array.from(document.querySelectorAll('#cache-namespaces tbody tr'))"
                          ".map(r => r.cells[0].textContent + '=' + r.cells[1].textContent)")
            self.assertIn("ns=1", tools.evaluate(namespaces))
            # A new page starts from /api/history: several samples at once
            # (the first, taken as the master started, has no worker yet).
            self.assertTrue(wait_until(lambda: len(json.loads(
                get(f"http://127.0.0.1:{cluster.mon_port}/api/history")[1])["samples"]) >= 4, 20))
            tools.evaluate("delete document.getElementById('charts').dataset.history")
            tools.call("Page.reload")
            self.assertTrue(wait_until(lambda: int(tools.evaluate(
                "document.getElementById('charts').dataset.history") or 0) >= 4, 10))
            self.assertGreaterEqual(max(points("chart-requests") or [0]), 3)
            self.assertEqual(tools.evaluate("document.getElementById('error').textContent"), "")
            chromium.screenshot("monitor_charts.png", full_page=True)
        finally:
            stop.set()
            loader.join(timeout=30)
            if chromium:
                chromium.stop()
            cluster.stop()


if __name__ == "__main__":
    import pyjunit
    code = pyjunit.main(__name__, "peers")
    sys.exit(code)
