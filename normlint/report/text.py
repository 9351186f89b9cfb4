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
    where = f"{f.path}:{f.line}:{f.column}"
    return f"{where} ({f.module})" if f.module else where


def render_concise(findings: Sequence[Finding]) -> str:
    lines = [f"{_location(f)}: {f.code} [{f.severity.value}] {f.message}" for f in findings]
    lines.append(summary_line(findings))
    return "\n".join(lines) + "\n"


def _source_line(path: str, line: int, sources: Mapping[str, str], cache: dict) -> str | None:
    if path not in cache:
        text = sources.get(path)
        if text is None:
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
        src = _source_line(f.path, f.line, sources, cache)
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
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.code] = counts.get(f.code, 0) + 1
    lines = []
    for code in sorted(counts):
        rule = get_rule(code)
        lines.append(f"{counts[code]:>6}  {code}  [{rule.severity.value}] {rule.name}")
    lines.append(summary_line(findings))
    return "\n".join(lines) + "\n"
