"""Project classes that are norms by structure: a forward that reduces the input over a dim
and rescales the input by the result (LlamaRMSNorm, T5LayerNorm, the Annotated
Transformer's LayerNorm, ConvNeXt's channels-first LayerNorm).

The summary records what the numeric rules (NL4) and the axis rules (NL202/NL203) ask:
which statistics, over which dims, whether they are upcast first, where eps sits.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Iterator

from .kinds import REDUCTIONS
from .names import param_defaults

_TORCH_REDUCTIONS = {"torch.mean", "torch.var", "torch.std", "torch.var_mean", "torch.std_mean",
                     "torch.norm", "torch.linalg.norm", "torch.linalg.vector_norm", "torch.sum"}
_ROOTS = {"sqrt", "rsqrt"}
_UPCAST_DTYPES = {"float32", "float", "float64", "double"}


@dataclass
class Stat:
    node: ast.Call
    op: str                    # mean / var / std / norm / sum / var_mean / std_mean
    source: ast.expr           # the reduced expression
    dims: tuple[int, ...] | None   # None: not a literal (or all dims)
    keepdim: bool
    biased: bool               # var/std: unbiased=False or correction=0
    upcast: bool               # the reduced value went through .float()/.to(float32)
    # the statistic is a square in the input dtype (x.pow(2).mean(), x * x, var): the value
    # that overflows fp16 at |x| >= 256. norm()/std() and a plain mean accumulate in float32
    # inside the kernel and return values no larger than the input, so they are safe.
    squared: bool = False


@dataclass
class Division:
    node: ast.BinOp | ast.Call   # x / denom, or the rsqrt(...) call that multiplies
    denominator: ast.expr
    has_eps: bool              # an added term or a clamp guards the denominator
    eps_outside_root: bool     # (std + eps) or sqrt(var) + eps: eps added to the std
    eps_terms: tuple[ast.expr, ...]


@dataclass
class HandNorm:
    cls_name: str
    forward: ast.FunctionDef
    stats: list[Stat]
    divisions: list[Division]
    centered: bool             # subtracts a mean: a LayerNorm, not an RMSNorm
    channels_first: bool       # reduces dim 1 in a class that says so (data_format, permute)
    running_stats: bool        # keeps running_mean / running_var: a BatchNorm implementation
    upcast: bool
    eps_literals: list[tuple[ast.expr, float]] = field(default_factory=list)

    @property
    def family(self) -> str:
        if self.running_stats or any(s.dims and 0 in s.dims and s.keepdim for s in self.stats):
            return "batch"
        return "layer" if self.centered else "rms"


def _call_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return None


def _qual(expr: ast.expr) -> str:
    try:
        return ast.unparse(expr)
    except Exception:  # pragma: no cover - unparse handles every expression ast produces
        return ""


def _literal_dims(node: ast.expr | None) -> tuple[int, ...] | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return (node.value,)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int):
        return (-node.operand.value,)
    if isinstance(node, (ast.Tuple, ast.List)):
        out: list[int] = []
        for elt in node.elts:
            d = _literal_dims(elt)
            if d is None:
                return None
            out.extend(d)
        return tuple(out)
    return None


class _Forward:
    """Name -> assigned expressions inside one function, to follow values back."""

    def __init__(self, fn: ast.FunctionDef):
        self.fn = fn
        self.assigns: dict[str, list[ast.expr]] = {}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    self._bind(t, node.value)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                self._bind(node.target, node.value)

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.assigns.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._bind(elt, value)

    def expand(self, expr: ast.expr, limit: int = 60) -> Iterator[ast.AST]:
        """Every node of expr, following names to their assigned values."""
        seen: set[str] = set()
        todo = [expr]
        while todo and limit > 0:
            limit -= 1
            cur = todo.pop()
            for node in ast.walk(cur):
                yield node
                if isinstance(node, ast.Name) and node.id not in seen and node.id in self.assigns:
                    seen.add(node.id)
                    todo.extend(self.assigns[node.id])


def _is_square(node: ast.AST) -> bool:
    """x.pow(2), torch.pow(x, 2), torch.square(x), x ** 2, x * x."""
    def two(e):
        return isinstance(e, ast.Constant) and e.value in (2, 2.0)
    if isinstance(node, ast.Call):
        name = _call_name(node)
        if name == "square":
            return True
        if name in ("pow", "float_power"):
            exps = node.args[1:] if len(node.args) > 1 else node.args
            return any(two(e) for e in exps) or any(two(k.value) for k in node.keywords)
        return False
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            return two(node.right)
        if isinstance(node.op, ast.Mult):
            return ast.dump(node.left) == ast.dump(node.right)
    return False


def _is_upcast(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    name = _call_name(node)
    if name in ("float", "double"):
        return True
    if name in ("to", "type") or (name and name.endswith("autocast")):
        for a in list(node.args) + [k.value for k in node.keywords]:
            text = _qual(a)
            if text.rsplit(".", 1)[-1] in _UPCAST_DTYPES or "float32" in text:
                return True
        if name.endswith("autocast"):
            return any(k.arg == "enabled" for k in node.keywords)
    return False


def _stat_of(call: ast.Call, imports_qual) -> tuple[str, ast.expr] | None:
    name = _call_name(call)
    if isinstance(call.func, ast.Attribute) and name in REDUCTIONS:
        qual = imports_qual(call.func) or ""
        if qual in _TORCH_REDUCTIONS:
            return (name, call.args[0]) if call.args else None
        if qual.startswith("torch.") or qual.startswith("np.") or qual.startswith("numpy."):
            return None
        return name, call.func.value
    return None


def analyse(cls_name: str, fn: ast.FunctionDef, imports_qual, init: ast.FunctionDef | None,
            class_text_has) -> HandNorm | None:
    """A HandNorm when fn looks like a hand-written norm, else None."""
    flow = _Forward(fn)
    stats: list[Stat] = []
    roots: list[ast.Call] = []
    divs: list[ast.BinOp] = []
    centered = False
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            st = _stat_of(node, imports_qual)
            if st is not None and st[0] != "sum":
                # sum-normalization (routing weights, probabilities) is not a norm layer
                op, src = st
                kw = {k.arg: k.value for k in node.keywords}
                qual = imports_qual(node.func) or ""
                pos = node.args[1:] if qual in _TORCH_REDUCTIONS else node.args
                dim_node = kw.get("dim", kw.get("axis", pos[0] if pos and op != "norm" else
                                                    (pos[1] if op == "norm" and len(pos) > 1 else None)))
                keep = kw.get("keepdim", pos[1] if op != "norm" and len(pos) > 1 else None)
                keepdim = isinstance(keep, ast.Constant) and keep.value is True
                unb = kw.get("unbiased")
                corr = kw.get("correction")
                biased = (isinstance(unb, ast.Constant) and unb.value is False) or \
                         (isinstance(corr, ast.Constant) and corr.value == 0)
                if op in ("var", "std") and len(pos) > 1 and "keepdim" not in kw:
                    # x.var(-1, False) / x.std(dim, unbiased, keepdim) positional forms
                    if isinstance(pos[1], ast.Constant) and pos[1].value is False:
                        biased = True
                    keepdim = len(pos) > 2 and isinstance(pos[2], ast.Constant) and pos[2].value is True
                upcast = any(_is_upcast(n) for n in flow.expand(src))
                squared = op in ("var", "var_mean") or any(_is_square(n) for n in flow.expand(src))
                stats.append(Stat(node, op, src, _literal_dims(dim_node), keepdim, biased, upcast,
                                  squared))
            name = _call_name(node)
            if name in _ROOTS:
                roots.append(node)
        elif isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Div):
                divs.append(node)
            elif isinstance(node.op, ast.Sub):
                right_nodes = list(flow.expand(node.right, limit=8))
                if any(isinstance(n, ast.Call) and _call_name(n) in ("mean", "var_mean")
                       for n in right_nodes):
                    centered = True
    if not stats:
        return None
    dim0 = any(s.dims and 0 in s.dims and s.keepdim for s in stats)
    if not (any(s.keepdim for s in stats) or dim0
            or any(s.op in ("var_mean", "std_mean") for s in stats)):
        return None
    stat_nodes = {id(s.node) for s in stats}

    def derives_from_stat(expr: ast.expr) -> bool:
        return any(id(n) in stat_nodes or (isinstance(n, ast.Call) and _call_name(n) in _ROOTS)
                   for n in flow.expand(expr, limit=20))

    divisions: list[Division] = []
    for d in divs:
        if derives_from_stat(d.right):
            divisions.append(_division(d, d.right, flow))
    for r in roots:
        if _call_name(r) == "rsqrt" and r.args and derives_from_stat(r.args[0]) or \
                _call_name(r) == "rsqrt" and isinstance(r.func, ast.Attribute) and derives_from_stat(r.func.value):
            arg = r.args[0] if r.args else r.func.value
            divisions.append(_division(r, arg, flow))
    if not divisions:
        return None
    running = class_text_has("running_mean") or class_text_has("running_var")
    channels_first = (class_text_has("channels_first") or class_text_has("data_format")
                      or any(isinstance(n, ast.Call) and _call_name(n) == "permute" for n in ast.walk(fn)))
    eps_literals: list[tuple[ast.expr, float]] = []
    for div in divisions:
        for term in div.eps_terms:
            eps_literals.extend(_eps_values(term, flow, init))
    upcast = any(s.upcast for s in stats) or any(_is_upcast(n) for n in ast.walk(fn))
    return HandNorm(cls_name, fn, stats, divisions, centered, channels_first, running, upcast,
                    eps_literals)


def _division(node, denominator: ast.expr, flow: _Forward) -> Division:
    nodes = list(flow.expand(denominator, limit=20))
    eps_terms: list[ast.expr] = []
    clamp = False
    outside = False
    for n in nodes:
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add):
            for side, other in ((n.left, n.right), (n.right, n.left)):
                # the eps is the operand that is not itself a statistic
                if not any(isinstance(m, ast.Call) for m in ast.walk(side)) and \
                        not (isinstance(side, ast.Name) and side.id in flow.assigns
                             and any(isinstance(m, ast.Call) for v in flow.assigns[side.id]
                                     for m in ast.walk(v))):
                    eps_terms.append(side)
                    other_nodes = list(flow.expand(other, limit=10))
                    if any(isinstance(m, ast.Call) and (_call_name(m) in ("std", "sqrt", "norm"))
                           for m in other_nodes):
                        outside = True
        elif isinstance(n, ast.Call) and _call_name(n) in ("clamp", "clamp_min", "clip", "maximum", "max"):
            clamp = True
    for n in nodes:
        # sqrt(var + eps) keeps the eps inside the root: the standard formula
        if isinstance(n, ast.Call) and _call_name(n) in _ROOTS:
            inner = n.args[0] if n.args else getattr(n.func, "value", None)
            if inner is not None and any(isinstance(m, ast.BinOp) and isinstance(m.op, ast.Add)
                                         for m in flow.expand(inner, limit=10)):
                outside = False
    return Division(node, denominator, bool(eps_terms) or clamp, outside, tuple(eps_terms))


def _eps_values(term: ast.expr, flow: _Forward, init: ast.FunctionDef | None) -> list[tuple[ast.expr, float]]:
    """Literal eps values a term stands for: a literal, or self.eps set from an __init__ default."""
    if isinstance(term, ast.Constant) and isinstance(term.value, float):
        return [(term, term.value)]
    if isinstance(term, ast.Name) and term.id in flow.assigns:
        out = []
        for v in flow.assigns[term.id]:
            out.extend(_eps_values(v, flow, init))
        return out
    if isinstance(term, ast.Attribute) and isinstance(term.value, ast.Name) \
            and term.value.id == "self" and init is not None:
        source: ast.expr | None = None
        for node in ast.walk(init):
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Attribute) and t.attr == term.attr
                    and isinstance(t.value, ast.Name) and t.value.id == "self" for t in node.targets):
                source = node.value
        if isinstance(source, ast.Constant) and isinstance(source.value, float):
            return [(source, source.value)]
        if isinstance(source, ast.Name):
            for arg, default in param_defaults(init):
                if arg.arg == source.id and isinstance(default, ast.Constant) \
                        and isinstance(default.value, float):
                    return [(default, default.value)]
    return []
