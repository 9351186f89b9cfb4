"""The rule pages: ``rules/NLxxx.md`` in a checkout, ``normlint/_rules/`` inside the wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def pages_dir() -> Path:
    bundled = _PACKAGE_DIR / "_rules"          # where the wheel puts them
    if bundled.is_dir():
        return bundled
    return _PACKAGE_DIR.parent / "rules"       # a source checkout or editable install


def page_path(code: str) -> Path:
    return pages_dir() / f"{code}.md"


def read_page(code: str) -> str | None:
    try:
        return page_path(code).read_text(encoding="utf-8")
    except OSError:
        return None
