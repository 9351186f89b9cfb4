"""The project index: per-file summaries (classes, bases, imports, constants) merged so that
a class defined in one checked file can be understood where another file uses it."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath
from typing import Sequence

from .names import ImportMap, param_defaults
from ..positions import LineIndex
from .source import ParsedFile


@dataclass(eq=False)
class FileInfo:
    parsed: ParsedFile
    imports: ImportMap
    module: str                                    # "blocks" for blocks.py
    classes: dict[str, "ClassInfo"] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    constants: dict[str, ast.expr] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.parsed.path

    @cached_property
    def line_starts(self) -> list[int]:
        """Offset of each line's first character, plus the text length at the end."""
        # Python's own line breaks: str.splitlines would also break at form feeds and
        # \u2028, and every later offset would miss the class it is meant to find.
        return list(LineIndex.of(self.parsed.text).starts)


@dataclass(eq=False)
class ClassInfo:
    name: str
    node: ast.ClassDef
    file: FileInfo
    bases: tuple[ast.expr, ...]
    methods: dict[str, ast.FunctionDef]
    # class-body constants (NUM_LAYERS = 24) and annotated dataclass fields (n_layer: int = 12)
    constants: dict[str, ast.expr]

    @property
    def forward(self) -> ast.FunctionDef | None:
        return self.methods.get("forward")

    def __repr__(self) -> str:
        return f"<class {self.name} in {self.file.path}>"


def int_literal(node: ast.expr | None):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = int_literal(node.operand)
        return None if inner is None else -inner
    return None


class ProjectIndex:
    def __init__(self, files: Sequence[ParsedFile]):
        self.files: list[FileInfo] = [self._summarize(f) for f in files]
        self.by_name: dict[str, list[ClassInfo]] = {}
        self.functions_by_name: dict[str, list[FileInfo]] = {}
        for info in self.files:
            for cls in info.classes.values():
                self.by_name.setdefault(cls.name, []).append(cls)
            for fname in info.functions:
                self.functions_by_name.setdefault(fname, []).append(info)
        self._mro: dict[int, list[ClassInfo]] = {}
        self._config_defaults: dict[str, object] | None = None

    @staticmethod
    def _summarize(parsed: ParsedFile) -> FileInfo:
        info = FileInfo(parsed, ImportMap.from_tree(parsed.tree), PurePath(parsed.path).stem)
        for node in parsed.tree.body:
            if isinstance(node, ast.ClassDef):
                methods = {n.name: n for n in node.body
                           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
                consts: dict[str, ast.expr] = {}
                for n in node.body:
                    if isinstance(n, ast.Assign) and len(n.targets) == 1 \
                            and isinstance(n.targets[0], ast.Name):
                        consts[n.targets[0].id] = n.value
                    elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) \
                            and n.value is not None:
                        consts[n.target.id] = n.value
                info.classes[node.name] = ClassInfo(node.name, node, info, tuple(node.bases),
                                                    methods, consts)
            elif isinstance(node, ast.FunctionDef):
                info.functions[node.name] = node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                info.constants[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                    and node.value is not None:
                info.constants[node.target.id] = node.value
        return info

    # -- name resolution --------------------------------------------------------------

    def resolve_class(self, expr: ast.expr, file: FileInfo) -> ClassInfo | None:
        """The project class an expression names: same file first, then by import."""
        if isinstance(expr, ast.Name) and expr.id in file.classes:
            return file.classes[expr.id]
        qual = file.imports.qualname(expr)
        if not qual:
            return None
        if qual.startswith("torch."):
            return None
        name = qual.rsplit(".", 1)[-1]
        candidates = self.by_name.get(name)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        # Several classes share the name: take the one whose path the import spells out
        # (from .blocks import Block; from timm.layers import Mlp -> .../layers/...); when
        # nothing singles one out, the name stays unresolved rather than guessed.
        parts = set(qual.lstrip(".").split(".")[:-1])
        for cls in candidates:
            if cls.file.module in parts:
                return cls
        scored = sorted(((len(parts & set(PurePath(c.file.path).parts)), i) for i, c in enumerate(candidates)),
                        reverse=True)
        if scored[0][0] > 0 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
            return candidates[scored[0][1]]
        return None

    def resolve_function(self, expr: ast.expr, file: FileInfo) -> tuple[ast.FunctionDef, FileInfo] | None:
        if isinstance(expr, ast.Name) and expr.id in file.functions:
            return file.functions[expr.id], file
        qual = file.imports.qualname(expr)
        if not qual or qual.startswith("torch."):
            return None
        name = qual.rsplit(".", 1)[-1]
        parts = qual.lstrip(".").split(".")
        for info in self.functions_by_name.get(name, ()):
            if info.module in parts:
                return info.functions[name], info
        return None

    def mro(self, cls: ClassInfo, limit: int = 8) -> list[ClassInfo]:
        """cls and its project base classes, depth-first (enough for method lookup)."""
        cached = self._mro.get(id(cls))
        if cached is not None:
            return cached
        out: list[ClassInfo] = []
        todo = [cls]
        while todo and len(out) < limit:
            cur = todo.pop(0)
            if cur in out:
                continue
            out.append(cur)
            todo.extend(b for b in (self.resolve_class(e, cur.file) for e in cur.bases) if b)
        self._mro[id(cls)] = out
        return out

    def find_method(self, cls: ClassInfo, name: str) -> tuple[ast.FunctionDef, ClassInfo] | None:
        for c in self.mro(cls):
            if name in c.methods:
                return c.methods[name], c
        return None

    # -- constants ----------------------------------------------------------------------

    def config_defaults(self) -> dict[str, object]:
        """Field name -> default over the project's config classes and dataclasses.

        A name with two different defaults maps to None: the depth is then unknown rather
        than guessed.
        """
        if self._config_defaults is not None:
            return self._config_defaults
        out: dict[str, object] = {}
        ambiguous: set[str] = set()

        def put(key: str, value) -> None:
            if value is None:
                return
            if key in out and out[key] != value:
                out[key] = None
            else:
                out.setdefault(key, value)

        for info in self.files:
            for cls in info.classes.values():
                is_dataclass = any(
                    (isinstance(d, ast.Name) and d.id == "dataclass")
                    or (isinstance(d, ast.Attribute) and d.attr == "dataclass")
                    or (isinstance(d, ast.Call) and "dataclass" in ast.unparse(d.func))
                    for d in cls.node.decorator_list)
                fields: dict[str, object] = {}
                if is_dataclass or "Config" in cls.name or "Args" in cls.name:
                    for key, value in cls.constants.items():
                        fields[key] = int_literal(value)
                if "Config" in cls.name and "__init__" in cls.methods:
                    for arg, default in param_defaults(cls.methods["__init__"]):
                        fields[arg.arg] = int_literal(default)
                for key, value in fields.items():
                    put(key, value)
                for key, value in fields.items():
                    # a prefixed twin (`t2u_decoder_layers = 6` beside `decoder_layers = 24`):
                    # a sub-model built from this config may get the twin's value copied
                    # over (SeamlessM4T remaps t2u_* before building its unit decoder)
                    if any(k.endswith("_" + key) and v is not None and v != value for k, v in fields.items()):
                        ambiguous.add(key)
        for key in ambiguous:
            out[key] = None
        self._config_defaults = out
        return out

    def module_constant(self, name: str, file: FileInfo):
        value = file.constants.get(name)
        if value is not None:
            return int_literal(value)
        qual = file.imports.aliases.get(name)
        if qual:
            short = qual.rsplit(".", 1)[-1]
            for info in self.files:
                if short in info.constants and info.module in qual.lstrip(".").split("."):
                    return int_literal(info.constants[short])
        return None
