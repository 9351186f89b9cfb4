"""NL901: a ``# noqa`` code that suppresses nothing. A text edit: no libcst needed.

``# noqa: NL306, NL101`` with NL306 unused becomes ``# noqa: NL101``; a directive left with
no code is removed with whatever follows it in the comment (a bare ``# noqa`` would
suppress everything on the line), and a line left empty is removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...findings import Finding, Fix
from ...suppress import _CODE, _DIRECTIVE, _LIST_START
from ..catalog import SAFE
from ...positions import edits_between, split_lines

_CODE_IN_MESSAGE = re.compile(r"\b(NL\d{3})\b")
_ITEM = re.compile(r"[^\s,\uff0c]+")


@dataclass(frozen=True)
class Directive:
    """A line's ``# noqa`` inside its comment, read as suppress.py reads it, with offsets."""

    start: int                              # the directive's '#'
    codes: tuple[tuple[str, int, int], ...]  # (CODE, start, end) of each listed code
    bare: bool                              # no list: every code on the line
    list_at: int                            # where a code list starts (after the colon)


def parse_directive(comment: str) -> Directive | None:
    m = _DIRECTIVE.search(comment)
    if m is None or m.group("file"):
        return None
    rest_at = m.start("rest")
    rest = m.group("rest")
    colon = _LIST_START.match(rest)
    if colon is None:
        first = rest.split(None, 1)[0] if rest.strip() else ""
        if not _CODE.fullmatch(first):
            return Directive(m.start(), (), True, rest_at)
        body = rest_at
    else:
        body = rest_at + colon.end()
    codes = []
    for item in _ITEM.finditer(comment, body):
        if not _CODE.fullmatch(item.group()):
            break                              # the rest is a comment
        codes.append((item.group().upper(), item.start(), item.end()))
    return Directive(m.start(), tuple(codes), False, body)


def _unused_code(finding: Finding) -> str | None:
    facts = dict(finding.fix_facts)
    if "code" in facts:
        return facts["code"]
    m = _CODE_IN_MESSAGE.search(finding.message)
    return m.group(1) if m else None


def remove_unused_code(text: str, finding: Finding) -> Fix | None:
    if finding.message.startswith("malformed"):
        return None          # what was meant is for the reader to say
    code = _unused_code(finding)
    lines = split_lines(text)
    if code is None or not 0 < finding.line <= len(lines):
        return None
    raw = lines[finding.line - 1]
    line = raw.rstrip("\r\n")
    ending = raw[len(line):]
    col = finding.column - 1
    comment = line[col:]
    directive = parse_directive(comment)
    if directive is None or not directive.codes:
        return None
    rest = [c for c, _, _ in directive.codes if c != code.upper()]
    if len(rest) == len(directive.codes):
        return None
    if rest:
        first, last = directive.codes[0][1], directive.codes[-1][2]
        new_line = line[:col] + comment[:first] + ", ".join(rest) + comment[last:]
        what = f"Remove `{code}` from the `noqa` comment"
    else:
        # what the comment says before the directive stays (a `type: ignore`)
        new_line = (line[:col] + comment[:directive.start]).rstrip()
        what = "Remove the unused `noqa` comment"
    new_lines = list(lines)
    new_lines[finding.line - 1] = (new_line + ending) if new_line.strip() else ""
    edits = edits_between(text, "".join(new_lines))
    return Fix(what, edits, SAFE) if edits else None
