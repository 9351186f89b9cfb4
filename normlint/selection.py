"""Which rules a run enables: ruff-style codes, prefixes and ALL.

The most specific selector wins, so ``--select NL301 --ignore NL3`` keeps NL301 on and
``--select NL3 --ignore NL301`` turns it off; on a tie, ignore wins.
"""

from __future__ import annotations

from typing import Iterable

from .errors import NormlintError
from .registry import RULES


def _codes_matching(selector: str) -> tuple[str, ...]:
    sel = selector.strip().upper()
    if sel == "ALL":
        return tuple(r.code for r in RULES)
    codes = tuple(r.code for r in RULES if r.code.startswith(sel))
    if not sel or not codes:
        raise NormlintError(f"unknown rule code or prefix: {selector.strip()!r}")
    return codes


def _specificity(selector: str) -> int:
    sel = selector.strip().upper()
    return 0 if sel == "ALL" else len(sel)


def validate_selectors(selectors: Iterable[str]) -> None:
    for s in selectors:
        _codes_matching(s)


def resolve_selection(select: Iterable[str] | None = None,
                      extend_select: Iterable[str] | None = None,
                      ignore: Iterable[str] | None = None) -> frozenset[str]:
    """The enabled codes. ``select=None`` means the rules that are on by default."""
    chosen: dict[str, int] = {}   # code -> specificity of the selector that enabled it
    if select is None:
        for r in RULES:
            if r.default_on:
                chosen[r.code] = 0
    else:
        for s in select:
            for code in _codes_matching(s):
                chosen[code] = max(chosen.get(code, -1), _specificity(s))
    for s in extend_select or ():
        for code in _codes_matching(s):
            chosen[code] = max(chosen.get(code, -1), _specificity(s))
    for s in ignore or ():
        for code in _codes_matching(s):
            if code in chosen and _specificity(s) >= chosen[code]:
                del chosen[code]
    return frozenset(chosen)
