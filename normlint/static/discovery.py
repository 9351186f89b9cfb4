"""Which files a run checks: Python files and notebooks under the given paths, minus
excludes and .gitignore.

A path named explicitly is always checked, as in ruff and flake8: pre-commit passes the
staged files by name and expects each to be looked at. So is a directory named explicitly
even when it is itself excluded (a package under ``site-packages``, a gitignored build
tree): the patterns then apply only below it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pathspec

from ..config import Config
from ..patterns import compile_gitignore
from ..settings import Settings, git_root

PYTHON_SUFFIXES = (".py", ".pyi", ".ipynb")


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
        return git_root(directory, self._roots)

    def ignored(self, path: Path, is_dir: bool, floor: Path | None = None) -> bool:
        """``floor``: only .gitignore files at or below this directory count."""
        root = self._repo_root(path.parent)
        if root is None:
            return False
        if floor is not None and root in floor.parents:
            root = floor
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


class ProjectFilter:
    """Whether a file found by following an import belongs to the project: not excluded by
    the configuration that governs it, not ignored by git (a virtualenv, site-packages or a
    build tree is somebody else's code)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._gitignores = _GitIgnores()

    def includes(self, path: Path) -> bool:
        return not (self.settings.excluded(path, False) or self._gitignores.ignored(path, False))


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path when it cannot be resolved (a symlink loop
    raises RuntimeError before Python 3.13): reading it then gives the NL900 that says why."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def discover(paths: Sequence[str | os.PathLike], *, exclude: Iterable[str] = (), root: Path | None = None,
             settings: Settings | None = None, respect_gitignore: bool = True) -> Discovery:
    """The files to check under ``paths``. ``settings`` says which exclude patterns apply
    where (each directory's own configuration); without it, ``exclude`` patterns relative
    to ``root`` apply everywhere."""
    found = Discovery()
    seen: set[Path] = set()
    if settings is None:
        settings = Settings(Config(exclude=tuple(exclude), root=(root or Path.cwd()).resolve()))
    gitignores = _GitIgnores()

    def add(p: Path) -> None:
        key = resolved(p)
        if key not in seen:
            seen.add(key)
            found.files.append(p)

    def skipped(path: Path, is_dir: bool, floor: Path | None) -> bool:
        return settings.excluded(path, is_dir, floor) or (
            respect_gitignore and gitignores.ignored(path, is_dir, floor))

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
        given_abs = resolved(given)
        floor = given_abs if skipped(given_abs, True, None) else None
        for dirpath, dirnames, filenames in os.walk(given, followlinks=False,
                                                    onerror=lambda e: found.errors.append(
                                                        f"cannot list {e.filename}: {e.strerror}")):
            base = Path(dirpath)
            base_abs = resolved(base)
            dirnames[:] = [d for d in sorted(dirnames) if not skipped(base_abs / d, True, floor)]
            for name in sorted(filenames):
                if name.endswith(PYTHON_SUFFIXES) and not skipped(base_abs / name, False, floor):
                    add(base / name)
    return found
