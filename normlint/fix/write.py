"""Write fixed files back: same encoding (PEP 263 cookie, BOM), line endings and mode,
atomically (a temporary file in the same directory, then a rename)."""

from __future__ import annotations

import codecs
import io
import os
import tempfile
import tokenize
from pathlib import Path

from ..findings import Finding
from ..static.reading import decode_source


def encode_like(original: bytes, text: str) -> bytes:
    """``text`` in the encoding ``original`` was in (a UTF-8 BOM stays)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(original).readline)
    except SyntaxError:
        encoding = "utf-8"
    if encoding == "utf-8-sig" or original.startswith(codecs.BOM_UTF8):
        return codecs.BOM_UTF8 + text.encode("utf-8")
    return text.encode(encoding)


def write_fixed(path: str, expected: str, new_text: str) -> str | None:
    """Replace the file's text ``expected`` by ``new_text``; None, or why it was not written.

    The file is read again first: if it changed since it was checked, it is left alone.
    """
    target = Path(path).resolve()          # through a symlink, to the file it points to
    try:
        original = target.read_bytes()
        mode = target.stat().st_mode
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    current = decode_source(original, path)
    if isinstance(current, Finding) or current != expected:
        return f"{path} changed while it was being fixed; left alone"
    try:
        data = encode_like(original, new_text)
    except UnicodeEncodeError as exc:
        return f"cannot encode the fixed {path} in its declared encoding: {exc.reason}"
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".normlint")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, mode & 0o7777)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return None
