"""Turn a path into a ParsedFile, or into an NL900 finding that says why it could not be."""

from __future__ import annotations

import ast
import io
import os
import re
import stat
import tokenize
import warnings
from pathlib import Path

from ..findings import Engine, Finding
from ..positions import split_lines
from ..registry import get_rule
from .columns import byte_to_char_column
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
        # characters before the bad byte on its line (they decode: it is the first bad one)
        before = data[data.rfind(b"\n", 0, exc.start) + 1: exc.start]
        column = len(before.decode(encoding, errors="replace")) + 1
        return syntax_finding(path, f"cannot decode as {encoding} at byte {exc.start}: {exc.reason}; "
                                    f"declare the encoding with a `# -*- coding: ... -*-` line",
                              line=line, column=column)
    except LookupError:
        return syntax_finding(path, f"unknown encoding {encoding!r} in the coding cookie")
    return text.lstrip("\ufeff")


def parse_source(text: str, path: str) -> ParsedFile | Finding:
    try:
        # The compiler warns about the checked code (`"\d"`, `1()`, `is` with a literal) on
        # stderr; that is the user's business, not a line of normlint's output.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        msg = exc.msg or "invalid syntax"
        return syntax_finding(path, f"SyntaxError: {msg}", *syntax_error_position(exc, text))
    except (RecursionError, MemoryError):
        return syntax_finding(path, "the file is too deeply nested to parse")
    except ValueError as exc:
        return syntax_finding(path, f"cannot parse: {exc}")
    return ParsedFile(path=path, text=text, tree=tree)


# CPython's tokenizer counts characters in its error columns, except where it passes a
# known range along as it is: a UTF-8 byte offset (Parser/tokenizer/helpers.c,
# _syntaxerror_range). Those errors: leading zeros (3.10 on), incompatible string
# prefixes (3.14 on).
_BYTE_COLUMN_ERRORS = re.compile(r"leading zeros in decimal integer literals|'\w+' and '\w+' prefixes are incompatible")


def syntax_error_position(exc: SyntaxError, text: str) -> tuple[int, int]:
    """The 1-based line and character column of ``exc``, raised by ``ast.parse(text)``."""
    line, column = exc.lineno or 1, exc.offset or 1
    if exc.msg and _BYTE_COLUMN_ERRORS.match(exc.msg):
        lines = split_lines(text)
        if 0 < line <= len(lines):
            column = byte_to_char_column(lines[line - 1], column - 1) + 1
    return line, column


class NotRegularFile(OSError):
    """A FIFO, device, socket or directory where a regular file was expected."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> NotRegularFile:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return NotRegularFile(f"not a regular file ({kind})")


def read_regular_file(file: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a regular file (more than ``limit`` means too large).

    Anything else raises OSError before a byte is read (``NotRegularFile`` for FIFOs,
    devices, sockets, directories): reading a FIFO blocks until a writer comes, and a
    symlink to /dev/zero reports size 0 and never ends. The open is non-blocking and the
    type is checked again on the open descriptor, so a file swapped in between cannot hang
    the run either.
    """
    st = os.stat(file)
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(st.st_mode)
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(st.st_mode)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_source(file: Path, display: str) -> tuple[bytes, str] | Finding:
    """The file's bytes (for hashing) and decoded text, or the NL900 that says why not."""
    try:
        data = read_regular_file(file, MAX_FILE_BYTES)
    except NotRegularFile as exc:
        return syntax_finding(display, f"cannot read file: {exc}")
    except (OSError, RuntimeError) as exc:   # RuntimeError: a symlink loop on older Pythons
        return syntax_finding(display, f"cannot read file: {getattr(exc, 'strerror', None) or exc}")
    if len(data) > MAX_FILE_BYTES:
        return syntax_finding(display, f"file is too large to check (> {MAX_FILE_BYTES / 2**20:.0f} MiB)")
    text = decode_source(data, display)
    if isinstance(text, Finding):
        return text
    return data, text
