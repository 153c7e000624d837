#!/usr/bin/python3
"""deploy/grafana/cluster2.json against a live master: the dashboard parses,
is laid out in its five rows, every panel has a title and a query on the
${datasource} variable, and every metric its queries and variables name is
one a running master exports (with the labels the queries select and group
by). Each query's PromQL is also evaluated by a real Prometheus in
prometheus_scrape_test."""
import json
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
DASHBOARD = os.path.join(RUNFILES, "deploy/grafana/cluster2.json")
OUTPUTS = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")

from e2e import free_port, run_ctl, scrape, stop_process, wait_until  # noqa: E402

ROWS = ["Workers", "Requests", "Resources", "ECV", "Cache"]
# PromQL words that are not metric names.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"')
LABEL_VALUES = re.compile(r"^label_values\(\s*(?:([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?\s*,)?"
                          r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$")
SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_names(expr):
    """The metric names of a PromQL expression: what is left once strings,
    label matchers, ranges, grouping clauses and functions are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = match.groups()
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def grouping_labels(expr):
    labels = set()
    for _, inside in GROUPING.findall(expr):
        labels |= {label.strip() for label in inside.split(",") if label.strip()}
    return labels


def selector_labels(expr):
    """(metric, label) for every label a selector of `expr` matches on."""
    return {(metric, label) for metric, matchers in SELECTOR.findall(expr)
            for label in MATCHER.findall(matchers)}


def all_panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def queries(dashboard):
    """(where, expr) for every PromQL query of the dashboard."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel '{panel.get('title')}' {target.get('refId')}", target["expr"]


def variable_queries(dashboard):
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield variable["name"], query["query"] if isinstance(query, dict) else query


def parse_scrape(text):
    """{name: [labels dict, ...]} of every sample, and {name: type}."""
    series, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, f"unparsable sample line: {line!r}"
            series.setdefault(match.group(1), []).append(dict(LABEL.findall(match.group(2) or "")))
    return series, types


def family(name, types):
    """The family a sample name belongs to: a histogram's _bucket, _sum and
    _count map to the histogram."""
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base if types.get(base) == "histogram" else name


class DashboardStructureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD) as f:
            cls.dashboard = json.load(f)

    def test_panels_have_a_title_and_queries_on_the_datasource_variable(self):
        panels = [p for p in all_panels(self.dashboard) if p["type"] != "row"]
        self.assertGreater(len(panels), 20)
        for panel in panels:
            self.assertTrue(panel.get("title"), panel)
            self.assertGreaterEqual(len(panel.get("targets", [])), 1, panel["title"])
            self.assertEqual(panel["datasource"], {"type": "prometheus", "uid": "${datasource}"},
                             panel["title"])
            ref_ids = [t["refId"] for t in panel["targets"]]
            self.assertEqual(len(ref_ids), len(set(ref_ids)), panel["title"])
            for target in panel["targets"]:
                self.assertTrue(target.get("expr", "").strip(), panel["title"])
                self.assertEqual(target["datasource"]["uid"], "${datasource}", panel["title"])
        ids = [p["id"] for p in all_panels(self.dashboard)]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")

    def test_rows_and_a_layout_without_overlaps(self):
        self.assertEqual(self.dashboard["schemaVersion"], 39)
        rows = [p["title"] for p in self.dashboard["panels"] if p["type"] == "row"]
        self.assertEqual(rows, ROWS)
        cells = {}
        for panel in all_panels(self.dashboard):
            grid = panel["gridPos"]
            self.assertLessEqual(grid["x"] + grid["w"], 24, panel["title"])
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    self.assertNotIn((x, y), cells, f"{panel['title']} overlaps {cells.get((x, y))}")
                    cells[(x, y)] = panel["title"]
        # Top to bottom, the first panel is a row and each row is followed
        # by its panels (expanded rows list theirs after them).
        order = sorted(all_panels(self.dashboard),
                       key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
        self.assertEqual(order[0]["type"], "row")
        self.assertEqual(order, list(all_panels(self.dashboard)), "panels listed in layout order")
        for before, after in zip(order, order[1:]):
            if after["type"] == "row":
                self.assertNotEqual(before["type"], "row", f"row {before['title']} is empty")
        self.assertNotEqual(order[-1]["type"], "row")

    def test_variables(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for name in ("cluster", "slot"):
            query = dict(variable_queries(self.dashboard))[name]
            match = LABEL_VALUES.match(query)
            self.assertTrue(match, query)
            self.assertEqual(match.group(3), name)
            self.assertEqual(variables[name]["datasource"]["uid"], "${datasource}")
        # Every query selects on the cluster variable; per-slot ones on slot.
        for where, expr in queries(self.dashboard):
            self.assertIn('cluster=~"$cluster"', expr, where)

    def test_metric_names_are_extracted(self):
        self.assertEqual(metric_names(
            'histogram_quantile(0.99, sum by (cluster, le) (rate(a_bucket{cluster=~"$c"}[5m])))'
            ' / on (cluster) group_left sum without (x) (b_total offset 5m) > bool 1e3'),
            {"a_bucket", "b_total"})
        names = set()
        for _, expr in queries(self.dashboard):
            names |= metric_names(expr)
        self.assertGreater(len(names), 20, names)


class DashboardAgainstMasterTest(unittest.TestCase):
    """Every metric and label the dashboard names, in the scrape of a master
    that serves requests and holds a cache namespace."""

    def setUp(self):
        with open(DASHBOARD) as f:
            self.dashboard = json.load(f)
        self.dir = tempfile.mkdtemp(prefix="c2x-", dir="/tmp")
        self.port, self.mon_port = free_port(), free_port()
        config = {"name": "dash", "noWorkers": 2, "command": [HELLO], "port": self.port,
                  "host": "127.0.0.1", "monPort": self.mon_port, "runDir": f"{self.dir}/run",
                  "heartbeatInterval": 200,
                  "recycle": {"maxRssBytes": 1000000000},
                  "cache": {"persistPath": f"{self.dir}/data", "maxMemory": 1000000}}
        with open(f"{self.dir}/cluster.json", "w") as out:
            json.dump(config, out)
        self.log = open(f"{self.dir}/master.log", "w")
        self.master = subprocess.Popen([MASTER, "--config", f"{self.dir}/cluster.json"],
                                       stdout=self.log, stderr=subprocess.STDOUT)

    def tearDown(self):
        stop_process(self.master)
        self.log.close()
        try:
            if OUTPUTS:
                os.makedirs(OUTPUTS, exist_ok=True)
                shutil.copy(f"{self.dir}/master.log", os.path.join(OUTPUTS, "dashboard-master.log"))
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def ctl(self, *args, check=True):
        return run_ctl(CTL, f"{self.dir}/run", *args, check=check)

    def scrape(self):
        return scrape(self.mon_port)

    def test_every_metric_and_label_it_names_is_exported(self):
        def all_ready():
            workers = json.loads(self.ctl("workers", "-o", "json").stdout)["workers"]
            return len([w for w in workers if w.get("state") == "WORKER_STATE_READY"]) == 2
        wait_until(all_ready, 30, "2 ready workers")
        self.ctl("cache", "use", "ns")
        self.ctl("cache", "set", "ns", "k", "v")
        self.assertEqual(self.ctl("cache", "get", "ns", "k").stdout, "v")
        self.assertEqual(self.ctl("cache", "get", "ns", "absent", check=False).returncode, 1)
        for _ in range(40):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as reply:
                self.assertEqual(reply.status, 200)

        def figures_in():
            text = self.scrape()
            series, _ = parse_scrape(text)
            counts = [float(m) for m in re.findall(
                r"^cluster2_worker_request_duration_seconds_count\{[^}]*\} (\S+)$", text, re.M)]
            return (sum(counts) >= 40 and "cluster2_worker_heartbeat_lag_seconds" in series
                    and "cluster2_cache_keys" in series and "cluster2_cache_hits_total" in series)
        wait_until(figures_in, 20, "the requests, heartbeats and cache figures in /metrics")
        text = self.scrape()
        series, types = parse_scrape(text)

        used = {}  # name -> where
        for where, expr in queries(self.dashboard):
            for name in metric_names(expr):
                used.setdefault(name, where)
        for where, query in variable_queries(self.dashboard):
            match = LABEL_VALUES.match(query)
            self.assertTrue(match, query)
            if match.group(1):
                used.setdefault(match.group(1), f"variable {where}")
        foreign = {n: w for n, w in used.items() if not n.startswith("cluster2_")}
        self.assertEqual(foreign, {}, "only cluster2 metrics (or a parsing error)")

        missing_type = {n: w for n, w in used.items() if family(n, types) not in types}
        self.assertEqual(missing_type, {}, f"names without '# TYPE' in the scrape:\n{text}")
        no_series = {n: w for n, w in used.items() if n not in series}
        self.assertEqual(no_series, {}, f"names without a sample in the scrape:\n{text}")
        # A histogram is used through its buckets, sum and count only.
        for name in used:
            if types.get(name) == "histogram":
                self.fail(f"{name} is a histogram: query its _bucket, _sum or _count")

        # The labels the queries match on and group by exist on their metrics.
        def labels_of(name):
            return {label for labels in series.get(name, []) for label in labels}
        for where, expr in queries(self.dashboard):
            for metric, label in selector_labels(expr):
                self.assertIn(label, labels_of(metric), f"{where}: {metric}{{{label}}}")
            available = set().union(*(labels_of(n) for n in metric_names(expr)))
            self.assertEqual(grouping_labels(expr) - available, set(), f"{where}: {expr}")
        for where, query in variable_queries(self.dashboard):
            match = LABEL_VALUES.match(query)
            self.assertIn(match.group(3), labels_of(match.group(1)), where)
        self.assertEqual({labels["cluster"] for labels in series["cluster2_workers"]}, {"dash"})
        print(f"{len(used)} metric names in the dashboard, all in a scrape of "
              f"{len(text.splitlines())} lines")


if __name__ == "__main__":
    import pyjunit
    sys.exit(pyjunit.main(__name__, "GrafanaDashboardTest"))
