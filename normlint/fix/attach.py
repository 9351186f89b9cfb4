"""Fill ``Finding.fix`` for a file's findings: the fixer's edits, or a display-only suggestion.

The cost bound: libcst is imported and a file parsed with it only when the file has a
finding whose rule has a fixer that needs the tree; everything else gets its rule's hint
as a display-only fix, which costs nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Mapping, Sequence

from ..findings import Finding, Fix
from ..registry import get_rule
from ..suppress import Suppressions
from .catalog import DISPLAY_ONLY, FIXERS, FixerInfo
from ..positions import touched_lines


def suggestion(finding: Finding, note: str = "") -> Fix:
    """A display-only fix: the rule's hint, never applied."""
    try:
        hint = get_rule(finding.code).fix_hint
    except KeyError:
        hint = ""
    return Fix((hint or "no automatic fix") + note, (), DISPLAY_ONLY)


def _run_fixer(info: FixerInfo, finding: Finding, text: str, tree_for) -> Fix | None:
    fixers = importlib.import_module(f"normlint.fix.fixers.{info.module}")
    function = getattr(fixers, info.function)
    if not info.needs_tree:
        return function(text, finding)
    tree = tree_for(finding.line)
    if tree is None:
        return None
    node = tree.node_at(finding)
    return None if node is None else function(tree, finding, node)


def fixes_for_file(findings: Sequence[Finding], text: str, *, strict: bool = False) -> list[Finding]:
    """``findings`` of one file (whose text is ``text``) with ``fix`` filled."""
    outline: list = []
    trees: dict = {}

    def tree_for(line: int):
        from .tree import Outline, SourceTree     # libcst loads here, and only here

        if not outline:
            outline.append(Outline.of(text))
        if outline[0] is None:
            return None
        span = outline[0].statement_span(line)
        if span not in trees:                     # one parse per top-level statement
            trees[span] = SourceTree.around(outline[0], line) if span else None
        return trees[span]

    noqa_lines: set[int] | None = None
    out = []
    for f in findings:
        info = FIXERS.get(f.code)
        fix = None
        if info is not None:
            try:
                fix = _run_fixer(info, f, text, tree_for)
            except Exception:    # a fixer bug must not cost the user the report
                if strict:
                    raise
                fix = None
        if fix is not None and f.code != "NL901":
            if noqa_lines is None:
                noqa_lines = set(Suppressions.parse(text).lines)
            if touched_lines(fix.edits) & noqa_lines:
                # a line that carries a noqa directive is never rewritten
                fix = replace(suggestion(f), message=fix.message + " (not applied: it would edit a line "
                                                                   "with a `# noqa` comment)")
        out.append(replace(f, fix=fix if fix is not None else suggestion(f)))
    return out


def attach_fixes(findings: Sequence[Finding], texts: Mapping[str, str], *, strict: bool = False) -> list[Finding]:
    """Every finding with its fix; files are parsed with libcst only when a fixer needs it."""
    by_path: dict[str, list[int]] = {}
    out = list(findings)
    for i, f in enumerate(findings):
        if f.code in FIXERS and f.path in texts:
            by_path.setdefault(f.path, []).append(i)
        elif f.fix is None:
            out[i] = replace(f, fix=suggestion(f))
    for path, indices in by_path.items():
        fixed = fixes_for_file([findings[i] for i in indices], texts[path], strict=strict)
        for i, f in zip(indices, fixed, strict=True):
            out[i] = f
    return out
