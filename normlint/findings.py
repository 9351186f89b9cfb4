"""The data every engine produces and every reporter consumes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def fails_run(self) -> bool:
        # Info findings are advice: they never turn a CI run red.
        return self is not Severity.INFO

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class Engine(str, Enum):
    STATIC = "static"
    RUNTIME = "runtime"


@dataclass(frozen=True)
class Edit:
    """Replace the text from (line, column) up to, not including, (end_line, end_column) with
    ``replacement``. Lines and columns are 1-based; columns count characters (code points),
    as editors and ruff's JSON do. An insertion has an empty span."""

    line: int
    column: int
    end_line: int
    end_column: int
    replacement: str


@dataclass(frozen=True)
class Fix:
    """How to fix a finding: ``edits`` on the finding's file (all computed on the same
    text, never overlapping), or none for a ``display-only`` suggestion. ``safe`` fixes keep
    what the model computes (``--fix``); ``unsafe`` ones change numerics, parameters or
    checkpoints (``--fix --unsafe-fixes``); ``display-only`` ones are never applied."""

    message: str
    edits: tuple[Edit, ...] = ()
    applicability: str = "unsafe"


@dataclass(frozen=True)
class Finding:
    """One problem at ``path``: 1-based ``line`` and ``column`` (columns count characters,
    as editors do), ``end_line``/``end_column`` exclusive when known."""

    code: str
    name: str
    severity: Severity
    engine: Engine
    path: str
    line: int
    column: int
    message: str
    end_line: int | None = None
    end_column: int | None = None
    module: str | None = None
    fix: Fix | None = field(default=None, compare=False)
    # What a fixer needs that only the analysis knows, as (name, value) pairs: NL302's
    # ("norm_ctor", "nn.LayerNorm(d_model)"), ("stream", "x"), ("stack_attr", "layers");
    # NL304's ("meant", "ff_norm") (a registered, unused norm of the same kind the second
    # site should call), ("object", "shared") and ("mechanical", "no") (no mechanical fix).
    # Never shown to users.
    fix_facts: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    # In a notebook: the 1-based index of the cell (markdown cells count), and line/column
    # are then within that cell. ``file_position`` is where the same spot sits in the
    # notebook's JSON text, for consumers that show the file itself (GitHub, SARIF).
    cell: int | None = None
    file_position: tuple[int, int] | None = field(default=None, compare=False)

    @property
    def location(self) -> str:
        """``path:line:col``, or ``path:cell N:line:col`` in a notebook."""
        cell = f"cell {self.cell}:" if self.cell is not None else ""
        return f"{self.path}:{cell}{self.line}:{self.column}"

    def __str__(self) -> str:
        where = f"{self.location} ({self.module})" if self.module else self.location
        return f"{where}: {self.code} [{self.severity.value}] {self.message}"

    def __repr__(self) -> str:
        # Readable where it is printed most: in a failed `assert not report.findings, report.findings`.
        return f"<Finding {self}>"

    @property
    def sort_key(self) -> tuple:
        return (self.path, self.cell or 0, self.line, self.column, self.code, self.message)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["fix_facts"], data["file_position"]
        data["severity"] = self.severity.value
        data["engine"] = self.engine.value
        return data


def sort_findings(findings) -> list[Finding]:
    return sorted(set(findings), key=lambda f: f.sort_key)


def summary_counts(findings) -> dict[Severity, int]:
    counts = {s: 0 for s in Severity}
    for f in findings:
        counts[f.severity] += 1
    return counts
