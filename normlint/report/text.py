"""Human-readable output: one line per finding, or a ruff-style snippet with a caret."""

from __future__ import annotations

import tokenize
from typing import Mapping, Sequence

from ..findings import Finding, Severity, summary_counts
from ..registry import get_rule


def _plural(n: int, word: str) -> str:
    if word == "info":
        return f"{n} info"
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary_line(findings: Sequence[Finding]) -> str:
    if not findings:
        return "All checks passed!"
    counts = summary_counts(findings)
    parts = [_plural(counts[s], s.value) for s in Severity if counts[s]]
    noun = "finding" if len(findings) == 1 else "findings"
    return f"Found {len(findings)} {noun}: {', '.join(parts)}."


def _location(f: Finding) -> str:
    return f"{f.location} ({f.module})" if f.module else f.location


def render_concise(findings: Sequence[Finding]) -> str:
    lines = [f"{_location(f)}: {f.code} [{f.severity.value}] {f.message}" for f in findings]
    lines.append(summary_line(findings))
    return "\n".join(lines) + "\n"


def _source_line(path: str, line: int, sources: Mapping[str, str], cache: dict) -> str | None:
    if path not in cache:
        text = sources.get(path)
        if text is None and not path.endswith(".ipynb"):   # a notebook's cells come from `sources` only
            try:
                with tokenize.open(path) as fh:   # honours PEP 263 coding cookies
                    text = fh.read()
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                text = None
        cache[path] = text.splitlines() if text is not None else None
    lines = cache[path]
    if lines is None or not 1 <= line <= len(lines):
        return None
    return lines[line - 1]


def render_full(findings: Sequence[Finding], *, sources: Mapping[str, str]) -> str:
    out: list[str] = []
    cache: dict = {}
    for f in findings:
        out.append(f"{f.code} [{f.severity.value}] {f.message}")
        out.append(f"  --> {_location(f)}")
        src = _source_line(f.path if f.cell is None else f"{f.path}:cell {f.cell}", f.line, sources, cache)
        if src is not None:
            gutter = " " * len(str(f.line))
            start = max(f.column - 1, 0)
            if f.end_line == f.line and f.end_column and f.end_column > f.column:
                width = f.end_column - f.column
            else:
                width = max(len(src.rstrip()) - start, 1)
            out.append(f"{gutter} |")
            out.append(f"{f.line} | {src.rstrip()}")
            out.append(f"{gutter} | {' ' * start}{'^' * width}")
            out.append(f"{gutter} |")
        try:
            out.append(f"  = help: {get_rule(f.code).fix_hint}")
        except KeyError:
            pass
        out.append("")
    out.append(summary_line(findings))
    return "\n".join(out) + "\n"


def render_statistics(findings: Sequence[Finding]) -> str:
    """One line per rule and reported severity (a rule can report below its default)."""
    lines = [f"{n:>6}  {code}  [{severity.value}] {get_rule(code).name}"
             for (code, severity), n in statistics(findings)]
    lines.append(summary_line(findings))
    return "\n".join(lines) + "\n"


def statistics(findings: Sequence[Finding]) -> list[tuple[tuple[str, Severity], int]]:
    counts: dict[tuple[str, Severity], int] = {}
    for f in findings:
        counts[f.code, f.severity] = counts.get((f.code, f.severity), 0) + 1
    return sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1].rank))
