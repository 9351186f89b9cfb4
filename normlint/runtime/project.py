"""The project around an audit: its configuration, ``per-file-ignores`` and ``# noqa``.

An audit finding points at a line of the user's source, so it obeys what a ``check``
finding on that line would: the selection, rule options and ``per-file-ignores`` of the
project's ``[tool.normlint]``, and a ``# noqa: NL304`` on the line (or a file-level
``# normlint: noqa``). Each line ``noqa`` an audit used is recorded in the project's cache
folder, so that ``normlint check`` does not call it unused (NL901).

Which configuration: ``normlint.audit()`` (and the pytest plugin) discover it like the CLI
does, walking up from a folder: the folder of the model class's source file when that is
the user's code (not inside ``site-packages``), else the working directory.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Iterable

from ..config import Config, find_config_file, load_config
from ..findings import Finding
from ..suppress import Suppressions, record_audit_noqa


def model_source_dir(model) -> Path | None:
    """The folder of the file that defines the model's class, when it is the user's own."""
    try:
        source = inspect.getsourcefile(type(model))
    except (OSError, TypeError):
        return None
    if not source or "site-packages" in Path(source).parts or "dist-packages" in Path(source).parts:
        return None
    return Path(source).resolve().parent


def discover_config(model, config: str | Path | bool | None = None) -> Config:
    """``config``: a file to read, ``False`` for none (defaults), ``None`` to discover one
    from the model's source folder, then from the working directory."""
    if config is False:
        return Config()
    if config is not None and config is not True:
        return load_config(Path(config))
    folder = model_source_dir(model)
    if folder is not None and find_config_file(folder) is not None:
        return _discovered(folder)
    return _discovered(Path.cwd())


# Discovery walks up the folders and parses each pyproject.toml on the way: on a small
# model that costs more than its forward, and a test suite audits many. A discovered
# config is remembered per start folder, as long as the files read for it are unchanged.
_DISCOVERED: dict[Path, tuple[Config, tuple[tuple[Path, int], ...]]] = {}


def _discovered(folder: Path) -> Config:
    folder = folder.resolve()
    known = _DISCOVERED.get(folder)
    if known is not None and _stamps(folder) == known[1]:
        return known[0]
    config = load_config(cwd=folder)
    if len(_DISCOVERED) > 64:
        _DISCOVERED.clear()
    _DISCOVERED[folder] = (config, _stamps(folder))
    return config


def _stamps(folder: Path) -> tuple[tuple[Path, int], ...]:
    """The config candidates discovery looks at from ``folder``, with their mtimes."""
    stamps = []
    for directory in (folder, *folder.parents):
        for name in ("normlint.toml", "pyproject.toml"):
            candidate = directory / name
            try:
                stamps.append((candidate, candidate.stat().st_mtime_ns))
            except OSError:
                pass
    return tuple(stamps)


def apply_suppressions(findings: Iterable[Finding], config: Config,
                       record: bool = True) -> list[Finding]:
    """Drop findings that ``per-file-ignores`` or a ``# noqa`` on their line suppress."""
    from ..static.engine import Policy

    policy = Policy.from_config(config)
    kept: list[Finding] = []
    parsed: dict[str, Suppressions | None] = {}
    used: dict[str, set[tuple[int, str]]] = {}
    for f in findings:
        if f.code in policy.ignored_codes(f.path):
            continue
        if f.path not in parsed:
            parsed[f.path] = _suppressions(f.path)
        sup = parsed[f.path]
        if sup is not None and sup.suppresses(f):
            if f.line in sup.lines and not (sup.file_all or f.code in sup.file_codes):
                used.setdefault(str(Path(f.path).resolve()), set()).add((f.line, f.code))
            continue
        kept.append(f)
    if used and record:
        record_audit_noqa(config.project_cache_dir, used)
    return kept


def _suppressions(path: str) -> Suppressions | None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if "site-packages" in Path(path).parts and "noqa" not in text:
        return None
    return Suppressions.parse(text)

