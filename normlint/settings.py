"""Which settings apply to each checked file, as in ruff: the nearest configuration above it.

A run can cover files under several configurations (a repository with a sub-project that
has its own ``pyproject.toml``); each file gets the nearest ``normlint.toml`` or
``pyproject.toml`` with a ``[tool.normlint]`` table found walking up from its directory,
unless one configuration was given (``--config``), which then applies to every file.
Command-line flags (selection, ``--exclude``) apply on top of whichever file was found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pathspec

from .config import Config, config_file_in, load_config
from .patterns import compile_patterns
from .selection import validate_selectors


@dataclass(frozen=True)
class Overrides:
    """What the command line (or an API call) says, which wins over every configuration file.

    ``exclude`` replaces the configuration's ``exclude`` list and ``extend_exclude`` adds to
    it; both are gitignore-style patterns relative to ``base`` (the current directory), the
    way a user types them in a shell.
    """

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()
    base: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        for selectors in (self.select, self.extend_select, self.ignore):
            if selectors is not None:
                validate_selectors(selectors)

    def apply(self, config: Config) -> Config:
        # As in ruff: --select replaces the configured selection, --extend-select and
        # --ignore add to it.
        return config.with_overrides(
            select=self.select,
            extend_select=None if self.extend_select is None else (*config.extend_select, *self.extend_select),
            ignore=None if self.ignore is None else (*config.ignore, *self.ignore),
            exclude=None if self.exclude is None else (),
        )

    @property
    def exclude_patterns(self) -> tuple[str, ...]:
        return (*(self.exclude or ()), *self.extend_exclude)


def _relative(path: Path, base: Path) -> str | None:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return None


class Settings:
    """Resolves the configuration of any path, once per directory.

    ``config``: one configuration for every file (``--config``, or a ``Config`` passed to
    the API); None discovers one per file. Raises ConfigError (one line) for a file that
    cannot be read or is invalid.
    """

    def __init__(self, config: Config | None = None, overrides: Overrides | None = None,
                 *, cwd: Path | None = None):
        self.cwd = (cwd or Path.cwd()).resolve()
        self.overrides = overrides or Overrides(base=self.cwd)
        self._fixed = None if config is None else self.overrides.apply(config)
        self._by_file: dict[Path | None, Config] = {}
        self._by_dir: dict[Path, Config] = {}
        self._specs: dict[int, tuple[pathspec.GitIgnoreSpec, Path]] = {}
        self._cli_spec = compile_patterns(self.overrides.exclude_patterns, where="--exclude/--extend-exclude")
        self._cli_base = self.overrides.base.resolve()
        self._git_roots: dict[Path, Path | None] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike | None, overrides: Overrides | None = None) -> "Settings":
        """``--config PATH`` when given, else discovery per file."""
        return cls(load_config(Path(path)) if path else None, overrides)

    @property
    def fixed(self) -> bool:
        return self._fixed is not None

    def config_for(self, path: Path) -> Config:
        """The configuration of the file ``path``."""
        return self.config_for_dir(Path(os.path.abspath(path)).parent)

    def config_for_dir(self, directory: Path) -> Config:
        """The configuration of the files in ``directory``."""
        if self._fixed is not None:
            return self._fixed
        directory = Path(os.path.abspath(directory))
        found = self._by_dir.get(directory)
        if found is None:
            source = config_file_in(directory)
            if source is not None:
                found = self._by_file.get(source)
                if found is None:
                    found = self._by_file[source] = self.overrides.apply(load_config(source))
            elif directory.parent != directory:
                found = self.config_for_dir(directory.parent)
            else:
                found = self._by_file.get(None)
                if found is None:
                    found = self._by_file[None] = self.overrides.apply(Config(root=self.cwd))
            self._by_dir[directory] = found
        return found

    def _spec(self, config: Config) -> tuple[pathspec.GitIgnoreSpec, Path]:
        """The configuration's exclude patterns, compiled, and the directory they are relative to."""
        spec = self._specs.get(id(config))
        if spec is None:
            spec = self._specs[id(config)] = (compile_patterns(
                [*config.exclude, *config.extend_exclude], where="exclude"),
                config.root.resolve())
        return spec

    def excluded(self, path: Path, is_dir: bool, floor: Path | None = None) -> bool:
        """Whether the exclude patterns that apply to ``path`` (absolute) match it.

        The patterns of the configuration that governs the directory holding ``path`` are
        relative to that configuration's directory, the command line's to the current
        directory. ``floor``: a directory named explicitly although it is itself excluded
        (a package under site-packages); patterns are then matched below it only, so what
        the user asked for is checked.
        """
        suffix = "/" if is_dir else ""
        config = self.config_for_dir(path.parent)
        for spec, base in (self._spec(config), (self._cli_spec, self._cli_base)):
            rel = _relative(path, floor or base)
            if rel is None:
                rel = path.name    # outside the base: only name patterns can apply
            if spec.match_file(rel + suffix):
                return True
        return False

    def project_root(self, path: Path) -> Path:
        """The directory a cross-file look-up may read under, for the file ``path``: its
        configuration's directory, else the git root, else the current directory (when the
        file is under it), else the file's own directory."""
        directory = Path(os.path.abspath(path)).parent
        source = self.config_for_dir(directory).source
        if source is not None:
            config_dir = Path(os.path.abspath(source)).parent
            if _relative(directory, config_dir) is not None:
                return config_dir
        git = self._git_root(directory)
        if git is not None:
            return git
        if _relative(directory, self.cwd) is not None:
            return self.cwd
        return directory

    def _git_root(self, directory: Path) -> Path | None:
        return git_root(directory, self._git_roots)


def git_root(directory: Path, memo: dict[Path, Path | None]) -> Path | None:
    """The nearest directory at or above ``directory`` with a ``.git``; ``memo`` caches
    the answer for every directory visited."""
    if directory not in memo:
        if (directory / ".git").exists():
            memo[directory] = directory
        elif directory.parent == directory:
            memo[directory] = None
        else:
            memo[directory] = git_root(directory.parent, memo)
    return memo[directory]


def describe(config: Config, path: Path, settings: Settings) -> Iterable[str]:
    """The resolved settings of one file, one ``key = value`` line each (``--show-settings``)."""
    from .selection import resolve_selection

    def listing(values) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    yield f"file = {path}"
    yield f"config = {config.source if config.source else 'none (defaults)'}"
    yield f"project-root = {settings.project_root(path)}"
    yield f"select = {listing(config.select) if config.select is not None else 'default'}"
    yield f"extend-select = {listing(config.extend_select)}"
    yield f"ignore = {listing(config.ignore)}"
    yield f"enabled = {listing(sorted(resolve_selection(config.select, config.extend_select, config.ignore)))}"
    yield f"exclude = {listing(config.exclude)}"
    yield f"extend-exclude = {listing(config.extend_exclude)}"
    if settings.overrides.exclude_patterns:
        yield f"command-line-exclude = {listing(settings.overrides.exclude_patterns)}"
    for glob, codes in config.per_file_ignores:
        yield f"per-file-ignores.{glob} = {listing(codes)}"
    for code, options in sorted(config.rule_options.items()):
        for name, value in sorted(options.items()):
            yield f"rules.{code}.{name} = {value!r}"
