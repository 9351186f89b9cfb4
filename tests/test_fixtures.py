"""Every fixture file produces exactly the findings listed next to it.

Add a rule's examples by adding `fixtures/<CODE>/<name>.py` and `<name>.expected` (one
`CODE line:col severity` per line; empty means "must not flag anything"). Regenerate after a
deliberate change with `pytest tests/test_fixtures.py --regen-fixtures` and review the diff.
"""

from __future__ import annotations

import pytest

from normlint import check_source
from normlint.registry import RULES

from .conftest import FIXTURES
from .fixture_files import expected_path, format_finding, read_expected, static_fixtures

FIXTURE_FILES = static_fixtures(FIXTURES)


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_findings(fixture, regen_fixtures):
    text = fixture.read_text(encoding="utf-8")
    rel = fixture.relative_to(FIXTURES.parent).as_posix()
    got = [format_finding(f) for f in check_source(text, path=rel, select=["ALL"])]
    if regen_fixtures:
        expected_path(fixture).write_text("".join(g + "\n" for g in got))
        pytest.skip("regenerated")
    assert expected_path(fixture).exists(), f"{fixture} has no .expected file next to it"
    assert got == read_expected(fixture)


def test_checking_the_whole_fixtures_tree_gives_exactly_the_expected_findings():
    """`normlint check fixtures/` groups files into components and may use several
    processes: the result must still be the union of the per-file expectations."""
    import os

    from normlint import check_paths

    cwd = os.getcwd()
    os.chdir(FIXTURES.parent)
    try:
        got = sorted(f"{f.path} {format_finding(f)}" for f in check_paths(["fixtures"], select=["ALL"]).findings)
    finally:
        os.chdir(cwd)
    expected = sorted(f"{p.relative_to(FIXTURES.parent).as_posix()} {line}"
                      for p in FIXTURE_FILES for line in read_expected(p))
    assert got == expected


def _static_rules():
    return [r.code for r in RULES if "static" in r.engines and r.code not in ("NL900", "NL901")]


# Registered for both engines; their static side is built on the static-v2 branch, which
# brings fixtures/NL309, NL503 and NL504 (the runtime side's fixtures are in fixtures/runtime).
STATIC_SIDE_ELSEWHERE = {"NL309", "NL503", "NL504"}


@pytest.mark.parametrize("code", _static_rules())
def test_every_static_rule_has_flagging_and_clean_fixtures(code):
    if code in STATIC_SIDE_ELSEWHERE and not (FIXTURES / code).is_dir():
        pytest.skip(f"{code}: static fixtures come with the static engine's side of the rule")
    in_dir = [p for p in FIXTURE_FILES if p.parent.name == code]
    flagged = [p for p in in_dir if any(ln.startswith(code) for ln in read_expected(p))]
    clean = [p for p in in_dir if not any(ln.startswith(code) for ln in read_expected(p))]
    assert in_dir, f"{code}: no fixtures/{code}/ directory"
    assert flagged, f"{code}: no fixture in fixtures/{code}/ that it flags"
    assert clean, f"{code}: no must-not-flag fixture in fixtures/{code}/"
