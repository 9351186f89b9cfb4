"""The Python API of the static engine (``normlint.check_paths`` / ``normlint.check_source``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .config import Config
from .errors import NormlintError
from .findings import Finding
from .settings import Overrides, Settings
from .static.engine import CheckReport, RunOptions, check_paths as _check_paths, check_text


# -- arguments: what the API accepts, and a NormlintError naming the argument otherwise --

def _strings(name: str, values: Iterable[str] | str | None) -> tuple[str, ...] | None:
    """Codes, prefixes or patterns: a list, or one comma-separated string as on the command
    line (``select="NL3,NL401"``); a string is never read letter by letter."""
    if values is None:
        return None
    if isinstance(values, str):
        return tuple(v.strip() for v in values.split(",") if v.strip())
    try:
        out = tuple(values)
    except TypeError:
        out = None
    if out is None or not all(isinstance(v, str) for v in out):
        raise NormlintError(f"{name} must be codes or patterns: a list of str or one comma-separated "
                            f"str, got {values!r}")
    return out


def _text(text) -> str:
    if not isinstance(text, str):
        raise NormlintError(f"text must be a str, got {type(text).__name__}"
                            + (" (decode the bytes first)" if isinstance(text, (bytes, bytearray)) else ""))
    return text


def _config(config) -> Config | None:
    if config is not None and not isinstance(config, Config):
        raise NormlintError(f"config must be a normlint.config.Config, got {type(config).__name__} "
                            f"(config_path= reads a file)")
    return config


def _paths(paths) -> list:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    try:
        paths = list(paths)
    except TypeError:
        paths = [paths]
    for p in paths:
        if not isinstance(p, (str, os.PathLike)) or isinstance(os.fspath(p), bytes):
            raise NormlintError(f"paths must be str or os.PathLike (or a list of them), got {p!r}")
    return paths


def _jobs(jobs) -> int | None:
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise NormlintError(f"jobs must be a positive int or None (every core), got {jobs!r}")
    return jobs


def _documents(documents) -> dict[str, bytes]:
    out = {}
    for name, text in (documents or {}).items():
        if not isinstance(name, (str, os.PathLike)) or not isinstance(text, (str, bytes)):
            raise NormlintError(f"documents must map a path to str or bytes, got {name!r}: "
                                f"{type(text).__name__}")
        out[str(name)] = text.encode("utf-8") if isinstance(text, str) else text
    return out


def overrides(select=None, extend_select=None, ignore=None, exclude=None, extend_exclude=()) -> Overrides:
    return Overrides(select=_strings("select", select), extend_select=_strings("extend_select", extend_select),
                     ignore=_strings("ignore", ignore), exclude=_strings("exclude", exclude),
                     extend_exclude=_strings("extend_exclude", extend_exclude) or ())


def check_paths(paths: Sequence[str | os.PathLike] | str | os.PathLike = (".",), *,
                select: Iterable[str] | str | None = None, extend_select: Iterable[str] | str | None = None,
                ignore: Iterable[str] | str | None = None, config: Config | None = None,
                config_path: str | os.PathLike | None = None, exclude: Iterable[str] | str | None = None,
                extend_exclude: Iterable[str] | str = (),
                jobs: int | None = None, cache_dir: str | os.PathLike | None = None,
                documents: Mapping[str, str | bytes] | None = None) -> CheckReport:
    """Check files, directories and notebooks; returns a report with findings sorted by
    path, line, column.

    Each file gets the configuration found walking up from its directory (the nearest
    ``normlint.toml``, or ``pyproject.toml`` with ``[tool.normlint]``), unless ``config``
    or ``config_path`` gives one for every file. ``select``/``extend_select``/``ignore``
    and ``exclude``/``extend_exclude`` (patterns relative to the current directory) win
    over the files; each takes a list or one comma-separated string. ``documents`` maps a path to the text to check instead of the file's
    (it is checked even when not under ``paths``). ``jobs`` is the number of worker
    processes (None: every core); ``cache_dir`` turns the result cache on (the CLI uses
    ``.normlint_cache`` by default, the API none). Raises ConfigError for a bad
    configuration file, NormlintError for an argument of the wrong kind.
    """
    paths = _paths(paths)
    over = overrides(select, extend_select, ignore, exclude, extend_exclude)
    config = _config(config)
    settings = Settings(config, over) if config is not None else Settings.from_file(config_path, over)
    options = RunOptions(jobs=_jobs(jobs), cache_dir=Path(cache_dir) if cache_dir else None,
                         documents=_documents(documents))
    return _check_paths(paths, settings, options)


def check_source(text: str, *, path: str = "<string>", select: Iterable[str] | str | None = None,
                 extend_select: Iterable[str] | str | None = None, ignore: Iterable[str] | str | None = None,
                 config: Config | None = None) -> list[Finding]:
    """Check one source text as if it were the file ``path``; no configuration file is read.
    Raises NormlintError for an argument of the wrong kind."""
    return check_text(_text(text), path, overrides(select, extend_select, ignore).apply(_config(config) or Config()))
