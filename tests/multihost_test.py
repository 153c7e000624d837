#!/usr/bin/python3
"""Three hosts behind a real HAProxy, driven by one cluster2ctl over mutual
TLS: each "host" is a network namespace (a veth pair to the root namespace)
running a cluster2-master that serves its control API on TCP with TLS and
requires a client certificate signed by the test's CA; HAProxy, configured by
deploy/haproxy/haproxy.cfg, balances a frontend over the three and checks
each master's ECV. `cluster2ctl --hosts FILE` lists the workers and statuses
of every host, a client without a certificate is refused, and `rollout`
replaces every worker of every host, one host at a time (markDown, drain,
rolling restart, markUp), under wrk without a failed request.

Needs root (ip netns, veth). Without network namespaces the three masters run
side by side on 127.0.0.1 with their own ports, and the test says so loudly."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
HAPROXY_CFG = os.path.join(RUNFILES, "deploy/haproxy/haproxy.cfg")
HAPROXY = "/usr/sbin/haproxy"
OPENSSL = "/usr/bin/openssl"

from e2e import Wrk, free_port, stop_process, wait_until  # noqa: E402
from hosts import Fleet as BaseFleet, Host as BaseHost, Timer, clean_env, main, run  # noqa: E402

HOSTS = 3
# The fixed ports of a master inside its namespace (the host's own ports).
SERVICE_PORT, MON_PORT, CONTROL_PORT = 8080, 8081, 7070


class Host(BaseHost):
    """A host's master, with its service, monitoring and TLS control ports
    (fixed in a namespace, free ones on 127.0.0.1: hosts.Host.ports)."""

    def __init__(self, fleet, n, address, netns):
        super().__init__(n, address, netns, fleet.dir)
        self.port, self.mon_port, self.control_port = self.ports(SERVICE_PORT, MON_PORT, CONTROL_PORT)

    @property
    def control(self):
        return f"{self.address}:{self.control_port}"

    def start(self, certs):
        # Heartbeats every 200 ms keep rollout's drain detection quick; a
        # worker that misses three of them on a loaded 2-core machine is not
        # hung (the default tolerance killed one in a CI run).
        self.start_master([MASTER, "--noWorkers=2", f"--host={self.bind}", f"--port={self.port}",
                           f"--monHost={self.bind}", f"--monPort={self.mon_port}", f"--runDir={self.run_dir}",
                           "--cache.enable=false", "--heartbeatInterval=200", "--nanny.tolerance=10000",
                           f"--control.tcp={self.control}", f"--control.cert={certs}/{self.name}.pem",
                           f"--control.key={certs}/{self.name}.key", f"--control.clientCa={certs}/ca.pem",
                           "--", HELLO], env=clean_env())

    def wait_ready(self, timeout=30):
        def ready():
            self.check_running()
            return self.ecv() == 200
        wait_until(ready, timeout, f"{self.name}'s ECV at {self.ecv_url} to answer 200")

    def local_ctl(self, *args):
        """cluster2ctl over the master's Unix socket (not the TCP path under
        test): the reference the TCP answers are compared with."""
        result = subprocess.run([CTL, "--run-dir", self.run_dir, *args], capture_output=True,
                                text=True, timeout=30, env=clean_env())
        if result.returncode != 0:
            raise AssertionError(f"cluster2ctl --run-dir {self.run_dir} {' '.join(args)}: "
                                 f"exit {result.returncode}: {result.stderr}")
        return result.stdout

    def ready_pids(self):
        workers = json.loads(self.local_ctl("workers", "-o", "json"))["workers"]
        return {w["pid"] for w in workers if w["state"] == "WORKER_STATE_READY"}


class Fleet(BaseFleet):
    """The three hosts (network namespaces on 10.199.x, see hosts.Hosts),
    their certificates, HAProxy in front and the hosts file. close() undoes
    whatever was done, in any state (hosts.Fleet)."""

    def __init__(self):
        super().__init__(Host, HOSTS, tag="c2mh", subnet="10.199", logs="multihost")
        self.certs = os.path.join(self.dir, "certs")
        self.haproxy = None

    # -- certificates -----------------------------------------------------
    def make_certificates(self):
        """A CA; per host a server certificate for its address (and
        127.0.0.1, and the name hostN.c2mh.test); a client certificate;
        and a client certificate of another CA (a stranger)."""
        os.makedirs(self.certs)
        c = self.certs
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ("ca", "rogue-ca"):
            run(OPENSSL, "req", "-x509", *key, "-keyout", f"{c}/{ca}.key", "-out", f"{c}/{ca}.pem",
                "-days", "2", "-subj", f"/CN=cluster2 multihost test {ca}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

        def issue(name, ca, extensions):
            with open(f"{c}/{name}.ext", "w") as ext:
                ext.write("basicConstraints=CA:FALSE\n" + extensions)
            run(OPENSSL, "req", "-new", *key, "-keyout", f"{c}/{name}.key", "-out", f"{c}/{name}.csr",
                "-subj", f"/CN={name}")
            run(OPENSSL, "x509", "-req", "-in", f"{c}/{name}.csr", "-CA", f"{c}/{ca}.pem",
                "-CAkey", f"{c}/{ca}.key", "-CAcreateserial", "-days", "2",
                "-extfile", f"{c}/{name}.ext", "-out", f"{c}/{name}.pem")
        for host in self.hosts:
            issue(host.name, "ca", "extendedKeyUsage=serverAuth\n"
                  f"subjectAltName=IP:{host.address},IP:127.0.0.1,DNS:{host.name}.c2mh.test\n")
        issue("client", "ca", "extendedKeyUsage=clientAuth\n")
        issue("rogue", "rogue-ca", "extendedKeyUsage=clientAuth\n")

    # -- the whole ---------------------------------------------------------
    def start(self):
        super().start()  # the hosts: namespaces, or (loudly) 127.0.0.1
        with Timer("certificates"):
            self.make_certificates()
        with Timer("three masters ready"):
            for host in self.hosts:
                host.start(self.certs)
            for host in self.hosts:
                host.wait_ready()
        self.hosts_file = os.path.join(self.dir, "hosts")
        with open(self.hosts_file, "w") as out:
            out.write("# cluster2ctl --hosts: NAME ADDRESS\n\n")
            for host in self.hosts:
                out.write(f"{host.name} {host.control}\n")
        with Timer("HAProxy sees three servers up"):
            self.start_haproxy()

    def start_haproxy(self):
        self.front = free_port()
        self.stats_path = os.path.join(self.dir, "haproxy.sock")
        env = clean_env(CLUSTER2_BIND=f"127.0.0.1:{self.front}", CLUSTER2_HAPROXY_STATS=self.stats_path)
        for host in self.hosts:
            env[f"CLUSTER2_HOST{host.n}"] = f"{host.address}:{host.port}"
            env[f"CLUSTER2_HOST{host.n}_MONPORT"] = str(host.mon_port)
        self.haproxy_log_path = os.path.join(self.dir, "haproxy.log")
        with open(self.haproxy_log_path, "w") as log:
            self.haproxy = subprocess.Popen([HAPROXY, "-f", HAPROXY_CFG], stdout=log,
                                            stderr=subprocess.STDOUT, env=env)

        def all_up():
            if self.haproxy.poll() is not None:
                raise AssertionError(f"haproxy exited ({self.haproxy.returncode}):\n{self.haproxy_log()}")
            return {s["status"] for s in self.servers().values()} == {"UP"} and len(self.servers()) == HOSTS
        wait_until(all_up, 20, "HAProxy to see every server UP")

    def haproxy_log(self):
        with open(self.haproxy_log_path, errors="replace") as log:
            return log.read()[-6000:]

    def servers(self):
        """HAProxy's view of each server: {name: {"status", "stot", ...}}."""
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(self.stats_path)
            client.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        servers = {}
        for line in lines[1:]:
            fields = dict(zip(header, line.split(",")))
            if fields.get("pxname") == "cluster2" and fields.get("svname", "").startswith("host"):
                servers[fields["svname"]] = fields
        return servers

    def ctl(self, *args, tls=True, timeout=60):
        """cluster2ctl with the client certificate (tls) or only the CA."""
        flags = ["--tls-ca", f"{self.certs}/ca.pem"]
        if tls:
            flags += ["--tls-cert", f"{self.certs}/client.pem", "--tls-key", f"{self.certs}/client.key"]
        start = time.monotonic()
        result = subprocess.run([CTL, *flags, *args], capture_output=True, text=True,
                                timeout=timeout, env=clean_env())
        print(f"  [{time.monotonic() - start:6.2f}s] cluster2ctl {' '.join(args)}: exit {result.returncode}",
              flush=True)
        return result

    def stop(self):
        if self.haproxy:
            stop_process(self.haproxy, timeout=10)
        super().stop()

    def saved_logs(self):
        return [("haproxy.log", self.haproxy_log_path)] if self.haproxy else (), ()


def tls_hello(host, certs, client=None):
    """Opens a TLS connection to `host`'s control port as a gRPC client
    would (ALPN h2), with the client certificate `client` (a name under
    `certs`) or none, sends the HTTP/2 preface and an empty SETTINGS frame,
    and returns the type of the first frame the server sends back (4:
    SETTINGS) or the error that ended the connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(f"{certs}/ca.pem")
    context.set_alpn_protocols(["h2"])
    if client:
        context.load_cert_chain(f"{certs}/{client}.pem", f"{certs}/{client}.key")
    try:
        with socket.create_connection((host.address, host.control_port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=host.address) as tls:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
                header = b""
                while len(header) < 9:
                    chunk = tls.recv(9 - len(header))
                    if not chunk:
                        return "connection closed"
                    header += chunk
                return header[3]
    except (ssl.SSLError, OSError) as error:
        return repr(error)


class MultiHostTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        print("\nsetting up three hosts:", flush=True)
        cls.fleet = Fleet()
        cls.fleet.setup()
        print(cls.fleet.describe(lambda h: f"{h.name} {h.address} (control {h.control})"), flush=True)

    @classmethod
    def tearDownClass(cls):
        cls.fleet.close()

    def setUp(self):
        self.hosts = self.fleet.hosts

    def test_workers_of_every_host_over_mutual_tls_and_a_client_without_a_certificate_is_refused(self):
        fleet = self.fleet
        expected = {h.name: h.ready_pids() for h in self.hosts}
        # The table: a HOST column first, two workers a host.
        table = fleet.ctl("--hosts", fleet.hosts_file, "workers")
        self.assertEqual(table.returncode, 0, table.stderr)
        print(indent(table.stdout))
        lines = [line for line in table.stdout.splitlines() if line.strip()]
        self.assertEqual(lines[0].split()[0], "HOST", table.stdout)
        rows = [line.split() for line in lines[1:]]
        self.assertEqual(len(rows), 6, table.stdout)
        self.assertEqual(sorted(row[0] for row in rows), ["host1", "host1", "host2", "host2", "host3", "host3"],
                         table.stdout)
        for row in rows:  # each row's pid is one of its host's workers
            self.assertTrue(expected[row[0]] & {int(f) for f in row[1:] if f.isdigit()}, (row, expected))
        # JSON: three hosts, by name and address, with their own workers.
        answer = fleet.ctl("--hosts", fleet.hosts_file, "workers", "-o", "json")
        self.assertEqual(answer.returncode, 0, answer.stderr)
        hosts = json.loads(answer.stdout)["hosts"]
        self.assertEqual([(h["host"], h["address"]) for h in hosts],
                         [(h.name, h.control) for h in self.hosts], answer.stdout)
        for host in hosts:
            self.assertNotIn("error", host, host)
            self.assertEqual({w["pid"] for w in host["workers"]}, expected[host["host"]], host)
        # One master by address, with the TLS flags.
        one = fleet.ctl("--master", self.hosts[0].control, "workers", "-o", "json")
        self.assertEqual(one.returncode, 0, one.stderr)
        self.assertEqual({w["pid"] for w in json.loads(one.stdout)["workers"]}, expected["host1"])
        # The server's name is checked: another host's name in its
        # certificate is refused, its own accepted.
        wrong = fleet.ctl("--master", self.hosts[0].control, "--tls-server-name", "host2.c2mh.test", "workers")
        self.assertNotEqual(wrong.returncode, 0, wrong.stdout)
        print(f"  another server name: {wrong.stderr.strip()}")
        right = fleet.ctl("--master", self.hosts[0].control, "--tls-server-name", "host1.c2mh.test", "workers")
        self.assertEqual(right.returncode, 0, right.stderr)
        # The server itself requires a certificate of its CA: at the TLS
        # level, no HTTP/2 frame without one or with a stranger's.
        for host in self.hosts:
            self.assertEqual(tls_hello(host, fleet.certs, "client"), 4, host.name)
            for client in (None, "rogue"):
                answer = tls_hello(host, fleet.certs, client)
                self.assertNotEqual(answer, 4, f"{host.name} answered a client with {client or 'no'} certificate")
                print(f"  {host.name}, client certificate {client or 'none'}: {answer}")
        # cluster2ctl without a client certificate: refused, not 0 and not 2
        # (a usage error: the server must be what refuses), and the error
        # names the missing client certificate (the hint every failed
        # connection carries, "do the --tls-* files match its
        # certificates?", does not count).
        refusals = []
        for args in (["--hosts", fleet.hosts_file, "workers"], ["--master", self.hosts[0].control, "workers"]):
            refused = fleet.ctl(*args, tls=False)
            print(f"  without a client certificate ({args[0]}): exit {refused.returncode}: {refused.stderr.strip()}")
            self.assertNotIn(refused.returncode, (0, 2), refused.stdout + refused.stderr)
            self.assertNotRegex(refused.stdout, r"\b(%s)\b" % "|".join(str(p) for p in expected["host1"]))
            refusals.append(refused.stdout + refused.stderr)
        for text in refusals:
            self.assertRegex(text, r"(?i)client certificate|certificate required|--tls-cert\b|--tls-key\b")

    def test_an_unreachable_host_is_reported_by_name(self):
        fleet = self.fleet
        hosts_file = os.path.join(fleet.dir, "hosts-with-a-missing-one")
        missing = f"127.0.0.1:{free_port()}"  # nothing listens there
        shutil.copy(fleet.hosts_file, hosts_file)
        with open(hosts_file, "a") as out:
            out.write(f"ghost {missing}   # not there\n")
        answer = fleet.ctl("--hosts", hosts_file, "workers", "-o", "json", "--timeout", "3s")
        print(f"  with a missing host: exit {answer.returncode}, stderr: {answer.stderr.strip()}")
        self.assertTrue(answer.stdout.strip(), f"no JSON on stdout: {answer.stderr}")
        hosts = json.loads(answer.stdout)["hosts"]
        self.assertEqual([h["host"] for h in hosts], ["host1", "host2", "host3", "ghost"], answer.stdout)
        for host in hosts[:3]:
            self.assertEqual(len(host["workers"]), 2, host)
        self.assertTrue(hosts[3].get("error"), hosts[3])
        self.assertNotIn("workers", hosts[3])
        # A rollout checks every host first: with one missing (the last),
        # it refuses and touches none.
        before = {h.name: h.ready_pids() for h in self.hosts}
        rollout = fleet.ctl("--hosts", hosts_file, "rollout", timeout=120)
        print(f"  rollout with a missing host: exit {rollout.returncode}: {rollout.stderr.strip()}")
        self.assertEqual(rollout.returncode, 1, rollout.stdout + rollout.stderr)
        self.assertRegex(rollout.stderr, r"cluster2ctl: rollout (not started: |stopped at )ghost: ")
        self.assertNotRegex(rollout.stdout, r"marked down")
        self.assertEqual({h.name: h.ready_pids() for h in self.hosts}, before)
        self.assertEqual([h.ecv() for h in self.hosts], [200] * HOSTS)

    def test_status_across_hosts(self):
        fleet = self.fleet
        expected = {h.name: (h.proc.pid, h.ready_pids()) for h in self.hosts}
        table = fleet.ctl("--hosts", fleet.hosts_file, "status", "workers")
        self.assertEqual(table.returncode, 0, table.stderr)
        print(indent(table.stdout))
        lines = [line for line in table.stdout.splitlines() if line.strip()]
        self.assertEqual(lines[0].split()[0], "HOST", table.stdout)
        for name, (master_pid, pids) in expected.items():
            rows = [line for line in lines[1:] if line.split()[0] == name]
            self.assertEqual(len(rows), 1, table.stdout)  # one entry a host: its master's
            self.assertIn(str(master_pid), rows[0].split(), rows[0])
            for pid in pids:
                self.assertIn(f'"pid":{pid}', rows[0].replace(" ", ""), rows[0])
        answer = fleet.ctl("--hosts", fleet.hosts_file, "status", "workers", "-o", "json")
        self.assertEqual(answer.returncode, 0, answer.stderr)
        hosts = json.loads(answer.stdout)["hosts"]
        self.assertEqual([h["host"] for h in hosts], [h.name for h in self.hosts], answer.stdout)
        for host in hosts:
            master_pid, pids = expected[host["host"]]
            entries = host["entries"]
            self.assertEqual([e["pid"] for e in entries], [master_pid], host)
            self.assertEqual({w["pid"] for w in entries[0]["value"]}, pids, host)

    def test_rollout_under_load_replaces_every_worker_one_host_at_a_time_without_a_failed_request(self):
        fleet, names = self.fleet, [h.name for h in self.hosts]
        before = {h.name: h.ready_pids() for h in self.hosts}
        # A watcher: every 100 ms each master's ECV and HAProxy's view.
        samples, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                at = time.monotonic()
                ecv = {h.name: h.ecv() for h in self.hosts}
                try:
                    servers = {name: (s["status"], int(s["stot"])) for name, s in fleet.servers().items()}
                except (OSError, ValueError, KeyError) as error:
                    servers = {"error": repr(error)}
                samples.append((at, ecv, servers))
                stop.wait(max(0.0, 0.1 - (time.monotonic() - at)))
        watcher = threading.Thread(target=watch)
        load = Wrk(fleet.front)
        watcher.start()
        try:
            base = {name: s[1] for name, s in samples_wait(samples, 5)[-1][2].items()}
            wait_until(lambda: all(samples[-1][2][n][1] > base[n] + 100 for n in names), 15,
                       "wrk's requests to reach every host")
            started = time.monotonic()
            rollout = fleet.ctl("--hosts", fleet.hosts_file, "rollout", timeout=240)
            took = time.monotonic() - started
            print(f"  rollout of {len(names)} hosts took {took:.1f}s:\n" + indent(rollout.stdout + rollout.stderr))
            self.assertIsNone(load.proc.poll(), "wrk ended (after 120 s) before the rollout did")
            self.assertEqual(rollout.returncode, 0, rollout.stdout + rollout.stderr)
            after = {h.name: h.ready_pids() for h in self.hosts}
            # Traffic comes back to every host: UP in HAProxy and serving.
            done = {name: s[1] for name, s in samples[-1][2].items()}
            wait_until(lambda: all(samples[-1][2][n][0] == "UP" and samples[-1][2][n][1] > done[n] + 100
                                   for n in names), 20, "every host UP in HAProxy and serving again")
        finally:
            requests, failures, output = load.stop()
            stop.set()
            watcher.join(timeout=10)
        print(f"  wrk through HAProxy: {requests} requests, {failures} failed")
        print(f"  {len(samples)} samples of the ECVs and HAProxy; " + timeline(samples, names))
        # The rollout's story, host by host in the file's order.
        lines = [line.strip() for line in rollout.stdout.splitlines()]
        expected = [rf"{n}: {step}\b" for n in names
                    for step in ("marked down", "drained", r"2 workers replaced", "marked up")]
        expected.append(rf"rollout: {len(names)} hosts done\b")
        position = 0
        for pattern in expected:
            found = next((i for i in range(position, len(lines)) if re.match(pattern, lines[i])), None)
            self.assertIsNotNone(found, f"no line /{pattern}/ after line {position}:\n{rollout.stdout}")
            position = found + 1
        # Every worker of every host replaced, two ready on each.
        for name in names:
            self.assertEqual(len(after[name]), 2, (name, after))
            self.assertFalse(before[name] & after[name], f"{name} kept workers {before[name] & after[name]}")
        # The ECVs: at most one host not up at a time; each marked down (404,
        # never 503) once, in the file's order; all up at the end.
        down_at = {}
        for at, ecv, _ in samples:
            not_up = [n for n in names if ecv[n] != 200]
            self.assertLessEqual(len(not_up), 1, f"{not_up} not up at once: {ecv}")
            for n in not_up:
                self.assertEqual(ecv[n], 404, f"{n}'s ECV answered {ecv[n]} during the rollout")
                down_at.setdefault(n, at)
        self.assertEqual(sorted(down_at, key=down_at.get), names, "every host marked down, in order")
        self.assertEqual(samples[-1][1], {n: 200 for n in names})
        # HAProxy drained each host (NOLB: no new request) and never saw one
        # fail a check (DOWN, or "UP 1/2" on the way down).
        nolb = set()
        for (_, _, first), (_, _, second) in zip(samples, samples[1:]):
            for n in names:
                if n in first and n in second:
                    self.assertIn(second[n][0], ("UP", "NOLB"), f"HAProxy saw {n} {second[n][0]}")
                    if first[n][0] == second[n][0] == "NOLB":
                        nolb.add(n)
                        self.assertEqual(second[n][1], first[n][1], f"HAProxy sent {n} requests while it drained")
        self.assertEqual(nolb, set(names), "HAProxy drained every host (NOLB)")
        self.assertEqual(failures, 0, output)
        self.assertGreater(requests, 10000, output)


def samples_wait(samples, timeout):
    wait_until(lambda: samples and "error" not in samples[-1][2], timeout, "the watcher's first sample")
    return samples


def indent(text):
    return "\n".join("    " + line for line in text.strip().splitlines())


def timeline(samples, names):
    """When each host's ECV was not 200, relative to the first sample."""
    start, spans, current = samples[0][0], [], {}
    for at, ecv, _ in samples:
        for n in names:
            if ecv[n] != 200 and n not in current:
                current[n] = (at, ecv[n])
            elif ecv[n] == 200 and n in current:
                since, code = current.pop(n)
                spans.append(f"{n} {code} {since - start:.1f}s-{at - start:.1f}s")
    spans += [f"{n} {code} from {since - start:.1f}s" for n, (since, code) in current.items()]
    return "ECV not up: " + (", ".join(spans) or "never")


if __name__ == "__main__":
    main(__name__, "multihost")  # cleans up on SIGTERM (bazel's timeout) too
