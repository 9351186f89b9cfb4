"""Which files a run checks: Python files under the given paths, minus excludes and .gitignore.

A path named explicitly is always checked, as in ruff and flake8: pre-commit passes the
staged files by name and expects each to be looked at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pathspec

from ..patterns import compile_gitignore, compile_patterns
PYTHON_SUFFIXES = (".py", ".pyi")


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # one-line messages for the user


class _GitIgnores:
    """The .gitignore files that apply to a directory, read once each."""

    def __init__(self) -> None:
        self._specs: dict[Path, pathspec.GitIgnoreSpec | None] = {}
        self._roots: dict[Path, Path | None] = {}

    def _spec(self, directory: Path) -> pathspec.GitIgnoreSpec | None:
        if directory not in self._specs:
            spec = None
            for name in (".gitignore", ".git/info/exclude"):
                f = directory / name
                if f.is_file():
                    try:
                        lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
                    except OSError:
                        continue
                    more = compile_gitignore(lines)
                    spec = more if spec is None else spec + more
            self._specs[directory] = spec
        return self._specs[directory]

    def _repo_root(self, directory: Path) -> Path | None:
        if directory not in self._roots:
            if (directory / ".git").exists():
                self._roots[directory] = directory
            elif directory.parent == directory:
                self._roots[directory] = None
            else:
                self._roots[directory] = self._repo_root(directory.parent)
        return self._roots[directory]

    def ignored(self, path: Path, is_dir: bool) -> bool:
        root = self._repo_root(path.parent)
        if root is None:
            return False
        verdict = None
        # Shallow to deep: a deeper .gitignore overrides a shallower one, as in git.
        chain = [d for d in reversed((path.parent, *path.parent.parents)) if d == root or root in d.parents]
        for directory in chain:
            spec = self._spec(directory)
            if spec is None:
                continue
            rel = path.relative_to(directory).as_posix() + ("/" if is_dir else "")
            result = spec.check_file(rel)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path when it cannot be resolved (a symlink loop
    raises RuntimeError before Python 3.13): reading it then gives the NL900 that says why."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _exclude_spec(patterns: Iterable[str]) -> pathspec.GitIgnoreSpec:
    return compile_patterns(patterns, where="exclude")


def _excluded(spec: pathspec.GitIgnoreSpec, path: Path, root: Path, is_dir: bool) -> bool:
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = path.name  # outside the config root: only name patterns can apply
    return spec.match_file(rel + ("/" if is_dir else ""))


def discover(paths: Sequence[str | os.PathLike], *, exclude: Iterable[str], root: Path,
             respect_gitignore: bool = True) -> Discovery:
    found = Discovery()
    seen: set[Path] = set()
    spec = _exclude_spec(exclude)
    gitignores = _GitIgnores()
    root = root.resolve()

    def add(p: Path) -> None:
        key = resolved(p)
        if key not in seen:
            seen.add(key)
            found.files.append(p)

    for raw in paths:
        given = Path(raw)
        try:
            is_dir = given.is_dir()
            exists = given.exists()
        except OSError as exc:   # symlink loops, permission errors on the path itself
            found.errors.append(f"cannot access {raw}: {exc.strerror or exc}")
            continue
        if not exists:
            why = "broken or looping symlink" if given.is_symlink() else "no such file or directory"
            found.errors.append(f"{raw}: {why}")
            continue
        if not is_dir:
            add(given)
            continue
        for dirpath, dirnames, filenames in os.walk(given, followlinks=False,
                                                    onerror=lambda e: found.errors.append(
                                                        f"cannot list {e.filename}: {e.strerror}")):
            base = Path(dirpath)
            base_abs = resolved(base)
            keep = []
            for d in sorted(dirnames):
                d_abs = base_abs / d
                if _excluded(spec, d_abs, root, True):
                    continue
                if respect_gitignore and gitignores.ignored(d_abs, True):
                    continue
                keep.append(d)
            dirnames[:] = keep
            for name in sorted(filenames):
                if not name.endswith(PYTHON_SUFFIXES):
                    continue
                f_abs = base_abs / name
                if _excluded(spec, f_abs, root, False):
                    continue
                if respect_gitignore and gitignores.ignored(f_abs, False):
                    continue
                add(base / name)
    return found
