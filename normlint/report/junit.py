"""JUnit XML: one test case per finding, so CI dashboards list each one."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Sequence

from ..findings import Finding


def render(findings: Sequence[Finding]) -> str:
    suites = ET.Element("testsuites", name="normlint", tests=str(max(len(findings), 1)),
                        failures=str(len(findings)))
    suite = ET.SubElement(suites, "testsuite", name="normlint", tests=str(max(len(findings), 1)),
                          failures=str(len(findings)), errors="0", skipped="0")
    if not findings:
        ET.SubElement(suite, "testcase", name="No findings", classname="normlint")
    for f in findings:
        # in a notebook, the line of its JSON file that holds the cell's line (as github, sarif)
        line = (f.file_position or (1, 1))[0] if f.cell is not None else f.line
        case = ET.SubElement(suite, "testcase", classname=f.path,
                             name=f"{f.code} {f.location}",
                             file=f.path, line=str(line))
        failure = ET.SubElement(case, "failure", type=f.code, message=f.message)
        failure.text = str(f)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
