"""Columns count characters everywhere a finding leaves the engine, as ruff's and editors' do.

CPython's ``ast`` gives UTF-8 byte offsets, so a non-ASCII character earlier on the line
(a German identifier, a string with an accent, a math symbol in a comment) would shift
every column after it. These tests put such characters before the flagged node and check
the column in each output, in notebooks, and that fixes anchored at those findings still
apply where they should.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from normlint import check_paths, check_source, fix_source
from normlint.findings import Finding
from normlint.report import render

from .helpers import run_normlint, write

# "ẋ" is three UTF-8 bytes, "ö" and "ß" two each: ast's columns for anything after them on
# the line are off by 2 and 1 per character.
REBOUND = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.ff = nn.Linear(d, d)

        def forward(self, ẋ):
            ẋ = self.norm(ẋ)  # 𝑥 ← norm(𝑥)
            ẋ = ẋ + self.ff(ẋ)
            return ẋ


    class RMSNorm(nn.Module):
        def __init__(self, d, eps=1e-5):
            super().__init__()
            self.eps = eps

        def forward(self, x):
            größe = "ß"; var = x.pow(2).mean(-1, keepdim=True)
            return x * torch.rsqrt(var + self.eps)
    """)


def _at(text: str, needle: str) -> tuple[int, int, int]:
    """(line, 1-based character column, 1-based exclusive end column) of ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            start = line.index(needle)
            return number, start + 1, start + len(needle) + 1
    raise AssertionError(needle)


def _positions(findings) -> dict[str, tuple[int, int, int | None]]:
    return {f.code: (f.line, f.column, f.end_column) for f in findings}


def test_check_source_reports_character_columns():
    found = _positions(check_source(REBOUND))
    assert found["NL303"] == _at(REBOUND, "self.norm(ẋ)")
    assert found["NL402"] == _at(REBOUND, "x.pow(2).mean(-1, keepdim=True)")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.py", REBOUND)
    return tmp_path


def test_concise_full_json_sarif_and_github_count_characters(project):
    line, col, end = _at(REBOUND, "self.norm(ẋ)")
    concise = run_normlint("check", "m.py", "--no-cache", cwd=project).stdout
    assert f"m.py:{line}:{col}: NL303 " in concise
    full = run_normlint("check", "m.py", "--no-cache", "--output-format", "full", cwd=project).stdout
    source = REBOUND.splitlines()[line - 1]
    caret = next(l for l in full.splitlines() if l.strip().startswith("|") and "^" in l
                 and l.index("^") - l.index("|") - 2 == source.index("self.norm(ẋ)"))
    assert caret.count("^") == len("self.norm(ẋ)")
    data = json.loads(run_normlint("check", "m.py", "--no-cache", "--output-format", "json", cwd=project).stdout)
    nl303 = next(d for d in data if d["code"] == "NL303")
    assert (nl303["line"], nl303["column"], nl303["end_column"]) == (line, col, end)
    sarif = json.loads(run_normlint("check", "m.py", "--no-cache", "--output-format", "sarif", cwd=project).stdout)
    region = next(r for r in sarif["runs"][0]["results"] if r["ruleId"] == "NL303")[
        "locations"][0]["physicalLocation"]["region"]
    assert (region["startColumn"], region["endColumn"]) == (col, end)
    github = run_normlint("check", "m.py", "--no-cache", "--output-format", "github", cwd=project).stdout
    assert f"file=m.py,line={line},col={col},endLine={line},endColumn={end},title=NL303" in github


def test_cached_results_keep_character_columns(project):
    first = run_normlint("check", "m.py", cwd=project).stdout
    second = run_normlint("check", "m.py", cwd=project).stdout
    line, col, _ = _at(REBOUND, "self.norm(ẋ)")
    assert first == second and f"m.py:{line}:{col}: NL303 " in second


def test_fixes_apply_on_lines_with_non_ascii_text_before_the_finding():
    result = fix_source(REBOUND, unsafe_fixes=True)
    assert {f.code for f in result.applied} >= {"NL303", "NL402"}
    assert "h = self.norm(ẋ)  # 𝑥 ← norm(𝑥)\n        ẋ = ẋ + self.ff(h)\n" in result.text
    assert 'größe = "ß"; var = x.float().pow(2).mean(-1, keepdim=True).to(x.dtype)\n' in result.text
    assert fix_source(result.text, unsafe_fixes=True).applied == []


def test_unused_noqa_after_non_ascii_text_is_removed_exactly():
    # the string holds a '#' and a 'noqa' of its own: only the real comment is a directive
    text = 'import torch\nlabel = "𝑥𝑥𝑥𝑥𝑥𝑥𝑥𝑥 # noqa"  # noqa: NL303\n'
    [finding] = check_source(text)
    assert (finding.code, finding.line, finding.column) == ("NL901", 2, text.splitlines()[1].index("  #") + 3)
    assert fix_source(text).text == 'import torch\nlabel = "𝑥𝑥𝑥𝑥𝑥𝑥𝑥𝑥 # noqa"\n'


def test_notebook_cells_count_characters(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbformat.v4 import new_code_cell, new_notebook

    monkeypatch.chdir(tmp_path)
    nb = new_notebook()
    nb.metadata["language_info"] = {"name": "python"}
    head, rest = REBOUND.split("\n\n\nclass RMSNorm", 1)
    nb.cells = [new_code_cell(head), new_code_cell("class RMSNorm" + rest)]
    nbformat.write(nb, str(tmp_path / "nb.ipynb"))
    found = {f.code: f for f in check_paths(["nb.ipynb"]).findings}
    line, col, end = _at(head, "self.norm(ẋ)")
    assert (found["NL303"].cell, found["NL303"].line, found["NL303"].column, found["NL303"].end_column) \
        == (1, line, col, end)
    raw = (tmp_path / "nb.ipynb").read_text(encoding="utf-8").splitlines()
    raw_line, raw_col = found["NL303"].file_position
    assert raw[raw_line - 1][raw_col - 1:].startswith("self.norm(ẋ)")


def test_every_reporter_accepts_the_columns(project):
    findings: list[Finding] = check_paths(["m.py"]).findings
    for fmt in ("concise", "full", "json", "sarif", "github", "junit"):
        assert render(findings, fmt, sources={"m.py": REBOUND})
