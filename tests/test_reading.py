"""NL900: every way a file can fail to be Python source is a finding, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from normlint.static import reading
from normlint.static.reading import parse_source, read_source
from normlint.static.source import ParsedFile

from .helpers import write


def load_file(path: Path, display: str):
    """What the engine does with each file: read (bytes and text), then parse."""
    loaded = read_source(path, display)
    return loaded if not isinstance(loaded, tuple) else parse_source(loaded[1], display)


def _load(path: Path):
    return load_file(path, path.name)


def test_valid_file_parses(tmp_path):
    assert isinstance(_load(write(tmp_path, "a.py", "x = 1\n")), ParsedFile)


def test_empty_file_parses(tmp_path):
    parsed = _load(write(tmp_path, "empty.py", ""))
    assert isinstance(parsed, ParsedFile) and parsed.text == ""


def test_pep263_cookie_is_honoured(tmp_path):
    parsed = _load(write(tmp_path, "l1.py", "# -*- coding: latin-1 -*-\nname = 'café'\n".encode("latin-1")))
    assert isinstance(parsed, ParsedFile) and "café" in parsed.text


def test_utf8_bom(tmp_path):
    parsed = _load(write(tmp_path, "bom.py", b"\xef\xbb\xbfx = 1\n"))
    assert isinstance(parsed, ParsedFile) and parsed.text == "x = 1\n"


@pytest.mark.parametrize("content, line, col, needle", [
    (b"def f(:\n", 1, 7, "SyntaxError: invalid syntax"),
    (b"x = 1\nname = 'caf\xe9'\n", 2, 12, "cannot decode as utf-8 at byte 17"),
    (b"# coding: klingon\nx = 1\n", 1, 1, "unknown encoding: klingon"),
    (b"\x7fELF\x02\x01\x01\x00\x00", 1, 1, "binary file"),
    (b"if True:\n  x = 1\n    y = 2\n", 3, 4, "SyntaxError: unexpected indent"),
    (b"(" * 300 + b")" * 300 + b"\n", 1, 1, None),
])
def test_unparsable_is_nl900(tmp_path, content, line, col, needle):
    result = _load(write(tmp_path, "bad.py", content))
    assert not isinstance(result, ParsedFile)
    assert result.code == "NL900" and result.severity.value == "error"
    if needle is not None:
        assert (result.line, result.column) == (line, col)
        assert needle in result.message


@pytest.mark.parametrize("content, col, needle", [
    # CPython gives this tokenizer error's column in UTF-8 bytes (18 here): `größe` is 5
    # characters but 7 bytes
    ("größe = 1; x = 01\n".encode(), 16, "SyntaxError: leading zeros"),
    # the other tokenizer errors already count characters: kept as they are
    ("größe = 1; x = 1abc\n".encode(), 16, "SyntaxError: invalid decimal literal"),
    ("größe = 'café'; x = 1 $\n".encode(), 23, "SyntaxError: invalid syntax"),
    # an undecodable byte: the characters before it on its line (the byte offset is 14)
    ("größe = 'caf".encode() + b"\xe9'\n", 13, "cannot decode as utf-8 at byte 14"),
])
def test_nl900_column_counts_characters_on_a_non_ascii_line(tmp_path, content, col, needle):
    result = _load(write(tmp_path, "bad.py", content))
    assert result.code == "NL900" and needle in result.message
    assert (result.line, result.column) == (1, col)


def test_unreadable_file(tmp_path, monkeypatch):
    f = write(tmp_path, "locked.py", "x = 1\n")

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reading.os, "open", deny)
    result = _load(f)
    assert result.code == "NL900" and result.message == "cannot read file: Permission denied"


def test_very_large_file(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 64)
    result = _load(write(tmp_path, "huge.py", "x = 1\n" * 100))
    assert result.code == "NL900" and "too large" in result.message


def test_directory_named_like_a_file(tmp_path):
    (tmp_path / "pkg.py").mkdir()
    result = load_file(tmp_path / "pkg.py", "pkg.py")
    assert result.code == "NL900" and result.message.startswith("cannot read file")
