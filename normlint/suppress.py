"""``# noqa`` comments: line-level, file-level, and the NL901 report of unused ones.

Comments are found with the tokenizer, so ``"# noqa"`` inside a string is not a comment.
Codes that are not normlint's (``# noqa: E501``) belong to other linters and are left alone.

A code list is read as ruff reads it: after ``noqa:`` come codes separated by commas or
whitespace, up to the first item that is not a code (the rest is a comment). A colon
announces a list, so a list with no code in it (``# noqa:``, ``# noqa: NL``) is malformed:
it suppresses nothing and is reported as NL901, never taken for a bare ``# noqa``.
Whitespace before the colon and a full-width colon are read as a colon.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field

from .findings import Engine, Finding
from .registry import get_rule

_DIRECTIVE = re.compile(r"#\s*(?P<file>normlint\s*[:\uff1a]\s*)?noqa(?![\w-])(?P<rest>.*)",
                        re.IGNORECASE | re.DOTALL)
_LIST_START = re.compile(r"\s*[:\uff1a]")
_CODE = re.compile(r"[A-Za-z]+[0-9]+")
_SEPARATORS = re.compile(r"[\s,\uff0c]+")
_ANY_NOQA = re.compile(r"noqa", re.IGNORECASE)
MALFORMED = ("malformed `noqa` directive: expected a comma-separated list of codes after the "
             "colon (e.g. `# noqa: NL303`), got {got!r}; it suppresses nothing")


def _codes(rest: str) -> tuple[str, ...] | None:
    """The codes a directive names (None: every code), from the text after ``noqa``."""
    start = _LIST_START.match(rest)
    if start is None:
        first = rest.split(None, 1)[0] if rest.strip() else ""
        if not _CODE.fullmatch(first):   # `# noqa`, `# noqa  because ...`: every code
            return None
        body = rest                      # `# noqa NL303`: a list that lost its colon
    else:
        body = rest[start.end():]
    codes = []
    for item in _SEPARATORS.split(body):
        if not item:
            continue
        if not _CODE.fullmatch(item):
            break                        # the rest is a comment
        codes.append(item.upper())
    return tuple(codes)


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
    malformed: list[tuple[int, int, str]] = field(default_factory=list)   # line, column, text

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
            m = _DIRECTIVE.search(tok.string)
            if m is None:
                continue
            line, column = tok.start[0], tok.start[1] + 1
            codes = _codes(m.group("rest"))
            if codes == ():
                sup.malformed.append((line, column, m.group(0)))
            elif m.group("file"):
                if codes is None:
                    sup.file_all = True
                else:
                    file_codes.update(codes)
            else:
                sup.lines[line] = LineNoqa(line=line, column=column, codes=codes)
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
        out = [Finding(code="NL901", name=rule.name, severity=rule.severity, engine=Engine.STATIC,
                       path=path, line=line, column=column, message=MALFORMED.format(got=text))
               for line, column, text in self.malformed]
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
