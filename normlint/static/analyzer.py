"""Entry point of the static analysis: every parsed file of one run, analysed together."""

from __future__ import annotations

from typing import Sequence

from .context import RuleContext
from .model import Analysis
from .rules import FAMILIES
from .rules.common import Reporter
from .source import ParsedFile

STATIC_CODES = frozenset({
    "NL101", "NL201", "NL202", "NL203", "NL204", "NL301", "NL302", "NL303", "NL304", "NL305",
    "NL306", "NL307", "NL308", "NL309", "NL401", "NL402", "NL403", "NL404", "NL501", "NL502", "NL503",
    "NL504",
})


def analyze(files: Sequence[ParsedFile], ctx: RuleContext, *, strict: bool = False) -> None:
    """Run every enabled static rule over ``files``; findings go to ``ctx.findings``.

    One class the analysis cannot make sense of must not cost the user the rest of the run,
    so each class is checked on its own; ``strict`` re-raises instead (tests use it so that
    analysis bugs are not hidden).
    """
    if not any(ctx.is_enabled(c) for c in STATIC_CODES):
        return
    analysis = Analysis(files, ctx)
    report = Reporter(ctx)
    for cls in analysis.classes():
        if not analysis.is_module_class(cls):
            continue
        for family in FAMILIES:
            check = getattr(family, "check_class", None)
            if check is None:
                continue
            try:
                check(analysis, cls, report)
            except Exception:  # RecursionError included: absurdly nested expressions
                if strict:
                    raise
    for info in analysis.index.files:
        for family in FAMILIES:
            check = getattr(family, "check_file", None)
            if check is None:
                continue
            try:
                check(analysis, info, report)
            except Exception:
                if strict:
                    raise
