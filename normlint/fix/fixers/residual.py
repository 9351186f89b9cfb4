"""NL303: a pre-norm block rebinds the residual variable to the norm's output.

    x = self.norm1(x)                      h = self.norm1(x)
    a = self.attn(x, x, x)          ->     a = self.attn(h, h, h)
    x = x + self.drop(a)                   x = x + self.drop(a)

The norm's output gets a new name, every read of the variable between the rebinding and
the residual add reads the new name, and the add keeps the variable as its skip operand.
Only when all of that sits in one statement block and nothing in between rebinds the
variable; anything else is left to the reader (display-only).
"""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from ...findings import Finding, Fix
from ..catalog import UNSAFE
from ..tree import SourceTree, find, fresh_name, identifiers, walk


def _target_names(t: cst.CSTNode) -> Iterator[str]:
    if isinstance(t, cst.Name):
        yield t.value
    elif isinstance(t, (cst.Tuple, cst.List)):
        for el in t.elements:
            yield from _target_names(el.value)
    elif isinstance(t, cst.StarredElement):
        yield from _target_names(t.value)


def bound_names(node: cst.CSTNode) -> set[str]:
    """Every name that node (a statement) binds, at any depth: assignments, loops, with,
    walrus, definitions, parameters, imports, except, del, global."""
    out: set[str] = set()
    for n in walk(node):
        if isinstance(n, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor,
                          cst.NamedExpr)):
            out.update(_target_names(n.target))
        elif isinstance(n, cst.Del):
            out.update(_target_names(n.target))
        elif isinstance(n, cst.WithItem) and n.asname is not None:
            out.update(_target_names(n.asname.name))
        elif isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Param)):
            out.add(n.name.value)
        elif isinstance(n, cst.ImportAlias):
            name = n.asname.name if n.asname else n.name
            if isinstance(name, cst.Name):
                out.add(name.value)
            elif isinstance(name, cst.Attribute):
                out.add(str(cst.Module([]).code_for_node(name)).split(".")[0])
        elif isinstance(n, (cst.Global, cst.Nonlocal)):
            out.update(item.name.value for item in n.names)
        elif isinstance(n, cst.ExceptHandler) and n.name is not None:
            out.update(_target_names(n.name.name))
        elif isinstance(n, (cst.Match, cst.MatchAs, cst.MatchStar)):
            out.add("*")   # pattern captures: not worth modelling, refuse
    return out


class _Rename(cst.CSTTransformer):
    """Reads of ``old`` become ``new``; attribute and keyword names are not reads."""

    def __init__(self, old: str, new: str, keep: cst.CSTNode | None = None):
        super().__init__()
        self.old, self.new, self.keep = old, new, keep

    def leave_Name(self, original_node, updated_node):
        if original_node.value == self.old and original_node is not self.keep:
            return updated_node.with_changes(value=self.new)
        return updated_node

    def leave_Attribute(self, original_node, updated_node):
        return updated_node.with_changes(attr=original_node.attr)

    def leave_Arg(self, original_node, updated_node):
        return updated_node.with_changes(keyword=original_node.keyword)


def _add_operands(e: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(e, cst.BinaryOperation) and isinstance(e.operator, cst.Add) and not e.lpar:
        return [*_add_operands(e.left), *_add_operands(e.right)]
    return [e]


def _skip_operand(value: cst.BaseExpression | None, var: str) -> cst.Name | None:
    """The bare ``var`` operand of a top-level sum ``var + f(...)``, if there is exactly one."""
    if value is None:
        return None
    operands = _add_operands(value)
    if len(operands) < 2:
        return None
    skips = [o for o in operands if isinstance(o, cst.Name) and o.value == var]
    return skips[0] if len(skips) == 1 else None


def _residual_add(stmt: cst.BaseStatement, var: str) -> tuple[cst.CSTNode, cst.Name | None] | None:
    """(the node to rewrite, the skip operand to keep) when stmt is the residual add."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and \
            isinstance(small.targets[0].target, cst.Name) and small.targets[0].target.value == var:
        skip = _skip_operand(small.value, var)
        return (small.value, skip) if skip is not None else None
    if isinstance(small, cst.AugAssign) and isinstance(small.operator, cst.AddAssign) and \
            isinstance(small.target, cst.Name) and small.target.value == var:
        return small.value, None
    if isinstance(small, cst.Return):
        skip = _skip_operand(small.value, var)
        return (small.value, skip) if skip is not None else None
    return None


def keep_residual(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    call = node if isinstance(node, cst.Call) else find(node, lambda n: isinstance(n, cst.Call))
    if call is None:
        return None
    stmt = tree.statement(call)
    block = tree.parent(stmt) if stmt is not None else None
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1 or \
            not isinstance(block, cst.IndentedBlock):
        return None
    rebind = stmt.body[0]
    if not (isinstance(rebind, cst.Assign) and len(rebind.targets) == 1
            and isinstance(rebind.targets[0].target, cst.Name)):
        return None
    var = rebind.targets[0].target.value
    body = list(block.body)
    i = next(k for k, s in enumerate(body) if s is stmt)
    between: list[cst.BaseStatement] = []
    for s in body[i + 1:]:
        found = _residual_add(s, var)
        if found is not None:
            break
        if var in bound_names(s) or "*" in bound_names(s):
            return None
        between.append(s)
    else:
        return None
    add_node, skip = found
    scope = tree.enclosing(stmt, cst.FunctionDef) or tree.module
    new = fresh_name(identifiers(scope), "h", f"{var}_normed", "h")
    replacements: dict[cst.CSTNode, cst.CSTNode] = {
        rebind.targets[0].target: rebind.targets[0].target.with_changes(value=new)}
    for s in between:
        replacements[s] = s.visit(_Rename(var, new))
    replacements[add_node] = add_node.visit(_Rename(var, new, keep=skip))
    norm = tree.code(call).strip()
    return tree.fix(f"Bind `{norm}` to `{new}` and use `{new}` in the branch; the residual keeps `{var}`",
                    replacements, UNSAFE)
