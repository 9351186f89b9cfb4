"""Did a set of fixes do what it claims? Compare the findings before and after.

A finding outside every edited line is followed to its new line; one that is still there
"persists". What remains on either side is matched per code:

- a fixed finding must not persist;
- a finding that appears is allowed only against one of the same code that disappeared
  without being fixed (a finding inside an edited line moved), or when it is of a fixed
  finding's code and sits outside the edited lines: rules report one occurrence of a
  pattern per class (NL303's first rebinding), so fixing it reveals the next, which was
  in the file all along and is fixed by the next pass. Anything else is a new finding,
  and the fixes are rejected.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..findings import Edit, Finding

_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class LineMap:
    """How one file's lines move under a set of edits (computed on the old text)."""

    edits: tuple[Edit, ...]

    def _delta(self, e: Edit) -> int:
        return len(_BREAK.findall(e.replacement)) - (e.end_line - e.line)

    def new_line(self, line: int) -> int | None:
        """Where an old line went; None when an edit changed it."""
        shift = 0
        for e in self.edits:
            if e.line <= line <= e.end_line:
                return None
            if e.end_line < line:
                shift += self._delta(e)
        return line + shift

    def edited(self, new_line: int) -> bool:
        """Whether a line of the new text holds text an edit wrote."""
        shift = 0
        for e in sorted(self.edits, key=lambda e: (e.line, e.column)):
            start = e.line + shift
            if start <= new_line <= start + len(_BREAK.findall(e.replacement)):
                return True
            shift += self._delta(e)
        return False


def _key(f: Finding, line: int) -> tuple:
    return f.path, f.code, line, f.column


def check_fixes(before: Sequence[Finding], after: Sequence[Finding], edits: Mapping[str, Sequence[Edit]],
                fixed: Sequence[Finding]) -> str | None:
    """None when ``fixed`` are gone and nothing new appeared; else why not (one line)."""
    maps = {path: LineMap(tuple(es)) for path, es in edits.items()}

    def moved(f: Finding) -> int | None:
        m = maps.get(f.path)
        return f.line if m is None else m.new_line(f.line)

    after_keys = Counter(_key(a, a.line) for a in after)
    fixed_ids = {id(f) for f in fixed}
    persisting: Counter = Counter()
    gone_unfixed: Counter = Counter()
    for b in before:
        line = moved(b)
        key = None if line is None else _key(b, line)
        if key is not None and after_keys[key] - persisting[key] > 0:
            persisting[key] += 1
            if id(b) in fixed_ids:
                return f"{b.code} at {b.path}:{b.line} is still reported after its fix"
        elif id(b) not in fixed_ids:
            gone_unfixed[b.code] += 1
    seen: Counter = Counter()
    fixed_codes = {f.code for f in fixed}
    for a in after:
        key = _key(a, a.line)
        if seen[key] < persisting[key]:
            seen[key] += 1
            continue
        if gone_unfixed[a.code] > 0:
            gone_unfixed[a.code] -= 1
            continue
        m = maps.get(a.path)
        if a.code in fixed_codes:
            if m is None or not m.edited(a.line):
                continue   # revealed: the rule's next occurrence, in text no fix touched
            return f"{a.code} is still reported at {a.path}:{a.line} after its fix: {a.message}"
        return f"the fix would add {a.code} at {a.path}:{a.line}: {a.message}"
    return None
