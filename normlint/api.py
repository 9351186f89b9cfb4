"""The Python API of the static engine (``normlint.check_paths`` / ``normlint.check_source``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .config import Config
from .findings import Finding
from .settings import Overrides, Settings
from .static.engine import CheckReport, RunOptions, check_paths as _check_paths, check_text


def _tuple(values: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def check_paths(paths: Sequence[str | os.PathLike] = (".",), *, select: Iterable[str] | None = None,
                extend_select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
                config: Config | None = None, config_path: str | os.PathLike | None = None,
                exclude: Iterable[str] | None = None, extend_exclude: Iterable[str] = (),
                jobs: int | None = None, cache_dir: str | os.PathLike | None = None,
                documents: Mapping[str, str | bytes] | None = None) -> CheckReport:
    """Check files, directories and notebooks; returns a report with findings sorted by
    path, line, column.

    Each file gets the configuration found walking up from its directory (the nearest
    ``normlint.toml``, or ``pyproject.toml`` with ``[tool.normlint]``), unless ``config``
    or ``config_path`` gives one for every file. ``select``/``extend_select``/``ignore``
    and ``exclude``/``extend_exclude`` (patterns relative to the current directory) win
    over the files. ``documents`` maps a path to the text to check instead of the file's
    (it is checked even when not under ``paths``). ``jobs`` is the number of worker
    processes (None: every core); ``cache_dir`` turns the result cache on (the CLI uses
    ``.normlint_cache`` by default, the API none). Raises ConfigError for a bad
    configuration file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    overrides = Overrides(select=_tuple(select), extend_select=_tuple(extend_select), ignore=_tuple(ignore),
                          exclude=_tuple(exclude), extend_exclude=tuple(extend_exclude))
    settings = Settings(config, overrides) if config is not None else Settings.from_file(config_path, overrides)
    docs = {str(k): v.encode("utf-8") if isinstance(v, str) else v for k, v in (documents or {}).items()}
    options = RunOptions(jobs=jobs, cache_dir=Path(cache_dir) if cache_dir else None, documents=docs)
    return _check_paths(paths, settings, options)


def check_source(text: str, *, path: str = "<string>", select: Iterable[str] | None = None,
                 extend_select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
                 config: Config | None = None) -> list[Finding]:
    """Check one source text as if it were the file ``path``; no configuration file is read."""
    overrides = Overrides(select=_tuple(select), extend_select=_tuple(extend_select), ignore=_tuple(ignore))
    return check_text(text, path, overrides.apply(config or Config()))
