"""Run the static analyzer on source text or files, the way the engine will."""

from __future__ import annotations

import ast
from pathlib import Path

from normlint.registry import all_codes
from normlint.static.analyzer import analyze
from normlint.static.columns import character_columns
from normlint.static.context import RuleContext
from normlint.static.source import ParsedFile


def parse(path: str, text: str) -> ParsedFile:
    return ParsedFile(path, text, ast.parse(text, filename=path))


def run_files(paths, select=None, strict=True, options=None):
    """Findings with character columns, as the engine reports them (ast counts bytes)."""
    files = [parse(str(p), Path(p).read_text(encoding="utf-8")) for p in paths]
    ctx = RuleContext(enabled=frozenset(select or all_codes()), options=options or {})
    analyze(files, ctx, strict=strict)
    found = character_columns(ctx.findings, {f.path: f.text for f in files})
    return sorted(found, key=lambda f: f.sort_key)


def run_source(text: str, path: str = "model.py", select=None, options=None):
    ctx = RuleContext(enabled=frozenset(select or all_codes()), options=options or {})
    analyze([parse(path, text)], ctx, strict=True)
    return sorted(ctx.findings, key=lambda f: f.sort_key)
