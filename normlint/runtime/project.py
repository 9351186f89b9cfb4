"""The project around an audit: its configuration, ``per-file-ignores`` and ``# noqa``.

An audit finding points at a line of the user's source, so it obeys what a ``check``
finding on that line would: the selection, rule options and ``per-file-ignores`` of the
project's ``[tool.normlint]``, and a ``# noqa: NL304`` on the line (or a file-level
``# normlint: noqa``). Each line ``noqa`` an audit used is recorded in the project's cache
folder, so that ``normlint check`` does not call it unused (NL901).

Which configuration: ``normlint.audit()`` (and the pytest plugin) discover it like the CLI
does, walking up from a folder: the folder of the model class's source file when that is
the user's code (not inside ``site-packages``), else the working directory. What was
discovered is remembered only by a ``ConfigDiscovery`` its caller holds, never process-wide.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
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


def discover_config(model, config: str | Path | bool | Config | None = None) -> Config:
    """``config``: a file to read, a ``Config`` to use as it is, ``False`` for none
    (defaults), ``None`` to discover one, read from disk now, from the model's source
    folder, then from the working directory."""
    if config is False:
        return Config()
    if isinstance(config, Config):
        return config
    if config is not None and config is not True:
        return load_config(Path(config))
    return ConfigDiscovery().for_model(model)


Stamps = tuple[tuple[Path, int, int], ...]   # (candidate file, mtime in ns, size in bytes)


@dataclass
class ConfigDiscovery:
    """The configuration that applies to audited models, discovered as the CLI does, and
    remembered for as long as the holder keeps this object.

    Discovery walks up the folders and parses each pyproject.toml on the way (about 0.5 ms:
    a tenth of a small model's audit), so a caller that audits many models keeps one of
    these: the pytest fixture holds one per test. ``normlint.audit()`` makes a fresh one
    per call, so a configuration edited between two audits is always read again. Within one
    object's life a remembered configuration is read again when a file discovery looks at
    changes its mtime or size, or appears or disappears.
    """

    _found: dict[Path, tuple[Config | None, Stamps]] = field(default_factory=dict, init=False, repr=False)

    def for_model(self, model, fallback: Path | None = None) -> Config:
        """The configuration of the folder of the model class's source file (the user's own
        code), else of ``fallback`` (pytest's rootdir), else of the working directory; the
        defaults when none of them has one."""
        for folder in (model_source_dir(model), fallback):
            config = self.in_folder(folder) if folder is not None else None
            if config is not None:
                return config
        return self.in_folder(Path.cwd()) or Config(root=Path.cwd())

    def in_folder(self, folder: Path) -> Config | None:
        """The configuration discovered from ``folder`` upwards; None when there is none."""
        folder = folder.resolve()
        stamps = _stamps(folder)
        known = self._found.get(folder)
        if known is not None and known[1] == stamps:
            return known[0]
        path = find_config_file(folder)
        config = load_config(path) if path is not None else None
        self._found[folder] = (config, stamps)
        return config


def _stamps(folder: Path) -> Stamps:
    """The config candidates discovery looks at from ``folder``, with their mtimes and sizes."""
    stamps = []
    for directory in (folder, *folder.parents):
        for name in ("normlint.toml", "pyproject.toml"):
            candidate = directory / name
            try:
                st = candidate.stat()
            except OSError:
                continue
            stamps.append((candidate, st.st_mtime_ns, st.st_size))
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

