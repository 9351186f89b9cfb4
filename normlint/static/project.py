"""The project around the checked files: the files their imports name, read for context.

pre-commit passes only the staged files. A commit that touches ``model.py`` alone must
still be checked against the ``Block`` it imports from ``blocks.py``, or NL302 (a pre-norm
stack without a final norm) cannot be seen. So the imports of a checked file that name
modules inside the project are followed to their files: those files are analysed with
the checked ones (their classes resolve) but nothing is reported for them, and a file
checked alone gets the findings it gets when the whole project is checked.

Imports are followed by name, not by file: ``from .blocks import Block`` reads blocks.py
for ``Block``, and from there only the imports that ``Block`` uses in its bases and in the
methods that build and run its layers (``__init__``, ``forward`` and what they call), or
the import that re-exports it from a package ``__init__``; type hints and decorators are
not followed, and ``logging.get_logger`` needs only ``get_logger`` of ``logging``. The
analysis then gets an excerpt of each such file: its imports, one-line constants and the
wanted definitions. This keeps a one-file check of a model in a large package
(transformers) to the few dozen files its classes are made of, instead of everything its
utilities import.

Reading is bounded: only files under the project root (the configuration's directory, or
the git root), at most ``MAX_DEPTH`` imports away from a checked file and
``MAX_CONTEXT_FILES`` in all. Nothing is imported or executed; imports and top-level
definitions are found with regular expressions, without parsing (an excerpt that does not
parse is replaced by the whole file).
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from .facts import _FROM_IMPORT, _IMPORT, _WORD, lines

MAX_DEPTH = 3
MAX_CONTEXT_FILES = 200
MAX_STAR_IMPORTS = 8
_SUFFIXES = (".py", ".pyi")
ALL = None   # "every name of the module": a checked file, or a module imported whole
_UNSET = object()

# line-start patterns, searched in facts.lines(text)
_DEFINITION = re.compile(r"\n(async[ \t]+def|def|class)[ \t]+(\w+)")
_ASSIGNED = re.compile(r"\n(\w+)[ \t]*(?::[^=\n]*)?=(?!=)")
# A line that starts a top-level statement: anything at column 0 but a comment, a closing
# bracket or the next clause of a compound statement (except, else, ...).
_TOP_LEVEL_LINE = re.compile(r"\n(?!(?:except|else|elif|finally)\b)[^\s#)\]}]")


@dataclass(frozen=True)
class _Import:
    module: str                  # as written, leading dots included: ".blocks"
    name: str | None             # the imported name (None: `import a.b`, or a star import)
    # when what is imported is a module: the attributes the code uses on it
    # (`logging.get_logger` -> {"get_logger"}); None: all of it
    attributes: frozenset[str] | None = None


def _import_row(i: _Import) -> list:
    return [i.module, i.name, None if i.attributes is None else sorted(i.attributes)]


def _import_of(row) -> _Import:
    module, name, attributes = row
    return _Import(str(module), None if name is None else str(name),
                   None if attributes is None else frozenset(str(a) for a in attributes))


@dataclass
class ModuleSummary:
    """What following imports by name needs to know about one file."""

    text: str = ""
    imports: dict[str, _Import] = field(default_factory=dict)   # local name -> where it comes from
    stars: list[str] = field(default_factory=list)               # modules star-imported
    # top-level class/def -> (start with decorators, end, is a class), as offsets in text
    spans: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    defined: set[str] = field(default_factory=set)               # other top-level names
    _bodies: dict[str, str] = field(default_factory=dict)
    _edges: dict[str | None, list[_Import]] = field(default_factory=dict)

    def body(self, name: str) -> str | None:
        """The text of a top-level class (cut to its structural methods) or function."""
        if name not in self._bodies:
            span = self.spans.get(name)
            if span is None:
                return None
            begin, end, is_class = span
            self._bodies[name] = _structural(self.text[begin:end]) if is_class else self.text[begin:end]
        return self._bodies[name]

    def excerpt(self, names: set[str] | None) -> str:
        """What the analysis needs of this file read for ``names``: its imports and other
        top-level statements, the wanted classes (their structural methods) and functions;
        other classes and functions are left out. ``ALL``: the whole text.

        Found with regular expressions, so a file laid out unusually can give text that
        does not parse: the engine then analyses the whole file instead.
        """
        if names is ALL:
            return self.text
        pieces = []
        pos = 0
        for name, (begin, end, _) in sorted(self.spans.items(), key=lambda kv: kv[1][0]):
            if begin < pos:
                continue
            pieces.append(_statements(self.text[pos:begin]))
            if name in names:
                pieces.append(self.body(name))
            pos = end
        pieces.append(_statements(self.text[pos:]))
        return "".join(piece if piece.endswith("\n") or not piece else piece + "\n" for piece in pieces)

    @classmethod
    def scan(cls, text: str) -> "ModuleSummary":
        out = cls(text)
        searched = lines(text)
        for module, clause in _FROM_IMPORT.findall(searched):
            clause = clause.replace("\\\n", " ").strip("() \t\n")
            for part in clause.split(","):
                words = part.split()
                if not words:
                    continue
                if words[0] == "*":
                    out.stars.append(module)
                elif _WORD.fullmatch(words[0]):
                    local = words[2] if len(words) == 3 and words[1] == "as" else words[0]
                    out.imports[local] = _Import(module, words[0])
        for clause in _IMPORT.findall(searched):
            for part in clause.split(","):
                words = part.strip("()\\ \t").split()
                if not words:
                    continue
                local = words[2] if len(words) == 3 and words[1] == "as" else words[0].split(".")[0]
                # `import a.b` binds `a` but loads a.b: the module itself is what is followed
                out.imports[local] = _Import(words[0], None)
        out.spans = _definitions(text)
        out.defined.update(_ASSIGNED.findall(searched))
        return out

    def to_row(self) -> list:
        """What a later run needs to skip the regular expressions: everything but the text
        (JSON-ready; the edges found so far included)."""
        return [{k: _import_row(v) for k, v in self.imports.items()}, self.stars,
                {k: list(v) for k, v in self.spans.items()}, sorted(self.defined),
                [[name, [_import_row(e) for e in edges]] for name, edges in self._edges.items()]]

    @classmethod
    def from_row(cls, text: str, row) -> "ModuleSummary":
        """The summary ``to_row`` saved for this exact text. Raises ValueError/TypeError/
        KeyError on a row of another shape."""
        imports, stars, spans, defined, edges = row
        return cls(text, imports={str(k): _import_of(v) for k, v in imports.items()},
                   stars=[str(m) for m in stars],
                   spans={str(k): (int(b), int(e), bool(c)) for k, (b, e, c) in spans.items()},
                   defined={str(d) for d in defined},
                   _edges={(None if name is None else str(name)): [_import_of(e) for e in found]
                           for name, found in edges})

    def _used_imports(self, code: str) -> Iterable[_Import]:
        # `blocks.Block(d)`, `logging.get_logger()`: when the imported name is a module, only
        # these attributes of it are needed; a bare use (`f(blocks)`) needs all of it.
        code = _without_annotations(_DECORATOR_LINE.sub("\n", lines(code))[1:])
        found = []
        for word in self.imports:
            uses = _uses_of(word, code)
            if uses is not None:
                found.append((uses[0], word, uses[1]))
        for _, word, attributes in sorted(found):        # in the order of first use
            yield replace(self.imports[word], attributes=attributes)

    def defines(self, name: str) -> bool:
        return name in self.spans or name in self.imports or name in self.defined

    def edges(self, names: set[str] | None) -> list[_Import]:
        """The imports that ``names`` (``ALL``: the whole module) depend on: the imported
        names their code uses (type hints and decorators aside)."""
        if names is ALL:
            return self._edges_of(None)
        return [edge for name in names for edge in self._edges_of(name)]

    def _edges_of(self, name: str | None) -> list[_Import]:
        if name not in self._edges:
            self._edges[name] = list(self._find_edges(name))
        return self._edges[name]

    def _find_edges(self, name: str | None) -> Iterable[_Import]:
        if name is None:
            code = [self.body(name) for name in self.spans]
            pos = 0
            for begin, end, _ in sorted(self.spans.values()):
                code.append(_statements(self.text[pos:begin], imports=False))
                pos = max(pos, end)
            code.append(_statements(self.text[pos:], imports=False))
            yield from self._used_imports("".join(code))
            yield from (_Import(m, None) for m in self.stars)
            return
        body = self.body(name)
        if body is not None:
            yield from self._used_imports(body)
        elif name in self.imports:
            yield self.imports[name]                 # a re-export: follow that one import
        elif name not in self.defined and len(self.stars) <= MAX_STAR_IMPORTS:
            # A name that is not here may come through a star import; a package that
            # star-imports hundreds of submodules (a lazy-loading __init__) would have
            # every one read to find it, so such names stay unresolved.
            yield from (_Import(m, name) for m in self.stars)


_KEPT_STATEMENT = re.compile(r"(?:from|import)\b|\w+[ \t]*(?::[^=\n]*)?=(?!=)|(?:if|try)\b")


def _statements(text: str, *, imports: bool = True) -> str:
    """The top-level statements between definitions that the analysis can use: imports
    (with the small ``try:``/``if TYPE_CHECKING:`` blocks around them) and one-line
    assignments (module constants such as a depth). Big literals (registries, mappings),
    calls and long conditional blocks are left out. ``imports=False``: every statement
    but the imports (the code whose names a whole module uses)."""
    starts = _top_level_starts(text)
    kept = []
    for begin, end in zip(starts, starts[1:]):
        statement = text[begin:end]
        m = _KEPT_STATEMENT.match(statement)
        if not imports:
            if m is None or m.group(0) not in ("from", "import"):
                kept.append(statement)
            continue
        if m is None:
            continue
        lines = len(statement.strip().splitlines())
        if m.group(0) in ("from", "import") or (m.group(0) in ("if", "try") and lines <= 20
                                                  and "import" in statement) or lines <= 1:
            kept.append(statement)
    return "".join(kept)


def _top_level_starts(text: str) -> list[int]:
    return [m.start() for m in _TOP_LEVEL_LINE.finditer(lines(text))] + [len(text)]


def _definitions(text: str) -> dict[str, tuple[int, int, bool]]:
    """Every top-level class and function: name -> (start offset with its decorators, end
    offset, whether it is a class)."""
    starts = _top_level_starts(text)
    out = {}
    for m in _DEFINITION.finditer(lines(text)):
        i = bisect.bisect_left(starts, m.start())          # starts[i] == m.start()
        while i >= 1 and text.startswith("@", starts[i - 1]):
            i -= 1
        out[m.group(2)] = (starts[i], starts[bisect.bisect_right(starts, m.start())], m.group(1) == "class")
    return out


_METHOD = re.compile(r"^([ \t]+)(?:async[ \t]+)?def[ \t]+(\w+)", re.M)
_SELF_CALL = re.compile(r"self\.(\w+)")
# What the analysis reads of a class: its bases and class attributes, how it builds its
# sublayers and how it runs them. generate(), save_pretrained() and the like do not matter.
_STRUCTURAL_METHODS = frozenset({"__init__", "forward", "__call__", "extra_repr", "reset_parameters"})


_DECORATOR_LINE = re.compile(r"\n[ \t]*@[^\n]*")       # searched in facts.lines(code)
_ATTRIBUTE = re.compile(r"[ \t]*\.[ \t]*(\w+)")
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def _uses_of(word: str, code: str) -> tuple[int, frozenset[str] | None] | None:
    """Where ``word`` (an imported name) is first used in ``code`` as a name, and the
    attributes taken of it (None: it is also used bare); None when it is not used.

    A name is an identifier not preceded by a word character or a dot; ``name.attr`` (spaces
    around the dot allowed) takes ``attr``, which is then not a name itself. This is the
    meaning of the regular expression ``(?<![\\w.])([A-Za-z_]\\w*)(?:[ \\t]*\\.[ \\t]*(\\w+))?``
    scanned over the code, found with ``str.find`` for each imported name instead: that
    regex matched every identifier of the file (millions per corpus) to keep a few dozen."""
    first = None
    attributes: set[str] = set()
    at = code.find(word)
    while at >= 0:
        end = at + len(word)
        if (end == len(code) or not _word_char(code[end])) and (
                at == 0 or not (_word_char(code[at - 1]) or code[at - 1] == ".")
                and not _attribute_after_word(code, at)):
            if first is None:
                first = at
            attribute = _ATTRIBUTE.match(code, end)
            if attribute is None:
                return first, None
            attributes.add(attribute.group(1))
        at = code.find(word, end)
    return None if first is None else (first, frozenset(attributes))


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _attribute_after_word(code: str, at: int) -> bool:
    """The name at ``at`` follows ``word .`` (spaces around the dot), so it is that word's
    attribute: the word must start a name (an ASCII letter or _, no dot before it)."""
    j = at - 1
    while j >= 0 and code[j] in " \t":
        j -= 1
    if j < 1 or code[j] != ".":
        return False
    j -= 1
    while j >= 0 and code[j] in " \t":
        j -= 1
    if j < 0 or not _word_char(code[j]):
        return False
    k = j
    while k > 0 and _word_char(code[k - 1]):
        k -= 1
    return code[k] in _WORD_START and (k == 0 or code[k - 1] != ".")


def _without_annotations(text: str) -> str:
    """``text`` with the annotations of its function signatures left out (``x: Cache = None``
    becomes ``x = None``, ``-> Output`` goes): type hints name classes the analysis never
    needs, and following them would read half a library."""
    out = []
    pos = 0
    for m in _SIGNATURE.finditer(text):
        if m.start() < pos or m.start() and _word_char(text[m.start() - 1]):
            continue
        out.append(text[pos:m.end()])
        # Only brackets, ':', ',' and '=' change what is kept: jump from one to the next.
        depth, i, skipping = 1, m.end(), False
        while depth > 0:
            mark = _SIGNATURE_MARK.search(text, i)
            j = mark.start() if mark else len(text)
            if not skipping:
                out.append(text[i:j])
            if mark is None:
                i = j
                break
            c = text[j]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            if depth == 1 and c == ":" and not skipping:
                skipping = True
            elif depth == 1 and c in ",=" and skipping or depth == 0:
                skipping = False
            if not skipping or depth == 0:
                out.append(c)
            i = j + 1
        arrow = _RETURN.match(text, i)
        pos = arrow.end() if arrow else i
        if arrow:
            out.append(":")
    out.append(text[pos:])
    return "".join(out)


# No leading \b: a pattern that starts with a literal is searched for at C speed (20x);
# the word boundary is checked on the match instead.
_SIGNATURE = re.compile(r"def[ \t]+\w+[ \t]*\(")
_SIGNATURE_MARK = re.compile(r"[()\[\]{}:,=]")
_RETURN = re.compile(r"[ \t]*->[^:\n]*(?:\[[^\]]*\][^:\n]*)*:")


def _with_decorators(body: str, start: int, indent: str) -> int:
    """Where the method starting at ``start`` begins once its decorator lines are counted."""
    while start > 0:
        line_start = body.rfind("\n", 0, start - 1) + 1
        if not body.startswith(indent + "@", line_start):
            break
        start = line_start
    return start


def _structural(body: str) -> str:
    """A class's text without the methods that neither build nor run its layers (kept:
    __init__, forward and the methods they call on ``self``)."""
    methods = list(_METHOD.finditer(body))
    if not methods:
        return body
    indent = min(len(m.group(1)) for m in methods)
    methods = [m for m in methods if len(m.group(1)) == indent]
    begins = [_with_decorators(body, m.start(), m.group(1)) for m in methods]
    chunks = {m.group(2): body[begins[i]:(begins[i + 1] if i + 1 < len(methods) else len(body))]
              for i, m in enumerate(methods)}
    keep = {name for name in chunks if name in _STRUCTURAL_METHODS}
    todo = list(keep)
    while todo:
        for called in _SELF_CALL.findall(chunks[todo.pop()]):
            if called in chunks and called not in keep:
                keep.add(called)
                todo.append(called)
    head = body[:methods[0].start()]
    pad = " " * indent + "pass\n"    # a class whose every method was left out still has a body
    return head + "".join(text for name, text in chunks.items() if name in keep) + pad


class ImportResolver:
    """Maps an import in a file to the project file it names, with the file system cached."""

    def __init__(self) -> None:
        self._is_file: dict[str, bool] = {}
        self._entries: dict[str, frozenset[str]] = {}
        self._resolved: dict[tuple[str, str, str], Path | None] = {}
        self._by_importer: dict[tuple[Path, str, Path], Path | None] = {}

    # Paths are plain strings in here: a warm run resolves some 15,000 imports (one per
    # module and importing folder), and pathlib's joins and parents cost most of that.

    def _file(self, path: str) -> bool:
        hit = self._is_file.get(path)
        if hit is None:
            hit = self._is_file[path] = os.path.isfile(path)
        return hit

    def _listing(self, folder: str) -> frozenset[str]:
        hit = self._entries.get(folder)
        if hit is None:
            try:
                hit = frozenset(os.listdir(folder))
            except OSError:
                hit = frozenset()
            self._entries[folder] = hit
        return hit

    def _module_file(self, base: str, parts: list[str]) -> str | None:
        if not parts:
            return next((init for init in (os.path.join(base, f"__init__{s}") for s in _SUFFIXES)
                         if self._file(init)), None)
        # Most absolute imports name installed packages (torch, typing): the folder's
        # listing (read once) rules them out without a stat per module and folder.
        names = self._listing(base)
        if parts[0] not in names and not any(parts[0] + s in names for s in _SUFFIXES):
            return None
        package = os.path.join(base, *parts)
        for s in _SUFFIXES:
            if self._file(package + s):
                return package + s
        for s in _SUFFIXES:
            init = os.path.join(package, f"__init__{s}")
            if self._file(init):
                return init
        return None

    def resolve(self, importer: Path, target: str, root: Path) -> Path | None:
        """The file under ``root`` that the module ``target`` (as written in ``importer``) is."""
        # Keyed by the importer itself (a Path object that keeps its hash) before its folder,
        # which is what the answer depends on: computing ``.parent`` costs more than a look-up.
        key = (importer, target, root)
        found = self._by_importer.get(key, _UNSET)
        if found is _UNSET:
            folder = os.path.dirname(str(importer))
            folder_key = (folder, target, str(root))
            if folder_key not in self._resolved:
                self._resolved[folder_key] = self._resolve(folder, target, str(root))
            found = self._by_importer[key] = self._resolved[folder_key]
        return found

    def _resolve(self, folder: str, target: str, root: str) -> Path | None:
        dots = len(target) - len(target.lstrip("."))
        parts = [p for p in target[dots:].split(".") if p]
        if dots:
            base = folder
            for _ in range(dots - 1):
                base = os.path.dirname(base)
            bases = [base]
        else:
            # A script imports its siblings (sys.path[0]); a package is imported from the
            # project root or from a src/ layout.
            bases = list(dict.fromkeys([folder, root, os.path.join(root, "src")]))
        for base in bases:
            if not _under(base, root):
                continue
            found = self._module_file(base, parts)
            if found is not None:
                real = os.path.realpath(found)
                if _under(real, root):
                    return Path(real)
        return None


class ProjectContext:
    """Follows imports by name from checked files to the project files they need.

    ``read(path)`` returns a project file's text and content digest, or None when it is not
    project code (or cannot be read): it is then neither used nor followed.
    """

    def __init__(self, read: Callable[[Path], tuple[str, str] | None]):
        self.read = read
        self.resolver = ImportResolver()
        self._summaries: dict[Path, ModuleSummary | None] = {}
        # content digest -> a summary row saved by an earlier run (the cache's project
        # index), and the summaries of this run by digest, to save for the next one
        self.known: dict[str, list] = {}
        self.scanned: dict[str, ModuleSummary] = {}

    def summary(self, path: Path, source: tuple[str, str] | None = None) -> ModuleSummary | None:
        """What was scanned of ``path`` (None: not project code, or unreadable); ``source``:
        its (text, digest) when the caller has them."""
        if path not in self._summaries:
            source = self.read(path) if source is None else source
            self._summaries[path] = None if source is None else self._summary_of(*source)
        return self._summaries[path]

    def _summary_of(self, text: str, digest: str) -> ModuleSummary:
        found = self.scanned.get(digest)
        if found is None:
            row = self.known.get(digest)
            try:
                found = ModuleSummary.from_row(text, row) if row is not None else None
            except (ValueError, TypeError, KeyError, AttributeError):
                found = None     # a row of another shape: scan again
            found = found or ModuleSummary.scan(text)
            self.scanned[digest] = found
        return found

    def rows(self) -> dict[str, list]:
        """The summaries of this run, by content digest, for the cache's project index."""
        return {digest: summary.to_row() for digest, summary in self.scanned.items()}

    def _targets(self, importer: Path, edge: _Import, root: Path) -> tuple[Path, set[str] | None] | None:
        found = self.resolver.resolve(importer, edge.module, root)
        if edge.name is not None:
            # `from pkg import name`: the package's own name if it has one (a re-export),
            # else its submodule (`from . import blocks`), as Python looks them up
            summary = self.summary(found) if found is not None else None
            if summary is None or not summary.defines(edge.name):
                sep = "" if edge.module.endswith(".") else "."
                submodule = self.resolver.resolve(importer, f"{edge.module}{sep}{edge.name}", root)
                if submodule is not None:
                    return submodule, _names(edge.attributes)
        if found is None:
            return None
        return found, _names(edge.attributes) if edge.name is None else {edge.name}

    def closure(self, members: Iterable[tuple[Path, str, str, Path]]) -> dict[Path, set[str] | None]:
        """The project files that ``members`` ((path, text, digest, project root) each) need, in
        the order they were found, with the names needed of each (``ALL``: the whole
        file); the members themselves are not included."""
        members = list(members)
        own = {path for path, _, _, _ in members}
        done: dict[Path, set[str] | None] = {}       # names already followed per file (None: all)
        found: dict[Path, None] = {}
        frontier: list[tuple[Path, set[str] | None, Path]] = []
        for path, text, digest, root in members:
            self.summary(path, (text, digest))
            frontier.append((path, ALL, root))
        for _ in range(MAX_DEPTH):
            wanted: dict[tuple[Path, Path], set[str] | None] = {}
            for path, names, root in frontier:
                summary = self._summaries.get(path)
                if summary is None:
                    continue
                for edge in summary.edges(names):
                    target = self._targets(path, edge, root)
                    if target is None or target[0] == path:
                        continue
                    file, more = target
                    key = (file, root)
                    if key in wanted and wanted[key] is ALL or more is ALL:
                        wanted[key] = ALL
                    else:
                        wanted[key] = wanted.get(key, set()) | more
            frontier = []
            for (file, root), names in wanted.items():
                if file in done and done[file] is ALL:
                    continue
                seen = done.get(file) or set()
                new = ALL if names is ALL else names - seen
                if new is not ALL and not new:
                    continue
                if file not in own and file not in found:
                    if len(found) >= MAX_CONTEXT_FILES or self.summary(file) is None:
                        continue
                    found[file] = None
                done[file] = ALL if new is ALL else seen | new
                if file not in own:
                    frontier.append((file, new, root))
            if not frontier:
                break
        return {path: done[path] for path in found}


def _names(attributes: frozenset[str] | None) -> set[str] | None:
    return ALL if attributes is None else set(attributes)


def _under(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it (both absolute and normalized)."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)
