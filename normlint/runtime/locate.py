"""Where a runtime finding points in the user's source.

A runtime finding is about a module object or about one call of it; the editor needs a line.
Two kinds of place, the same ones the static engine reports:

- the **construction** of a module: the ``self.norm = nn.LayerNorm(d)`` assignment in the
  ``__init__`` of the user class that owns it, or, for a module inside an ``nn.Sequential``
  / ``nn.ModuleList`` built there, the element of that constructor call (so a norm inside a
  container points where the container was built, not at torch's ``container.py``);
- the **call** of a module: the line of the user's ``forward`` that called it (recorded by
  the tracer).

Sources are read with ``inspect`` and parsed with ``ast`` once per class.
"""

from __future__ import annotations

import ast
import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def target_function(target: str) -> tuple[str, str] | None:
    """(file, function name) of a ``path/file.py:factory`` or ``pkg.mod:factory`` target,
    found without importing anything."""
    where, _, name = target.rpartition(":")
    if not where or not name.isidentifier():
        return None
    if where.endswith(".py"):
        return os.path.abspath(where), name
    try:
        import importlib.util
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError):
        return None
    return (spec.origin, name) if spec is not None and spec.origin else None


@dataclass(frozen=True)
class Place:
    path: str
    line: int
    column: int = 1


def display_path(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def is_user_class(obj: Any) -> bool:
    cls = obj if isinstance(obj, type) else type(obj)
    return not cls.__module__.startswith("torch.")


def class_place(obj: Any) -> Place | None:
    cls = obj if isinstance(obj, type) else type(obj)
    try:
        path = inspect.getsourcefile(cls)
        line = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        # Loaded without a sys.modules entry: the first method's code object still knows.
        codes = [v.__code__ for v in vars(cls).values() if hasattr(v, "__code__")]
        if not codes:
            return None
        path, line = codes[0].co_filename, codes[0].co_firstlineno
    return Place(display_path(path), max(line, 1)) if path else None


class Locator:
    """Construction places of the modules of one model (``path`` as in ``named_modules``)."""

    def __init__(self, modules: dict[str, nn.Module], origin: Callable | tuple[str, str] | None = None):
        self._modules = modules
        self._origin = origin
        self._parsed: dict[Any, tuple[str, ast.AST] | None] = {}
        self._files: dict[str, ast.AST | None] = {}

    def construction(self, path: str) -> Place | None:
        """Where the module at ``path`` was built, as precisely as the source allows."""
        parts = path.split(".") if path else []
        for n in range(len(parts) - 1, -1, -1):
            owner = self._modules.get(".".join(parts[:n]))
            if owner is None or not is_user_class(owner):
                continue
            for cls in type(owner).__mro__:
                if cls is nn.Module or not is_user_class(cls):
                    break
                place = self._assignment(cls, parts[n], parts[n + 1:])
                if place is not None:
                    return place
            return None
        if parts and self._origin is not None:
            return self._in_function(self._origin, parts)
        return None

    def enclosing_loop(self, place: Place) -> Place:
        """The ``for`` statement around ``place`` (a stack's ``x = block(x)``), else
        ``place``: the static engine reports a stack's findings at its loop."""
        tree = self._tree(place.path)
        best = None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, (ast.For, ast.AsyncFor)) and node.lineno < place.line <= (node.end_lineno or 0):
                if best is None or node.lineno > best.lineno:
                    best = node
        return Place(place.path, best.lineno, best.col_offset + 1) if best is not None else place

    # ------------------------------------------------------------------ parsing
    def _tree(self, path: str) -> ast.AST | None:
        if path not in self._files:
            try:
                with open(path, encoding="utf-8") as fh:
                    self._files[path] = ast.parse(fh.read())
            except (OSError, SyntaxError, ValueError):
                self._files[path] = None
        return self._files[path]

    def _definition(self, obj) -> tuple[str, ast.AST] | None:
        if isinstance(obj, tuple):   # (file, function name): a target not imported here
            tree = self._tree(obj[0])
            node = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                         and n.name == obj[1]), None) if tree is not None else None
            return (display_path(obj[0]), node) if node is not None else None
        return self._class_or_function(obj)

    def _class_or_function(self, obj) -> tuple[str, ast.AST] | None:
        """The file and the ``class``/``def`` node of a class or function.

        Read from the file of the code objects (``co_filename``, ``co_firstlineno``), which
        also works for modules loaded without a ``sys.modules`` entry (test fixtures,
        ``file.py:factory`` targets), where ``inspect.getsource`` of a class fails."""
        if obj in self._parsed:
            return self._parsed[obj]
        found = None
        codes = [obj.__code__] if hasattr(obj, "__code__") else [
            v.__code__ for v in vars(obj).values() if hasattr(v, "__code__")]
        if codes:
            path = codes[0].co_filename
            tree = self._tree(path)
            lines = {c.co_firstlineno for c in codes}
            kind = ast.ClassDef if isinstance(obj, type) else (ast.FunctionDef, ast.AsyncFunctionDef)
            for node in ast.walk(tree) if tree is not None else ():
                if isinstance(node, kind) and node.name == obj.__name__ and (
                        any(node.lineno <= line <= (node.end_lineno or 0) for line in lines)):
                    found = (display_path(path), node)
                    break
        self._parsed[obj] = found
        return found

    def _assignment(self, cls: type, attr: str, rest: list[str]) -> Place | None:
        definition = self._definition(cls)
        if definition is None:
            return None
        path, tree = definition
        for node in ast.walk(tree):
            value = _assigned_value(node, attr)
            if value is not None:
                value = _element(value, rest)
                return Place(path, value.lineno, value.col_offset + 1)
        return None

    def _in_function(self, function, parts: list[str], depth: int = 2) -> Place | None:
        """A module of a model that is itself a container built in ``function`` (a
        ``file.py:factory`` target returning ``nn.Sequential(...)``), or in a function of the
        same file that it calls (``def bad(): return _model(...)``)."""
        definition = self._definition(function)
        if definition is None:
            return None
        path, tree = definition
        called = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in _CONTAINERS:
                value = _element(node, parts)
                if value is not node:
                    return Place(path, value.lineno, value.col_offset + 1)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called.append(node.func.id)
        source = function[0] if isinstance(function, tuple) else getattr(
            getattr(function, "__code__", None), "co_filename", None)
        for name in called if depth and source else ():
            place = self._in_function((source, name), parts, depth - 1)
            if place is not None:
                return place
        return None

    def source_lines(self, cls: type) -> list[str]:
        """The source lines of a class (empty when they cannot be read)."""
        definition = self._definition(cls)
        if definition is None:
            return []
        path, node = definition
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except (OSError, UnicodeDecodeError):
            return []
        return lines[node.lineno - 1:node.end_lineno or node.lineno]

    def function_place(self, function) -> Place | None:
        definition = self._definition(function)
        if definition is None:
            return None
        return Place(definition[0], definition[1].lineno, definition[1].col_offset + 1)


def _assigned_value(node: ast.AST, attr: str) -> ast.AST | None:
    """The value assigned to ``self.<attr>`` by this statement, if it does."""
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if _is_self_attr(target, attr):
                return node.value
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                    and len(target.elts) == len(node.value.elts):
                for t, v in zip(target.elts, node.value.elts):
                    if _is_self_attr(t, attr):
                        return v
    if isinstance(node, ast.Call):
        name, args = _call_name(node), node.args
        if name == "setattr" and len(args) == 3 and isinstance(args[1], ast.Constant) \
                and args[1].value == attr:
            return args[2]
        if name in ("add_module", "register_module") and len(args) >= 2 \
                and isinstance(args[0], ast.Constant) and args[0].value == attr:
            return args[1]
    return None


def _is_self_attr(target: ast.AST, attr: str) -> bool:
    return (isinstance(target, ast.Attribute) and target.attr == attr
            and isinstance(target.value, ast.Name) and target.value.id == "self")


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _element(value: ast.AST, rest: list[str]) -> ast.AST:
    """Follow container indices (``0``, ``2``) into ``nn.Sequential(a, b, c)`` /
    ``nn.ModuleList([a, b])`` literals; stop where the source does not spell them out."""
    for part in rest:
        if not part.isdigit() or not isinstance(value, ast.Call) or _call_name(value) not in _CONTAINERS:
            break
        elements = value.args
        if len(elements) == 1 and isinstance(elements[0], (ast.List, ast.Tuple)):
            elements = elements[0].elts
        index = int(part)
        if any(isinstance(e, ast.Starred) for e in elements[:index + 1]) or index >= len(elements):
            break
        value = elements[index]
    return value
