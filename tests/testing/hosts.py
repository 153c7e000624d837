"""Hosts of the multi-host end-to-end tests (multihost_test,
multihost_cache_test). A "host" is a network namespace joined to the root
namespace by a veth pair; where this machine or user cannot make one (not
root, no `ip netns`) the hosts run side by side on 127.0.0.1 with ports of
their own, and `Hosts` says so loudly.

  Hosts(count, tag, subnet, make_host)  makes them: create() returns the
      hosts, stop() stops their masters, remove() deletes the namespaces and
      veth pairs (both in any state);
  Host  one host: on(*command) is the command run on it, start_master()
      runs its master, its log, ECV, stop();
  Fleet  a test's hosts and what runs around them in a temporary
      directory: setup() starts it (or undoes it), close() undoes whatever
      was done, in any state, and keeps the logs;
  run, clean_env, http_status, Timer  subprocesses, environments, HTTP,
      timed steps; save_logs() keeps logs for a failure's post-mortem;
  main()  runs the tests and closes every fleet, SIGTERM (Bazel's timeout)
      included."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pyjunit
from e2e import free_port, stop_process

OUTPUTS = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", tempfile.gettempdir())
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def run(*command, check=True, timeout=30):
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: exit {result.returncode}: {result.stdout}{result.stderr}")
    return result


def clean_env(**extra):
    """The environment of the processes started by a test: none of the
    caller's CLUSTER2_* variables (a stray $CLUSTER2_TLS_CERT would hide a
    missing flag, a stray $CLUSTER2_CACHE would pick the socket), plus
    `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTER2_")}
    env.update(extra)
    return env


def http_status(url, timeout=2):
    """The HTTP status of a GET of `url`; None if it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, urllib.error.URLError):
        return None


class Timer:
    def __init__(self, what):
        self.what = what

    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.start
        print(f"  [{self.seconds:6.2f}s] {self.what}", flush=True)


class Host:
    """Host `n` ("hostN"): in namespace `netns` at `address`, or (netns
    None) on 127.0.0.1. Its files are under `directory`/hostN: the master's
    run dir and log. A subclass sets its ports with ports(), mon_port (the
    ECV's) among them, and starts its master with start_master()."""

    def __init__(self, n, address, netns, directory):
        self.name = f"host{n}"
        self.n, self.address, self.netns = n, address, netns
        self.bind = "0.0.0.0" if netns else "127.0.0.1"  # what its servers listen on
        self.dir = os.path.join(directory, self.name)
        os.makedirs(self.dir)
        self.run_dir = os.path.join(self.dir, "run")
        self.log_path = os.path.join(self.dir, "master.log")
        self.proc = None

    def ports(self, *fixed):
        """`fixed` in a namespace (the host's own ports); free ports of
        127.0.0.1, as many, without."""
        return fixed if self.netns else tuple(free_port() for _ in fixed)

    def on(self, *command):
        """The command line that runs `command` on this host (`ip netns
        exec`: ip execs, the pid is the command's)."""
        return ["ip", "netns", "exec", self.netns, *command] if self.netns else list(command)

    def start_master(self, command, env):
        """Starts the master `command` on this host, its output to its log."""
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.on(*command), stdout=log, stderr=subprocess.STDOUT, env=env)

    def log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()[-4000:]

    def check_running(self):
        """Fails, with its log, if the master exited."""
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name}'s master exited ({self.proc.returncode}):\n{self.log()}")

    @property
    def ecv_url(self):
        return f"http://{self.address}:{self.mon_port}/ecv"

    def ecv(self):
        return http_status(self.ecv_url)

    def stop(self):
        if self.proc:
            stop_process(self.proc)


class Hosts:
    """`count` hosts, each made by make_host(n, address, netns): namespace
    TAG-PID-n at SUBNET.(base+n).2/24 with a veth pair (TAG<PID % 100000>hN
    outside at .1, TAG<PID % 100000>nN inside), or, without namespaces, 127.0.0.1 (and
    netns None)."""

    def __init__(self, count, tag, subnet, make_host):
        self.count, self.tag, self.subnet, self.make_host = count, tag, subnet, make_host
        self.pid = os.getpid()
        self.namespaces, self.links, self.hosts = [], [], []
        self.namespaced = None

    def subnet_base(self):
        """SUBNET.N.0/24 for N = base+1..base+count: base 0 unless another
        run (or anything else) already routes one of them."""
        routes = run("ip", "-4", "route", "show").stdout + run("ip", "-4", "addr", "show").stdout
        prefix = re.escape(self.subnet)
        for base in range(0, 250, 10):
            if not any(re.search(rf"\b{prefix}\.{base + n}\.", routes) for n in range(1, self.count + 1)):
                return base
        raise AssertionError(f"no free {self.subnet}.x.0/24 subnet:\n" + routes)

    def make_namespaces(self):
        """One namespace per host and a veth pair into it; False (and
        nothing left behind) if this machine or user cannot."""
        try:
            base = self.subnet_base()
        except (OSError, AssertionError, subprocess.SubprocessError) as error:
            print(f"ip route: {error}")
            return False
        for n in range(1, self.count + 1):
            netns = f"{self.tag}-{self.pid}-{n}"
            outside, inside = f"{self.tag}{self.pid % 100000}h{n}", f"{self.tag}{self.pid % 100000}n{n}"
            net = f"{self.subnet}.{base + n}"
            added = run("ip", "netns", "add", netns, check=False)
            if added.returncode != 0:
                print(f"ip netns add {netns}: {added.stderr.strip()}")
                self.remove()
                return False
            self.namespaces.append(netns)
            run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            self.links.append(outside)
            run("ip", "link", "set", inside, "netns", netns)
            run("ip", "addr", "add", f"{net}.1/24", "dev", outside)
            run("ip", "link", "set", outside, "up")
            run("ip", "netns", "exec", netns, "ip", "addr", "add", f"{net}.2/24", "dev", inside)
            run("ip", "netns", "exec", netns, "ip", "link", "set", inside, "up")
            run("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
            self.hosts.append(self.make_host(n, f"{net}.2", netns))
        return True

    def create(self):
        """Makes the hosts (namespaces, or loudly 127.0.0.1); returns them."""
        with Timer("network namespaces"):
            self.namespaced = self.make_namespaces()
        if not self.namespaced:
            count = _NUMBERS.get(self.count, str(self.count))
            print("\n" + "!" * 78 + "\n!! NETWORK NAMESPACES NOT AVAILABLE (not root, or no `ip netns`):\n"
                  f"!! the {count} hosts run on 127.0.0.1 with different ports instead.\n" + "!" * 78,
                  flush=True)
            self.hosts = [self.make_host(n, "127.0.0.1", None) for n in range(1, self.count + 1)]
        return self.hosts

    def stop(self):
        """Stops every host's master (the others all the same if one fails)."""
        for host in self.hosts:
            try:
                host.stop()
            except Exception as error:  # the others are stopped all the same
                print(f"stopping {host.name}: {error!r}")

    def remove(self):
        """Deletes the veth pairs and namespaces made so far."""
        for link in self.links:
            run("ip", "link", "del", link, check=False)
        for netns in self.namespaces:
            run("ip", "netns", "del", netns, check=False)
        self.links, self.namespaces = [], []


def save_logs(subdir, hosts, files=(), trees=()):
    """For a failure's post-mortem: copies each host's master log (as
    hostN-master.log), `files` ((name, path): those that exist) and `trees`
    ((name, directory)) to $TEST_UNDECLARED_OUTPUTS_DIR/`subdir`."""
    try:
        saved = os.path.join(OUTPUTS, subdir)
        os.makedirs(saved, exist_ok=True)
        for host in hosts:
            if os.path.exists(host.log_path):
                shutil.copy(host.log_path, os.path.join(saved, f"{host.name}-master.log"))
        for name, path in files:
            if os.path.exists(path):
                shutil.copy(path, os.path.join(saved, name))
        for name, directory in trees:
            shutil.copytree(directory, os.path.join(saved, name), dirs_exist_ok=True)
    except OSError as error:
        print(f"saving the logs: {error}")


_FLEETS = []  # every Fleet made: main() closes them on the way out


class Fleet:
    """A test's hosts and whatever runs around them, under a directory
    /tmp/TAG-PID-*: `count` hosts made by make_host(fleet, n, address,
    netns) (see Hosts). A subclass starts what it needs in start() and
    stops it in stop(); close() undoes whatever was done, in any state:
    stop(), the namespaces removed, the logs saved to
    $TEST_UNDECLARED_OUTPUTS_DIR/`logs` (each host's master log and the
    subclass's saved_logs()), the directory removed."""

    def __init__(self, make_host, count, tag, subnet, logs):
        self.pid = os.getpid()
        self.dir = tempfile.mkdtemp(prefix=f"{tag}-{self.pid}-", dir="/tmp")  # short: socket paths
        self.network = Hosts(count, tag, subnet, lambda n, address, netns: make_host(self, n, address, netns))
        self.logs = logs
        self.closed = False
        _FLEETS.append(self)

    @property
    def hosts(self):
        return self.network.hosts

    @property
    def namespaced(self):
        return self.network.namespaced

    def start(self):
        self.network.create()  # namespaces, or (loudly) 127.0.0.1

    def setup(self):
        """start(); close() (and the error) if it fails."""
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def describe(self, host_text):
        """The line that says where the hosts are: "  hosts (network
        namespaces): " (or 127.0.0.1, NO NAMESPACES) and host_text(host) of
        each host."""
        return (f"  hosts ({'network namespaces' if self.namespaced else '127.0.0.1, NO NAMESPACES'}): "
                + ", ".join(host_text(h) for h in self.hosts))

    def stop(self):
        """Stops what runs (here the masters; a subclass adds its own)."""
        self.network.stop()

    def saved_logs(self):
        """(files, trees) saved beside the hosts' master logs: see save_logs."""
        return (), ()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.stop()
        self.network.remove()
        save_logs(self.logs, self.hosts, *self.saved_logs())
        shutil.rmtree(self.dir, ignore_errors=True)


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(module_name, suite_name):
    """Runs the tests of `module_name` (pyjunit) and exits with their
    status; closes every Fleet on the way out, also on SIGTERM (Bazel's
    timeout)."""
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        code = pyjunit.main(module_name, suite_name)
    finally:
        for fleet in _FLEETS:
            fleet.close()
    sys.exit(code)
