from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from normlint.errors import NormlintError
from normlint.findings import Engine, Finding, Severity
from normlint.registry import RULES
from normlint.report import render

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"

FINDINGS = [
    Finding("NL303", "residual-rebound-to-normalized", Severity.ERROR, Engine.STATIC, "models/gpt.py",
            12, 9, "`Block.forward` rebinds `x`, 100% wrong: a,b", end_line=12, end_column=22),
    Finding("NL302", "pre-norm-stack-missing-final-norm", Severity.WARNING, Engine.RUNTIME,
            "models/gpt.py", 40, 1, "no final norm", module="h.5"),
    Finding("NL502", "norm-affine-disabled", Severity.INFO, Engine.STATIC, "dir with space/m.py", 3, 5, "info"),
]


def test_json_has_every_finding_field():
    data = json.loads(render(FINDINGS, "json"))
    assert isinstance(data, list) and len(data) == 3
    expected = {"code", "name", "severity", "engine", "path", "line", "column", "end_line",
                "end_column", "message", "module", "fix", "cell"}
    assert set(data[0]) == expected
    assert data[1]["engine"] == "runtime" and data[1]["module"] == "h.5"
    assert data[0]["severity"] == "error"


def test_github_annotations():
    lines = render(FINDINGS, "github").splitlines()
    assert lines[0] == ("::error file=models/gpt.py,line=12,col=9,endLine=12,endColumn=22,title=NL303::"
                        "NL303 `Block.forward` rebinds `x`, 100%25 wrong: a,b")
    assert lines[1].startswith("::warning file=models/gpt.py,line=40,col=1,title=NL302::")
    assert lines[2].startswith("::notice file=dir with space/m.py,")


def test_junit_one_testcase_per_finding():
    root = ET.fromstring(render(FINDINGS, "junit").split("\n", 1)[1])
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 3
    assert cases[0].find("failure").get("type") == "NL303"
    assert root.find("testsuite").get("failures") == "3"
    empty = ET.fromstring(render([], "junit").split("\n", 1)[1])
    assert [c.get("name") for c in empty.findall("./testsuite/testcase")] == ["No findings"]
    assert empty.find("./testsuite/testcase/failure") is None


def test_concise_and_summary():
    out = render(FINDINGS, "concise").splitlines()
    assert out[0] == "models/gpt.py:12:9: NL303 [error] `Block.forward` rebinds `x`, 100% wrong: a,b"
    assert out[1] == "models/gpt.py:40:1 (h.5): NL302 [warning] no final norm"
    assert out[-1] == "Found 3 findings: 1 error, 1 warning, 1 info."
    assert render([], "concise") == "All checks passed!\n"


def test_unknown_format():
    with pytest.raises(NormlintError):
        render(FINDINGS, "xml")


def test_sarif_structure():
    doc = json.loads(render(FINDINGS, "sarif"))
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert doc["version"] == "2.1.0" and driver["name"] == "normlint"
    assert [r["id"] for r in driver["rules"]] == [r.code for r in RULES]
    assert all(r["helpUri"].endswith(f"/rules/{r['id']}.md") for r in driver["rules"])
    res = run["results"][0]
    assert res["ruleId"] == "NL303" and res["level"] == "error"
    assert driver["rules"][res["ruleIndex"]]["id"] == "NL303"
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "models/gpt.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"] == {"startLine": 12, "startColumn": 9, "endLine": 12, "endColumn": 22}
    assert run["results"][2]["level"] == "note"
    assert run["results"][2]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "dir%20with%20space/m.py"


@pytest.mark.parametrize("findings", [FINDINGS, []])
def test_sarif_validates_against_the_2_1_0_schema(findings):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    doc = json.loads(render(findings, "sarif"))
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def _with_fix(f, fix):
    from dataclasses import replace
    return replace(f, fix=fix)


def test_sarif_fixes_validate_against_the_schema():
    from normlint.findings import Edit, Fix

    jsonschema = pytest.importorskip("jsonschema")
    fix = Fix("Bind `self.norm(x)` to `h`", (Edit(12, 9, 12, 10, "h"), Edit(13, 20, 13, 21, "h")), "unsafe")
    findings = [_with_fix(FINDINGS[0], fix), _with_fix(FINDINGS[2], Fix("a hint", (), "display-only"))]
    doc = json.loads(render(findings, "sarif"))
    results = doc["runs"][0]["results"]
    assert "fixes" not in results[1]                     # display-only: nothing to apply
    [sarif_fix] = results[0]["fixes"]
    assert sarif_fix["description"]["text"] == "Bind `self.norm(x)` to `h` (unsafe fix)"
    change = sarif_fix["artifactChanges"][0]
    assert change["artifactLocation"] == {"uri": "models/gpt.py", "uriBaseId": "%SRCROOT%"}
    assert change["replacements"][1] == {"deletedRegion": {"startLine": 13, "startColumn": 20, "endLine": 13,
                                                           "endColumn": 21}, "insertedContent": {"text": "h"}}
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc))
    assert not errors, errors[:3]


def test_json_fix_object():
    from normlint.findings import Edit, Fix

    data = json.loads(render([_with_fix(FINDINGS[0], Fix("m", (Edit(1, 2, 1, 3, "x"),), "safe"))], "json"))
    assert data[0]["fix"] == {"message": "m", "applicability": "safe",
                              "edits": [{"line": 1, "column": 2, "end_line": 1, "end_column": 3, "replacement": "x"}]}


def test_full_output_counts_lines_as_python_does():
    """A form feed or a U+2028 in a comment is not a line break for Python: the snippet
    of a later line must be that line."""
    text = "import torch  # page\x0c break\n# a \u2028 in a comment\nx = 1\nnorm = torch.nn.BatchNorm1d(4)\n"
    f = Finding("NL101", "batchnorm-in-sequence-model", Severity.WARNING, Engine.STATIC, "m.py", 4, 8, "m",
                end_line=4, end_column=31)
    out = render([f], "full", sources={"m.py": text})
    assert "4 | norm = torch.nn.BatchNorm1d(4)\n" in out and "^" * 23 in out
