"""Abstract axes: what each axis of a value is, where the code says so.

A layout is a tuple of roles, one per axis: ``B`` batch, ``S`` sequence / time / spatial
position, ``F`` feature / channel, ``?`` unknown. A leading ``*`` stands for any number of
unknown leading axes (a Linear applied to a value of unknown rank gives ``("*", "F")``).
``None`` means nothing is known.

Producers set layouts (Linear, Embedding and attention put the feature axis last, Conv puts
channels at dim 1); ops move them (transpose, permute, movedim, flatten, unsqueeze,
squeeze, indexing, reductions, einops ``rearrange``); norms, activations, dropout and adds
carry them through. A reshape/view to a computed shape is unknown: unknown never fires.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from .flow import Flow, Value, is_transparent, root

if TYPE_CHECKING:
    from .model import Analysis

Layout = tuple[str, ...]
_KEEP_METHODS = {"float", "half", "bfloat16", "double", "to", "type", "type_as", "contiguous", "clone",
                 "detach", "relu", "gelu", "silu", "tanh", "sigmoid", "masked_fill", "cuda", "cpu",
                 "softmax", "log_softmax", "mul", "add", "sub", "div", "neg", "abs", "exp", "sqrt",
                 "pow", "clamp", "clamp_min", "masked_fill_", "mul_", "add_", "expand_as"}
_ACT_FUNCS = {"relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "elu", "mish", "hardswish",
              "softplus", "dropout", "softmax", "log_softmax", "glu", "drop_path"}
_NAME_ROLES = {"b": "B", "batch": "B", "c": "F", "d": "F", "dim": "F", "e": "F", "ch": "F",
               "channels": "F", "n": "S", "t": "S", "l": "S", "s": "S", "seq": "S",
               "len": "S", "hw": "S", "w": "S",
               # the field's usual names in `batch_size, seq_len, hidden_size = x.shape`
               "bs": "B", "bsz": "B", "batch_size": "B", "seq_len": "S", "seqlen": "S",
               "seq_length": "S", "sequence_length": "S", "num_tokens": "S", "n_tokens": "S",
               "tgt_len": "S", "src_len": "S", "hidden_size": "F", "hidden_dim": "F",
               "embed_dim": "F", "num_channels": "F"}
_ATTENTION_CATEGORIES = ("attention", "rnn", "transformer", "transformer_layer", "transformer_stack")


def rank(layout: Layout | None) -> int | None:
    if layout is None or (layout and layout[0] == "*"):
        return None
    return len(layout)


def role(layout: Layout | None, dim: int) -> str | None:
    """The role of axis dim (negative dims count from the end), or None when unknown."""
    if layout is None:
        return None
    if layout and layout[0] == "*":
        tail = layout[1:]
        if -len(tail) <= dim < 0:
            return tail[dim]
        return None
    if -len(layout) <= dim < len(layout):
        return layout[dim]
    return None


def _absolute(layout: Layout, dims: list[int]) -> list[int] | None:
    n = rank(layout)
    if n is None:
        return None
    out = []
    for d in dims:
        d = d + n if d < 0 else d
        if not 0 <= d < n:
            return None
        out.append(d)
    return out


def _ints(values: list[Value]) -> list[int] | None:
    out: list[int] = []
    for v in values:
        if v.op == "const" and isinstance(v.payload, int) and not isinstance(v.payload, bool):
            out.append(v.payload)
        elif v.op == "unary" and v.inputs and v.inputs[0].op == "const" and isinstance(v.inputs[0].payload, int) \
                and v.name == "USub":
            out.append(-v.inputs[0].payload)
        elif v.op == "tuple":
            inner = _ints(list(v.inputs))
            if inner is None:
                return None
            out.extend(inner)
        else:
            return None
    return out


def _merge(a: Layout | None, b: Layout | None) -> Layout | None:
    """An add's layout: both operands have it (broadcasting aside); the better known wins."""
    if a is None:
        return b
    if b is None:
        return a
    if rank(a) is None and rank(b) is not None:
        return _fill(b, a) if _compatible(a, b) else None
    if rank(b) is None and rank(a) is not None:
        return _fill(a, b) if _compatible(b, a) else None
    if rank(a) is None and rank(b) is None and len(a) != len(b):
        # (..., F) + (..., L, F): the longer known tail, when they agree on the shared part
        short, long_ = (a, b) if len(a) < len(b) else (b, a)
        return long_ if _compatible(short, long_[1:]) or _compatible(short, long_) else None
    if rank(a) is not None and rank(b) is not None and len(a) != len(b):
        return a if len(a) > len(b) else b          # broadcasting a bias or a positional table
    return a


def _with_rank(layout: Layout | None, n: int) -> Layout | None:
    """A layout refined by a known rank: (*, L, F) with rank 3 is (?, L, F)."""
    if layout is None:
        return ("?",) * n
    if rank(layout) is None and len(layout) - 1 <= n:
        return ("?",) * (n - len(layout) + 1) + layout[1:]
    return layout


def _named(layout: Layout | None, names: tuple[str, ...]) -> Layout | None:
    """A layout's unknown axes named by a shape unpacking (`batch_size, seq_len, _ = x.shape`):
    a name says an axis's role only where nothing else did."""
    if layout is None or rank(layout) != len(names):
        return layout
    return tuple(r if r != "?" else _NAME_ROLES.get(n.lower(), "?") for r, n in zip(layout, names))


def _fill(known: Layout, partial: Layout) -> Layout:
    """A ranked layout with its unknown axes filled from a compatible (*, ...) layout."""
    tail = partial[1:]
    out = list(known)
    for i in range(1, len(tail) + 1):
        if out[-i] == "?":
            out[-i] = tail[-i]
    return tuple(out)


def _compatible(partial: Layout, full: Layout) -> bool:
    tail = partial[1:]
    return len(tail) <= len(full) and all(p == "?" or p == f or f == "?" for p, f in zip(tail, full[-len(tail):]))


def parse_rearrange(pattern: str) -> tuple[list[list[str]], list[list[str]]] | None:
    """'b c h w -> b (h w) c' -> ([[b], [c], [h], [w]], [[b], [h, w], [c]])."""
    if "->" not in pattern:
        return None
    left, right = pattern.split("->", 1)

    def side(text: str) -> list[list[str]] | None:
        out: list[list[str]] = []
        for m in re.finditer(r"\(([^)]*)\)|(\.\.\.|[A-Za-z_]\w*|\d+)", text):
            if m.group(1) is not None:
                out.append(m.group(1).split())
            else:
                out.append([m.group(2)])
        return out

    lhs, rhs = side(left), side(right)
    if lhs is None or rhs is None:
        return None
    return lhs, rhs


def rearrange(layout: Layout | None, pattern: str) -> Layout | None:
    parsed = parse_rearrange(pattern)
    if parsed is None:
        return None
    lhs, rhs = parsed
    roles: dict[str, str] = {}
    ellipsis = any(g == ["..."] for g in lhs)
    if layout is not None and rank(layout) is not None and not ellipsis and len(layout) == len(lhs):
        for group, r in zip(lhs, layout):
            for name in group:
                roles[name] = r if len(group) == 1 else "?"
    else:
        if layout is not None and rank(layout) is None and not ellipsis:
            # ('*', ..., 'F'): the input's known tail lines up with the pattern's tail
            tail = layout[1:]
            for group, r in zip(reversed(lhs), reversed(tail)):
                if len(group) == 1:
                    roles[group[0]] = r
        for group in lhs:
            for name in group:
                roles.setdefault(name, _NAME_ROLES.get(name.lower(), "?"))
    if any(g == ["..."] for g in rhs):
        return None
    out: list[str] = []
    for group in rhs:
        rs = {roles.get(n, "?") for n in group if not n.isdigit()}
        if len(group) > 1 and "F" in rs and "B" not in rs:
            out.append("F")          # (p1 p2 c): a flattened patch is a feature vector
        else:
            out.append(rs.pop() if len(rs) == 1 else "?")
    return tuple(out)


class AxesSolver:
    """Layouts of the values of one flow, given the layouts of its parameters."""

    def __init__(self, analysis: "Analysis", flow: Flow, params: dict[str, Layout | None] | None = None,
                 depth: int = 0, infer: bool = True):
        self.a = analysis
        self.flow = flow
        self.memo: dict[int, Layout | None] = {}
        self.depth = depth
        for name, v in flow.params.items():
            if params and name in params:
                self.memo[v.id] = params[name]
        if infer:
            self._infer_streams(params)

    def _infer_streams(self, params: dict[str, Layout | None] | None) -> None:
        """An input whose layout nobody gives is laid out like the residual branches added
        to it: in `x + attn(norm(x))[0]`, x has the shape of the attention's output (a
        residual add does not broadcast the stream). Several branches that disagree say
        nothing. Failing that, it is laid out as what it feeds demands (`_demanded`), and
        failing that, as every caller hands it (`Analysis.argument_layout`)."""
        unknown = [v for v in self.flow.params.values() if self.memo.get(v.id) is None]
        if not unknown:
            return
        skips = {id(p): [r.branch for r in self.flow.residuals if root(r.skip) is p] for p in unknown}
        if any(skips.values()):
            probe = AxesSolver(self.a, self.flow, params, self.depth, infer=False)
            for p in unknown:
                outs = {probe.of(b) for b in skips[id(p)]}
                outs.discard(None)
                ranked = {o for o in outs if rank(o) is not None} or outs
                if len(ranked) == 1:
                    self.memo[p.id] = self._refined(p, ranked.pop())
        for name, p in self.flow.params.items():
            known = self.memo.get(p.id)
            if known is not None and (rank(known) is not None or "S" in known) or p.id in self.flow.axis_names:
                continue
            # what is known so far, this input aside
            given = {n: self.memo[v.id] for n, v in self.flow.params.items()
                     if v is not p and self.memo.get(v.id) is not None}
            probe = AxesSolver(self.a, self.flow, given, self.depth, infer=False)
            found = self._demanded(p, probe)
            if found is None and self.depth == 0 and self.flow.model is not None:
                found = self.a.argument_layout(self.flow, name)
            # (..., C) from a residual branch says less than a demand it agrees with; what
            # each says of an axis the other leaves unknown is kept
            if found is not None and (known is None or _compatible(known, found)):
                self.memo[p.id] = _merge(known, found)

    def _refined(self, v: Value, layout: Layout | None) -> Layout | None:
        """A layout refined by what the code says of v's shape (`b, n, d = v.shape`)."""
        if v.id in self.flow.ranks:
            layout = _with_rank(layout, self.flow.ranks[v.id])
        if v.id in self.flow.axis_names:
            layout = _named(layout, self.flow.axis_names[v.id])
        return layout

    def _demanded(self, p: Value, probe: "AxesSolver") -> Layout | None:
        """The layout an input must have for what it feeds: followed forward through steps
        that keep every axis's role (norms, activations, casts, Linear, residual and
        modulation arithmetic, a concatenation, a project module that maps the layout to
        itself) to a consumer that fixes it: an attention or recurrent module (its
        batch_first says where the batch is), a project attention module, a project module
        whose own input is known (`b, n, c = x.shape` there), an einops pattern. Consumers
        that disagree say nothing."""
        found: set[Layout] = set()
        todo: list[tuple[Value, tuple]] = [(p, ())]
        seen: set[int] = {p.id}
        steps = 0
        while todo and steps < 48 and len(found) < 2:
            cur, via = todo.pop(0)
            for u in self.flow.uses(cur):
                steps += 1
                if u.id in seen:
                    continue
                seen.add(u.id)
                first = bool(u.inputs) and u.inputs[0] is cur
                fixed = self._consumer(u, cur, first) or self._concatenated_with(u, cur, probe)
                if fixed is not None:
                    if all(self._maps_to_itself(k, fixed) for k in via):
                        found.add(fixed)
                    continue
                step = self._carries(u, cur, first)
                if step is not None:
                    todo.append((u, via + ((step,) if step is not True else ())))
        ranked = {f for f in found if rank(f) is not None} or found
        return ranked.pop() if len(ranked) == 1 else None

    def _consumer(self, u: Value, cur: Value, first: bool) -> Layout | None:
        if u.op == "func" and (u.name or "").rsplit(".", 1)[-1] == "rearrange" and first \
                and isinstance(u.node, ast.Call) and len(u.node.args) >= 2 \
                and isinstance(u.node.args[1], ast.Constant) and isinstance(u.node.args[1].value, str):
            parsed = parse_rearrange(u.node.args[1].value)
            if parsed is None or any(g == ["..."] for g in parsed[0]):
                return None
            out = tuple(_NAME_ROLES.get(g[0].lower(), "?") if len(g) == 1 else "?" for g in parsed[0])
            return out if "S" in out and out[-1] == "F" else None
        if u.op not in ("call", "block") or u.kind is None or cur not in u.inputs:
            return None
        k = u.kind
        if k.category in _ATTENTION_CATEGORIES:
            bf = k.keyword("batch_first")
            if isinstance(bf, ast.Constant) and bf.value is True:
                return ("B", "S", "F")
            if k.torch_name in ("MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer",
                                "TransformerEncoder", "TransformerDecoder", "LSTM", "GRU", "RNN"):
                return ("S", "B", "F")
            return None
        if k.category == "project" and k.cls is not None and first:
            if self.a.attends(k.cls):
                return ("*", "S", "F")      # attention modules take (..., L, C)
            if self.depth < 2:
                return self.a.input_layout(k, self.depth + 1)
        return None

    def _concatenated_with(self, u: Value, cur: Value, probe: "AxesSolver") -> Layout | None:
        """`torch.cat((x, latents), dim=-2)`: the parts share every axis's role."""
        if u.op != "tuple" or not any(w.op == "func" and (w.name or "").rsplit(".", 1)[-1] in ("cat", "concat")
                                      and w.inputs and w.inputs[0] is u for w in self.flow.uses(u)):
            return None
        outs = {probe.of(i) for i in u.inputs if i is not cur}
        outs.discard(None)
        outs = {o for o in outs if "S" in o and o[-1] == "F"}
        return outs.pop() if len(outs) == 1 else None

    def _carries(self, u: Value, cur: Value, first: bool):
        """True when u has cur's layout (roles kept), a project Kind when it has it only if
        that module maps the layout to itself, else None."""
        op = u.op
        if op in ("norm", "phi"):
            return True
        if op == "add" or op == "binop" and u.name in ("Add", "Sub", "Mult", "Div"):
            return True
        if op == "method":
            return True if first and u.name in _KEEP_METHODS else None
        if op == "func":
            short = (u.name or "").rsplit(".", 1)[-1]
            if first and short in _ACT_FUNCS:
                return True
            if short in ("cat", "concat", "concatenate") and u.inputs and u.inputs[0].op == "tuple" \
                    and cur is u.inputs[0]:
                return True
            return None
        if op == "tuple":
            # only into a concatenation (checked at the next step)
            return True if any(w.op == "func" and (w.name or "").rsplit(".", 1)[-1] in ("cat", "concat", "concatenate")
                               for w in self.flow.uses(u)) else None
        if op == "getitem":
            return True if cur.op in ("call", "block") and (u.name == "0" or _index_is_zero(u)) else None
        if op in ("call", "block") and first and u.kind is not None:
            cat = u.kind.category
            if cat in ("dropout", "identity", "act", "norm", "linear"):
                return True
            if cat == "project" and u.kind.cls is not None and self.depth < 2:
                return u.kind
        return None

    def _maps_to_itself(self, kind, layout: Layout) -> bool:
        out = self.a.output_layout(kind, layout, self.depth + 1)
        return out is not None and (out == layout or rank(out) is None and _compatible(out, layout))

    def of(self, v: Value) -> Layout | None:
        if v.id in self.memo:
            return self.memo[v.id]
        self.memo[v.id] = None          # cycles (none expected) and deep recursion stop here
        # iterative warm-up of the inputs keeps Python's recursion shallow on long forwards
        todo = [v]
        order = []
        while todo and len(order) < 4000:
            cur = todo.pop()
            order.append(cur)
            for i in cur.inputs:
                if i.id not in self.memo:
                    self.memo[i.id] = None
                    todo.append(i)
        for cur in sorted(order, key=lambda x: x.id):
            self.memo[cur.id] = self._refined(cur, self._compute(cur))
        return self.memo[v.id]

    def _in(self, v: Value, i: int = 0) -> Layout | None:
        return self.memo.get(v.inputs[i].id) if len(v.inputs) > i else None

    def _compute(self, v: Value) -> Layout | None:
        op = v.op
        if op == "param":
            given = self.memo.get(v.id)
            return _with_rank(given, self.flow.ranks[v.id]) if v.id in self.flow.ranks else given
        if op in ("norm",):
            return self._in(v)
        if op in ("call", "block"):
            return self._module(v)
        if op in ("add",):
            return _merge(self._in(v, 0), self._in(v, 1))
        if op == "binop":
            if v.name in ("Mult", "Div", "Sub", "Add", "Pow"):
                a, b = self._in(v, 0), self._in(v, 1)
                return _merge(a, b) if v.name != "Pow" else a
            if v.name == "MatMult":
                a, b = self._in(v, 0), self._in(v, 1)
                return None if a is None or b is None else None
            return None
        if op in ("unary", "attr"):
            return self._in(v)
        if op == "phi":
            outs = {self.memo.get(i.id) for i in v.inputs}
            outs.discard(None)
            return outs.pop() if len(outs) == 1 else None
        if op == "getitem":
            return self._getitem(v)
        if op == "method":
            return self._method(v)
        if op == "func":
            return self._func(v)
        return None

    def _module(self, v: Value) -> Layout | None:
        k = v.kind
        inp = self._in(v)
        if k is None:
            return None
        cat = k.category
        if cat in ("dropout", "identity", "act", "norm"):
            return inp
        if cat == "linear":
            if inp is None:
                return ("*", "F")
            return inp[:-1] + ("F",) if inp else None
        if cat == "embedding":
            # token ids (B, L) give (B, L, C); ids of unknown rank give (..., L, C)
            if rank(inp) is not None:
                return inp + ("F",)
            if v.inputs and v.inputs[0].op == "param":
                return ("B", "S", "F")      # a forward's token ids: (B, L)
            return ("*", "S", "F")
        if cat == "attention":
            bf = k.keyword("batch_first")
            if isinstance(bf, ast.Constant) and bf.value is True:
                return ("B", "S", "F")
            if k.torch_name == "MultiheadAttention":
                return ("S", "B", "F")
            return ("*", "S", "F")
        if cat == "rnn":
            bf = k.keyword("batch_first")
            if isinstance(bf, ast.Constant) and bf.value is True:
                return ("B", "S", "F")
            return ("S", "B", "F")
        if cat in ("transformer", "transformer_stack", "transformer_layer"):
            return inp if inp is not None else ("*", "S", "F")
        if cat == "conv":
            n = _conv_dims(k.torch_name or k.name)
            return ("B", "F") + ("S",) * n if n else ("B", "F", "*")
        if cat == "unknown" and k.name == "Rearrange" and k.call is not None and k.call.args \
                and isinstance(k.call.args[0], ast.Constant) and isinstance(k.call.args[0].value, str):
            return rearrange(inp, k.call.args[0].value)
        if cat == "project" and k.cls is not None and self.a.attends(k.cls):
            return ("*", "S", "F")          # attention modules take and give (..., L, C)
        if cat == "project" and k.cls is not None and self.depth < 3:
            return self.a.output_layout(k, inp, self.depth + 1)
        if cat == "stack" and k.block is not None and self.depth < 3:
            # a block of a stack maps its input's layout to itself when it is a residual block
            return self.a.output_layout(k.block, inp, self.depth + 1) if k.block.cls is not None else None
        return None

    def _getitem(self, v: Value) -> Layout | None:
        base = v.inputs[0] if v.inputs else None
        if base is None:
            return None
        layout = self.memo.get(base.id)
        if base.op in ("call", "block") and base.kind is not None and (
                base.kind.category in ("attention", "rnn")
                or base.kind.category == "project" and base.kind.cls is not None and self.a.attends(base.kind.cls)):
            # (output, weights) / (output, state): the first element is the output
            return layout if v.name == "0" or _index_is_zero(v) else None
        if base.op in ("call", "block") and base.kind is not None and base.kind.category == "project" \
                and base.kind.cls is not None and self.depth < 3 and (v.name == "0" or _index_is_zero(v)):
            # a block returning (hidden_states, ...): the first element's layout
            return self.a.output_layout(base.kind, self._in(base), self.depth + 1, index=0)
        if v.name is not None and v.name.isdigit() and base.op == "method" and base.name in ("chunk", "split",
                                                                                           "tensor_split"):
            return self.memo.get(base.inputs[0].id) if base.inputs else None
        if layout is None or not isinstance(v.node, ast.Subscript):
            return None
        sl = v.node.slice
        items = sl.elts if isinstance(sl, ast.Tuple) else [sl]
        out = list(layout)
        star = bool(out) and out[0] == "*"
        if star:
            # x[..., :d] keeps every axis; anything else on an unknown rank is unknown
            if isinstance(items[0], ast.Constant) and items[0].value is Ellipsis \
                    and all(isinstance(it, ast.Slice) for it in items[1:]):
                return layout
            return None
        pos = 0
        result: list[str] = []
        for it in items:
            if isinstance(it, ast.Constant) and it.value is Ellipsis:
                rest = len(items) - items.index(it) - 1
                keep = len(out) - pos - rest
                if keep < 0:
                    return None
                result.extend(out[pos:pos + keep])
                pos += keep
            elif isinstance(it, ast.Constant) and it.value is None:
                result.append("?")
            elif isinstance(it, ast.Slice):
                if pos >= len(out):
                    return None
                result.append(out[pos])
                pos += 1
            else:
                pos += 1                    # an index drops the axis (a mask or tensor index: unknown)
                if not (isinstance(it, (ast.Constant, ast.UnaryOp, ast.Name))):
                    return None
        result.extend(out[pos:])
        return tuple(result)

    def _method(self, v: Value) -> Layout | None:
        name = v.name
        inp = self._in(v)
        args = list(v.inputs[1:])
        if name in _KEEP_METHODS or name in ("expand",):
            return inp
        if inp is None:
            return None
        if name in ("transpose", "swapaxes", "swapdims"):
            d = _ints(args[:2])
            if d is None or len(d) != 2:
                return None
            return _swap(inp, d[0], d[1])
        if name == "permute":
            d = _ints(args)
            ab = _absolute(inp, d) if d is not None else None
            if ab is None or sorted(ab) != list(range(len(inp))):
                return None
            return tuple(inp[i] for i in ab)
        if name in ("movedim", "moveaxis"):
            d = _ints(args[:2])
            if d is None or len(d) != 2:
                return None
            return _movedim(inp, d[0], d[1])
        if name == "flatten":
            d = _ints(args[:2]) if args else [0]
            if d is None:
                return None
            start = d[0]
            end = d[1] if len(d) > 1 else -1
            ab = _absolute(inp, [start, end])
            if ab is None:
                return None
            merged = set(inp[ab[0]:ab[1] + 1])
            r = merged.pop() if len(merged) == 1 else "?"
            return inp[:ab[0]] + (r,) + inp[ab[1] + 1:]
        if name == "unsqueeze":
            d = _ints(args[:1])
            n = rank(inp)
            if d is None or n is None:
                return None
            pos = d[0] + n + 1 if d[0] < 0 else d[0]
            return inp[:pos] + ("?",) + inp[pos:]
        if name in ("mean", "sum", "amax", "max", "min", "std", "var", "norm", "logsumexp"):
            call = v.node if isinstance(v.node, ast.Call) else None
            if call is None:
                return None
            keep = any(k.arg == "keepdim" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in call.keywords)
            d = _ints([a for a in args if a.op in ("const", "unary", "tuple")][:1])
            if d is None or not d:
                return None
            if keep:
                return inp
            ab = _absolute(inp, d)
            if ab is None:
                return None
            return tuple(r for i, r in enumerate(inp) if i not in ab)
        return None

    def _func(self, v: Value) -> Layout | None:
        short = (v.name or "").rsplit(".", 1)[-1]
        inp = self._in(v)
        if short in _ACT_FUNCS or short in ("dropout", "contiguous"):
            return inp
        if short in ("transpose", "swapaxes") and len(v.inputs) >= 3 and inp is not None:
            d = _ints(list(v.inputs[1:3]))
            return _swap(inp, d[0], d[1]) if d is not None and len(d) == 2 else None
        if short == "permute" and inp is not None:
            d = _ints(list(v.inputs[1:]))
            ab = _absolute(inp, d) if d is not None else None
            if ab is None or sorted(ab) != list(range(len(inp))):
                return None
            return tuple(inp[i] for i in ab)
        if short in ("movedim", "moveaxis") and len(v.inputs) >= 3 and inp is not None:
            d = _ints(list(v.inputs[1:3]))
            return _movedim(inp, d[0], d[1]) if d is not None and len(d) == 2 else None
        if short == "rearrange" and isinstance(v.node, ast.Call) and len(v.node.args) >= 2 \
                and isinstance(v.node.args[1], ast.Constant) and isinstance(v.node.args[1].value, str):
            return rearrange(inp, v.node.args[1].value)
        if short in ("cat", "concat", "concatenate") and v.inputs and v.inputs[0].op == "tuple":
            # a concatenation keeps every axis's role: known only when every part is known
            # and they agree
            outs = [self.memo.get(i.id) for i in v.inputs[0].inputs]
            if not outs or None in outs:
                return None
            ranked = {o for o in outs if rank(o) is not None}
            if len(ranked) > 1 or ranked and not all(_compatible(o, next(iter(ranked)))
                                                     for o in outs if rank(o) is None):
                return None
            return ranked.pop() if ranked else (outs[0] if len(set(outs)) == 1 else None)
        if short in ("linear",):
            return inp[:-1] + ("F",) if inp else ("*", "F")
        if short in ("conv1d", "conv2d", "conv3d"):
            n = int(short[4])
            return ("B", "F") + ("S",) * n
        if short in ("layer_norm", "rms_norm", "group_norm", "batch_norm", "instance_norm", "normalize"):
            return inp
        if short in ("scaled_dot_product_attention",):
            return inp
        return None


def _index_is_zero(v: Value) -> bool:
    node = v.node
    return isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == 0


def _swap(layout: Layout, a: int, b: int) -> Layout | None:
    n = rank(layout)
    if n is None:
        tail = list(layout[1:])
        if -len(tail) <= a < 0 and -len(tail) <= b < 0:
            tail[a], tail[b] = tail[b], tail[a]
            return ("*",) + tuple(tail)
        return None
    ab = _absolute(layout, [a, b])
    if ab is None:
        return None
    out = list(layout)
    out[ab[0]], out[ab[1]] = out[ab[1]], out[ab[0]]
    return tuple(out)


def _movedim(layout: Layout, src: int, dst: int) -> Layout | None:
    ab = _absolute(layout, [src, dst])
    if ab is None:
        return None
    out = list(layout)
    r = out.pop(ab[0])
    out.insert(ab[1], r)
    return tuple(out)


def _conv_dims(name: str) -> int | None:
    m = re.search(r"([123])d", name or "")
    return int(m.group(1)) if m else None


__all__ = ["AxesSolver", "Layout", "rank", "role", "rearrange", "is_transparent"]
