#!/usr/bin/env python3
"""Prints 'N passed, N failed' counted from Bazel's test results.

Counts every test case in the test.xml of each test target the workspace
has now (`bazel query 'tests(//...)'`; GoogleTest writes one element per
TEST, Bazel one for a target whose binary wrote none), and adds every target
the log reports as FAILED TO BUILD or NO STATUS as failed. A test.xml left
in bazel-testlogs by a target since deleted is not counted (an output base
reused across checkouts kept one: three cases counted that no longer exist).
Usage: count_tests.py BAZEL_OUTPUT_LOG
"""
import glob
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET


def current_test_logs():
    """bazel-testlogs/<package>/<name>/test.xml of every test target now."""
    labels = subprocess.run(
        ["bazel", "query", "tests(//...)", "--output=label"],
        check=True, capture_output=True, text=True).stdout.split()
    paths = set()
    for label in labels:
        package, _, name = label.lstrip("/").partition(":")
        paths.add(os.path.join("bazel-testlogs", package, name, "test.xml"))
    return paths


def main():
    log = open(sys.argv[1], encoding="utf-8", errors="replace").read() if len(sys.argv) > 1 else ""
    passed = failed = skipped = 0
    current = current_test_logs()
    for path in glob.glob(os.path.join("bazel-testlogs", "**", "test.xml"), recursive=True):
        if path not in current:
            continue
        # Left by an earlier `--runs_per_test` invocation, not by this run.
        if re.search(r"/run_\d+_of_\d+/", path):
            continue
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            failed += 1
            continue
        for case in root.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.find("skipped") is not None or case.get("result") == "skipped":
                skipped += 1
            else:
                passed += 1
    failed += len(re.findall(r"^//\S+\s+(?:FAILED TO BUILD|NO STATUS)", log, re.M))
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)


if __name__ == "__main__":
    main()
