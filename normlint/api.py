"""The Python API of the static engine (``normlint.check_paths`` / ``normlint.check_source``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .config import Config, load_config
from .findings import Finding
from .selection import validate_selectors
from .static.engine import CheckReport, RunOptions, check_paths as _check_paths, check_text


def _config(config: Config | None, config_path: str | os.PathLike | None,
            select: Iterable[str] | None, extend_select: Iterable[str] | None,
            ignore: Iterable[str] | None) -> Config:
    if config is None:
        config = load_config(Path(config_path) if config_path else None)
    for selectors in (select, extend_select, ignore):
        if selectors is not None:
            validate_selectors(selectors)
    # As in ruff: --select replaces the configured selection, --extend-select and --ignore add to it.
    return config.with_overrides(
        select=None if select is None else tuple(select),
        extend_select=None if extend_select is None else (*config.extend_select, *extend_select),
        ignore=None if ignore is None else (*config.ignore, *ignore),
    )


def check_paths(paths: Sequence[str | os.PathLike] = (".",), *, select: Iterable[str] | None = None,
                extend_select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
                config: Config | None = None, config_path: str | os.PathLike | None = None,
                jobs: int | None = None, cache_dir: str | os.PathLike | None = None) -> CheckReport:
    """Check files and directories; returns a report with findings sorted by path, line, column.

    ``jobs`` is the number of worker processes (None: every core); ``cache_dir`` turns the
    result cache on (the CLI uses ``.normlint_cache`` by default, the API none).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    options = RunOptions(jobs=jobs, cache_dir=Path(cache_dir) if cache_dir else None)
    return _check_paths(paths, _config(config, config_path, select, extend_select, ignore), options)


def check_source(text: str, *, path: str = "<string>", select: Iterable[str] | None = None,
                 extend_select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
                 config: Config | None = None) -> list[Finding]:
    """Check one source text as if it were the file ``path``; no configuration file is read."""
    return check_text(text, path, _config(config or Config(), None, select, extend_select, ignore))
