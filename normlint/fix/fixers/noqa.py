"""NL901: a ``# noqa`` code that suppresses nothing. A text edit: no libcst needed.

``# noqa: NL306, NL101`` with NL306 unused becomes ``# noqa: NL101``; a directive left with
no code is removed with whatever follows it in the comment (a bare ``# noqa`` would
suppress everything on the line), and a line left empty is removed.
"""

from __future__ import annotations

import re

from ...findings import Finding, Fix
from ...suppress import _CODE, _LINE_NOQA
from ..catalog import SAFE
from ..text import byte_to_char_column, edits_between, split_lines

_CODE_IN_MESSAGE = re.compile(r"\b(NL\d{3})\b")


def _unused_code(finding: Finding) -> str | None:
    facts = dict(finding.fix_facts)
    if "code" in facts:
        return facts["code"]
    m = _CODE_IN_MESSAGE.search(finding.message)
    return m.group(1) if m else None


def remove_unused_code(text: str, finding: Finding) -> Fix | None:
    code = _unused_code(finding)
    lines = split_lines(text)
    if code is None or not 0 < finding.line <= len(lines):
        return None
    raw = lines[finding.line - 1]
    line = raw.rstrip("\r\n")
    ending = raw[len(line):]
    col = byte_to_char_column(line, finding.column - 1)
    comment = line[col:]
    m = _LINE_NOQA.search(comment)
    if m is None or m.group("codes") is None:
        return None
    codes = _CODE.findall(m.group("codes"))
    rest = [c for c in codes if c.upper() != code.upper()]
    if len(rest) == len(codes):
        return None
    if rest:
        start, end = m.span("codes")
        new_comment = comment[:start] + ", ".join(rest) + comment[end:]
        new_line = line[:col] + new_comment
        what = f"Remove `{code}` from the `noqa` comment"
    else:
        # what the comment says before the directive stays (`# type: ignore  # noqa: X`)
        new_line = (line[:col] + comment[:m.start()]).rstrip()
        what = "Remove the unused `noqa` comment"
    new_lines = list(lines)
    new_lines[finding.line - 1] = (new_line + ending) if new_line.strip() else ""
    edits = edits_between(text, "".join(new_lines))
    return Fix(what, edits, SAFE) if edits else None

