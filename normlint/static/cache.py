"""The result cache, like ruff's: findings per component keyed by content, engine and config.

Layout: ``<cache dir>/<version>/<key[:2]>/<key>.json`` holds the findings of one component
(a group of files that can see each other's classes), ``<version>/facts.json`` the
parse-free facts of every file seen, by content hash, and ``<version>/project.json`` each
project file's import summary for the cross-file context (static/project.py), by content
hash, for the engine fingerprint that derived it. A key covers the content of every
file in the component, the normlint version and its source files, and the effective
configuration, so an edit, a config change or an upgrade re-analyses exactly what it can
affect. The directory carries a CACHEDIR.TAG (backup tools skip it) and a .gitignore.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

from ..findings import Edit, Engine, Finding, Fix, Severity
from .facts import FileFacts
from .reading import read_regular_file

MAX_CACHE_FILE_BYTES = 1 << 30

CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                "# This file is a cache directory tag created by normlint.\n"
                "# For information about cache directory tags see https://bford.info/cachedir/\n")


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def engine_fingerprint() -> str:
    """The normlint version plus the size and mtime of its own source files.

    The version alone would keep serving stale results to anyone running normlint from a
    checkout while changing it; stat-ing ~60 files costs well under a millisecond.
    """
    from .. import __version__

    package = Path(__file__).resolve().parent.parent
    h = hashlib.blake2b(__version__.encode(), digest_size=16)
    for f in sorted(package.rglob("*.py")):
        st = f.stat()
        h.update(f"{f.relative_to(package)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def component_key(engine: str, config_fp: str, members: Iterable[tuple[str, str]]) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(engine.encode())
    h.update(config_fp.encode())
    for path, digest in sorted(members):
        # surrogateescape: a file name that is not UTF-8 keys by its bytes
        h.update(f"\0{path}\0{digest}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _str_pairs(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in value)


def _finding_from_dict(d: dict) -> Finding:
    """Raises ValueError for anything a Finding could not have been written as."""
    if not isinstance(d, dict):
        raise ValueError("not an object")
    strings = ("code", "name", "path", "message")
    ints = ("line", "column")
    optional = {"end_line": int, "end_column": int, "module": str}
    if (not all(isinstance(d.get(k), str) for k in strings)
            or not all(type(d.get(k)) is int for k in ints)
            or not all(d.get(k) is None or type(d.get(k)) is t for k, t in optional.items())
            or not _str_pairs(d.get("fix_facts", []))):
        raise ValueError("not a finding")
    return Finding(code=d["code"], name=d["name"], severity=Severity(d.get("severity")),
                   engine=Engine(d.get("engine")), path=d["path"], line=d["line"], column=d["column"],
                   message=d["message"], end_line=d.get("end_line"), end_column=d.get("end_column"),
                   module=d.get("module"), fix=_fix_from_dict(d.get("fix")),
                   fix_facts=tuple((k, v) for k, v in d.get("fix_facts", ())))


def _facts_from_row(row) -> FileFacts:
    """Raises ValueError unless ``row`` is ``[module, [[modules, names], ...], relevant]``."""
    if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str)
            and isinstance(row[2], bool) and isinstance(row[1], list)
            and all(isinstance(i, list) and len(i) == 2 and all(
                isinstance(ws, list) and all(isinstance(w, str) for w in ws) for ws in i)
                for i in row[1])):
        raise ValueError("not file facts")
    module, imports, relevant = row
    return FileFacts(module=module, relevant=relevant,
                     imports=tuple((frozenset(m), frozenset(n)) for m, n in imports))


def _read_json(path: Path):
    """The parsed JSON of a cache file. Raises OSError or ValueError for anything else: a
    cache is only ever a hint, so a damaged, truncated, hand-edited or foreign file is a miss."""
    data = read_regular_file(path, MAX_CACHE_FILE_BYTES)
    if len(data) > MAX_CACHE_FILE_BYTES:
        raise ValueError("too large")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _fix_from_dict(d) -> Fix | None:
    """Fixes are cached with their findings, so a warm run never needs libcst. Raises
    ValueError for anything a Fix could not have been written as."""
    if d is None:
        return None
    edit_fields = {"line": int, "column": int, "end_line": int, "end_column": int, "replacement": str}
    if not (isinstance(d, dict) and isinstance(d.get("message"), str) and isinstance(d.get("applicability"), str)
            and isinstance(d.get("edits"), list)
            and all(isinstance(e, dict) and set(e) == set(edit_fields)
                    and all(type(e[k]) is t for k, t in edit_fields.items()) for e in d["edits"])):
        raise ValueError("not a fix")
    return Fix(message=d["message"], applicability=d["applicability"],
               edits=tuple(Edit(**e) for e in d["edits"]))


class Cache:
    def __init__(self, root: Path):
        from .. import __version__

        self.root = root
        self.dir = root / __version__
        self._facts: dict[str, FileFacts] | None = None
        self._facts_dirty = False
        self._index: dict[str, list] | None = None
        self.writable = True

    def _ensure_root(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text(CACHEDIR_TAG)
            (self.root / ".gitignore").write_text("# Automatically created by normlint.\n*\n")

    def _write(self, path: Path, text: str) -> None:
        if not self.writable:
            return
        try:
            self._ensure_root()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)     # atomic: a parallel run never reads half a file
        except OSError:
            self.writable = False     # a read-only checkout still gets its results

    # -- facts ------------------------------------------------------------------------

    def facts(self) -> dict[str, FileFacts]:
        if self._facts is None:
            self._facts = {}
            try:
                raw = _read_json(self.dir / "facts.json")
                if not isinstance(raw, dict):
                    raise ValueError("not an object")
                self._facts = {digest: _facts_from_row(row) for digest, row in raw.items()}
            except (OSError, ValueError):
                self._facts = {}
        return self._facts

    def put_facts(self, digest: str, facts: FileFacts) -> None:
        self.facts()[digest] = facts
        self._facts_dirty = True

    def save_facts(self, keep: set[str]) -> None:
        """Write the facts of this run's files (older ones are dropped, so it cannot grow forever)."""
        facts = self.facts()
        if not self._facts_dirty and set(facts) <= keep:
            return
        data = {d: [f.module, [[sorted(m), sorted(n)] for m, n in f.imports], f.relevant]
                for d, f in facts.items() if d in keep}
        self._write(self.dir / "facts.json", json.dumps(data))

    # -- project index ----------------------------------------------------------------
    # The cross-file context needs, for every project file, its imports and which of them
    # each top-level definition uses (static/project.py). Deriving those by regular
    # expressions is most of a warm run on a large project, so they are kept by content
    # digest, for the engine that derived them.

    def project_index(self) -> dict[str, list]:
        if self._index is None:
            self._index = {}
            try:
                raw = _read_json(self.dir / "project.json")
                if isinstance(raw, dict) and raw.get("engine") == engine_fingerprint() \
                        and isinstance(raw.get("files"), dict):
                    self._index = raw["files"]
            except (OSError, ValueError):
                pass
        return self._index

    def save_project_index(self, rows: dict[str, list]) -> None:
        """Keep this run's rows (older ones are dropped, as for the facts); unchanged: no write."""
        if rows == self.project_index():
            return
        self._index = rows
        self._write(self.dir / "project.json", json.dumps({"engine": engine_fingerprint(), "files": rows}))

    # -- findings ---------------------------------------------------------------------

    def _entry(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[Finding] | None:
        try:
            data = _read_json(self._entry(key))
            if not isinstance(data, list):
                raise ValueError("not a list")
            return [_finding_from_dict(d) for d in data]
        except (OSError, ValueError):
            return None

    def put(self, key: str, findings: list[Finding]) -> None:
        rows = []
        for f in findings:
            d = asdict(f)
            d["severity"], d["engine"] = f.severity.value, f.engine.value
            rows.append(d)
        self._write(self._entry(key), json.dumps(rows))
