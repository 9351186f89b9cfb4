"""Reading and writing the expectation files that sit next to each fixture."""

from __future__ import annotations

import re
from pathlib import Path

_LINE = re.compile(r"^(NL\d{3}) (\d+):(\d+) (error|warning|info)$")


def static_fixtures(root: Path) -> list[Path]:
    """Every fixtures/NLxxx/*.py, and the runtime fixture models in fixtures/runtime/: what the
    static engine sees in the models the audit is tested on is pinned down too."""
    return sorted([*root.glob("NL*/*.py"), *root.glob("runtime/*.py")])


def expected_path(fixture: Path) -> Path:
    return fixture.with_suffix(".expected")


def read_expected(fixture: Path) -> list[str]:
    lines = [ln.strip() for ln in expected_path(fixture).read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    for ln in lines:
        if not _LINE.match(ln):
            raise ValueError(f"{expected_path(fixture)}: bad line {ln!r}; expected 'NL303 12:9 error'")
    return lines


def format_finding(f) -> str:
    return f"{f.code} {f.line}:{f.column} {f.severity.value}"
