"""Cheap, parse-free facts about a file: what it defines and what it imports.

The engine uses them before any parsing to group files that can see each other's classes
(a Block in blocks.py stacked in model.py) into components. Each component is analysed on
its own — in parallel, and cached — so the facts may over-approximate (an extra edge only
makes a component larger) but must not miss an import the analysis would follow.

An import links two files when it names the other file's module: ``from .blocks import
Block`` reaches blocks.py (or blocks/__init__.py), ``from . import blocks`` too. A name
that merely exists in some other file does not: transformers' 356 imports of
``ALL_ATTENTION_FUNCTIONS`` from ``modeling_utils`` must not glue every model together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

# Patterns for statements at the start of a line begin with "\n" and are searched in
# "\n" + text (see ``lines``): a pattern that begins with a literal is located at C speed,
# one anchored with ^ under re.M is tried at every position of the text (3-5x slower).
_FROM_IMPORT = re.compile(
    r"\n[ \t]*from[ \t]+([.\w]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*(?:\\\n[^\n#;]*)*)")
_IMPORT = re.compile(r"\n[ \t]*import[ \t]+([^\n#;]+)")
_WORD = re.compile(r"[A-Za-z_]\w*")

# A file with none of these cannot hold a model, a norm or an optimizer: no rule can fire.
_RELEVANT = re.compile(r"torch|nn\.|Module|[Nn]orm|optim|[Ll]ayer")


def lines(text: str) -> str:
    """``text`` as the line-start patterns search it: a match's start is then the offset,
    in ``text``, of the line it starts."""
    return "\n" + text


@dataclass(frozen=True)
class FileFacts:
    module: str                                   # "blocks"; a package's name for __init__.py
    imports: tuple[tuple[frozenset[str], frozenset[str]], ...]   # (module words, imported names)
    relevant: bool                                # could any rule fire here?


def _module_name(path: str) -> str:
    p = PurePath(path)
    return p.parent.name if p.stem == "__init__" else p.stem


def scan(path: str, text: str) -> FileFacts:
    imports = []
    searched = lines(text)
    for module, names in _FROM_IMPORT.findall(searched):
        words = frozenset(_WORD.findall(names)) - {"as"}
        imports.append((frozenset(module.split(".")) - {""}, words))
    for clause in _IMPORT.findall(searched):
        for part in clause.split(","):
            dotted = part.split(" as ")[0].strip().strip("()\\ ")
            if dotted:
                imports.append((frozenset(dotted.split(".")), frozenset()))
    return FileFacts(module=_module_name(path),
                     imports=tuple(imports), relevant=bool(_RELEVANT.search(text)))


def components(facts: list[FileFacts]) -> list[list[int]]:
    """Indices of ``facts`` grouped so that an importer and the file it imports share a group."""
    parent = list(range(len(facts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[a] = b

    by_module: dict[str, list[int]] = {}
    for i, f in enumerate(facts):
        by_module.setdefault(f.module, []).append(i)
    for i, f in enumerate(facts):
        for module_words, names in f.imports:
            for word in module_words:              # from .blocks import Block / import pkg.blocks
                for j in by_module.get(word, ()):
                    if j != i:
                        union(i, j)
            for name in names:                     # from . import blocks
                for j in by_module.get(name, ()):
                    if j != i:
                        union(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(len(facts)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])
