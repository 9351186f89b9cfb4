"""``normlint.fix_source``: fix one source text in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..config import Config
from ..findings import Finding
from .apply import Dropped
from .run import fix_policy, fix_report


@dataclass
class SourceFix:
    """What ``fix_source`` did: the new text, the fixes it applied (each finding with its
    ``fix``, positions as in the pass that applied it), what is still reported, and the
    fixes it refused because the re-check did not confirm them."""

    text: str
    applied: list[Finding] = field(default_factory=list)
    remaining: list[Finding] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def fix_source(text: str, *, path: str = "<string>", unsafe_fixes: bool = False,
               select: Iterable[str] | None = None, extend_select: Iterable[str] | None = None,
               ignore: Iterable[str] | None = None, fixable: Iterable[str] | None = None,
               unfixable: Iterable[str] | None = None, config: Config | None = None) -> SourceFix:
    """Check ``text`` as the file ``path`` and apply its fixes: the safe ones, and the unsafe
    ones too with ``unsafe_fixes=True``; ``fixable`` / ``unfixable`` restrict them by code or
    prefix. No file is read or written. A text with a syntax error comes back unchanged
    (with its NL900 in ``remaining``).
    """
    from ..api import _config, _strings, _text, overrides
    from ..selection import validate_selectors
    from ..static.engine import Component, check_text

    text = _text(text)
    fixable, unfixable = _strings("fixable", fixable), _strings("unfixable", unfixable)
    for selectors in (fixable, unfixable):
        if selectors is not None:
            validate_selectors(selectors)
    cfg = overrides(select, extend_select, ignore).apply(_config(config) or Config())
    findings = check_text(text, path, cfg)
    policy = fix_policy(cfg, unsafe=unsafe_fixes, fixable=fixable, unfixable=unfixable)
    run = fix_report(findings, {path: text}, [Component((path,), cfg)], policy)
    return SourceFix(run.fixed.get(path, text), run.applied, run.findings, run.dropped)
