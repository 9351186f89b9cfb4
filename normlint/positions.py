"""Positions and edits on source text: lines, columns, minimal edits between two texts.

Positions follow the findings' convention: 1-based lines, 1-based columns counted in
characters (code points), end exclusive. Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only, as
for the tokenizer (``str.splitlines`` would also split at form feeds and ``\\u2028``).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Iterable, Sequence

from .findings import Edit

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, each with its line ending (the last may have none)."""
    return _LINE.findall(text)


@dataclass(frozen=True)
class LineIndex:
    """Offsets of line starts, to turn (line, column) pairs into string offsets and back."""

    starts: tuple[int, ...]
    length: int

    @classmethod
    def of(cls, text: str) -> "LineIndex":
        return cls(tuple(accumulate(map(len, split_lines(text)), initial=0)), len(text))

    def offset(self, line: int, column: int) -> int:
        """(1-based line, 1-based column) -> offset; a line past the end maps to the end."""
        if line > len(self.starts) - 1:
            return self.length
        return min(self.starts[line - 1] + column - 1, self.length)

    def position(self, offset: int) -> tuple[int, int]:
        """offset -> (1-based line, 1-based column); the end of the text stays on the last line."""
        line = max(bisect.bisect_right(self.starts, offset, 0, max(len(self.starts) - 1, 1)) - 1, 0)
        return line + 1, offset - self.starts[line] + 1


def _word(ch: str) -> bool:
    return ch.isalnum() or ch in "_."


def edits_between(old: str, new: str) -> tuple[Edit, ...]:
    """The smallest edits (one per changed region) that turn ``old`` into ``new``.

    Common leading and trailing lines are skipped before diffing, so the cost is linear in
    the file and quadratic only in the changed region.
    """
    if old == new:
        return ()
    import difflib

    a, b = split_lines(old), split_lines(new)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    mid_a, mid_b = a[head:len(a) - tail], b[head:len(b) - tail]
    index = LineIndex.of(old)
    edits: list[Edit] = []
    matcher = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start = index.starts[head + i1]
        old_seg, new_seg = "".join(mid_a[i1:i2]), "".join(mid_b[j1:j2])
        # trim what the two segments share at both ends: the edit covers the change only
        p = 0
        while p < min(len(old_seg), len(new_seg)) and old_seg[p] == new_seg[p]:
            p += 1
        while p and _word(old_seg[p - 1]) and (p < len(old_seg) and _word(old_seg[p])
                                                or p < len(new_seg) and _word(new_seg[p])):
            p -= 1     # whole words: an edit replaces `dtype`, not `typ`
        s = 0
        while s < min(len(old_seg), len(new_seg)) - p and old_seg[-1 - s] == new_seg[-1 - s]:
            s += 1
        while s and _word(old_seg[-s]) and (s < len(old_seg) - p and _word(old_seg[-1 - s])
                                            or s < len(new_seg) - p and _word(new_seg[-1 - s])):
            s -= 1
        line, col = index.position(start + p)
        end_line, end_col = index.position(start + len(old_seg) - s)
        edits.append(Edit(line, col, end_line, end_col, new_seg[p:len(new_seg) - s]))
    return tuple(edits)


def edit_span(index: LineIndex, edit: Edit) -> tuple[int, int]:
    return index.offset(edit.line, edit.column), index.offset(edit.end_line, edit.end_column)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping edits (all computed on ``text``)."""
    index = LineIndex.of(text)
    spans = sorted(((*edit_span(index, e), e.replacement) for e in edits), key=lambda s: (s[0], s[1]))
    out: list[str] = []
    pos = 0
    for start, end, replacement in spans:
        if start < pos:
            raise ValueError("overlapping edits")
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def touched_lines(edits: Sequence[Edit]) -> set[int]:
    """The existing lines whose text an edit changes (an insertion of whole lines before a
    line leaves that line alone)."""
    lines: set[int] = set()
    for e in edits:
        last = e.end_line
        if e.end_column == 1 and (e.end_line > e.line or e.replacement.endswith(("\n", "\r"))):
            last -= 1
        lines.update(range(e.line, max(last, e.line - 1) + 1))
    return lines
