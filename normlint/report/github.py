"""GitHub Actions workflow commands: one annotation per finding."""

from __future__ import annotations

from typing import Sequence

from ..findings import Finding, Severity

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def render(findings: Sequence[Finding]) -> str:
    lines = []
    for f in findings:
        props = [f"file={_escape_property(f.path)}"]
        if f.cell is not None:
            # GitHub shows the notebook's JSON: point at the line there, name the cell in the text
            line, col = f.file_position or (1, 1)
            props += [f"line={line}", f"col={col}"]
            text = f"{f.code} {f.location}: {f.message}"
        else:
            props += [f"line={f.line}", f"col={f.column}"]
            if f.end_line:
                props.append(f"endLine={f.end_line}")
            if f.end_column and f.end_line == f.line:
                props.append(f"endColumn={f.end_column}")
            text = f"{f.code} {f.message}"
        props.append(f"title={f.code}")
        lines.append(f"::{_LEVEL[f.severity]} {','.join(props)}::{_escape_data(text)}")
    return "\n".join(lines) + ("\n" if lines else "")
