"""Helpers of the Python end-to-end tests (groups_reload_test,
mixed_cluster_test): free ports, waiting for a condition, cluster2ctl errors
that say what failed, and wrk under load with its failures counted."""
import re
import signal
import socket
import subprocess
import time
import urllib.request

WRK = "/usr/bin/wrk"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, what):
    """Polls `condition` (a cheap local query) until it is true; fails the
    test with `what` after `timeout` seconds. Errors of a query that cannot
    answer yet (the master still starting) count as false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError, KeyError, subprocess.CalledProcessError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_process(proc, timeout=30):
    """SIGTERM (a master's graceful stop), SIGKILL if it is still running
    after `timeout` seconds; reaps it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class CtlError(subprocess.CalledProcessError):
    """A cluster2ctl call that failed, with its stderr in the message."""

    def __str__(self):
        return f"cluster2ctl {' '.join(self.cmd)}: exit {self.returncode}: {self.stderr}"


def run_ctl(ctl, run_dir, *args, check=True):
    """cluster2ctl `args` against the cluster of `run_dir`; CtlError if it
    fails and `check`."""
    result = subprocess.run([ctl, "--run-dir", run_dir, *args], capture_output=True,
                            text=True, timeout=30)
    if check and result.returncode != 0:
        raise CtlError(result.returncode, args, result.stdout, result.stderr)
    return result


def scrape(mon_port, timeout=10):
    """The master's /metrics text; OSError if it does not answer 200."""
    with urllib.request.urlopen(f"http://127.0.0.1:{mon_port}/metrics", timeout=timeout) as r:
        if r.status != 200:
            raise OSError(f"/metrics answered {r.status}")
        return r.read().decode()


class Wrk:
    """wrk -t2 -c32 against `port` until stop()."""

    def __init__(self, port):
        self.proc = subprocess.Popen(
            [WRK, "-t2", "-c32", "-d120s", "--timeout", "10s", f"http://127.0.0.1:{port}/"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self):
        """Stops wrk (SIGINT: it prints its summary); returns (requests,
        failures, output). Failures are socket errors of any kind plus
        non-2xx/3xx answers."""
        self.proc.send_signal(signal.SIGINT)
        output, _ = self.proc.communicate(timeout=30)
        requests = int(re.search(r"(\d+) requests in", output).group(1))
        failures = 0
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                           output)
        if errors:
            failures += sum(int(n) for n in errors.groups())
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        if non2xx:
            failures += int(non2xx.group(1))
        return requests, failures, output
