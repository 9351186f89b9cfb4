"""A constructor call rewritten into the terms of another class's ``__init__``.

NL302's fix needs a final norm built in the class that owns the stack, with the width
that the blocks' own norms use: ``nn.LayerNorm(d)`` in ``Block.__init__(self, d)`` built as
``Block(config.hidden_size)`` becomes ``nn.LayerNorm(config.hidden_size)`` in the owner.
The rewrite follows the chain of constructions from the owner down to the norm,
substituting each class's (or factory function's) parameters by the arguments it was
built with. When any name cannot be expressed in the owner's scope the answer is None:
a fixer gets a constructor it can paste, or nothing.
"""

from __future__ import annotations

import ast
import builtins
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .index import ClassInfo, FileInfo
from .modules import Kind, ModuleModel
from .names import param_defaults, walk

if TYPE_CHECKING:
    from .model import Analysis

_BUILTINS = frozenset(dir(builtins))


class _Substitute(ast.NodeTransformer):
    def __init__(self, env: dict[str, ast.expr], attrs: dict[str, ast.expr] | None = None):
        self.env = env
        self.attrs = attrs or {}

    def visit_Name(self, node: ast.Name):
        if node.id in self.env:
            return copy.deepcopy(self.env[node.id])
        return node

    def visit_Attribute(self, node: ast.Attribute):
        # self.embed_dim inside the block means what the block's __init__ assigned to it
        if isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in self.attrs:
            return copy.deepcopy(self.attrs[node.attr])
        self.generic_visit(node)
        return node


def _substitute(expr: ast.expr, env: dict[str, ast.expr], attrs: dict[str, ast.expr] | None = None) -> ast.expr:
    return _Substitute(env, attrs).visit(copy.deepcopy(expr))


def _portable(expr: ast.expr, src: FileInfo, owner: FileInfo) -> bool:
    """Every free name of expr means the same in the owner's file as in src."""
    for n in walk(expr):
        if not isinstance(n, ast.Name) or n.id in _BUILTINS or n.id == "self":
            continue
        if src is owner:
            continue
        q_src = src.imports.aliases.get(n.id) or (f"{src.module}.{n.id}" if n.id in src.classes
                                                  or n.id in src.constants or n.id in src.functions else None)
        q_own = owner.imports.aliases.get(n.id) or (f"{owner.module}.{n.id}" if n.id in owner.classes
                                                    or n.id in owner.constants or n.id in owner.functions else None)
        if q_src is None or q_own is None or q_src.rsplit(".", 1)[-1] != q_own.rsplit(".", 1)[-1]:
            return False
        if q_src.split(".")[0].lstrip(".") != q_own.split(".")[0].lstrip(".") and not (
                q_src.startswith(".") or q_own.startswith(".")):
            return False
    return True


def _bind(fn: ast.FunctionDef, call: ast.Call, env: dict[str, ast.expr], src: FileInfo, owner: FileInfo,
          skip_self: bool, local_exprs: dict[str, ast.expr] | None = None) -> dict[str, ast.expr] | None:
    """Parameter -> expression in the owner's terms, for fn called as call (under env)."""
    names = [p.arg for p in fn.args.posonlyargs + fn.args.args]
    if skip_self and names and names[0] == "self":
        names = names[1:]
    out: dict[str, ast.expr] = {}
    for name, arg in zip(names, call.args):
        if isinstance(arg, ast.Starred):
            break
        out[name] = _substitute(arg, env)
    for k in call.keywords:
        if k.arg is not None:
            out[k.arg] = _substitute(k.value, env)
    for p, default in param_defaults(fn):
        if p.arg in out or p.arg == "self" or default is None:
            continue
        if _portable(default, src, owner):
            out[p.arg] = copy.deepcopy(default)
    # simple locals of the callee's __init__ (hidden = config.hidden_size), in the owner's terms
    for name, expr in (local_exprs or {}).items():
        if name not in out and not any(isinstance(n, ast.Name) and n.id == name for n in walk(expr)):
            sub = _substitute(expr, out)
            out[name] = sub
    return out


def _simplify_partial(call: ast.Call, file: FileInfo) -> ast.Call:
    """partial(nn.LayerNorm, eps=1e-6)(d) -> nn.LayerNorm(d, eps=1e-6)."""
    f = call.func
    if isinstance(f, ast.Call) and (file.imports.qualname(f.func) or "").endswith("partial") and f.args:
        return ast.Call(func=f.args[0], args=list(f.args[1:]) + list(call.args),
                        keywords=list(f.keywords) + list(call.keywords))
    return call


@dataclass
class _Scope:
    env: dict[str, ast.expr]           # names of this scope -> expressions in the owner's terms
    attrs: dict[str, ast.expr]         # self.X of this scope's class -> same
    src: FileInfo
    model: ModuleModel | None          # the class whose __init__ this scope is (None: the owner's)
    cls: ClassInfo | None


def rewrite(a: "Analysis", owner: ClassInfo, chain: list[Kind], target: Kind,
            target_scope: ClassInfo | None) -> str | None:
    """target's constructor in the terms of owner.__init__, following chain (the kinds
    constructed from the owner's scope down to the class whose __init__ built target).
    A kind handed to a class as an argument was built in the scope that built that class."""
    if target.call is None:
        return None
    scopes = [_Scope({}, {}, owner.file, None, owner)]

    def scope_of(k: Kind) -> _Scope:
        i = len(scopes) - 1
        while i > 0 and scopes[i].model is not None and scopes[i].model.is_bound(k):
            i -= 1
        return scopes[i]

    for k in chain:
        sc = scope_of(k)
        env, src = sc.env, sc.src
        if k.made_by is not None:
            fn, call, ffile = k.made_by
            env = _bind(fn, _substitute_call(call, sc), env, ffile, owner.file, skip_self=False)
            src = ffile
        if k.cls is not None and k.call is not None and k.category in ("project", "norm"):
            found = a.index.find_method(k.cls, "__init__")
            if found is None:
                return None
            model = a.builder.model_of(k)
            bound = _bind(found[0], _substitute_call(k.call, sc) if k.made_by is None else k.call, env, src,
                          owner.file, skip_self=True, local_exprs=model.locals if model is not None else None)
            attrs = {name: _substitute(expr, bound) for name, expr in (model.attr_exprs if model else {}).items()
                     if isinstance(expr, (ast.Name, ast.Attribute, ast.Constant, ast.BinOp))}
            scopes.append(_Scope(bound, attrs, k.cls.file, model, k.cls))
    sc = scope_of(target)
    if target_scope is not None and target_scope is not sc.cls:
        return None
    # names the target's constructor takes from its own module must mean the same in the owner's
    for n in walk(target.call):
        if isinstance(n, ast.Name) and n.id not in sc.env and n.id != "self" and not _portable(n, sc.src, owner.file):
            return None
    call = _simplify_partial(_substitute(target.call, sc.env, sc.attrs), owner.file)
    if not _valid_in_owner(a, call, owner):
        return None
    try:
        return ast.unparse(call)
    except Exception:  # pragma: no cover - unparse handles every expression ast produces
        return None


def _substitute_call(call: ast.Call, scope: _Scope) -> ast.Call:
    """A constructor call written in scope, with self.X of that scope resolved (its names are
    substituted when its parameters are bound)."""
    return _substitute(call, {}, scope.attrs) if scope.attrs else call


def _valid_in_owner(a: "Analysis", call: ast.Call, owner: ClassInfo) -> bool:
    """Free names of the rewritten call are names the owner's __init__ can see."""
    found = a.index.find_method(owner, "__init__")
    init_names: set[str] = set()
    if found is not None:
        init = found[0]
        init_names = {p.arg for p, _ in param_defaults(init)}
        for node in walk(init):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                init_names.add(node.id)
        # comprehension variables are not visible outside their comprehension
        for node in walk(init):
            if isinstance(node, ast.comprehension):
                for t in walk(node.target):
                    if isinstance(t, ast.Name):
                        init_names.discard(t.id)
    file = owner.file
    module_names = set(file.imports.aliases) | set(file.classes) | set(file.functions) | set(file.constants)
    for n in walk(call):
        if isinstance(n, ast.Name) and n.id not in _BUILTINS and n.id not in init_names \
                and n.id not in module_names:
            return False            # `self` included: a block's self is not the owner's
    return True
