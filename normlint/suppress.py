"""``# noqa`` comments: line-level, file-level, and the NL901 report of unused ones.

Comments are found with the tokenizer, so ``"# noqa"`` inside a string is not a comment.
Codes that are not normlint's (``# noqa: E501``) belong to other linters and are left alone.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field

from .findings import Engine, Finding
from .registry import get_rule

_LINE_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?",
                        re.IGNORECASE)
_FILE_NOQA = re.compile(r"#\s*normlint\s*:\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?",
                        re.IGNORECASE)
_CODE = re.compile(r"[A-Za-z]+[0-9]+")
_ANY_NOQA = re.compile(r"noqa", re.IGNORECASE)


@dataclass
class LineNoqa:
    line: int
    column: int                      # 1-based column of the '#'
    codes: tuple[str, ...] | None    # None: a bare noqa comment, every code on the line
    used: set[str] = field(default_factory=set)


@dataclass
class Suppressions:
    lines: dict[int, LineNoqa] = field(default_factory=dict)
    file_all: bool = False
    file_codes: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> "Suppressions":
        sup = cls()
        if not _ANY_NOQA.search(text):
            return sup  # the tokenizer is pure Python and slow: most files need none of it
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        except (tokenize.TokenError, SyntaxError, IndentationError):
            return sup  # unparsable: the file gets NL900 and nothing else to suppress
        file_codes: set[str] = set()
        for tok in tokens:
            if tok.type != tokenize.COMMENT:
                continue
            m = _FILE_NOQA.search(tok.string)
            if m:
                if m.group("codes"):
                    file_codes.update(c.upper() for c in _CODE.findall(m.group("codes")))
                else:
                    sup.file_all = True
                continue
            m = _LINE_NOQA.search(tok.string)
            if m:
                codes = m.group("codes")
                sup.lines[tok.start[0]] = LineNoqa(
                    line=tok.start[0], column=tok.start[1] + 1,
                    codes=None if codes is None else tuple(c.upper() for c in _CODE.findall(codes)))
        sup.file_codes = frozenset(file_codes)
        return sup

    def suppresses(self, finding: Finding) -> bool:
        if self.file_all or finding.code in self.file_codes:
            return True
        noqa = self.lines.get(finding.line)
        if noqa is None:
            return False
        if noqa.codes is None:
            return True
        if finding.code in noqa.codes:
            noqa.used.add(finding.code)
            return True
        return False

    def unused(self, path: str, enabled: frozenset[str]) -> list[Finding]:
        """NL901 for each normlint code in a ``# noqa:`` list that suppressed nothing.

        Only codes that this run could have reported count: a noqa for a disabled rule, or
        for a runtime-only rule in a static run, is not "unused", it is just not exercised.
        """
        if "NL901" not in enabled or self.file_all:
            return []
        rule = get_rule("NL901")
        out = []
        for noqa in self.lines.values():
            for code in noqa.codes or ():
                if not code.startswith("NL") or code in noqa.used or code in self.file_codes:
                    continue
                try:
                    target = get_rule(code)
                except KeyError:
                    message = f"`# noqa: {code}` names an unknown normlint code"
                else:
                    if code not in enabled or "static" not in target.engines:
                        continue
                    message = f"unused `noqa` directive: no {code} ({target.name}) on this line"
                out.append(Finding(code="NL901", name=rule.name, severity=rule.severity,
                                   engine=Engine.STATIC, path=path, line=noqa.line,
                                   column=noqa.column, message=message))
        return out
