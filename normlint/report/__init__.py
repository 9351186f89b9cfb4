"""Reporters: turn a sorted list of findings into text, JSON, SARIF, GitHub annotations or JUnit."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Mapping, Sequence

from ..errors import NormlintError
from ..findings import Finding
from . import github, jsonfmt, junit, sarif, text

FORMATS = ("concise", "full", "json", "sarif", "github", "junit")

_RENDERERS: Mapping[str, Callable[..., str]] = {
    "concise": text.render_concise,
    "full": text.render_full,
    "json": jsonfmt.render,
    "sarif": sarif.render,
    "github": github.render,
    "junit": junit.render,
}


def render(findings: Sequence[Finding], output_format: str = "concise", *,
           sources: Mapping[str, str] | None = None, fixable: Callable[[Finding], bool] | None = None) -> str:
    """Render ``findings`` (already sorted). ``sources`` maps a path to its text for snippets;
    ``fixable`` says which findings ``--fix`` would fix (marked ``[*]`` in text output)."""
    try:
        renderer = _RENDERERS[output_format]
    except KeyError:
        raise NormlintError(f"unknown output format {output_format!r}; "
                            f"choose one of {', '.join(FORMATS)}") from None
    if output_format != "sarif":   # SARIF percent-encodes the real bytes in its URIs
        findings = [f if f.path == (p := printable_path(f.path)) else replace(f, path=p)
                    for f in findings]
    if output_format == "full":
        return renderer(findings, sources={printable_path(k): v for k, v in (sources or {}).items()},
                        fixable=fixable)
    if output_format == "concise":
        return renderer(findings, fixable=fixable)
    return renderer(findings)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable_path(path: str) -> str:
    """``path`` as valid, printable Unicode: a file name that is not UTF-8 (which Python
    holds as surrogate escapes, and no UTF-8 output can carry) shows its odd bytes as
    ``\\xNN``, and so do control characters (a newline would split a finding's line; XML
    has no ``\\x01``)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        path = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", path)


def exit_code(findings: Sequence[Finding]) -> int:
    return 1 if any(f.severity.fails_run for f in findings) else 0


__all__ = ["FORMATS", "render", "exit_code"]
