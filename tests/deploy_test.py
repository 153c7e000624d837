#!/usr/bin/python3
"""deploy/k8s and deploy/systemd against the real binaries.

Kubernetes (no cluster here): every YAML document parses and is a known
kind; the Deployment's probes, preStop hook, grace period, Service,
PodDisruptionBudget and ServiceMonitor agree with each other and with the
ConfigMap's cluster config, which passes `cluster2-master --check` with the
container's arguments; and the pod is run as written (its volumes as
directories, the init container's command, the container's command with the
built binaries and the hello worker), probed as the kubelet would, drained
through its preStop command and stopped with SIGTERM.

systemd (no running systemd here): `systemd-analyze verify` and an offline
`systemd-analyze security` of the units, their settings against
example.json, and a real socket activation: systemd-socket-activate holds the
port and runs the unit's own ExecStart (specifiers and installed paths moved
to temporary ones); a worker answers on the inherited socket, ExecReload
runs, SIGTERM stops it cleanly."""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import yaml

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", "cluster2"))
sys.path.insert(0, os.path.join(RUNFILES, "tests/testing"))
MASTER = os.path.join(RUNFILES, "master/cluster2-master")
CTL = os.path.join(RUNFILES, "cli/cluster2ctl")
HELLO = os.path.join(RUNFILES, "examples/hello/hello_worker")
K8S = os.path.join(RUNFILES, "deploy/k8s")
SYSTEMD = os.path.join(RUNFILES, "deploy/systemd")
SERVICE_UNIT = os.path.join(SYSTEMD, "cluster2@.service")
SOCKET_UNIT = os.path.join(SYSTEMD, "cluster2@.socket")
EXAMPLE = os.path.join(SYSTEMD, "example.json")
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
OUTPUTS = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")

from e2e import free_port, stop_process, wait_until  # noqa: E402

# Where the units and the image put the binaries; the test runs the built ones.
INSTALLED = {"/usr/local/bin/cluster2-master": MASTER, "/usr/local/bin/cluster2ctl": CTL}
KNOWN_KINDS = {("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "Deployment"),
               ("policy/v1", "PodDisruptionBudget"), ("monitoring.coreos.com/v1", "ServiceMonitor")}
# systemd-analyze security's scale: 0 (locked down) .. 10 (exposed); "OK" is below 4.
MAX_EXPOSURE = 4.0
WORKER_ANSWER = re.compile(r"^worker (\d+) pid (\d+)$")


def http_status(port, path, timeout=5):
    """The status of GET http://127.0.0.1:port/path (errors included)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def http_body(port, path="/", timeout=30):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode().strip()


def keep_log(path, name):
    if OUTPUTS and os.path.exists(path):
        os.makedirs(OUTPUTS, exist_ok=True)
        shutil.copy(path, os.path.join(OUTPUTS, name))


def read(path):
    with open(path) as f:
        return f.read()


def gone(pid):
    """The process has exited and been reaped (or is a zombie of a reaper
    that does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def parent_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^PPid:\s+(\d+)", f.read(), re.M).group(1))


# ---------------------------------------------------------------- Kubernetes


def load_manifests():
    """{file name: [documents]} of every YAML file in deploy/k8s."""
    manifests = {}
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml")) + glob.glob(os.path.join(K8S, "*.yml"))):
        with open(path) as f:
            manifests[os.path.basename(path)] = [d for d in yaml.safe_load_all(f) if d is not None]
    return manifests


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class Pod:
    """The objects of deploy/k8s the pod is made of."""

    def __init__(self, test):
        self.test = test
        documents = [d for docs in load_manifests().values() for d in docs]

        def one(kind):
            found = [d for d in documents if d.get("kind") == kind]
            test.assertEqual(len(found), 1, f"one {kind} in deploy/k8s")
            return found[0]
        self.deployment = one("Deployment")
        self.service = one("Service")
        self.pdb = one("PodDisruptionBudget")
        self.service_monitor = one("ServiceMonitor")
        self.config_maps = {d["metadata"]["name"]: d for d in documents if d.get("kind") == "ConfigMap"}
        self.template = self.deployment["spec"]["template"]
        self.spec = self.template["spec"]
        masters = [c for c in self.spec["containers"]
                   if c.get("command", [""])[0].endswith("/cluster2-master")]
        test.assertEqual(len(masters), 1, "one container runs cluster2-master")
        self.container = masters[0]
        self.args = self.container.get("args", [])
        self.volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        config_path = self.config_path()
        self.config_text = self.file_of_volume(config_path)
        self.config = json.loads(self.config_text)

    def config_path(self):
        for i, arg in enumerate(self.args):
            if arg == "--":
                break
            if arg.startswith("--config="):
                return arg.split("=", 1)[1]
            if arg == "--config":
                return self.args[i + 1]
        self.test.fail(f"no --config in the container's args {self.args}")

    def mount_of(self, path, container=None):
        """The volume mount holding `path` in the container (the longest
        mountPath prefix), or None."""
        best = None
        for mount in (container or self.container).get("volumeMounts", []):
            root = mount["mountPath"].rstrip("/")
            if (path == root or path.startswith(root + "/")) and (
                    best is None or len(root) > len(best["mountPath"].rstrip("/"))):
                best = mount
        return best

    def file_of_volume(self, path):
        """The text of `path` from the ConfigMap mounted there."""
        mount = self.mount_of(path)
        self.test.assertIsNotNone(mount, f"{path} is on a volume")
        volume = self.volumes[mount["name"]]
        self.test.assertIn("configMap", volume, f"{path} is on a ConfigMap volume")
        key = path[len(mount["mountPath"].rstrip("/")) + 1:]
        data = self.config_maps[volume["configMap"]["name"]]["data"]
        self.test.assertIn(key, data, f"{path}: a key of ConfigMap {volume['configMap']['name']}")
        return data[key]

    def container_port(self, port):
        """A probe's or target's port (name or number) as a containerPort
        the container declares; fails if it declares none such."""
        for p in self.container.get("ports", []):
            if port in (p.get("name"), p["containerPort"]):
                return p["containerPort"]
        self.test.fail(f"port {port!r} is not among the container's ports {self.container.get('ports')}")

    def prestop_script(self):
        command = self.container["lifecycle"]["preStop"]["exec"]["command"]
        if len(command) >= 3 and command[0].endswith("sh") and command[1] == "-c":
            return command[2]
        return shlex.join(command)

    def prestop_sleep(self):
        match = re.search(r"\bsleep\s+(\d+)\b", self.prestop_script())
        self.test.assertIsNotNone(match, f"preStop sleeps: {self.prestop_script()}")
        return int(match.group(1))


class KubernetesManifestsTest(unittest.TestCase):
    def setUp(self):
        self.pod = Pod(self)
        self.config = self.pod.config

    def test_every_document_parses_and_is_a_known_kind(self):
        manifests = load_manifests()
        self.assertEqual(set(manifests), {"cluster2.yaml", "servicemonitor.yaml"})
        for name, documents in manifests.items():
            self.assertTrue(documents, f"{name} holds documents")
            for document in documents:
                self.assertIn((document.get("apiVersion"), document.get("kind")), KNOWN_KINDS, name)
                self.assertTrue(document.get("metadata", {}).get("name"), f"{name}: a name")
        self.assertEqual([d["kind"] for d in manifests["servicemonitor.yaml"]], ["ServiceMonitor"])

    def test_probes_are_on_the_monitor_port_and_its_ecv(self):
        pod, config = self.pod, self.config
        mon_port = config.get("monPort", 8081)
        self.assertEqual(config.get("monHost"), "0.0.0.0", "the kubelet probes from outside the pod")
        readiness = pod.container["readinessProbe"]["httpGet"]
        liveness = pod.container["livenessProbe"]["httpGet"]
        self.assertEqual(pod.container_port(readiness["port"]), mon_port)
        self.assertEqual(pod.container_port(liveness["port"]), mon_port)
        self.assertEqual(readiness["path"], config.get("ecv", {}).get("root", "/ecv"))
        self.assertEqual(liveness["path"], "/metrics")
        self.assertEqual(pod.container_port("http"), config.get("port", 8080))
        annotations = pod.template["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(int(annotations["prometheus.io/port"]), mon_port)
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")

    def test_prestop_marks_down_and_the_grace_covers_its_sleep_and_the_drain(self):
        pod, config = self.pod, self.config
        script = pod.prestop_script()
        markdown = re.search(r"(\S*cluster2ctl)\b(.*?)\bmarkdown\b", script)
        self.assertIsNotNone(markdown, f"preStop runs cluster2ctl markdown: {script}")
        self.assertLess(markdown.start(), script.index("sleep"), "markdown, then sleep")
        run_dir = re.search(r"--run-dir[= ](\S+)", markdown.group(2))
        self.assertIsNotNone(run_dir, "cluster2ctl is told the run directory")
        self.assertEqual(run_dir.group(1), config["runDir"])
        sleep = pod.prestop_sleep()
        readiness = pod.container["readinessProbe"]
        noticed = readiness.get("periodSeconds", 10) * readiness.get("failureThreshold", 3)
        self.assertGreaterEqual(sleep, noticed, "the readiness probe sees the markdown before SIGTERM")
        stop_timeout = config.get("stopTimeout", 60000) / 1000
        self.assertGreater(pod.spec["terminationGracePeriodSeconds"], sleep + stop_timeout)

    def test_config_map_passes_check_with_the_containers_arguments(self):
        pod = self.pod
        work = tempfile.mkdtemp(prefix="c2d-", dir="/tmp")
        try:
            config_file = os.path.join(work, "cluster.json")
            with open(config_file, "w") as f:
                f.write(pod.config_text)
            args = [f"--config={config_file}" if a.startswith("--config=") else a for a in pod.args]
            if "--config" in args:
                args[args.index("--config") + 1] = config_file
            done = subprocess.run([MASTER, "--check", *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(done.returncode, 0, done.stderr)
            # The same check refuses a broken file: it does check.
            with open(config_file, "w") as f:
                f.write(pod.config_text.replace('"monPort"', '"monPrt"'))
            done = subprocess.run([MASTER, "--check", *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(done.returncode, 2, done.stderr)
            self.assertIn("monPrt", done.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # The default worker count is the node's CPU count, not the pod's.
        self.assertIn("noWorkers", self.config)
        cpu = str(pod.container["resources"]["limits"]["cpu"])
        cores = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
        self.assertLessEqual(self.config["noWorkers"], max(1, cores))

    def test_service_pdb_and_deployment_select_the_pods(self):
        pod = self.pod
        labels = pod.template["metadata"]["labels"]
        for kind, selector in (("Deployment", pod.deployment["spec"]["selector"]["matchLabels"]),
                               ("Service", pod.service["spec"]["selector"]),
                               ("PodDisruptionBudget", pod.pdb["spec"]["selector"]["matchLabels"])):
            self.assertTrue(selects(selector, labels), f"{kind} selector {selector}, pod labels {labels}")
        for port in pod.service["spec"]["ports"]:
            pod.container_port(port.get("targetPort", port["port"]))
        self.assertGreater(pod.deployment["spec"]["replicas"], 1)
        self.assertEqual(pod.deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)

    def test_service_monitor_scrapes_the_services_monitor_port(self):
        pod = self.pod
        monitor = pod.service_monitor["spec"]
        self.assertTrue(selects(monitor["selector"]["matchLabels"], pod.service["metadata"]["labels"]),
                        "the ServiceMonitor selects the Service by its labels")
        by_name = {p["name"]: p for p in pod.service["spec"]["ports"]}
        self.assertTrue(monitor["endpoints"])
        for endpoint in monitor["endpoints"]:
            self.assertIn(endpoint["port"], by_name, "a port name of the Service")
            target = by_name[endpoint["port"]].get("targetPort", by_name[endpoint["port"]]["port"])
            self.assertEqual(pod.container_port(target), self.config.get("monPort", 8081))
            self.assertEqual(endpoint.get("path", "/metrics"), "/metrics")

    def test_non_root_read_only_and_the_run_and_cache_dirs_on_writable_volumes(self):
        pod = self.pod
        self.assertTrue(pod.spec["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(pod.spec["securityContext"].get("runAsUser"), 0)
        for container in pod.spec["containers"] + pod.spec.get("initContainers", []):
            context = container["securityContext"]
            self.assertTrue(context["readOnlyRootFilesystem"], container["name"])
            self.assertFalse(context["allowPrivilegeEscalation"], container["name"])
            self.assertIn("ALL", context["capabilities"]["drop"], container["name"])
            self.assertIn("limits", container["resources"], container["name"])
        for path in (self.config["runDir"], self.config["cache"]["persistPath"]):
            mount = pod.mount_of(path)
            self.assertIsNotNone(mount, f"{path} is on a volume")
            self.assertFalse(mount.get("readOnly", False), path)
            self.assertIn("emptyDir", pod.volumes[mount["name"]], path)


class PodRun:
    """The Deployment's pod as this test can run it: each volume a
    directory (an emptyDir 0777, as the kubelet makes it; a ConfigMap its
    keys as files), each mount a symbolic link from the container's path
    (under `root`) to its directory, subPath directories made 0777 when
    missing (as the kubelet does), the init containers' commands run, the
    ports moved to free ones. Paths in the container's arguments and in
    the cluster config are moved under `root`."""

    def __init__(self, test, pod, work, init_containers=True):
        self.test, self.pod, self.work = test, pod, work
        self.root = os.path.join(work, "pod")
        self.ports = {pod.config.get("port", 8080): free_port(),
                      pod.config.get("monPort", 8081): free_port()}
        for name, volume in pod.volumes.items():
            path = os.path.join(work, "volumes", name)
            os.makedirs(path)
            if "emptyDir" in volume:
                os.chmod(path, 0o777)
            else:
                test.assertIn("configMap", volume, f"volume {name}: a ConfigMap or an emptyDir")
        if init_containers:
            for init in pod.spec.get("initContainers", []):
                self.link_mounts(init, os.path.join(work, "init-" + init["name"]))
                command = [self.path(init, a, os.path.join(work, "init-" + init["name"]))
                           for a in init["command"] + init.get("args", [])]
                done = subprocess.run(command, capture_output=True, text=True, timeout=30)
                test.assertEqual(done.returncode, 0, f"init container {init['name']}: {done.stderr}")
        self.link_mounts(pod.container, self.root)
        self.config = self.moved(pod.config)
        self.config["port"] = self.ports[pod.config.get("port", 8080)]
        self.config["monPort"] = self.ports[pod.config.get("monPort", 8081)]
        with open(self.path(pod.container, pod.config_path()), "w") as f:
            json.dump(self.config, f)

    def link_mounts(self, container, root):
        for mount in container.get("volumeMounts", []):
            target = os.path.join(self.work, "volumes", mount["name"])
            if mount.get("subPath"):
                target = os.path.join(target, mount["subPath"])
                if not os.path.exists(target):
                    os.mkdir(target)
                    os.chmod(target, 0o777)
            link = root + mount["mountPath"]
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(target, link)

    def path(self, container, path, root=None):
        if path in INSTALLED:
            return INSTALLED[path]
        if self.pod.mount_of(path, container) is not None:
            return (root or self.root) + path
        return path

    def moved(self, value):
        """The config with every path on a mount moved under root."""
        if isinstance(value, dict):
            return {k: self.moved(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.moved(v) for v in value]
        if isinstance(value, str) and value.startswith("/"):
            return self.path(self.pod.container, value)
        return value

    def move_paths(self, text):
        return re.sub(r"(?<![\w/.-])/[\w/.@-]+", lambda m: self.path(self.pod.container, m.group(0)), text)

    def command(self):
        """The container's command and args, moved, with the hello worker
        for the image's worker."""
        argv = self.pod.container["command"] + self.pod.args
        dashes = argv.index("--") if "--" in argv else len(argv)
        moved = [re.sub(r"^(--[\w.-]+=)?(/.*)$",
                        lambda m: (m.group(1) or "") + self.path(self.pod.container, m.group(2)), a)
                 for a in argv[:dashes]]
        return moved + ["--", HELLO]

    def port(self, port):
        return self.ports[self.pod.container_port(port)]


class KubernetesPodRunTest(unittest.TestCase):
    def setUp(self):
        self.pod = Pod(self)
        self.work = tempfile.mkdtemp(prefix="c2d-", dir="/tmp")
        self.log_path = os.path.join(self.work, "master.log")
        self.master = None

    def tearDown(self):
        if self.master is not None:
            stop_process(self.master)
        keep_log(self.log_path, f"k8s-{self._testMethodName}.log")
        shutil.rmtree(self.work, ignore_errors=True)

    def start(self, run):
        with open(self.log_path, "w") as log:
            self.master = subprocess.Popen(run.command(), stdout=log, stderr=subprocess.STDOUT,
                                           cwd=self.work)

    def test_the_pod_serves_is_probed_drains_on_prestop_and_stops_on_sigterm(self):
        pod = self.pod
        run = PodRun(self, pod, self.work)
        self.start(run)
        readiness = pod.container["readinessProbe"]["httpGet"]
        liveness = pod.container["livenessProbe"]["httpGet"]
        ready_port, live_port = run.port(readiness["port"]), run.port(liveness["port"])
        # The kubelet's HTTP probes succeed on 200..399.
        wait_until(lambda: 200 <= http_status(ready_port, readiness["path"]) < 400, 30,
                   f"readiness {readiness['path']} (the master's log: k8s-*.log in the outputs)")
        self.assertEqual(http_status(live_port, liveness["path"]), 200)
        self.assertRegex(http_body(run.port("http")), WORKER_ANSWER)

        script = pod.prestop_script()
        drain = re.sub(r"\bsleep\s+\d+", "sleep 0", run.move_paths(script))
        done = subprocess.run(["/bin/sh", "-c", drain], capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 0, f"preStop {drain}: {done.stdout}{done.stderr}")
        self.assertEqual(http_status(ready_port, readiness["path"]), 404, "marked down: not ready")
        self.assertEqual(http_status(live_port, liveness["path"]), 200, "marked down: still alive")
        self.assertRegex(http_body(run.port("http")), WORKER_ANSWER, "still serving while drained")

        self.master.send_signal(signal.SIGTERM)
        left = pod.spec["terminationGracePeriodSeconds"] - pod.prestop_sleep()
        self.assertEqual(self.master.wait(timeout=left), 0, read(self.log_path))
        self.assertIn("master stops", read(self.log_path))

    def test_without_the_init_container_the_master_refuses_its_run_dir(self):
        # Why the Deployment has an init container: mounted straight from an
        # emptyDir (0777), the run directory's parent is writable by others.
        self.assertTrue(self.pod.spec.get("initContainers"))
        self.start(PodRun(self, self.pod, self.work, init_containers=False))
        self.assertEqual(self.master.wait(timeout=30), 1)
        self.assertIn("writable by group or others", read(self.log_path))


# ------------------------------------------------------------------- systemd


def parse_unit(path):
    """{section: [(key, value)]} of a unit file (continuation lines joined)."""
    sections, section, pending = {}, None, ""
    for raw in read(path).splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            sections.setdefault(section, [])
        else:
            key, value = line.split("=", 1)
            sections[section].append((key.strip(), value.strip()))
    return sections


def setting(unit, section, key):
    """The last value of `key` (systemd: a later assignment wins)."""
    values = [v for k, v in unit.get(section, []) if k == key]
    return values[-1] if values else None


def seconds(span):
    """A systemd time span ("45", "45s", "1min 30s") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    parts = re.findall(r"(\d+)\s*([a-z]*)", span)
    if not parts:
        raise ValueError(span)
    return sum(int(n) * units[u] for n, u in parts)


class Specifiers:
    """The unit's specifiers for instance `instance`, with the directories
    systemd would use moved under `work`."""

    def __init__(self, instance, work):
        self.values = {"i": instance, "I": instance, "t": os.path.join(work, "run"),
                       "S": os.path.join(work, "state"), "%": "%"}

    def __call__(self, text):
        def one(match):
            if match.group(1) not in self.values:
                raise AssertionError(f"specifier %{match.group(1)} in {text!r}: not handled by the test")
            return self.values[match.group(1)]
        return re.sub(r"%(.)", one, text)


def exec_argv(value, specifiers):
    """An Exec*= line as argv: prefixes (-@:+!) dropped, specifiers
    expanded, installed binaries and /etc/cluster2 moved to the built ones
    and deploy/systemd."""
    argv = shlex.split(value.lstrip("-@:+!"))
    moved = []
    for arg in argv:
        arg = specifiers(arg)
        for installed, built in INSTALLED.items():
            arg = arg.replace(installed, built)
        moved.append(arg.replace("/etc/cluster2/", SYSTEMD + "/"))
    return moved


def flag(argv, name):
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}":
            return argv[i + 1]
    return None


class SystemdUnitsTest(unittest.TestCase):
    def setUp(self):
        self.service = parse_unit(SERVICE_UNIT)
        self.socket = parse_unit(SOCKET_UNIT)
        with open(EXAMPLE) as f:
            self.example = json.load(f)
        self.work = tempfile.mkdtemp(prefix="c2d-", dir="/tmp")

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def analyzable_copies(self):
        """The units with the installed binaries' paths moved to the built
        ones (verify checks that they are executables), nothing else
        changed; the analyzer's control run first: skip when
        systemd-analyze cannot work here."""
        if not os.access(SYSTEMD_ANALYZE, os.X_OK):
            self.skipTest(f"{SYSTEMD_ANALYZE} missing (Debian package systemd)")
        directory = os.path.join(self.work, "units")
        os.mkdir(directory)
        control = os.path.join(directory, "c2-control.service")
        with open(control, "w") as f:
            f.write("[Service]\nExecStart=/bin/true\n")
        done = subprocess.run([SYSTEMD_ANALYZE, "verify", control], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0 or done.stdout + done.stderr:
            self.skipTest(f"systemd-analyze verify does not work here: {done.stdout}{done.stderr}")
        os.unlink(control)
        copies = []
        for unit in (SERVICE_UNIT, SOCKET_UNIT):
            text = read(unit)
            for installed, built in INSTALLED.items():
                text = text.replace(installed, built)
            copies.append(os.path.join(directory, os.path.basename(unit)))
            with open(copies[-1], "w") as f:
                f.write(text)
        return copies

    def test_systemd_analyze_verify(self):
        copies = self.analyzable_copies()
        # Warnings (an unknown key, a bad value) do not change the exit code:
        # a clean unit prints nothing.
        for units in (copies, [os.path.join(os.path.dirname(copies[0]), "cluster2@example.service")]):
            done = subprocess.run([SYSTEMD_ANALYZE, "verify", *units], capture_output=True, text=True,
                                  timeout=60, cwd=os.path.dirname(copies[0]))
            self.assertEqual((done.returncode, done.stdout + done.stderr), (0, ""), units)

    def test_hardening_exposure(self):
        service = self.analyzable_copies()[0]
        done = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", service],
                              capture_output=True, text=True, timeout=60)
        if "--offline" in done.stderr and "unrecognized" in done.stderr:
            self.skipTest(f"this systemd-analyze has no offline security: {done.stderr}")
        exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
        self.assertIsNotNone(exposure, done.stdout + done.stderr)
        self.assertLess(float(exposure.group(1)), MAX_EXPOSURE, done.stdout)

    def test_settings_agree_with_the_config_and_each_other(self):
        service, socket = self.service, self.socket
        specifiers = Specifiers("example", self.work)
        start = exec_argv(setting(service, "Service", "ExecStart"), specifiers)
        reload = exec_argv(setting(service, "Service", "ExecReload"), specifiers)
        self.assertEqual(setting(service, "Service", "KillSignal"), "SIGTERM")
        self.assertEqual(setting(service, "Service", "KillMode"), "mixed",
                         "SIGTERM to the master alone: it drains the workers")
        stop_timeout = self.example.get("stopTimeout", 60000) / 1000
        self.assertGreater(seconds(setting(service, "Service", "TimeoutStopSec")), stop_timeout)
        self.assertIn("cluster2@%i.socket", setting(service, "Unit", "Requires").split())
        self.assertIn("cluster2@%i.socket", setting(service, "Unit", "After").split())
        listen = setting(socket, "Socket", "ListenStream")
        self.assertEqual(int(listen.rsplit(":", 1)[-1]), self.example["port"],
                         "the config's port is the socket's")
        self.assertNotEqual(setting(socket, "Socket", "Accept"), "yes")
        run_dir = flag(start, "runDir")
        self.assertEqual(run_dir, os.path.join(specifiers("%t"),
                                               specifiers(setting(service, "Service", "RuntimeDirectory"))))
        self.assertEqual(flag(start, "cache.persistPath"),
                         os.path.join(specifiers("%S"), specifiers(setting(service, "Service", "StateDirectory"))))
        self.assertEqual(reload[0], CTL)
        self.assertEqual(flag(reload, "run-dir"), run_dir)
        self.assertEqual(reload[-1], "reload")
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes")):
            self.assertEqual(setting(service, "Service", key), value)
        done = subprocess.run([start[0], "--check", *start[1:]], capture_output=True, text=True,
                              timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_socket_activation_runs_the_units_exec_start(self):
        if not os.access(SOCKET_ACTIVATE, os.X_OK):
            self.skipTest(f"{SOCKET_ACTIVATE} missing (Debian package systemd)")
        service = self.service
        specifiers = Specifiers("example", self.work)
        for key, base in (("RuntimeDirectory", "%t"), ("StateDirectory", "%S")):
            path = os.path.join(specifiers(base), specifiers(setting(service, "Service", key)))
            os.makedirs(path)
            os.chmod(path, int(setting(service, "Service", key + "Mode") or "0755", 8))
        port, mon_port = free_port(), free_port()
        start = exec_argv(setting(service, "Service", "ExecStart"), specifiers)
        self.assertEqual(start[0], MASTER)
        if "--" in start:
            start = start[:start.index("--")]
        command = start + [f"--monPort={mon_port}", f"--port={port}", "--", HELLO]
        environment = []
        for value in (v for k, v in service["Service"] if k == "Environment"):
            for assignment in shlex.split(specifiers(value)):
                environment += ["-E", assignment]
        log_path = os.path.join(self.work, "master.log")
        log = open(log_path, "w")
        activator = subprocess.Popen([SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}", *environment, *command],
                                     stdout=log, stderr=subprocess.STDOUT, cwd="/")
        try:
            wait_until(lambda: "Listening on" in read(log_path), 10, "systemd-socket-activate listening")
            self.assertFalse(os.path.exists(os.path.join(specifiers("%t"), "cluster2", "example",
                                                         "master.sock")), "no master before a client")
            # The first connection starts the master (systemd-socket-activate
            # execs it in place: same pid); a worker answers it.
            answer = WORKER_ANSWER.match(http_body(port))
            self.assertIsNotNone(answer, read(log_path))
            self.assertEqual(parent_of(int(answer.group(2))), activator.pid, "a worker of the master")
            self.assertIn("using the listening socket inherited on fd 3", read(log_path))
            wait_until(lambda: http_status(mon_port, self.example.get("ecv", {}).get("root", "/ecv")) == 200,
                       30, "/ecv 200 (every worker ready)")
            reload = exec_argv(setting(service, "Service", "ExecReload"), specifiers)
            done = subprocess.run(reload, capture_output=True, text=True, timeout=30)
            self.assertEqual(done.returncode, 0, f"ExecReload {reload}: {done.stdout}{done.stderr}")
            self.assertRegex(http_body(port), WORKER_ANSWER)

            self.assertEqual(setting(service, "Service", "KillSignal"), "SIGTERM")
            activator.send_signal(signal.SIGTERM)
            limit = seconds(setting(service, "Service", "TimeoutStopSec"))
            self.assertEqual(activator.wait(timeout=limit), 0, read(log_path))
            self.assertIn("master stops", read(log_path))
            self.assertTrue(gone(int(answer.group(2))), "the worker stopped with the master")
        finally:
            stop_process(activator)
            log.close()
            keep_log(log_path, "systemd-master.log")


if __name__ == "__main__":
    import pyjunit
    sys.exit(pyjunit.main(__name__, "DeployTest"))
