"""Norms recognised by structure: a reduction over axes of an *activation* (a value computed
from the forward's input), followed by a rescaling of that same activation by the
statistic (LlamaRMSNorm, T5LayerNorm, the Annotated Transformer's LayerNorm, ConvNeXt's
channels-first LayerNorm).

Read from the forward dataflow (flow.py), not from spellings: statistics of a parameter
(weight standardization) are not a norm, and neither is a loss (a division by a count, a
final mean). The summary records what the numeric rules (NL4) and the axis rules
(NL202/NL203) ask: which statistics over which dims, whether *the reduction's input* is
upcast, where eps sits and what its value really is.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from .flow import Flow, Value
from .kinds import REDUCTIONS

_TORCH_REDUCTIONS = {"torch.mean", "torch.var", "torch.std", "torch.var_mean", "torch.std_mean",
                     "torch.norm", "torch.linalg.norm", "torch.linalg.vector_norm", "torch.sum"}
_ROOTS = {"sqrt", "rsqrt"}
_CLAMPS = {"clamp", "clamp_min", "clip", "maximum", "max"}
_UPCAST_DTYPES = {"float32", "float", "float64", "double"}
# steps a statistic passes through on its way into a denominator without changing what it is
_STAT_STEPS = {"unsqueeze", "view", "reshape", "expand", "expand_as", "repeat", "repeat_interleave", "squeeze",
               "flatten", "float", "double", "half", "bfloat16", "to", "type", "type_as", "detach", "clone",
               "contiguous", "transpose", "permute", "t"}
_LOW_DTYPES = {"float16", "half", "bfloat16"}


@dataclass
class Stat:
    value: Value
    node: ast.Call
    op: str                    # mean / var / std / norm / var_mean / std_mean
    dims: tuple[int, ...] | None   # None: not a literal (or all dims)
    keepdim: bool
    biased: bool               # var/std: unbiased=False or correction=0
    # the reduction's own input is upcast to float32 on its way from the activation: True,
    # False (certainly not), None (a cast to a dtype the analysis cannot name)
    upcast: bool | None
    # the statistic is a square in the input dtype (x.pow(2).mean(), x * x, var): the value
    # that overflows fp16 at |x| >= 256. norm()/std() and a plain mean accumulate in float32
    # inside the kernel and return values no larger than the input, so they are safe.
    squared: bool = False

    @property
    def source(self) -> Value:
        return self.value.inputs[0]


@dataclass
class Division:
    node: ast.AST              # x / denom, or the rsqrt(...) call that multiplies
    denominator: ast.expr
    has_eps: bool              # an added term or a clamp guards the denominator
    eps_outside_root: bool     # (std + eps) or sqrt(var) + eps: eps added to the std
    eps_terms: tuple[Value, ...]
    upcast: bool = False       # every statistic in the denominator is upcast: eps is added in fp32
    den_value: Value | None = None


@dataclass
class HandNorm:
    cls_name: str
    stats: list[Stat]
    divisions: list[Division]
    centered: bool             # subtracts a mean: a LayerNorm, not an RMSNorm
    channels_first: bool       # says so (data_format, permute, a (1, C, 1, 1) gain)
    running_stats: bool        # keeps running_mean / running_var: a BatchNorm implementation
    upcast: bool               # every statistic is computed from an upcast input (or cannot be told)
    # (node, value, path, added in fp32: every statistic under it is upcast)
    eps_values: list[tuple[ast.AST, float, str, bool]] = field(default_factory=list)

    @property
    def family(self) -> str:
        if self.running_stats or any(s.dims and 0 in s.dims and s.keepdim for s in self.stats):
            return "batch"
        return "layer" if self.centered else "rms"


def _call(v: Value) -> ast.Call | None:
    return v.node if isinstance(v.node, ast.Call) else None


def _short(v: Value) -> str:
    return (v.name or "").rsplit(".", 1)[-1]


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


def _reduction(v: Value) -> str | None:
    """mean/var/std/... when v reduces a tensor (x.mean(...), torch.var(x, ...))."""
    if v.op == "method" and v.name in REDUCTIONS and v.inputs:
        return v.name
    if v.op == "func" and v.name in _TORCH_REDUCTIONS and v.inputs:
        return v.name.rsplit(".", 1)[-1]
    return None


def _is_two(v: Value) -> bool:
    return v.op == "const" and v.payload in (2, 2.0)


def _is_square(v: Value) -> bool:
    """x.pow(2), torch.pow(x, 2), torch.square(x), x ** 2, x * x."""
    if v.op == "binop":
        if v.name == "Pow":
            return len(v.inputs) == 2 and _is_two(v.inputs[1])
        if v.name == "Mult":
            return len(v.inputs) == 2 and v.inputs[0] is v.inputs[1]
        return False
    if v.op in ("method", "func"):
        name = _short(v)
        if name == "square":
            return True
        if name in ("pow", "float_power"):
            return any(_is_two(i) for i in v.inputs[1:])
    return False


def _is_root(v: Value) -> bool:
    """sqrt / rsqrt of something, including `** 0.5` and `** -0.5`."""
    if v.op in ("method", "func") and _short(v) in _ROOTS:
        return True
    if v.op == "binop" and v.name == "Pow" and len(v.inputs) == 2:
        e = v.inputs[1]
        return e.op == "const" and e.payload in (0.5, -0.5)
    if v.op in ("method", "func") and _short(v) == "pow" and len(v.inputs) >= 2:
        e = v.inputs[-1]
        return e.op == "const" and e.payload in (0.5, -0.5)
    return False


def _is_reciprocal_root(v: Value) -> bool:
    if v.op in ("method", "func") and _short(v) == "rsqrt":
        return True
    if (v.op == "binop" and v.name == "Pow") or (v.op in ("method", "func") and _short(v) == "pow"):
        e = v.inputs[-1]
        return e.op == "const" and e.payload == -0.5
    return False


def cast_direction(v: Value) -> str | None:
    """'up' for a cast to float32/64, 'down' for one to a low or the input's own dtype,
    'unknown' for a cast to a dtype the analysis cannot name, None when v is not a cast."""
    if v.op != "method":
        return None
    if v.name in ("float", "double"):
        return "up"
    if v.name in ("half", "bfloat16"):
        return "down"
    if v.name not in ("to", "type"):
        return None
    targets = v.inputs[1:]
    if not targets:
        return None
    verdict = None
    for t in targets:
        if t.op == "meta":
            verdict = verdict or "down"        # x.to(input_dtype), x.to(x.device)
            continue
        text = (t.name or "") if t.op == "global" else (str(t.payload) if t.op == "const" else "")
        last = text.rsplit(".", 1)[-1]
        if last in _UPCAST_DTYPES:
            return "up"
        if last in _LOW_DTYPES:
            return "down"
        if t.op == "const" and not isinstance(t.payload, str):
            continue                           # non_blocking=True, copy=False
        if t.op == "global" and text.split(".")[0] in ("torch",) and last in ("device",):
            continue
        verdict = "unknown"
    return verdict


def _derives(v: Value, src: Value) -> bool:
    return v is src or v.has_ancestor(src)


def _reaches_avoiding(v: Value, src: Value, blocked: set[int], limit: int = 2000) -> bool:
    """src is v or an ancestor of v through a path that avoids the blocked values."""
    if not _derives(v, src):
        return False
    todo, seen = [v], set()
    while todo and len(seen) < limit:
        cur = todo.pop()
        if cur is src:
            return True
        if cur.id in seen or cur.id in blocked:
            continue
        seen.add(cur.id)
        todo.extend(i for i in cur.inputs if i is src or i.has_ancestor(src))
    return False


def analyse(cls_name: str, flow: Flow, running_stats: bool, channels_first: bool,
            eps_resolver) -> HandNorm | None:
    """A HandNorm when the forward normalizes its input by structure, else None.

    eps_resolver(value) -> [(report node, eps value, path)]: what an eps term stands for.
    """
    params = [p for p in flow.params.values()]
    if not params:
        return None
    values = flow.values
    casts = [(v, cast_direction(v)) for v in values]
    casts = [(v, d) for v, d in casts if d is not None]
    stats: list[Stat] = []
    for v in values:
        op = _reduction(v)
        if op is None or op == "sum" or op == "amax":
            continue                   # sum-normalization (routing weights) is not a norm layer
        src = v.inputs[0]
        act = next((p for p in params if _derives(src, p)), None)
        if act is None:
            continue                   # statistics of a parameter or a constant: not of an activation
        call = _call(v)
        if call is None:
            continue
        stats.append(_stat(v, op, call, src, act, casts, values))
    if not stats:
        return None
    if not (any(s.keepdim for s in stats) or any(s.dims and 0 in s.dims for s in stats)
            or any(s.op in ("var_mean", "std_mean") for s in stats)):
        return None
    stat_values = [s.value for s in stats]

    def from_stat(v: Value) -> bool:
        return any(_derives(v, s) for s in stat_values)

    stat_ids = {s.id for s in stat_values}

    def rescales_activation(v: Value) -> bool:
        # the activation itself (x, x - mean), not a statistic rescaled by another (the
        # Frechet mean of a set of points divided by its own norm is not a norm layer)
        return any(_reaches_avoiding(v, p, stat_ids) for p in params)

    divisions: list[Division] = []
    for v in values:
        if v.op == "binop" and v.name == "Div" and len(v.inputs) == 2:
            num, den = v.inputs
            if from_stat(den) and rescales_activation(num) and den.op != "meta":
                divisions.append(_division(v, den, v.node, stat_values, values))
        elif v.op == "binop" and v.name == "Mult" and len(v.inputs) == 2:
            for a, b in ((v.inputs[0], v.inputs[1]), (v.inputs[1], v.inputs[0])):
                # x * rsqrt(var + eps): the reciprocal root of a statistic rescales the activation
                r = _reciprocal_root_of(b)
                if r is None or not from_stat(r) or not rescales_activation(a):
                    continue
                den = r.inputs[0] if r.inputs else r
                divisions.append(_division(r, den, r.node, stat_values, values))
                break
    if not divisions or _adds_input_back(flow, params):
        return None
    centered = any(v.op == "binop" and v.name == "Sub" and len(v.inputs) == 2
                   and any(_derives(v.inputs[0], p) for p in params)
                   and any(_derives(v.inputs[1], s.value) for s in stats if s.op in ("mean", "var_mean", "std_mean"))
                   for v in values)
    eps_values: list[tuple[ast.AST, float, str, bool]] = []
    for div in divisions:
        # the eps is added to float32 values when the denominator comes from an upcast
        # (binary ops promote: `(x.float() - mean) ** 2` is float32 whatever mean's dtype)
        div.upcast = div.den_value is not None and any(
            d == "up" and _derives(div.den_value, c) and not any(
                dn == "down" and _derives(div.den_value, c2) and c2.has_ancestor(c) for c2, dn in casts)
            for c, d in casts)
        for term in div.eps_terms:
            eps_values.extend((node, value, path, div.upcast) for node, value, path in eps_resolver(term))
    upcast = all(s.upcast is not False for s in stats)
    return HandNorm(cls_name, stats, divisions, centered, channels_first, running_stats, upcast, eps_values)


def _adds_input_back(flow: Flow, params: list[Value]) -> bool:
    """The forward returns its input plus a rescaled term (ConvNeXt-V2's GRN:
    `gamma * (x * Nx) + beta + x`): a residual recalibration, not a normalization."""
    if not flow.returns:
        return False
    for r in flow.returns:
        todo, found = [r], False
        while todo:
            cur = todo.pop()
            if cur.op == "add":
                if any(i in params for i in cur.inputs):
                    found = True
                    break
                todo.extend(cur.inputs)
        if not found:
            return False
    return True


def _reciprocal_root_of(v: Value) -> Value | None:
    """The rsqrt(...) (or ** -0.5) value behind casts and a gain (`weight * rsqrt(var)`)."""
    for _ in range(6):
        if _is_reciprocal_root(v):
            return v
        if v.op == "method" and (cast_direction(v) is not None or _short(v) in _STAT_STEPS) and v.inputs:
            v = v.inputs[0]          # a cast, or a shape step (`rsqrt(var).repeat(4)` for quaternions)
            continue
        if v.op == "binop" and v.name == "Mult" and len(v.inputs) == 2:
            a, b = v.inputs
            if a.op in ("selfattr", "const", "global") or cast_direction(a) is not None:
                v = b
                continue
            if b.op in ("selfattr", "const", "global") or cast_direction(b) is not None:
                v = a
                continue
        return None
    return None


def _stat(v: Value, op: str, call: ast.Call, src: Value, act: Value, casts, values) -> Stat:
    kw = {k.arg: k.value for k in call.keywords}
    torch_form = v.op == "func"
    pos = call.args[1:] if torch_form else call.args
    if op == "norm":
        dim_node = kw.get("dim", pos[1] if len(pos) > 1 else None)
    else:
        dim_node = kw.get("dim", kw.get("axis", pos[0] if pos else None))
    keep = kw.get("keepdim", pos[1] if op != "norm" and len(pos) > 1 else None)
    keepdim = isinstance(keep, ast.Constant) and keep.value is True
    unb, corr = kw.get("unbiased"), kw.get("correction")
    biased = (isinstance(unb, ast.Constant) and unb.value is False) or \
             (isinstance(corr, ast.Constant) and corr.value == 0)
    if op in ("var", "std") and len(pos) > 1 and "keepdim" not in kw:
        # x.var(-1, False) / x.std(dim, unbiased, keepdim) positional forms
        if isinstance(pos[1], ast.Constant) and pos[1].value is False:
            biased = True
        keepdim = len(pos) > 2 and isinstance(pos[2], ast.Constant) and pos[2].value is True
    # casts on the way from the activation to the reduction's input
    on_path = [(c, d) for c, d in casts if _derives(src, c) and c.has_ancestor(act)]
    ups = [c for c, d in on_path if d == "up"]
    downs = [c for c, d in on_path if d == "down"]
    unknown = any(d == "unknown" for _, d in on_path)
    if any(not any(dn.has_ancestor(u) for dn in downs) for u in ups):
        upcast: bool | None = True
    elif unknown:
        upcast = None
    else:
        upcast = False
    squared = op in ("var", "var_mean") or any(
        _is_square(s) and _derives(src, s) and (s is act or s.has_ancestor(act)) for s in values
        if s.id <= src.id)
    return Stat(v, call, op, _literal_dims(dim_node), keepdim, biased, upcast, squared)


def _division(v: Value, den: Value, node, stats: list[Value], values: list[Value]) -> Division:
    """Where eps sits in a denominator that derives from a statistic. Only what lies between
    the denominator and its own statistics counts: an eps added by an earlier normalization
    whose output the statistics were taken of (a name re-bound, `x = (x - u) / sqrt(s + eps)`
    then statistics of x again) is not this division's."""
    eps_terms: list[Value] = []
    clamp = False
    outside = False
    stat_ids = {s.id for s in stats}
    between: dict[int, Value] = {}
    todo = [den]
    while todo:
        cur = todo.pop()
        if cur.id in between:
            continue
        between[cur.id] = cur
        if cur.id not in stat_ids and _reduction(cur) is None:
            todo.extend(cur.inputs)
    values = sorted(between.values(), key=lambda u: u.id)
    for u in values:
        if u.op == "add" and len(u.inputs) == 2:
            for side, other in ((u.inputs[0], u.inputs[1]), (u.inputs[1], u.inputs[0])):
                if any(_derives(side, s) for s in stats) or side.op in ("meta",):
                    continue
                if any(_derives(other, s) for s in stats):
                    eps_terms.append(side)
                    # std + eps or sqrt(var) + eps: the root (or std/norm) comes before the add
                    if any(_derives(other, r) for r in values if r.id <= other.id and (
                            _is_root(r) or (_reduction(r) in ("std", "norm", "std_mean")))):
                        outside = True
        elif u.op in ("method", "func") and _short(u) in _CLAMPS and any(_derives(u, s) for s in stats):
            clamp = True
    if outside and any(_is_root(r) and _derives(den, r) and any(
            _derives(r, t) for t in eps_terms) for r in values):
        outside = False            # sqrt(var + eps): the standard formula
    text = ast.unparse(den.node) if isinstance(den.node, ast.AST) else ""
    den_node = den.node if isinstance(den.node, ast.expr) else ast.Name(id=text or "denominator")
    return Division(node, den_node, bool(eps_terms) or clamp, outside, tuple(eps_terms), den_value=den)


@dataclass
class Rescaling:
    """An activation divided by its own norm statistic outside a norm module (an inline
    ``q / q.norm(dim=-1, keepdim=True)``, ``x * rsqrt(x.pow(2).mean(-1, keepdim=True))``)."""

    node: ast.AST              # the division, or the reciprocal root that multiplies
    data: Value                # the rescaled activation
    stat: Value                # its statistic
    division: Division


def rescalings(flow: Flow, is_data) -> list[Rescaling]:
    """Every activation (``is_data(value)``) rescaled by a norm of itself: a norm or std
    reduction of the same value, or the root of a mean/sum of its square (or of its
    variance). A division by a max (a pre-scale), a sum (a distribution), a count (a loss)
    or a parameter's own norm (weight standardization) is not one."""
    out: list[Rescaling] = []
    values = flow.values
    for v in values:
        if v.op != "binop" or len(v.inputs) != 2:
            continue
        if v.name == "Div":
            candidates = [(v.inputs[0], v.inputs[1], v, False)]
        elif v.name == "Mult":
            candidates = []
            for a, b in ((v.inputs[0], v.inputs[1]), (v.inputs[1], v.inputs[0])):
                r = _reciprocal_root_of(b)
                if r is not None and r.inputs:
                    candidates.append((a, r.inputs[0], r, True))
        else:
            continue
        for num, den, at, rooted in candidates:
            if not is_data(num):
                continue
            stat = _own_statistic(den, num, rooted)
            if stat is None:
                continue
            out.append(Rescaling(at.node, num, stat, _division(at, den, at.node, [stat], values)))
            break
    return out


def _l2(stat: Value) -> bool:
    """A std, or a norm whose order is the default or literally 2."""
    call = _call(stat)
    if call is None or _reduction(stat) == "std":
        return True
    p = next((k.value for k in call.keywords if k.arg in ("p", "ord")), None)
    if p is None and stat.op == "method" and call.args:
        p = call.args[0]
    return p is None or (isinstance(p, ast.Constant) and p.value in (2, 2.0, "fro"))


def _same_data(a: Value, b: Value) -> bool:
    from .flow import root
    return root(a) is root(b)


def _rescaled(num: Value, base: Value) -> bool:
    """num is base, or base centred by a statistic of itself (x - x.mean(...))."""
    if _same_data(num, base):
        return True
    return num.op == "binop" and num.name == "Sub" and len(num.inputs) == 2 and _same_data(num.inputs[0], base) \
        and any(_reduction(u) is not None and _same_data(u.inputs[0], base)
                for u in [num.inputs[1]] + [i for i in num.inputs[1].inputs])


def _squared_base(v: Value) -> Value | None:
    if not _is_square(v):
        return None
    return v.inputs[0] if v.inputs else None


def _own_statistic(den: Value, num: Value, rooted: bool) -> Value | None:
    """The reduction of num's own data that den is built from (through roots, casts, shape
    steps, an added eps or a clamp), or None."""
    todo, steps = [(den, rooted)], 0
    while todo and steps < 24:
        steps += 1
        cur, r = todo.pop()
        op = _reduction(cur)
        if op in ("norm", "std", "vector_norm") and cur.inputs and _rescaled(num, cur.inputs[0]):
            # an L1 or unknown p-norm rescales like a sum (routing weights), not like a norm
            return cur if _l2(cur) else None
        if op in ("mean", "sum", "var") and r and cur.inputs:
            base = cur.inputs[0] if op == "var" else _squared_base(cur.inputs[0])
            if base is not None and _rescaled(num, base):
                return cur
        if op is not None:
            continue
        if _is_root(cur) and cur.inputs:
            todo.append((cur.inputs[0], True))
        elif cur.op == "add":
            todo.extend((i, r) for i in cur.inputs)
        elif cur.op in ("method", "func") and _short(cur) in (_CLAMPS | _STAT_STEPS) and cur.inputs:
            todo.append((cur.inputs[0], r))
        elif cur.op in ("getitem", "unary") and cur.inputs:
            todo.append((cur.inputs[0], r))
    return None
