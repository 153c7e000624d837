"""Runs a Python test module with unittest and, under Bazel, writes one
<testcase> per test to $XML_OUTPUT_FILE (as GoogleTest does), so CI counts
test cases rather than test targets."""
import os
import sys
import unittest
import xml.etree.ElementTree as ET


class _RecordingResult(unittest.TextTestResult):
    def startTest(self, test):
        super().startTest(test)
        self.test_ids = getattr(self, "test_ids", []) + [test.id()]


def _write_junit(result, suite_name, path):
    suite = ET.Element("testsuite", name=suite_name, tests=str(result.testsRun))
    failed = {test.id(): text for test, text in result.failures + result.errors}
    for test_id in getattr(result, "test_ids", []):
        case = ET.SubElement(suite, "testcase", name=test_id.split(".")[-1], classname=suite_name)
        if test_id in failed:
            ET.SubElement(case, "failure", message="failed").text = failed[test_id]
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path)


def main(module_name, suite_name):
    """Runs every test of `module_name`; exits 0 if all pass."""
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_RecordingResult)
    result = runner.run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module_name]))
    if os.environ.get("XML_OUTPUT_FILE"):
        _write_junit(result, suite_name, os.environ["XML_OUTPUT_FILE"])
    return 0 if result.wasSuccessful() else 1
