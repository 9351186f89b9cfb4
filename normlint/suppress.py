"""``# noqa`` comments: line-level, file-level, and the NL901 report of unused ones.

Comments are found with the tokenizer, so ``"# noqa"`` inside a string is not a comment.
Codes that are not normlint's (``# noqa: E501``) belong to other linters and are left alone.

A code list is read as ruff reads it: after ``noqa:`` come codes separated by commas or
whitespace, up to the first item that is not a code (the rest is a comment). A colon
announces a list, so a list with no code in it (``# noqa:``, ``# noqa: NL``) is malformed:
it suppresses nothing, is never taken for a bare ``# noqa``, and is reported as NL901
when it is empty or starts like a normlint code (``# noqa: 401`` is another linter's).
Whitespace before the colon and a full-width colon are read as a colon.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

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


def _meant_for_normlint(rest: str) -> bool:
    """A list with no code is ours to report only when it is empty or starts like one of our
    codes (``# noqa: NL``): ``# noqa: 401`` is another linter's typo, and it suppresses
    nothing of ours either way."""
    body = _LIST_START.sub("", rest, count=1).strip()
    return not body or body[:2].upper() == "NL"


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
                if m.group("file") or _meant_for_normlint(m.group("rest")):
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
                                   column=noqa.column, message=message,
                                   fix_facts=(("code", code),)))   # the code its fix removes
        return out


# ---------------------------------------------------------------------- noqa the audit used
# `normlint audit` honours `# noqa` too, on lines `check` may see nothing wrong with; it
# records each line noqa it used here (in the project's cache folder), and `check` does not
# report those as unused. A record whose line no longer carries that noqa is ignored.
AUDIT_NOQA_FILE = "audit-noqa.json"


def record_audit_noqa(cache_dir: Path, used: dict[str, set[tuple[int, str]]]) -> None:
    """Add (absolute path -> {(line, code)}) to the record; a read-only tree is left alone."""
    record = _read_audit_noqa(cache_dir)
    for path, pairs in used.items():
        record.setdefault(path, set()).update(pairs)
    data = {p: sorted([line, code] for line, code in pairs) for p, pairs in sorted(record.items())}
    try:
        if not cache_dir.exists():
            cache_dir.mkdir(parents=True)
            (cache_dir / ".gitignore").write_text("# Automatically created by normlint.\n*\n")
        (cache_dir / AUDIT_NOQA_FILE).write_text(json.dumps(data, indent=0))
    except OSError:
        pass


def _read_audit_noqa(cache_dir: Path | None) -> dict[str, set[tuple[int, str]]]:
    if cache_dir is None:
        return {}
    try:
        data = json.loads((cache_dir / AUDIT_NOQA_FILE).read_text())
        return {str(p): {(int(line), str(code)) for line, code in pairs} for p, pairs in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}   # no record, or not one of ours: nothing is exempt


def drop_noqa_used_by_audit(findings: list[Finding], cache_dir: Path | None) -> list[Finding]:
    """``check``'s NL901 findings minus the noqa directives the audit recorded as used."""
    record = _read_audit_noqa(cache_dir)
    if not record:
        return findings
    out = []
    for f in findings:
        code = dict(f.fix_facts).get("code")
        pairs = record.get(str(Path(f.path).resolve()), ())
        if f.code == "NL901" and code and (f.line, code) in pairs and _still_there(f.path, f.line, code):
            continue
        out.append(f)
    return out


def _still_there(path: str, line: int, code: str) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            for number, text in enumerate(fh, 1):
                if number == line:
                    return "noqa" in text.lower() and code.lower() in text.lower()
    except (OSError, UnicodeDecodeError):
        pass
    return False
