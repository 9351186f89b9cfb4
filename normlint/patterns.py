"""Gitignore-style path patterns (``exclude``, ``per-file-ignores``, ``.gitignore`` files).

pathspec raises on a pattern git itself would not accept (a lone ``!``, a trailing ``\\``).
In configuration that is the user's mistake, reported with the file and key it came from;
in a ``.gitignore`` git silently skips such a line, and so do we.
"""

from __future__ import annotations

from typing import Iterable

import pathspec

from .errors import ConfigError


def compile_patterns(patterns: Iterable[str], *, where: str) -> pathspec.GitIgnoreSpec:
    """Compile ``patterns``; a bad one raises ConfigError naming ``where`` and the pattern."""
    patterns = list(patterns)
    try:
        return pathspec.GitIgnoreSpec.from_lines(patterns)
    except ValueError:   # GitIgnorePatternError and pathspec's other pattern errors
        bad = next((p for p in patterns if not _valid(p)), None)
        what = f"invalid pattern {bad!r}" if bad is not None else "invalid patterns"
        raise ConfigError(f"{where}: {what} (gitignore syntax)") from None


def compile_gitignore(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    """Compile the lines of a .gitignore file, skipping those git would skip."""
    lines = list(lines)
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError:
        return pathspec.GitIgnoreSpec.from_lines([line for line in lines if _valid(line)])


def _valid(pattern: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([pattern])
    except ValueError:
        return False
    return True
