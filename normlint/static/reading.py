"""Turn a path into a ParsedFile, or into an NL900 finding that says why it could not be."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

from ..findings import Engine, Finding
from ..registry import get_rule
from .source import ParsedFile

MAX_FILE_BYTES = 10 * 1024 * 1024


def syntax_finding(path: str, message: str, line: int = 1, column: int = 1) -> Finding:
    rule = get_rule("NL900")
    return Finding(code="NL900", name=rule.name, severity=rule.severity, engine=Engine.STATIC,
                   path=path, line=max(line, 1), column=max(column, 1), message=message)


def decode_source(data: bytes, path: str) -> str | Finding:
    if b"\0" in data:
        return syntax_finding(path, "binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        # detect_encoding also fails on non-UTF-8 bytes in the first two lines with no
        # cookie; decoding as UTF-8 below then names the byte, which is the useful message.
        if b"coding" in b"\n".join(data.splitlines()[:2]):
            return syntax_finding(path, f"cannot determine the encoding: {getattr(exc, 'msg', exc)}")
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return syntax_finding(path, f"cannot decode as {encoding} at byte {exc.start}: {exc.reason}; "
                                    f"declare the encoding with a `# -*- coding: ... -*-` line",
                              line=line, column=column)
    except LookupError:
        return syntax_finding(path, f"unknown encoding {encoding!r} in the coding cookie")
    return text.lstrip("\ufeff")


def parse_source(text: str, path: str) -> ParsedFile | Finding:
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        msg = exc.msg or "invalid syntax"
        return syntax_finding(path, f"SyntaxError: {msg}", exc.lineno or 1, exc.offset or 1)
    except (RecursionError, MemoryError):
        return syntax_finding(path, "the file is too deeply nested to parse")
    except ValueError as exc:
        return syntax_finding(path, f"cannot parse: {exc}")
    return ParsedFile(path=path, text=text, tree=tree)


def read_source(file: Path, display: str) -> tuple[bytes, str] | Finding:
    """The file's bytes (for hashing) and decoded text, or the NL900 that says why not."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            return syntax_finding(display, f"file is too large to check ({size / 2**20:.1f} MiB > "
                                           f"{MAX_FILE_BYTES / 2**20:.0f} MiB)")
        data = file.read_bytes()
    except OSError as exc:
        return syntax_finding(display, f"cannot read file: {exc.strerror or exc}")
    text = decode_source(data, display)
    if isinstance(text, Finding):
        return text
    return data, text
