"""The project around the checked files: the files their imports name, read for context.

pre-commit passes only the staged files. A commit that touches ``model.py`` alone must
still be checked against the ``Block`` it imports from ``blocks.py``, or NL302 (a pre-norm
stack without a final norm) cannot be seen. So every import of a checked file that names
a module inside the project is followed to its file, transitively: those files are
analysed with the checked ones (their classes resolve) but nothing is reported for them.
A file's findings therefore do not depend on which other files were passed.

Reading is bounded: only files under the project root (the configuration's directory, or
the git root), at most ``MAX_DEPTH`` imports away from a checked file and
``MAX_CONTEXT_FILES`` in all. Nothing is imported or executed.
"""

from __future__ import annotations

import os
from pathlib import Path

from .facts import _FROM_IMPORT, _IMPORT, _WORD

MAX_DEPTH = 4
MAX_CONTEXT_FILES = 400
_SUFFIXES = (".py", ".pyi")


def import_targets(text: str) -> list[str]:
    """Every module an import statement may name, with its leading dots.

    ``from .blocks import Block`` -> [".blocks", ".blocks.Block"] (the name may be a
    submodule), ``from . import blocks`` -> [".", ".blocks"], ``import a.b as c`` -> ["a.b"].
    Found with the same regular expressions as the component facts, so without parsing.
    """
    out: list[str] = []
    for module, names in _FROM_IMPORT.findall(text):
        out.append(module)
        sep = "" if module.endswith(".") else "."
        out.extend(f"{module}{sep}{name}" for name in _WORD.findall(names) if name != "as")
    for clause in _IMPORT.findall(text):
        for part in clause.split(","):
            dotted = part.split(" as ")[0].strip().strip("()\\ ")
            if dotted:
                out.append(dotted)
    return out


class ImportResolver:
    """Maps an import in a file to the project file it names, with the file system cached."""

    def __init__(self) -> None:
        self._is_file: dict[Path, bool] = {}
        self._is_dir: dict[Path, bool] = {}

    def _file(self, path: Path) -> bool:
        hit = self._is_file.get(path)
        if hit is None:
            hit = self._is_file[path] = path.is_file()
        return hit

    def _dir(self, path: Path) -> bool:
        hit = self._is_dir.get(path)
        if hit is None:
            hit = self._is_dir[path] = path.is_dir()
        return hit

    def _module_file(self, base: Path, parts: list[str]) -> Path | None:
        if not parts:
            return next((base / f"__init__{s}" for s in _SUFFIXES if self._file(base / f"__init__{s}")), None)
        # Most absolute imports name installed packages (torch, typing): one cached stat of
        # the first component rules them out.
        if not self._dir(base / parts[0]) and not any(self._file(base / f"{parts[0]}{s}") for s in _SUFFIXES):
            return None
        package = base.joinpath(*parts)
        for s in _SUFFIXES:
            if self._file(package.parent / f"{parts[-1]}{s}"):
                return package.parent / f"{parts[-1]}{s}"
        for s in _SUFFIXES:
            if self._file(package / f"__init__{s}"):
                return package / f"__init__{s}"
        return None

    def resolve(self, importer: Path, target: str, root: Path) -> Path | None:
        """The file under ``root`` that ``target`` (as written in ``importer``) names."""
        dots = len(target) - len(target.lstrip("."))
        parts = [p for p in target[dots:].split(".") if p]
        if dots:
            base = importer.parent
            for _ in range(dots - 1):
                base = base.parent
            bases = [base]
        else:
            # A script imports its siblings (sys.path[0]); a package is imported from the
            # project root or from a src/ layout.
            bases = list(dict.fromkeys([importer.parent, root, root / "src"]))
        for base in bases:
            if not _under(base, root):
                continue
            found = self._module_file(base, parts)
            if found is not None:
                real = Path(os.path.realpath(found))
                if _under(real, root):
                    return real
        return None

    def imported_files(self, importer: Path, text: str, root: Path) -> list[Path]:
        found: dict[Path, None] = {}
        for target in import_targets(text):
            path = self.resolve(importer, target, root)
            if path is not None and path != importer:
                found[path] = None
        return list(found)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
