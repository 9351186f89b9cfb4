"""Human-readable output: one line per finding, or a ruff-style snippet with a caret."""

from __future__ import annotations

import tokenize
from typing import Callable, Mapping, Sequence

from ..findings import Finding, Severity, summary_counts
from ..positions import split_lines
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


FixableFn = Callable[[Finding], bool]


def _mark(f: Finding, fixable: FixableFn | None) -> str:
    # ruff's marker: `--fix` would fix this one with the current settings
    return "[*] " if fixable is not None and fixable(f) else ""


def render_concise(findings: Sequence[Finding], *, fixable: FixableFn | None = None) -> str:
    lines = [f"{_location(f)}: {f.code} {_mark(f, fixable)}[{f.severity.value}] {f.message}" for f in findings]
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
        # lines as Python counts them: not at form feeds or U+2028, as str.splitlines would
        cache[path] = [line.rstrip("\r\n") for line in split_lines(text)] if text is not None else None
    lines = cache[path]
    if lines is None or not 1 <= line <= len(lines):
        return None
    return lines[line - 1]


def _fix_lines(f: Finding, sources: Mapping[str, str]) -> list[str]:
    """The lines the fix changes: ``- old`` (old line numbers) and ``+ new`` (new ones)."""
    import difflib

    from ..positions import apply_edits, split_lines

    text = sources.get(f.path)
    if text is None or not f.fix.edits:
        return []
    old = split_lines(text)
    new = split_lines(apply_edits(text, f.fix.edits))
    width = len(str(max(len(old), len(new))))
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        out += [f"  {str(n).rjust(width)} - {line.rstrip()}" for n, line in enumerate(old[i1:i2], i1 + 1)]
        out += [f"  {str(n).rjust(width)} + {line.rstrip()}" for n, line in enumerate(new[j1:j2], j1 + 1)]
    return out


def render_full(findings: Sequence[Finding], *, sources: Mapping[str, str],
                fixable: FixableFn | None = None) -> str:
    out: list[str] = []
    cache: dict = {}
    for f in findings:
        out.append(f"{f.code} {_mark(f, fixable)}[{f.severity.value}] {f.message}")
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
        if f.fix is not None:
            out.append(f"  = help: {f.fix.message}")
            if f.fix.edits:
                out.append(f"  = {f.fix.applicability} fix:")
                out.extend(_fix_lines(f, sources))
        else:
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
