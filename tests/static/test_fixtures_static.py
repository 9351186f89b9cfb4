"""Every fixture under fixtures/NL1..NL5 produces exactly the findings its .expected lists
(checked alone, all rules selected, analysis errors re-raised)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis_helpers import run_files

ROOT = Path(__file__).resolve().parents[2] / "fixtures"
FIXTURES = sorted(p for p in ROOT.glob("NL[1-5]*/*.py"))


def test_every_static_rule_has_flag_and_no_flag_fixtures():
    codes = {"NL101", "NL201", "NL202", "NL203", "NL204", "NL301", "NL302", "NL303", "NL304",
             "NL305", "NL306", "NL307", "NL308", "NL401", "NL402", "NL403", "NL404", "NL501", "NL502"}
    for code in codes:
        expected = [p.with_suffix(".expected").read_text() for p in ROOT.glob(f"{code}/*.py")]
        assert any(code in e for e in expected), f"{code} has no fixture that it flags"
        assert any(code not in e for e in expected), f"{code} has no fixture that it must not flag"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture(path: Path):
    expected = sorted(line.strip() for line in path.with_suffix(".expected").read_text().splitlines()
                      if line.strip())
    got = sorted(f"{f.code} {f.line}:{f.column}" for f in run_files([path]))
    assert got == expected


def test_fixtures_checked_together_give_the_same_findings():
    """`normlint check fixtures/` analyses every file as one project: classes with the same
    name in other fixtures, config defaults and norm names elsewhere must not change a
    file's findings."""
    expected = sorted(f"{p} {line.strip()}" for p in FIXTURES
                      for line in p.with_suffix(".expected").read_text().splitlines() if line.strip())
    got = sorted(f"{f.path} {f.code} {f.line}:{f.column}" for f in run_files(FIXTURES))
    assert got == expected
