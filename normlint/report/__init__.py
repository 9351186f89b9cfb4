"""Reporters: turn a sorted list of findings into text, JSON, SARIF, GitHub annotations or JUnit."""

from __future__ import annotations

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
    if output_format == "full":
        return renderer(findings, sources=sources or {}, fixable=fixable)
    if output_format == "concise":
        return renderer(findings, fixable=fixable)
    return renderer(findings)


def exit_code(findings: Sequence[Finding]) -> int:
    return 1 if any(f.severity.fails_run for f in findings) else 0


__all__ = ["FORMATS", "render", "exit_code"]
