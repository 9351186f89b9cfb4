"""Resolve the names a file uses to the qualified names they import.

``nn.LayerNorm`` with ``import torch.nn as nn``, ``LN`` with
``from torch.nn import LayerNorm as LN`` and ``torch.nn.LayerNorm`` all resolve to
``torch.nn.LayerNorm``. Names bound by ``from .blocks import Block`` resolve to
``.blocks.Block`` (relative) so the project index can find the class.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field


@dataclass
class ImportMap:
    # local name -> qualified name ("nn" -> "torch.nn", "LN" -> "torch.nn.LayerNorm")
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_tree(cls, tree: ast.Module) -> "ImportMap":
        """Imports anywhere in the module, including inside functions and try blocks.

        Conditional imports (``try: import torch.nn as nn``) are taken at face value: a
        linter cannot know which branch runs, and both usually bind the same thing.
        """
        aliases: dict[str, str] = {}
        for node in iter_statements(tree.body):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        aliases.setdefault(top, top)
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                for a in node.names:
                    if a.name == "*":
                        continue
                    sep = "" if base.endswith(".") or not base else "."
                    aliases[a.asname or a.name] = f"{base}{sep}{a.name}"
        out = cls(aliases)
        for node in tree.body:
            # a module-level alias of an imported name: `MList = nn.ModuleList`
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and isinstance(node.value, (ast.Name, ast.Attribute)) and node.targets[0].id not in aliases:
                head = node.value
                while isinstance(head, ast.Attribute):
                    head = head.value
                if isinstance(head, ast.Name) and head.id in aliases:
                    aliases[node.targets[0].id] = out.qualname(node.value) or ""
        return out

    def qualname(self, expr: ast.AST) -> str | None:
        """The qualified name of a Name/Attribute chain, or None for anything else."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        head = self.aliases.get(expr.id, expr.id)
        parts.append(head)
        return ".".join(reversed(parts))


def param_defaults(fn: ast.FunctionDef | ast.Lambda) -> list[tuple[ast.arg, ast.expr | None]]:
    """Every named parameter with its default expression (None when it has none)."""
    args = fn.args
    pos = args.posonlyargs + args.args
    split = len(pos) - len(args.defaults)
    out: list[tuple[ast.arg, ast.expr | None]] = [(a, None) for a in pos[:split]]
    out += list(zip(pos[split:], args.defaults))
    out += list(zip(args.kwonlyargs, args.kw_defaults))
    return out


# Lists that can hold something other than nodes (None for `**d` in a dict display, names).
_MIXED_LISTS = frozenset({(ast.Dict, "keys"), (ast.arguments, "kw_defaults"), (ast.Global, "names"),
                          (ast.Nonlocal, "names"), (ast.MatchClass, "kwd_attrs")})


def _visits(cls: type) -> tuple[tuple[str, bool], ...]:
    """The fields of a node class that walk() looks in, each with whether its list may hold
    something other than nodes."""
    return tuple((name, (cls, name) in _MIXED_LISTS) for name in cls._fields)


def _node_classes(base: type = ast.AST) -> list[type]:
    return [base] + [c for sub in base.__subclasses__() for c in _node_classes(sub)]


# every node class the parser makes, planned once at import (a read-only table)
_VISITS: dict[type, tuple[tuple[str, bool], ...]] = {c: _visits(c) for c in _node_classes()}


def walk(node: ast.AST):
    """``ast.walk``, the same nodes in the same (breadth-first) order, about 1.4x faster:
    the analysis visits some three million nodes per 500k lines, and ast.walk spends most
    of that time in two nested generators per node (iter_child_nodes, iter_fields)."""
    todo = deque([node])
    pop, push, extend = todo.popleft, todo.append, todo.extend
    while todo:
        node = pop()
        for name, mixed in _VISITS.get(node.__class__) or _visits(node.__class__):   # a subclass made later
            value = getattr(node, name, None)
            if value.__class__ is list:
                extend([v for v in value if isinstance(v, ast.AST)] if mixed else value)
            elif isinstance(value, ast.AST):
                push(value)
        yield node


def iter_statements(body: list[ast.stmt]):
    """Every statement, nested ones included, without visiting expressions: imports can only
    be statements, and skipping expressions makes this several times cheaper than ast.walk."""
    todo = list(reversed(body))
    while todo:
        node = todo.pop()
        yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            child = getattr(node, name, None)
            if isinstance(child, list):
                todo.extend(reversed(child))


def dotted(expr: ast.AST) -> str | None:
    """``self.ln1`` -> "self.ln1"; None when the expression is not a plain dotted name."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))
