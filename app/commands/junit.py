"""JUnit XML for CI (``rules validate --junit``, ``rules test --junit``): every CI system shows these as tests,
with the failure text beside each. One ``<testcase>`` per rule file (validate) or per test case (test)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class JUnitCase:
    classname: str
    name: str
    failures: list[str] = field(default_factory=list)  # each one <failure>; empty = passed
    errors: list[str] = field(default_factory=list)  # each one <error> (could not run)
    output: str = ""


def write_junit(path: str | Path, suite: str, cases: list[JUnitCase]) -> None:
    failures = sum(1 for c in cases if c.failures)
    errors = sum(1 for c in cases if c.errors and not c.failures)
    root = ET.Element("testsuites", name="temporal-siem", tests=str(len(cases)), failures=str(failures), errors=str(errors))
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures), errors=str(errors))
    for case in cases:
        element = ET.SubElement(node, "testcase", classname=case.classname, name=case.name)
        if case.failures:
            failure = ET.SubElement(element, "failure", message=case.failures[0][:500], type="failure")
            failure.text = "\n".join(case.failures)
        elif case.errors:
            error = ET.SubElement(element, "error", message=case.errors[0][:500], type="error")
            error.text = "\n".join(case.errors)
        if case.output:
            ET.SubElement(element, "system-out").text = case.output
    ET.indent(root)
    Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
