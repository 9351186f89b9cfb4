"""Fixtures checked as one project give the same findings as each checked alone (the
per-file expectations themselves are tests/test_fixtures.py's)."""

from __future__ import annotations

from pathlib import Path

from analysis_helpers import run_files

ROOT = Path(__file__).resolve().parents[2] / "fixtures"
FIXTURES = sorted(p for p in ROOT.glob("NL[1-5]*/*.py"))


def test_fixtures_checked_together_give_the_same_findings():
    """`normlint check fixtures/` analyses every file as one project: classes with the same
    name in other fixtures, config defaults and norm names elsewhere must not change a
    file's findings."""
    expected = sorted(f"{p} {line.strip()}" for p in FIXTURES
                      for line in p.with_suffix(".expected").read_text().splitlines() if line.strip())
    got = sorted(f"{f.path} {f.code} {f.line}:{f.column} {f.severity.value}" for f in run_files(FIXTURES))
    assert got == expected
