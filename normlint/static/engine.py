"""One static run: load every file, analyse them together, filter and suppress."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pathspec

from ..config import Config
from ..findings import Finding, sort_findings
from ..selection import resolve_selection
from ..suppress import Suppressions
from .analyzer import analyze
from .context import RuleContext
from .discovery import discover
from .reading import load_file, parse_source
from .source import ParsedFile


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)      # paths that could not be walked
    files_checked: int = 0
    sources: dict[str, str] = field(default_factory=dict)  # path -> text, for snippets


def display_path(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:   # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def enabled_codes(config: Config) -> frozenset[str]:
    return resolve_selection(config.select, config.extend_select, config.ignore)


def _per_file_ignored(config: Config) -> list[tuple[pathspec.GitIgnoreSpec, frozenset[str]]]:
    out = []
    for glob, selectors in config.per_file_ignores:
        spec = pathspec.GitIgnoreSpec.from_lines([glob])
        out.append((spec, resolve_selection(selectors)))
    return out


def _file_ignores(rules, path: str, root: Path) -> frozenset[str]:
    if not rules:
        return frozenset()
    abs_path = Path(path).resolve()
    try:
        rel = abs_path.relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = abs_path.name
    ignored: set[str] = set()
    for spec, codes in rules:
        if spec.match_file(rel):
            ignored |= codes
    return frozenset(ignored)


def run_files(parsed: Sequence[ParsedFile], failures: Sequence[Finding], config: Config) -> list[Finding]:
    enabled = enabled_codes(config)
    ctx = RuleContext(enabled=enabled, options=config.rule_options)
    analyze(parsed, ctx)
    raw = [f for f in (*failures, *ctx.findings) if f.code in enabled]
    pfi = _per_file_ignored(config)
    by_path: dict[str, list[Finding]] = {}
    for f in raw:
        if f.code not in _file_ignores(pfi, f.path, config.root):
            by_path.setdefault(f.path, []).append(f)
    result: list[Finding] = []
    for pf in parsed:
        sup = Suppressions.parse(pf.text)
        kept = [f for f in by_path.pop(pf.path, []) if not sup.suppresses(f)]
        unused = [f for f in sup.unused(pf.path, enabled)
                  if f.code not in _file_ignores(pfi, pf.path, config.root)]
        result.extend(kept + unused)
    for rest in by_path.values():   # NL900 for files that never parsed
        result.extend(rest)
    return sort_findings(result)


def check_paths(paths: Sequence[str | os.PathLike], config: Config) -> CheckReport:
    exclude = (*config.exclude, *config.extend_exclude)
    found = discover(paths, exclude=exclude, root=config.root)
    report = CheckReport(errors=list(found.errors), files_checked=len(found.files))
    parsed: list[ParsedFile] = []
    failures: list[Finding] = []
    for file in found.files:
        loaded = load_file(file, display_path(file))
        if isinstance(loaded, Finding):
            failures.append(loaded)
        else:
            parsed.append(loaded)
            report.sources[loaded.path] = loaded.text
    report.findings = run_files(parsed, failures, config)
    return report


def check_text(text: str, path: str, config: Config) -> list[Finding]:
    loaded = parse_source(text, path)
    if isinstance(loaded, Finding):
        return run_files([], [loaded], config)
    return run_files([loaded], [], config)
