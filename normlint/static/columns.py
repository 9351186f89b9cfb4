"""Columns as users and editors count them: characters, not the UTF-8 bytes ``ast`` gives.

CPython's ``ast`` reports ``col_offset`` as a byte offset into the UTF-8 encoded line, so
a non-ASCII character earlier on the line (``größe = 1; x = norm(x)``) shifts every column
after it. Rules report ``ast`` positions as they are; the engine converts each finding
once, here, before suppression, fixes, the cache and every reporter see it (ruff, the
LSP and the SARIF consumers all count characters).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

from ..findings import Finding
from ..positions import split_lines


def byte_to_char_column(line_text: str, byte_col: int) -> int:
    """The character offset of the 0-based UTF-8 byte offset ``byte_col`` into ``line_text``."""
    if line_text.isascii():
        return byte_col
    return len(line_text.encode("utf-8")[:max(byte_col, 0)].decode("utf-8", errors="ignore"))


def character_columns(findings: Sequence[Finding], texts: Mapping[str, str]) -> list[Finding]:
    """``findings`` with their 1-based byte columns (``end_column`` too) turned into 1-based
    character columns, in the text of their file in ``texts`` (path -> text); a finding of
    a file not in ``texts``, or of an ASCII file, is kept as it is."""
    lines: dict[str, list[str]] = {}

    def convert(path: str, line: int | None, column: int | None) -> int | None:
        if line is None or column is None:
            return column
        if path not in lines:
            lines[path] = split_lines(texts[path])
        text = lines[path][line - 1] if 0 < line <= len(lines[path]) else ""
        return byte_to_char_column(text, column - 1) + 1

    return [f if f.path not in texts or texts[f.path].isascii() else
            replace(f, column=convert(f.path, f.line, f.column),
                    end_column=convert(f.path, f.end_line, f.end_column))
            for f in findings]
