"""Registry and rule pages stay in step, and the pages ship inside the wheel."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from normlint.registry import RULES

REPO = Path(__file__).resolve().parent.parent
PAGES = REPO / "rules"
SECTIONS = ["## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix",
            "## How normlint detects it", "## Options", "## References"]


def test_every_rule_has_a_page_and_every_page_a_rule():
    pages = {p.stem for p in PAGES.glob("NL*.md")}
    assert pages == {r.code for r in RULES}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_page_matches_registry(rule):
    text = (PAGES / f"{rule.code}.md").read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# {rule.code}: {rule.name}"
    meta = re.search(r"\*\*Severity:\*\* (\w+) · \*\*Engines:\*\* ([\w, ]+) · \*\*Default:\*\* (on|off)", text)
    assert meta, "missing the '**Severity:** … · **Engines:** … · **Default:** …' line"
    assert meta.group(1) == rule.severity.value
    assert [e.strip() for e in meta.group(2).split(",")] == list(rule.engines)
    assert meta.group(3) == ("on" if rule.default_on else "off")
    positions = [text.find(s) for s in SECTIONS]
    assert all(p >= 0 for p in positions), [s for s, p in zip(SECTIONS, positions) if p < 0]
    assert positions == sorted(positions), "sections out of order"
    for opt in rule.options:
        assert opt.name in text, f"option {opt.name} not documented"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_page_says_its_fix_and_applicability(rule):
    from normlint.fix.catalog import fixer_info

    text = (PAGES / f"{rule.code}.md").read_text(encoding="utf-8")
    section = text.split("## Fix\n", 1)[1].split("\n## ", 1)[0]
    applicability = re.match(r"\*\*Applicability:\*\* ([\w, -]+?)\.", section)
    assert applicability, "the Fix section starts with '**Applicability:** ...'"
    info = fixer_info(rule.code)
    if rule.fixable:
        assert info is not None and info.applicability in applicability.group(1)
        assert len(section.split("\n\n", 1)[-1].strip()) > 40, "say what the fix does"
    else:
        assert applicability.group(1) == "display-only"


@pytest.mark.slow
def test_wheel_ships_the_pages(tmp_path):
    pytest.importorskip("hatchling")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("normlint-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"normlint/_rules/{r.code}.md" for r in RULES} <= names
    assert "normlint/static/engine.py" in names


def _table_rows(text: str) -> dict[str, tuple[str, ...]]:
    """``| [NL101](...) | name | severity | engines | ...`` rows, by code."""
    rows = re.findall(r"^\| \[(NL\d{3})\]\([^)]*\) \| (.+) \|$", text, re.M)
    return {code: tuple(cell.strip() for cell in rest.split("|")) for code, rest in rows}


@pytest.mark.parametrize("index", ["README.md", "rules/README.md"])
def test_rule_tables_list_every_rule_as_the_registry_does(index):
    rows = _table_rows((REPO / index).read_text(encoding="utf-8"))
    assert list(rows) == [r.code for r in RULES], "one row per rule, in code order"
    for rule in RULES:
        name, severity, engines, *default = rows[rule.code]
        assert name == rule.name
        assert severity.split(" (")[0] == rule.severity.value
        assert engines == ", ".join(rule.engines)
        off = "off" in (default[0] if default else severity)
        assert off == (not rule.default_on), f"{rule.code}: default on/off"
