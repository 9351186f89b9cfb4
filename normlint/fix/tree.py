"""What the fixers see of a file: the libcst tree of the top-level statement that holds a
finding, with node positions and parents, plus a cheap ``ast`` outline of the module.

Detection runs on ``ast``, and libcst is slow (its parser ~10x ``ast``, its position
metadata ~3x its parser), so a fix parses only the top-level statement (class, function,
assignment) around the finding, never the whole module: a fix rewrites that statement's
nodes, and module-level additions (an ``import copy``) are plain text edits placed from
the outline. The finding's span (character columns, as findings carry) maps to the smallest
libcst node that covers it; a fix's rendered statement is diffed against the original
text, so the edits cover exactly what changed and everything else (comments, quotes,
blank lines, line endings) stays byte for byte.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterator, Mapping, TypeVar, Union

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, ParentNodeProvider, PositionProvider

from ..findings import Edit, Finding, Fix
from ..positions import edits_between, split_lines

N = TypeVar("N", bound=cst.CSTNode)
Replacement = Union[cst.CSTNode, cst.FlattenSentinel, cst.RemovalSentinel]


class Replace(cst.CSTTransformer):
    """Swap nodes by identity (the originals, as positioned in the parsed tree)."""

    def __init__(self, mapping: Mapping[int, Replacement]):
        super().__init__()
        self.mapping = mapping

    def on_leave(self, original_node, updated_node):
        return self.mapping.get(id(original_node), updated_node)


@dataclass
class Outline:
    """The module as ``ast`` sees it: where each top-level statement sits, what it imports."""

    text: str
    tree: ast.Module
    lines: list[str] = field(init=False)

    def __post_init__(self):
        self.lines = split_lines(self.text)

    @classmethod
    def of(cls, text: str) -> "Outline | None":
        try:
            return cls(text, ast.parse(text))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None

    def statement_span(self, line: int) -> tuple[int, int] | None:
        """(first, last) line of the top-level statement holding ``line``, decorators included."""
        for node in self.tree.body:
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
            if first <= line <= node.end_lineno:
                return first, node.end_lineno
        return None

    @cached_property
    def newline(self) -> str:
        first = self.lines[0] if self.lines else "\n"
        ending = first[len(first.rstrip("\r\n")):]
        return ending or "\n"

    @cached_property
    def identifiers(self) -> set[str]:
        """Every name the module binds or reads (attribute names excluded)."""
        out: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name):
                out.add(node.id)
            elif isinstance(node, ast.arg):
                out.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, ast.alias):
                out.add((node.asname or node.name).split(".")[0])
        return out

    def imported(self, module: str, name: str | None = None) -> bool:
        """``import module`` (name None) or ``from module import name``, unaliased, at top level."""
        for node in self.tree.body:
            if name is None and isinstance(node, ast.Import):
                if any(a.name == module and a.asname is None for a in node.names):
                    return True
            elif name is not None and isinstance(node, ast.ImportFrom) and node.module == module \
                    and node.level == 0 and any(a.name == name and a.asname is None for a in node.names):
                return True
        return False

    def add_import(self, statement: str) -> Edit:
        """An edit inserting ``statement`` as a line before the first import (after the
        docstring and ``__future__`` imports); comments above that import stay above."""
        body = self.tree.body
        first = next((n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))
                      and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")), None)
        if first is not None:
            line = first.lineno
        else:
            rest = [n for n in body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                                            and isinstance(n.value.value, str) and n is body[0])
                    and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
            line = rest[0].lineno if rest else len(self.lines) + 1
        if line > len(self.lines) and self.lines and not self.lines[-1].endswith(("\n", "\r")):
            end = len(self.lines[-1]) + 1
            return Edit(len(self.lines), end, len(self.lines), end, self.newline + statement)
        return Edit(line, 1, line, 1, statement + self.newline)


class Parents:
    """Each node's parent, found on demand by descending from the module along the children
    whose position covers the node. libcst's ParentNodeProvider visits the whole statement
    for every fix (more than its positions cost, ~40 ms for a 300-line class), and a fix asks
    for the parents of a handful of nodes. When the descent cannot tell which child holds a
    node (zero-width nodes), the provider's exact map is computed once and used instead."""

    def __init__(self, module: cst.Module, positions: Mapping[cst.CSTNode, CodeRange]):
        self.module = module
        self.positions = positions
        self._known: dict[cst.CSTNode, cst.CSTNode] = {}
        self._exact: Mapping[cst.CSTNode, cst.CSTNode] | None = None

    def get(self, node: cst.CSTNode, default=None):
        if self._exact is None and node not in self._known and node is not self.module:
            self._descend_to(node)
        found = (self._exact if self._exact is not None else self._known).get(node)
        return default if found is None else found

    def __contains__(self, node: cst.CSTNode) -> bool:
        return self.get(node) is not None

    def __getitem__(self, node: cst.CSTNode) -> cst.CSTNode:
        found = self.get(node)
        if found is None:
            raise KeyError(node)
        return found

    def _descend_to(self, node: cst.CSTNode) -> None:
        target = self.positions.get(node)
        if target is not None:
            # depth first through the children that cover the node's span (several can, where
            # spans touch or are empty); the search stops at the node itself
            todo: list[tuple[cst.CSTNode, tuple]] = [(self.module, ())]
            visited = 0
            while todo and visited < _MAX_DESCENT:
                cur, path = todo.pop()
                visited += 1
                for child in reversed(cur.children):
                    if child is node:
                        chain = (*path, cur, child)
                        self._known.update(zip(chain[1:], chain))
                        return
                    if _covers(self.positions.get(child), target):
                        todo.append((child, (*path, cur)))
        self._exact = MetadataWrapper(self.module, unsafe_skip_copy=True).resolve(ParentNodeProvider)


# Nodes looked at before the exact map is cheaper (a class statement has a few thousand).
_MAX_DESCENT = 400


def _covers(outer: CodeRange | None, inner: CodeRange) -> bool:
    if outer is None:
        return False
    return (outer.start.line, outer.start.column) <= (inner.start.line, inner.start.column) \
        and (outer.end.line, outer.end.column) >= (inner.end.line, inner.end.column)


@dataclass
class SourceTree:
    text: str                      # the statement's lines, as in the file
    module: cst.Module             # ... parsed on their own
    positions: Mapping[cst.CSTNode, CodeRange]
    parents: Parents
    outline: Outline | None = None
    offset: int = 0                # lines of the file before ``text``

    @classmethod
    def parse(cls, text: str, outline: Outline | None = None, offset: int = 0) -> "SourceTree | None":
        """None when libcst cannot parse what ast could (a newer syntax): no fix then."""
        try:
            module = cst.parse_module(text)
        except (cst.ParserSyntaxError, RecursionError, ValueError):
            return None
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        return cls(text, module, positions, Parents(module, positions), outline, offset)

    @classmethod
    def around(cls, outline: Outline, line: int) -> "SourceTree | None":
        """The tree of the top-level statement that holds ``line``."""
        span = outline.statement_span(line)
        if span is None:
            return None
        first, last = span
        return cls.parse("".join(outline.lines[first - 1:last]), outline, first - 1)

    # -- finding a finding's node -------------------------------------------------------

    def span_of(self, finding: Finding) -> tuple[tuple[int, int], tuple[int, int]]:
        """The finding's span as libcst positions in ``text``: (line, 0-based character column)."""
        lines = split_lines(self.text)

        def at(line: int, column: int) -> tuple[int, int]:
            line -= self.offset
            text = lines[line - 1] if 0 < line <= len(lines) else ""
            return line, min(max(column, 0), len(text))

        start = at(finding.line, finding.column - 1)
        if finding.end_line is None or finding.end_column is None:
            return start, start
        return start, at(finding.end_line, finding.end_column - 1)

    def node_at(self, finding: Finding) -> cst.CSTNode | None:
        """The smallest node whose span covers the finding's span (the deepest on a tie)."""
        start, end = self.span_of(finding)
        best: cst.CSTNode | None = None
        best_key = None
        for node, rng in self.positions.items():
            s, e = (rng.start.line, rng.start.column), (rng.end.line, rng.end.column)
            if s <= start and e >= end and not isinstance(node, cst.Module):
                key = (s, (-e[0], -e[1]), self.depth(node))
                if best_key is None or key > best_key:
                    best, best_key = node, key
        return best

    def depth(self, node: cst.CSTNode) -> int:
        d = 0
        while node in self.parents:
            node = self.parents[node]
            d += 1
        return d

    # -- navigation -------------------------------------------------------------------

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.parents.get(node)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        while node in self.parents:
            node = self.parents[node]
            yield node

    def enclosing(self, node: cst.CSTNode, kind: type[N]) -> N | None:
        return next((a for a in self.ancestors(node) if isinstance(a, kind)), None)

    def statement(self, node: cst.CSTNode) -> cst.BaseStatement | None:
        """The statement (a line, or a compound statement) that contains node."""
        for a in (node, *self.ancestors(node)):
            if isinstance(a, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                return a
        return None

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    # -- fixing -----------------------------------------------------------------------

    def render(self, replacements: Mapping[cst.CSTNode, Replacement]) -> str:
        mapping = {id(old): new for old, new in replacements.items()}
        return self.module.visit(Replace(mapping)).code

    def fix(self, message: str, replacements: Mapping[cst.CSTNode, Replacement], applicability: str,
            extra: tuple[Edit, ...] = ()) -> Fix | None:
        """The fix that makes these replacements (plus ``extra`` edits elsewhere in the file)."""
        shift = self.offset
        edits = tuple(Edit(e.line + shift, e.column, e.end_line + shift, e.end_column, e.replacement)
                      for e in edits_between(self.text, self.render(replacements)))
        return Fix(message, (*extra, *edits), applicability) if edits else None


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """node and every node below it, parents first."""
    todo = [node]
    while todo:
        cur = todo.pop()
        yield cur
        todo.extend(reversed(cur.children))


def find(node: cst.CSTNode, predicate: Callable[[cst.CSTNode], bool]) -> cst.CSTNode | None:
    return next((n for n in walk(node) if predicate(n)), None)


def names_in(node: cst.CSTNode) -> set[str]:
    return {n.value for n in walk(node) if isinstance(n, cst.Name)}


def fresh_name(taken: set[str], *candidates: str) -> str:
    for name in candidates:
        if name not in taken:
            return name
    base = candidates[-1]
    i = 2
    while f"{base}{i}" in taken:
        i += 1
    return f"{base}{i}"


def dotted(node: cst.CSTNode) -> str | None:
    """``self.norm1`` / ``torch.sqrt`` / ``x`` as text; None for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def parenthesize(node: cst.BaseExpression) -> cst.BaseExpression:
    """node as an operand that binds tighter than any binary operator."""
    atoms = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float,
             cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.Tuple, cst.List,
             cst.Dict, cst.Set, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)
    if isinstance(node, atoms) or getattr(node, "lpar", None):
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def method_call(receiver: cst.BaseExpression, method: str, *args: cst.Arg) -> cst.Call:
    """``receiver.method(args)``, parenthesizing the receiver when it needs it."""
    return cst.Call(func=cst.Attribute(value=parenthesize(receiver), attr=cst.Name(method)), args=args)


def expression(code: str) -> cst.BaseExpression:
    return cst.parse_expression(code)


def identifiers(node: cst.CSTNode) -> set[str]:
    """Names a scope reads or binds: attribute names and keyword names do not count."""
    out: set[str] = set()
    todo = [node]
    while todo:
        cur = todo.pop()
        if isinstance(cur, cst.Name):
            out.add(cur.value)
            continue
        if isinstance(cur, cst.Attribute):
            todo.append(cur.value)
            continue
        if isinstance(cur, cst.Arg):
            todo.append(cur.value)
            continue
        todo.extend(cur.children)
    return out


def call_name(call: cst.CSTNode) -> str | None:
    """``x.mean(...)`` -> "mean"; ``torch.sqrt(...)`` -> "sqrt"; ``f(...)`` -> "f"."""
    if not isinstance(call, cst.Call):
        return None
    f = call.func
    if isinstance(f, cst.Attribute):
        return f.attr.value
    if isinstance(f, cst.Name):
        return f.value
    return None


def self_attr(node: cst.CSTNode) -> str | None:
    """``self.norm1`` -> "norm1"."""
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        return node.attr.value
    return None


def append_arg(call: cst.Call, arg: cst.Arg) -> cst.Call:
    """Add an argument at the end, keeping a trailing comma (and its line break) last."""
    args = list(call.args)
    if not args:
        return call.with_changes(args=[arg])
    last = args[-1]
    if isinstance(last.comma, cst.Comma):          # f(a, b,) or a multi-line call
        sep = args[-2].comma.whitespace_after if len(args) > 1 and isinstance(args[-2].comma, cst.Comma) \
            else cst.SimpleWhitespace(" ")
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=sep))
        return call.with_changes(args=[*args, arg.with_changes(comma=last.comma)])
    args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return call.with_changes(args=[*args, arg])


def keyword_arg(name: str, value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(value=value, keyword=cst.Name(name),
                   equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                         whitespace_after=cst.SimpleWhitespace("")))


def assignment_to_self(tree: "SourceTree", scope: cst.CSTNode, attr: str) -> list[cst.SimpleStatementLine]:
    """The statement lines in scope that assign ``self.<attr> = ...`` as their only statement."""
    out = []
    for node in walk(scope):
        if not isinstance(node, cst.SimpleStatementLine) or len(node.body) != 1:
            continue
        small = node.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and self_attr(small.targets[0].target) == attr:
            out.append(node)
        elif isinstance(small, cst.AnnAssign) and small.value is not None and self_attr(small.target) == attr:
            out.append(node)
    return out


def method(cls: cst.ClassDef, name: str) -> cst.FunctionDef | None:
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
    return next((s for s in body if isinstance(s, cst.FunctionDef) and s.name.value == name), None)


def assigned_value(line: cst.SimpleStatementLine) -> cst.BaseExpression:
    return line.body[0].value


def self_assignment(attr: str, value: cst.BaseExpression) -> cst.SimpleStatementLine:
    target = cst.Attribute(value=cst.Name("self"), attr=cst.Name(attr))
    return cst.SimpleStatementLine([cst.Assign(targets=[cst.AssignTarget(target)], value=value)])
