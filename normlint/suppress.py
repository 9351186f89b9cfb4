"""``# noqa`` comments: line-level, file-level, and the NL901 report of unused ones.

Comments are found with the tokenizer, so ``"# noqa"`` inside a string is not a comment.
Codes that are not normlint's (``# noqa: E501``) belong to other linters and are left alone.
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
                                   column=noqa.column, message=message,
                                   fix_facts=(("code", code),)))
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
