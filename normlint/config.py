"""Configuration: ``[tool.normlint]`` in pyproject.toml, or a normlint.toml, plus CLI overrides.

Discovery walks up from the working directory and takes the first ``normlint.toml`` or
``pyproject.toml`` that has a ``[tool.normlint]`` table (normlint.toml wins in the same
directory), as ruff does. Every key is validated: a typo is an error, not a silent no-op.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .patterns import compile_patterns
from .registry import get_rule
from .selection import validate_selectors

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_EXCLUDE = (
    ".bzr", ".direnv", ".eggs", ".git", ".hg", ".mypy_cache", ".nox", ".pytest_cache",
    ".ruff_cache", ".normlint_cache", ".svn", ".tox", ".venv", "__pypackages__", "_build",
    "build", "dist", "node_modules", "site-packages", "venv",
)

_LIST_KEYS = ("select", "extend-select", "ignore", "exclude", "extend-exclude", "fixable", "unfixable")
_KNOWN_KEYS = set(_LIST_KEYS) | {"per-file-ignores", "rules", "unsafe-fixes"}


@dataclass(frozen=True)
class Config:
    select: tuple[str, ...] | None = None          # None: the rules on by default
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    rule_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixable: tuple[str, ...] | None = None         # codes --fix may fix (None: all)
    unfixable: tuple[str, ...] = ()
    unsafe_fixes: bool | None = None               # also apply unsafe fixes (None: no, with a hint)
    root: Path = field(default_factory=Path.cwd)   # globs in the file are relative to this
    source: Path | None = None                     # the file it came from, if any

    @property
    def project_cache_dir(self) -> Path:
        """Where ``check`` keeps its cache by default, and ``audit`` its record of the noqa
        it used: ``.normlint_cache`` next to the config file (the working directory when
        there is none)."""
        return (self.source.parent if self.source else Path.cwd()) / ".normlint_cache"

    def with_overrides(self, **changes: Any) -> "Config":
        """CLI flags win over the file; ``None`` means "not given on the command line"."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def find_config_file(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        found = config_file_in(directory)
        if found is not None:
            return found
    return None


def config_file_in(directory: Path) -> Path | None:
    """This directory's own configuration file, if it has one (no walking up)."""
    candidate = directory / "normlint.toml"
    if candidate.is_file():
        return candidate
    candidate = directory / "pyproject.toml"
    if candidate.is_file() and _normlint_table(_read_toml(candidate), candidate) is not None:
        return candidate
    return None


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise ConfigError(f"invalid TOML in {path}: nested too deeply") from None


def _normlint_table(data: dict, path: Path) -> dict | None:
    """The ``[tool.normlint]`` table of a parsed pyproject.toml or normlint.toml (None: absent).

    normlint.toml holds the keys at top level, or, like pyproject.toml, under
    ``[tool.normlint]``. Anything but a table where a table belongs is a ConfigError.
    """
    tool = data.get("tool")
    if path.name != "pyproject.toml" and (not isinstance(tool, dict) or "normlint" not in tool):
        return data
    if tool is None:
        return None
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: 'tool' must be a table, got {_toml_type(tool)}")
    table = tool.get("normlint")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.normlint] must be a table, got {_toml_type(table)}")
    return table


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array"}.get(type(value), type(value).__name__)


def load_config(path: Path | None = None, *, cwd: Path | None = None) -> Config:
    """Load ``path``, or discover one from ``cwd``; no file gives the defaults."""
    cwd = cwd or Path.cwd()
    if path is None:
        path = find_config_file(cwd.resolve())
        if path is None:
            return Config(root=cwd)
    elif not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = _read_toml(path)
    table = _normlint_table(data, path)
    return parse_table(table or {}, source=path, top_level=table is data)


def _string_list(value: Any, key: str, where: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings")
    return tuple(value)


def parse_table(table: dict, *, source: Path, top_level: bool = False) -> Config:
    """``top_level``: the keys are a normlint.toml's own, not a ``[tool.normlint]`` table."""
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        where = ("at the top level (normlint.toml holds [tool.normlint]'s keys there)"
                 if top_level else "in [tool.normlint]")
        raise ConfigError(f"{source}: unknown key '{unknown[0]}' {where}")
    values: dict[str, Any] = {}
    for key in _LIST_KEYS:
        if key in table:
            values[key.replace("-", "_")] = _string_list(table[key], key, source)
    for key in ("exclude", "extend-exclude"):
        if key in table:
            compile_patterns(table[key], where=f"{source}: '{key}'")
    for key in ("select", "extend_select", "ignore", "fixable", "unfixable"):
        if key in values:
            _validate(values[key], key.replace("_", "-"), source)
    if "per-file-ignores" in table:
        pfi = table["per-file-ignores"]
        if not isinstance(pfi, dict):
            raise ConfigError(f"{source}: 'per-file-ignores' must be a table of glob = [codes]")
        pairs = []
        for glob, codes in pfi.items():
            codes = _string_list(codes, f"per-file-ignores.{glob}", source)
            compile_patterns([glob], where=f"{source}: 'per-file-ignores'")
            _validate(codes, f"per-file-ignores.{glob}", source)
            pairs.append((glob, codes))
        values["per_file_ignores"] = tuple(pairs)
    if "unsafe-fixes" in table:
        if not isinstance(table["unsafe-fixes"], bool):
            raise ConfigError(f"{source}: 'unsafe-fixes' must be true or false")
        values["unsafe_fixes"] = table["unsafe-fixes"]
    if "rules" in table:
        values["rule_options"] = _parse_rule_options(table["rules"], source,
                                                     "rules" if top_level else "tool.normlint.rules")
    return Config(root=source.parent.resolve(), source=source, **values)


def _validate(selectors: tuple[str, ...], key: str, source: Path) -> None:
    try:
        validate_selectors(selectors)
    except Exception as exc:
        raise ConfigError(f"{source}: '{key}': {exc}") from None


def _parse_rule_options(rules: Any, source: Path, section: str) -> dict[str, dict[str, Any]]:
    if not isinstance(rules, dict):
        raise ConfigError(f"{source}: 'rules' must be a table of per-rule tables")
    parsed: dict[str, dict[str, Any]] = {}
    for code, opts in rules.items():
        try:
            rule = get_rule(code)
        except KeyError:
            raise ConfigError(f"{source}: unknown rule '{code}' in [{section}]") from None
        if not isinstance(opts, dict):
            raise ConfigError(f"{source}: [{section}.{code}] must be a table")
        for name, value in opts.items():
            try:
                opt = rule.option(name)
            except KeyError:
                raise ConfigError(f"{source}: unknown option '{name}' for {rule.code}") from None
            if not _has_type(value, opt.type):
                raise ConfigError(f"{source}: option '{name}' of {rule.code} must be "
                                  f"{_type_name(opt.type)}, got {type(value).__name__}")
        parsed[rule.code] = dict(opts)
    return parsed


def _has_type(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, expected)


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "a boolean", str: "a string",
            list: "a list of strings"}.get(t, t.__name__)
