"""``--add-noqa``: append ``# noqa: CODE`` to every line that has a finding.

An existing ``# noqa: X`` on the line gets the new codes appended (a bare ``# noqa``
already covers them). Lines where a comment cannot go — the line ends inside a multi-line
string, or continues with a backslash — are skipped and counted.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from typing import Sequence

from ..findings import Finding
from .fixers.noqa import parse_directive
from ..positions import split_lines

NOT_SUPPRESSIBLE = frozenset({"NL900", "NL901"})   # a syntax error; an unused noqa itself


@dataclass
class NoqaEdit:
    text: str          # the new text
    added: int         # directives added or extended
    skipped: int       # lines where a comment cannot go


def _comments_and_blocked(text: str) -> tuple[dict[int, tuple[int, str]], set[int]]:
    comments: dict[int, tuple[int, str]] = {}
    blocked: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = (tok.start[1], tok.string)
        elif tok.end[0] > tok.start[0] and tok.type not in (tokenize.NL, tokenize.NEWLINE):
            blocked.update(range(tok.start[0], tok.end[0]))   # a string spanning lines
    for i, line in enumerate(split_lines(text), start=1):
        if line.rstrip("\r\n").endswith("\\"):
            blocked.add(i)
    return comments, blocked


def add_noqa(text: str, findings: Sequence[Finding]) -> NoqaEdit:
    wanted: dict[int, set[str]] = {}
    for f in findings:
        if f.code not in NOT_SUPPRESSIBLE:
            wanted.setdefault(f.line, set()).add(f.code)
    if not wanted:
        return NoqaEdit(text, 0, 0)
    try:
        comments, blocked = _comments_and_blocked(text)
    except (tokenize.TokenError, SyntaxError):
        return NoqaEdit(text, 0, len(wanted))
    lines = split_lines(text)
    added = skipped = 0
    for line_no, codes in sorted(wanted.items()):
        if line_no in blocked or not 0 < line_no <= len(lines):
            skipped += 1
            continue
        raw = lines[line_no - 1]
        body = raw.rstrip("\r\n")
        ending = raw[len(body):]
        comment = comments.get(line_no)
        directive = parse_directive(comment[1]) if comment else None
        if directive is not None:
            if directive.bare:
                continue               # a bare noqa covers every code already
            new = sorted(codes - {c for c, _, _ in directive.codes})
            if not new:
                continue
            if directive.codes:
                at = comment[0] + directive.codes[-1][2]
                body = body[:at] + ", " + ", ".join(new) + body[at:]
            else:                      # a directive with a colon and no code yet
                at = comment[0] + directive.list_at
                body = body[:at] + " " + ", ".join(new) + body[at:]
        else:
            body = body.rstrip() + "  # noqa: " + ", ".join(sorted(codes))
        lines[line_no - 1] = body + ending
        added += 1
    new_text = "".join(lines)
    try:
        ast.parse(new_text)
    except SyntaxError:       # never hand back a broken file
        return NoqaEdit(text, 0, len(wanted))
    return NoqaEdit(new_text, added, skipped)
