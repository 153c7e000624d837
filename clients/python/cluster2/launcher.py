"""Runs a whole cluster from a script started in a shell: cluster2-master
with the same script as its worker command (cluster2.listen() does this when
the process is not a worker).

The master binary: $CLUSTER2_MASTER_BIN, else cluster2-master on PATH, else
<repo>/bazel-bin/master/cluster2-master (this package in a cluster2 checkout).
"""
import ctypes
import os
import shutil
import signal
import subprocess
import sys

import grpc

from cluster2._errors import Error

# The listen() keywords that are master flags, and their flag names.
FLAG_NAMES = {"port": "port", "host": "host", "no_workers": "noWorkers", "name": "name",
              "run_dir": "runDir", "mon_port": "monPort"}


def camel_case(name):
    """heartbeat_interval -> heartbeatInterval (a config.proto JSON name);
    names without "_" stay as they are."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def config_flags(config, prefix=""):
    """`--key=value` flags for a (nested) dict of ClusterConfig fields, e.g.
    {"heartbeatInterval": 200, "nanny": {"tolerance": 3000}} ->
    ["--heartbeatInterval=200", "--nanny.tolerance=3000"]. Keys may be
    snake_case. TypeError for lists and other values a flag cannot carry."""
    flags = []
    for key, value in config.items():
        name = prefix + camel_case(key)
        if isinstance(value, dict):
            flags += config_flags(value, name + ".")
        elif isinstance(value, bool):
            flags.append(f"--{name}={'true' if value else 'false'}")
        elif isinstance(value, (int, float, str)):
            flags.append(f"--{name}={value}")
        else:
            raise TypeError(f"config {name}: a flag takes a number, str or bool, "
                            f"not {type(value).__name__}")
    return flags


def master_argv(master_bin, worker_command, config=None, config_file=None, **flags):
    """The master's command line: the binary, --config FILE, the flags of
    `flags` (listen()'s port, no_workers, ...; None = not given) and
    `config`, then `--` and the worker command."""
    argv = [master_bin]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    for keyword, value in flags.items():
        if keyword not in FLAG_NAMES:
            raise TypeError(f"unknown listen() option {keyword!r}")
        if value is not None:
            argv.append(f"--{FLAG_NAMES[keyword]}={value}")
    argv += config_flags(config or {})
    return argv + ["--"] + list(worker_command)


def worker_command():
    """This script again: sys.executable and sys.argv, the script's path
    made absolute (the master may run it from another directory)."""
    argv = list(sys.argv)
    if argv and argv[0] and os.path.isfile(argv[0]):
        argv[0] = os.path.abspath(argv[0])
    return [sys.executable] + argv


def find_master(environ=None):
    """The cluster2-master binary (see the module), or Error NOT_FOUND."""
    environ = os.environ if environ is None else environ
    candidates = [environ.get("CLUSTER2_MASTER_BIN"), shutil.which("cluster2-master")]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    candidates.append(os.path.join(repo, "bazel-bin", "master", "cluster2-master"))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise Error(grpc.StatusCode.NOT_FOUND,
                "cluster2-master not found: set CLUSTER2_MASTER_BIN, put it on PATH, or "
                "build it (bazel build //master:cluster2-master)")


def _die_with_parent():
    """In the master's child process: SIGTERM it when we die."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_master(argv):
    """Runs the master in its own process group (a terminal's Ctrl-C reaches
    us, and we forward it once), forwards SIGINT/SIGTERM/SIGHUP to it, and
    returns its exit code (128+N for a signal N, as a shell says)."""
    master = subprocess.Popen(argv, process_group=0, preexec_fn=_die_with_parent)
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda sig, _: master.send_signal(sig))
                for sig in forwarded}
    try:
        code = master.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


