"""NL3: where norms sit relative to residual adds, stacks and each other.

Every rule here asks the module model: block summaries (placement of each residual add,
starts/ends with a norm, one level down included), stack runs (a loop over a stack, or a
call of one) and where their output goes, in the caller too; instance identity of norms
(a norm reached through a container or a shared block object is the same norm).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from ..ctor import rewrite
from ..flow import Flow, Loop, Residual, Value, alternatives, exclusive, is_transparent, root, walks_back_to
from ..index import ClassInfo
from ..model import Analysis, walk_kind
from ..modules import Kind, ModuleModel
from ..summary import certain_norm, placement_of
from .common import Reporter, producer, ref

_PARAMETRIZED = {"linear", "conv", "attention", "project", "rnn", "sequential", "stack", "transformer",
                 "transformer_layer", "transformer_stack", "embedding"}
# ops a head's input may go through on its way from the stream (pooling, indexing, reshapes)
_POOLING = {"mean", "max", "amax", "sum", "flatten", "view", "reshape", "squeeze", "unsqueeze",
            "contiguous", "float", "to", "type_as", "chunk", "split", "narrow", "select"}
# a head's output re-laid-out into a feature map is a stage's output, not the model's
_RELAYOUT = {"transpose", "permute", "movedim", "moveaxis", "swapaxes", "rearrange", "pixel_shuffle"}


def check_class(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    model = a.model(cls)
    if report.on("NL305"):
        _nl305(cls, model, report)
    if report.on("NL301"):
        _nl301(a, cls, model, report)
    flow = a.flow(cls)
    reused: set[str] = set()
    if flow is not None:
        a.summary(cls)             # residuals get their one-level-down pre-norms
        if report.on("NL304"):
            reused = _nl304(a, cls, model, flow, report)
    if report.on("NL306"):
        _nl306(a, cls, model, report, reused)
    if flow is None:
        return
    if report.on("NL303"):
        _nl303(cls, flow, report)
    if report.on("NL307"):
        _nl307(a, cls, flow, report)
    if report.on("NL308"):
        _nl308(a, cls, flow, report)
    if report.on("NL309"):
        _nl309(a, cls, flow, report)
    if report.on("NL302"):
        _nl302(a, cls, flow, report)


# -- shared predicates ------------------------------------------------------------------


def _is_stream(flow: Flow, v: Value, depth: int = 0) -> bool:
    """v is a residual stream of this forward: its input, a residual sum, the value a loop
    over layers carries in, one of those plus a conditioning term
    (`h = h + self.context_proj(ctx)`), or the join of optional sublayers' sums."""
    v = root(v)
    if v.op == "param" and v.site == () and v in flow.params.values():
        return True
    if any(r.add is v for r in flow.residuals):
        return True
    if any(v in loop.entry.values() for loop in flow.loops):
        return True
    if depth >= 4:
        return False
    if v.op == "phi":
        # the stream after an optional sublayer (`if self.attn2 is not None: h = attn2(...) + h`)
        return bool(v.inputs) and all(_is_stream(flow, i, depth + 1) for i in v.inputs)
    return v.op == "add" and any(_is_stream(flow, i, depth + 1) for i in v.inputs)


def _sublayer(v: Value) -> bool:
    """A call of a module with parameters (a sublayer), not a norm, activation or dropout."""
    return v.op in ("call", "block") and v.kind is not None and v.kind.category in _PARAMETRIZED


# -- NL301 ------------------------------------------------------------------------------


def _nl301(a: Analysis, cls: ClassInfo, model, report: Reporter) -> None:
    limit = int(a.ctx.option("NL301", "post-norm-max-depth"))
    for sub in model.own():
        # every module bound on some path (`if mode == "a": self.t = ... elif ...: self.t = ...`)
        for k in {id(k): k for alt in (sub.kind, *sub.alternatives) for k in walk_kind(alt)}.values():
            if k.category in ("stack", "transformer_stack", "transformer") and k.depth is not None \
                    and k.depth > limit:
                _report_post_norm_stack(a, cls, sub, k, limit, report)


def _report_post_norm_stack(a: Analysis, cls: ClassInfo, sub, k: Kind, limit: int, report: Reporter) -> None:
    placed = a.block_placement(k.block)
    if placed is None or placed[0] != "post" or placed[2]:
        return
    block = k.block.name if k.block else "block"
    report("NL301", cls.file.path, k.call or sub.value,
           f"`{cls.name}.{sub.attr}` stacks {k.depth} post-norm `{block}` layers (more than "
           f"{limit}) with no DeepNorm/Admin residual scaling: Post-LN needs warm-up and diverges at "
           "this depth; switch to pre-norm (norm_first=True) with a final norm, or scale the residual "
           "(`norm(alpha * x + f(x))`)")


# -- NL302 ------------------------------------------------------------------------------


@dataclass
class StackRun:
    """One run of a stack of layers in a forward: a loop over it or a call of it."""

    attr: str                       # "layers"
    stack: Kind
    node: object                    # the for statement, or the call that runs the stack
    out: Value                      # the stream after the stack
    stream: str | None              # the variable that carries it
    placement: str
    ends_with_norm: bool
    first_pre: Value | None         # the first sublayer's pre-norm (a norm or a module starting with one)
    block_kind: Kind | None         # the repeated element (None for unpacked loop bodies)
    below: list[Kind]               # kinds from the element down to the module holding first_pre


def _stack_runs(a: Analysis, cls: ClassInfo, flow: Flow) -> list[StackRun]:
    runs: list[StackRun] = []
    done_loops: set[int] = set()
    last: dict[str, Value] = {}
    for b in flow.blocks:
        if b.owner == cls.name and b.attr and b.stack is not None:
            last[b.attr.split("[")[0]] = b
    for attr, v in last.items():
        stack = v.stack
        if stack.final_norm is not None:
            continue
        loop = next((lp for lp in flow.loops if lp.ref is not None and lp.ref.attr == v.attr and lp.holds(v)), None)
        body = [r for r in flow.residuals if loop is not None and loop.holds(r.add)]
        if body:
            continue                     # the loop body wires the residuals itself: see below
        if loop is not None:
            done_loops.add(id(loop))
        placed = a.block_placement(stack.block)
        if placed is None:
            continue
        if loop is not None:
            # for attn, resnet in zip(self.attentions, self.resnets): every stack the loop
            # runs is one layer's part; the layer is pre-norm only if all of them are
            others = [b for b in last.values() if b is not v and loop.holds(b)]
            if any((a.block_placement(b.stack.block) or ("?",))[0] != placed[0] for b in others):
                continue
        node = loop.node if loop is not None else (stack.call if stack.category == "transformer_stack"
                                                   and stack.call is not None else v.node)
        out, stream = (v, v.var)
        if loop is not None:
            out, stream = _loop_stream(loop, v)
        first_pre, below = _first_pre_in_kind(a, stack.block)
        runs.append(StackRun(attr, stack, node, out, stream, placed[0], placed[1], first_pre, stack.block, below))
    for loop in flow.loops:
        if loop.ref is None or id(loop) in done_loops or loop.ref.owner != cls.name or loop.ref.stack is None:
            continue
        body = sorted((r for r in flow.residuals if loop.holds(r.add)), key=lambda r: r.add.id)
        if not body:
            continue
        placement = placement_of(body)
        calls = [u for u in flow.values[loop.first:loop.last + 1]
                 if u.op in ("call", "block", "norm") and u.attr and u.attr.startswith(loop.ref.attr)]
        if not calls:
            continue
        out, stream = _loop_stream(loop, calls[-1])
        if out is None:
            continue
        ends = root(out).op == "norm"
        first = next((r.pre for r in body if r.pre is not None), None)
        attr = (loop.ref.attr or "").split("[")[0]
        runs.append(StackRun(attr, loop.ref.stack, loop.node, out, stream, placement, ends, first, None, []))
    return runs


def _loop_stream(loop: Loop, inner: Value) -> tuple[Value, str | None]:
    """The variable a loop carries its layers' output in, and its value after the loop: the
    one whose value on entry feeds the layer's first input and that the layer's output
    re-binds (not a cache or a state carried beside it)."""
    first_input = inner.inputs[0] if inner.inputs else None
    candidates = sorted((name, value) for name, value in loop.exit.items()
                        if value is inner or value.has_ancestor(inner))
    for name, value in candidates:
        entry = loop.entry.get(name)
        if entry is not None and first_input is not None and (first_input is entry or first_input.has_ancestor(entry)):
            return value, name
    for name, value in candidates:
        if name in loop.entry:
            return value, name
    if candidates:
        return candidates[0][1], candidates[0][0]
    return inner, inner.var


def _first_pre_in_kind(a: Analysis, kind: Kind | None) -> tuple[Value | None, list[Kind]]:
    """The first sublayer's pre-norm in a stacked layer, and the kinds below the layer that
    lead to the module whose forward holds it."""
    if kind is not None and kind.category == "sequential":
        # Sequential(Residual(PreNorm(dim, attn)), ...) as one layer: its first sublayer's
        first = next((el for el in kind.elements if el.category not in ("dropout", "identity", "act")), None)
        v, below = _first_pre_in_kind(a, first)
        return v, ([first] + below if first is not None else below)
    s = a.kind_summary(kind) if kind is not None else None
    if s is None or s.flow is None:
        return None, []
    return next((r.pre for r in sorted(s.flow.residuals, key=lambda r: r.add.id) if r.pre is not None), None), []


def _normalized_downstream(a: Analysis, flow: Flow, v: Value) -> bool:
    # any later norm computed from v, even after pooling or a permute (Qwen2-Audio), or a
    # module whose forward starts with a norm (a patch merger's ln_q)
    return any(n.has_ancestor(v) for n in flow.norms) or any(
        u.op in ("call", "block") and u.kind is not None and u.has_ancestor(v)
        and u.kind.category in ("project", "sequential") and a.starts_with_norm(u.kind)
        for u in flow.values[v.id + 1:])


def _carries(v: Value) -> bool:
    return is_transparent(v) or v.op in ("tuple", "phi", "attr", "getitem") or \
        (v.op == "func" and bool(v.name) and v.name[:1].isupper())


def _carried(flow: Flow, v: Value, extra=None) -> set[int]:
    """v and what passes it on unchanged: indexing, tuples, output dataclasses."""
    out, todo = {v.id}, [v]
    while todo:
        for u in flow.uses(todo.pop()):
            if u.id not in out and (_carries(u) or (extra is not None and extra(u))):
                out.add(u.id)
                todo.append(u)
    return out


def _comes_from(a: Analysis, v: Value, src: Value, relayout: bool = True) -> bool:
    """v is src after pooling, indexing, casts, reshapes or an elementwise modulation only
    (no layer mixing its features in between); after axis moves too, unless relayout=False."""
    passing = _POOLING | _RELAYOUT if relayout else _POOLING

    def step(cur: Value):
        if _carries(cur):
            return cur.inputs
        if cur.op in ("method", "func") and (cur.name or "").rsplit(".", 1)[-1] in passing \
                or _batch_time_swap(cur):
            return cur.inputs[:1]     # (a (L, B, C) stream transposed to batch-first is the same stream)
        if cur.op == "call" and cur.kind is not None and _elementwise_module(a, cur.kind):
            return cur.inputs[:1]
        if cur.op == "binop" and cur.name in ("Mult", "Add", "Sub") or cur.op == "add":
            return cur.inputs      # scale and shift (adaLN's `x * (1 + scale) + shift`)
        return None
    return walks_back_to(v, src, step, limit=32)


def _batch_time_swap(v: Value) -> bool:
    """`x.transpose(0, 1)`: fairseq's (T, B, C) stream to batch-first; the feature axis stays
    last, so it is not a move of channels (a relayout)."""
    call = v.node
    if not (v.op == "method" and v.name == "transpose" and isinstance(call, ast.Call) and len(call.args) == 2):
        return False
    dims = {a.value for a in call.args if isinstance(a, ast.Constant)}
    return dims == {0, 1}


def _elementwise_module(a: Analysis, kind: Kind) -> bool:
    """A project module that touches its first input only elementwise (a modulation:
    `x * (1 + scale) + shift` with scale and shift computed from a condition)."""
    if kind.category != "project" or kind.cls is None:
        return False
    s = a.kind_summary(kind)
    if s is None or s.flow is None or not s.flow.params or not s.flow.returns or s.flow.norms:
        return False
    first = next(iter(s.flow.params.values()))
    return not any(_sublayer(v) and v.inputs and (v.inputs[0] is first or v.inputs[0].has_ancestor(first))
                   for v in s.flow.values)


def _head_module(a: Analysis, u: Value) -> bool:
    """A linear layer, or a project module with no residual stream or stack of its own (an
    output MLP: TimesFM's horizon block), that does not start with a norm."""
    k = u.kind
    if u.op != "call" or k is None:
        return False
    if k.category == "linear":
        return True
    if k.category != "project" or k.cls is None:
        return False
    s = a.kind_summary(k)
    # no stream of its own and no norm anywhere: a neck that normalizes after its convs
    # (SAM) is not where the raw stream leaves the model
    if s is None or s.flow is None or s.placement != "none" or s.flow.blocks or s.flow.loops \
            or s.ends_with_norm or any(r.skip.op == "param" for r in s.flow.residuals):
        return False
    # an LM head normalizes inside (dense -> act -> LayerNorm -> decoder) and ends with its
    # decoder; a neck that ends with a norm (SAM: conv -> LN -> conv -> LN) is not a head
    if s.flow.norms and not any((_sublayer(v) or _functional_layer(v)) and any(v.has_ancestor(n) for n in s.flow.norms)
                                and any(r is v or r.has_ancestor(v) for r in s.flow.returns)
                                for v in s.flow.values):
        return False
    subs = a.builder.model_of(k).submodules.values()
    return not a.starts_with_norm(k) and not any(sub.kind.category in ("stack", "transformer_stack") for sub in subs) \
        and any(kk.category in ("linear", "conv", "embedding") for sub in subs for kk in walk_kind(sub.kind))


def _functional_layer(v: Value) -> bool:
    """`F.linear(x, self.weight)`: a layer written as a function of a parameter (ESM's and
    fairseq's LM heads decode with the tied embedding weight)."""
    return v.op == "func" and (v.name or "").rsplit(".", 1)[-1] in ("linear", "conv1d", "conv2d", "conv3d")


def _reaches_output(flow: Flow, u: Value, stream: Value | None, relayout_ok: bool = False) -> bool:
    """u's output goes to the forward's return without being added back to the stream,
    fed to another module, or (unless relayout_ok) re-laid-out into a feature map."""
    seen, todo = {u.id}, [u]
    returned = {r.id for r in flow.returns}
    while todo:
        cur = todo.pop()
        if cur.id in returned:
            return True
        for w in flow.uses(cur):
            if w.id in seen:
                continue
            if w.op in ("add", "binop") and stream is not None and any(
                    i is not cur and i.op not in ("const", "meta", "global", "selfattr") and not i.has_ancestor(u)
                    and (i is stream or i.has_ancestor(stream) or stream.has_ancestor(i)) for i in w.inputs):
                continue            # mixed back into the stream (or what it came from): a residual branch
            if not relayout_ok and (w.op == "method" and w.name in _RELAYOUT or w.op == "func" and
                                    (w.name or "").rsplit(".", 1)[-1] in _RELAYOUT):
                continue
            if w.op in ("call", "block", "norm") and not is_transparent(w) and not (
                    w.kind is not None and w.kind.category == "act"):
                continue
            seen.add(w.id)
            todo.append(w)
    return False


def _is_head(a: Analysis, cls: ClassInfo, flow: Flow, u: Value, stream: Value) -> bool:
    """u is an output layer applied to the stream (after pooling or indexing) whose output
    is the model's output: returned here, and by the callers up to the top (a projector
    whose output a caller feeds into a language model is not the model's head)."""
    if not u.inputs or not _head_module(a, u) or not _comes_from(a, u.inputs[0], stream):
        return False
    # a layer applied to a feature map moved channels-last and moved back is a stage's
    # pointwise projection; applied to the token stream itself, its output may be laid out
    # for a post-processing conv and still be the model's output (StableAudio's proj_out)
    relaid_in = not _comes_from(a, u.inputs[0], stream, relayout=False)
    return _reaches_output(flow, u, stream, relayout_ok=not relaid_in) and _output_of_model(a, cls, flow, u, 0)


def _output_of_model(a: Analysis, cls: ClassInfo, flow: Flow, v: Value, depth: int) -> bool:
    callers = [(p, c) for p, c in a.callers(cls) if p is not cls] if depth < 3 else []
    if not callers:
        return True
    selectors = _selectors(flow, v) if depth > 0 or v.op != "call" else _selectors_through(flow, v)
    for parent, call in callers:
        pflow = a.flow(parent)
        if pflow is None:
            continue
        for seed in _seeds(pflow, call, selectors):
            if _reaches_output(pflow, seed, None) and _output_of_model(a, parent, pflow, seed, depth + 1):
                return True
    return False


def _selectors_through(flow: Flow, u: Value) -> set:
    """Selectors of whatever carries a head's output to the return (activations, helpers)."""
    out: set = set()
    seen, todo = {u.id}, [u]
    while todo:
        cur = todo.pop()
        out |= _selectors(flow, cur)
        for w in flow.uses(cur):
            if w.id not in seen and w.op in ("func", "method", "call", "binop", "unary", "getitem") \
                    and not (w.op == "call" and not (w.kind is not None and w.kind.category in ("act", "dropout"))):
                seen.add(w.id)
                todo.append(w)
    return out


def _plain(flow: Flow, v: Value) -> set[int]:
    """v and the values that are v unchanged (casts, dropout, if/else merges)."""
    out, todo = {v.id}, [v]
    while todo:
        for u in flow.uses(todo.pop()):
            if u.id not in out and (is_transparent(u) and u.op != "getitem" or u.op == "phi"):
                out.add(u.id)
                todo.append(u)
    return out


def _selectors(flow: Flow, v: Value) -> set:
    """How the forward returns v: None (as is), ("i", n) (the n-th element of a returned
    tuple or output dataclass) or ("a", name) (an output dataclass field)."""
    plain = _plain(flow, v)
    out: set = set()
    for r in flow.returns:
        for alt in alternatives(r):
            if alt.id in plain:
                out.add(None)
                continue
            if alt.op == "add" and alt.inputs and alt.inputs[0].op == "tuple":
                alt = alt.inputs[0]            # (x, pooled) + encoder_outputs[1:]
            if alt.op == "tuple":
                out.update(("i", i) for i, inp in enumerate(alt.inputs) if inp.id in plain)
            elif alt.op == "func" and (alt.name or "")[:1].isupper() and isinstance(alt.node, ast.Call):
                call = alt.node
                npos = len(call.args)
                for i, inp in enumerate(alt.inputs[:npos]):
                    if inp.id in plain:
                        out.add(("i", i))
                for j, (k, inp) in enumerate(zip([k for k in call.keywords if k.arg], alt.inputs[npos:])):
                    if inp.id in plain:
                        out.update({("a", k.arg), ("i", npos + j)})
    return out


def _seeds(flow: Flow, call: Value, selectors: set) -> list[Value]:
    """The values in a caller's forward that are the callee's returned stream."""
    out = [call] if None in selectors else []
    for u in flow.uses(call):
        if u.op == "getitem":
            index = None
            if u.name is not None and u.name.isdigit():
                index = int(u.name)
            elif isinstance(u.node, ast.Subscript) and isinstance(u.node.slice, ast.Constant) \
                    and isinstance(u.node.slice.value, int):
                index = u.node.slice.value
            if index is not None and ("i", index) in selectors:
                out.append(u)
        elif u.op == "attr" and ("a", u.name) in selectors:
            out.append(u)
    return out


def _fate(a: Analysis, cls: ClassInfo, flow: Flow, seeds: list[Value], depth: int = 0) -> tuple[str, str]:
    """Where a stack's output goes: ("normalized", ""), ("head", where), ("returned", ""),
    or ("other", "")."""
    if not seeds:
        return "other", ""
    if any(_normalized_downstream(a, flow, v) for v in seeds):
        return "normalized", ""
    for v in seeds:
        head = next((u for u in flow.values[v.id + 1:] if u.has_ancestor(v) and _is_head(a, cls, flow, u, v)),
                    None)
        if head is not None:
            return "head", (f"feeds it to {ref(head)}" if depth == 0 else
                            f"`{cls.name}.forward` feeds it to {ref(head)}")
    selectors: set = set()
    for v in seeds:
        selectors |= _selectors(flow, v)
    if not selectors:
        return "other", ""
    callers = a.callers(cls) if depth < 3 else []
    fates = []
    for parent, call in callers:
        pflow = a.flow(parent)
        if pflow is None or parent is cls:
            continue
        fates.append(_fate(a, parent, pflow, _seeds(pflow, call, selectors), depth + 1))
    heads = [f for f in fates if f[0] == "head"]
    if heads:
        return "head", ("returns it, and " if depth == 0 else "") + heads[0][1]
    if any(f[0] == "normalized" for f in fates):
        return "normalized", ""
    if not callers or any(f[0] == "returned" for f in fates):
        return "returned", ""         # the raw stream is what the model returns
    return "other", ""


def _nl302(a: Analysis, cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    for run in _stack_runs(a, cls, flow):
        if run.placement not in ("pre", "switchable") or run.ends_with_norm:
            continue
        fate, where = _fate(a, cls, flow, [run.out])
        if fate == "returned":
            # An encoder returning its stream may be normalized by a caller outside the
            # project or feed a neck by design; only a token model (it embeds its own
            # tokens) that returns the raw stream is reported (C5, C6).
            if not _has_token_embedding(a, cls):
                continue
            where = "returns it"
        elif fate != "head":
            continue
        block = run.stack.block.name if run.stack.block is not None and run.stack.block.name else "block"
        torch_stack = run.stack.category == "transformer_stack"
        fix = ("pass `norm=nn.LayerNorm(d_model)` to the encoder (and `enable_nested_tensor=False`); "
               "do not switch to post-norm" if torch_stack else
               "add a final norm (`self.norm = nn.LayerNorm(d)`) and apply it after the last block")
        path = cls.file.path if torch_stack else run.out.path
        what = "pre-norm" if run.placement == "pre" else "(optionally) pre-norm"
        report("NL302", path, run.node,
               f"`{cls.name}.forward` runs the {what} stack `self.{run.attr}` ({block}) and {where} without "
               f"a final norm: the residual stream grows with depth and reaches the output un-normalized; "
               f"{fix}", fix_facts=_fix_facts(a, cls, run))


def _fix_facts(a: Analysis, cls: ClassInfo, run: StackRun) -> tuple[tuple[str, str], ...]:
    """norm_ctor / stream / stack_attr, when the kind and width of the blocks' norms are known."""
    ctor = _norm_ctor(a, cls, run)
    if ctor is None or not run.stream:
        return ()
    return (("norm_ctor", ctor), ("stream", run.stream), ("stack_attr", run.attr))


def _norm_ctor(a: Analysis, cls: ClassInfo, run: StackRun) -> str | None:
    stack = run.stack
    if stack.category == "transformer_stack":
        layer = stack.block
        if layer is None or layer.call is None:
            return None
        width = layer.call.args[0] if layer.call.args else layer.keyword("d_model")
        prefix = _torch_nn_prefix(cls)
        if width is None or prefix is None:
            return None
        return f"{prefix}LayerNorm({ast.unparse(width)})"
    chain: list[Kind] = [stack]
    if run.block_kind is not None:
        chain.append(run.block_kind)
    chain += run.below
    pre = run.first_pre
    for _ in range(4):
        if pre is None:
            return None
        chain_here = chain + [k for k in pre.route if k is not None]
        if pre.op == "norm" and pre.kind is not None and pre.kind.call is not None:
            if not (pre.inputs and root(pre.inputs[0]).op == "param"):
                # the block normalizes a view of its input (`norm(x.transpose(1, 2))`: a
                # GroupNorm over channels-first inside, channels-last outside): the same norm
                # after the stack would read another axis
                return None
            scope = pre.model.cls if pre.model is not None else None
            return rewrite(a, cls, chain_here, pre.kind, scope)
        if pre.op in ("call", "block") and pre.kind is not None:
            # a module that starts with its own norm: that norm's constructor, one level down
            chain = chain_here + [pre.kind]
            pre = _first_norm_on_input(a, pre.kind)
            continue
        return None
    return None


def _first_norm_on_input(a: Analysis, kind: Kind) -> Value | None:
    if kind.category == "sequential":
        return None
    s = a.kind_summary(kind)
    if s is None or s.flow is None or not s.flow.params:
        return None
    first = next(iter(s.flow.params.values()))
    for v in s.flow.values:
        if v.op == "norm" and v.inputs and (v.inputs[0] is first or root(v.inputs[0]) is first):
            return v
        if v.op in ("call", "block") and v.inputs and root(v.inputs[0]) is first and v.kind is not None \
                and a.starts_with_norm(v.kind):
            return v
    return None


def _torch_nn_prefix(cls: ClassInfo) -> str | None:
    aliases = cls.file.imports.aliases
    for name, qual in aliases.items():
        if qual == "torch.nn":
            return f"{name}."
    if aliases.get("torch") == "torch":
        return "torch.nn."
    return None


def _has_token_embedding(a: Analysis, cls: ClassInfo) -> bool:
    return any(k.category == "embedding" for sub in a.model(cls).submodules.values()
               for k in walk_kind(sub.kind))


# -- NL303 ------------------------------------------------------------------------------


def _nl303(cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    def normalized_skips(r: Residual) -> list[Value]:
        return [root(s) for s in r.skips() if root(s).op == "norm"]

    # only adds on a normalized stream count (Autoformer's trend1 + trend2 does not)
    res = [r for r in flow.residuals if r.pre or r.post or r.branch_out or normalized_skips(r)]
    if not res:
        return
    last = max(res, key=lambda r: r.add.id)
    # any norm computed from the last sum (even after a decomposition or pooling step)
    # makes the block post-norm in spirit (Autoformer's decomp -> final_layer_norm)
    if last.post is not None or any(n.has_ancestor(last.add) for n in flow.norms):
        return
    for r in sorted(res, key=lambda r: r.add.id):
        # a scaled skip (alpha * x + beta * f(x)) on a normalized stream is a deliberate design
        if r.scaled:
            continue
        for s in normalized_skips(r):
            if not r.branch.has_ancestor(s) or not s.attr or not s.inputs:
                continue
            # on every path the skip carries the normalized value (a shortcut conv of it
            # included); a flag choosing the normalized or the raw stream is a design switch
            # (ChatGLM's apply_residual_connection_post_layernorm)
            if not all(alt is s or alt.has_ancestor(s) for alt in r.skips()):
                continue
            # the norm rebinds the block's residual stream (its input, or a residual sum);
            # normalizing a freshly computed value (a conv stem's output, a projected input
            # embedding) and adding to it later is not a pre-norm block's skip path
            if not _is_stream(flow, s.inputs[0]):
                continue
            var = s.var or "x"
            src = s.inputs[0].var if s.inputs[0].var else var
            users = [u for u in flow.uses(s) if u.op in ("call", "block") and u.attr]
            sub = f"self.{users[0].attr}" if users else "f"
            # the sum is the stream's next value: named after what the add is bound to
            # (`h = norm(x); x = h + ff(h)` suggests `x = ...`, not `h = ...`)
            out = r.add.var or src
            what = "rebinds" if var == src else "binds"
            report("NL303", s.path, s.node,
                   f"`{s.owner}.forward` {what} `{var}` to `{ref(s)}({src})` before the residual add, so the "
                   f"skip path carries normalized values; keep the residual: "
                   f"`{out} = {src} + {sub}({ref(s)}({src}))`")
            return


# -- NL304 ------------------------------------------------------------------------------


def _held_norms(a: Analysis, kind: Kind, base: tuple, depth: int = 0) -> set[tuple]:
    """Identities of the norm modules a module runs: its path from the owner, or the
    identity of a module object handed in from outside (one object, however reached)."""
    out: set[tuple] = set()
    if depth > 3:
        return out
    if kind.category == "norm":
        return {base} if _has_parameters(a, kind) else set()
    if kind.category == "sequential":
        for i, el in enumerate(kind.elements):
            out |= _held_norms(a, el, base + (f"[{i}]",), depth + 1)
        return out
    if kind.category != "project":
        return out
    model = a.builder.model_of(kind)
    flow = a.flow_of(model) if model is not None else None
    if flow is None:
        return out
    for v in flow.values:
        if v.op not in ("norm", "call", "block") or v.kind is None or not v.attr or v.stack is not None:
            continue
        head = v.attr.split(".")[0].split("[")[0]
        sub = model.submodules.get(head)
        if sub is not None and model.is_bound(sub.kind):
            key: tuple = ("obj", id(sub.kind)) + tuple(v.attr.split(".")[1:])
        else:
            key = base + (v.attr,)
        if v.op == "norm":
            if _has_parameters(a, v.kind):
                out.add(key)
        elif v.kind.category in ("project", "sequential"):
            out |= _held_norms(a, v.kind, key, depth + 1)
    return out


def _site_norms(a: Analysis, model: ModuleModel, v: Value) -> set[tuple]:
    head = v.attr.split(".")[0].split("[")[0]
    sub = model.submodules.get(head)
    base: tuple = ("obj", id(sub.kind)) if sub is not None and model.is_bound(sub.kind) else (v.attr,)
    if v.op == "norm":
        return {base} if v.kind is not None and _has_parameters(a, v.kind) else set()
    if v.kind is not None and v.kind.category in ("project", "sequential"):
        return _held_norms(a, v.kind, base)
    return set()


def _holder(v: Value) -> str:
    """How a message names the module called at a site (a Sequential, not its element)."""
    return f"self.{v.attr.split('[')[0]}" if v.call_site is not None and v.attr else ref(v)


def _chained(flow: Flow, first: Value, other: Value) -> bool:
    """The second call normalizes data computed from the first one's output through a
    sublayer or a residual add: one stream's consecutive sublayers share the norm (OLMo
    #222). Independent tensors (keys of two attentions, DETR's per-layer auxiliary
    outputs, whose first norm only shapes a mask) are a design choice."""
    data = other.inputs[0] if other.inputs else None
    if data is None or not _data_reaches(data, first):
        return False
    if any(_data_reaches(data, r.add) and _data_reaches(r.add, first) for r in flow.residuals):
        return True
    if first.op != "norm" and _sublayer(first):
        return True         # the first site's module is itself the sublayer in between
    return any(_sublayer(c) and c.inputs and _data_reaches(data, c) and _data_reaches(c.inputs[0], first)
               for c in flow.values[first.id + 1:other.id])


def _meant_another(a: Analysis, cls: ClassInfo, model: ModuleModel, first: Value, other: Value) -> bool:
    """One norm attribute called on two independent inputs (media and latents), while the
    class registers a norm of the same kind that nothing uses: the second site meant that
    one (a copy-paste slip), not a shared norm by design."""
    if not (first.op == other.op == "norm" and first.attr == other.attr and first.kind is not None
            and first.call_site is None and other.call_site is None and first.attr and "." not in first.attr):
        return False
    return any(s.kind.name == first.kind.name and s.attr != first.attr for s in _unused_norms(a, cls, model))


def _data_reaches(v: Value, target: Value, limit: int = 400) -> bool:
    """target is v or feeds v as data (a module's first input, an operand), not only
    through a mask or a keyword argument."""
    if v is target:
        return True
    if not v.has_ancestor(target):
        return False
    todo, seen = [v], set()
    while todo and limit > 0:
        limit -= 1
        cur = todo.pop()
        if cur is target:
            return True
        if cur.id in seen or not (cur is target or cur.has_ancestor(target)):
            continue
        seen.add(cur.id)
        if cur.op in ("call", "block", "norm", "method", "func"):
            todo.extend(cur.inputs[:1])
        else:
            todo.extend(cur.inputs)
    return False


_MERGES = {"cat", "concat", "concatenate", "stack", "pack", "hstack", "vstack"}


def _merges_streams(other: Value, first: Value) -> bool:
    """other's input was concatenated from first's output and other tokens."""
    todo, seen = [other.inputs[0]] if other.inputs else [], set()
    while todo and len(seen) < 200:
        cur = todo.pop()
        if cur.id in seen or cur is first or not cur.has_ancestor(first):
            continue
        seen.add(cur.id)
        if cur.op in ("func", "method") and (cur.name or "").rsplit(".", 1)[-1] in _MERGES:
            return True
        todo.extend(cur.inputs)
    return False


def _has_parameters(a: Analysis, kind: Kind) -> bool:
    """A norm with a gain or bias of its own: sharing a parameter-free norm shares nothing."""
    if kind.torch_name is not None:
        off = kind.keyword("elementwise_affine", "affine")
        if kind.torch_name.startswith(("InstanceNorm", "LazyInstanceNorm")):
            return isinstance(off, ast.Constant) and off.value is True
        return not (isinstance(off, ast.Constant) and off.value is False)
    if kind.cls is not None and a.norm_class(kind.cls) is not None and a.hand_norm(kind.cls) is not None:
        found = a.index.find_method(kind.cls, "__init__")
        return found is None or "Parameter" in ast.unparse(found[0]) or "register_parameter" in ast.unparse(found[0])
    return True


def _nl304(a: Analysis, cls: ClassInfo, model: ModuleModel, flow: Flow, report: Reporter) -> set[str]:
    """Reports reuse; returns the kinds of this class's norms that are reused directly (an
    unused sibling norm of that kind is the one the second site meant: NL306 stays quiet)."""
    sites: list[tuple[Value, set[tuple]]] = []
    seen: set = set()
    for v in flow.values:
        if v.op not in ("norm", "call") or not v.attr or v.stack is not None or v.kind is None:
            continue  # stack elements and nn.TransformerEncoder(norm=...) are one module per call
        # one site per source location: a helper applied to two streams (XLNet's two-stream
        # attention) is one design decision, not a copy-paste slip
        site = (id(v.call_site or v.node), v.attr)
        if site in seen:
            continue
        seen.add(site)
        held = _site_norms(a, model, v)
        if held:
            sites.append((v, held))
    reported: set[int] = set()
    unused: list | None = None
    direct_reuse: set[str] = set()
    for i, (first, held1) in enumerate(sites):
        for other, held2 in sites[i + 1:]:
            where = other.call_site or other.node
            if id(where) in reported or not held1 & held2 or (first.call_site or first.node) is where:
                continue
            if exclusive(first.conds, other.conds):
                continue
            if not _chained(flow, first, other) and not _meant_another(a, cls, model, first, other):
                continue
            if first.op != "norm" and _merges_streams(other, first):
                continue    # one module applied to the stream and to its concatenation (RegionViT's R2L)
            reported.add(id(where))
            kind_name = first.kind.name if first.kind is not None and first.kind.name else "norm"
            direct = first.op == "norm" and other.op == "norm" and first.attr == other.attr \
                and first.call_site is None and other.call_site is None
            line1 = (first.call_site or first.node).lineno
            line2 = where.lineno
            if direct:
                if unused is None:
                    unused = _unused_norms(a, cls, model)
                meant = [s.attr for s in unused if s.kind.name == (first.kind.name if first.kind else None)]
                hint = (f"`self.{meant[0]}` is registered and never used: probably meant here" if meant else
                        "give each sublayer its own norm (`norm1`, `norm2`)")
                message = (f"`{cls.name}.forward` calls {ref(other)} ({kind_name}) at two sites (line "
                           f"{line1} and line {line2}): the sublayers share one scale and shift; {hint}")
                facts: tuple = (("meant", meant[0]),) if meant else ()
                if any(r.post is other for r in flow.residuals) and any(
                        r.pre is not None and r.post is None for r in flow.residuals):
                    # the reused norm closes a sum in an otherwise pre-norm block: giving it its
                    # own norm would leave a mixed block (NL308), so no mechanical fix
                    facts += (("mechanical", "no"),)
                if meant:
                    direct_reuse.add(kind_name)
            else:
                via1, via2 = _holder(first), _holder(other)
                message = (f"`{cls.name}.forward` runs the same norm at two sites (line {line1} through "
                           f"{via1} and line {line2} through {via2}): one module object holding the norm is "
                           "reused, so the sublayers share one scale and shift; build a separate module "
                           "for each site")
                facts = (("via", via2),)
                if any(key[0] == "obj" for key in held1 & held2):
                    # one block object held by two parents: building the holder again would
                    # still share it, so no mechanical fix
                    facts += (("object", "shared"),)
            report("NL304", other.path, where, message, fix_facts=facts)
    return direct_reuse


# -- NL305 ------------------------------------------------------------------------------


def _nl305(cls: ClassInfo, model, report: Reporter) -> None:
    for sub in model.own():
        for k in (k for alt in sub.alternatives or [sub.kind] for k in walk_kind(alt)):
            if k.category == "stack" and k.aliased:
                block = k.block.name if k.block else "module"
                n = f" {k.depth} times" if k.depth else ""
                report("NL305", cls.file.path, sub.value,
                       f"`{cls.name}.{sub.attr}` repeats one `{block}` instance{n}: every layer shares the "
                       f"same weights and norms; build a fresh module per layer: "
                       f"`nn.ModuleList([{block}(...) for _ in range(n)])`")
                break


# -- NL306 ------------------------------------------------------------------------------


def _unused_norms(a: Analysis, cls: ClassInfo, model) -> list:
    """Norms this class registers and never uses, unless a whole sub-branch is kept unused
    (modules with parameters unused beside the norm: checkpoint compatibility)."""
    if a.index.find_method(cls, "forward") is None:
        return []
    own = model.own()
    # a BatchNorm without affine parameters is a store of running statistics (read elsewhere)
    norms = [s for s in own if s.kind.is_norm and not (s.kind.family == "batch" and not _has_parameters(a, s.kind))]
    if not norms:
        return []
    used = a.self_attr_loads(cls)
    prefixes = tuple(u[:-1] for u in used if u.endswith("*"))

    def unused(sub) -> bool:
        return not (sub.attr in used or sub.attr.startswith(prefixes) or a.read_from_outside(sub.attr, cls))

    found = [s for s in norms if unused(s)]
    if not found:
        return []
    runs = a.self_attr_runs(cls)

    def not_run(sub) -> bool:
        return unused(sub) or not (sub.attr in runs or sub.attr.startswith(prefixes))

    if any(s.kind.category in _PARAMETRIZED and not s.kind.is_norm and not_run(s) for s in own):
        return []
    return found


def _nl306(a: Analysis, cls: ClassInfo, model, report: Reporter, reused: set[str]) -> None:
    for sub in _unused_norms(a, cls, model):
        if sub.kind.name in reused:
            continue      # NL304 names it at the site that should have called it
        report("NL306", cls.file.path, sub.value,
               f"`{cls.name}.__init__` registers `self.{sub.attr}` ({sub.kind.name or 'norm'}) but "
               f"`{cls.name}` never uses it: the norm is a silent no-op (and an unused parameter under "
               f"DDP); call `self.{sub.attr}(...)` in forward or remove it")


# -- NL307 ------------------------------------------------------------------------------


def _nl307(a: Analysis, cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    for v in flow.norms:
        if not v.inputs:
            continue
        inp = root(v.inputs[0])
        if inp.op == "norm" and inp is not v and inp.attr != v.attr and certain_norm(inp) and certain_norm(v):
            if _kept_beside(flow, inp, v):
                continue  # the normalized stream is kept: v is a branch's pre-norm on a copy
            if "lp" in (getattr(v.kind, "family", None), getattr(inp.kind, "family", None)):
                continue  # F.normalize scales to unit length (an embedding for cosine scores): no standardization twice
            if _conditioned(v):
                continue  # an adaLN output norm (`norm_out(h, temb)`) brings the conditioning: not redundant
            report("NL307", v.path, v.node,
                   f"`{v.owner}.forward` applies {ref(v)} directly to the output of {ref(inp)}: the second "
                   "norm is redundant (near-identity); drop one of them")
            continue
        if inp.op in ("block", "call") and inp.kind is not None:
            if inp.op == "block" or inp.kind.category != "project":
                placed = a.block_placement(inp.kind)
                ends = placed is not None and placed[0] == "post" and placed[1]
            else:
                s = a.kind_summary(inp.kind)
                ends = s is not None and s.ends_with_norm
            if not ends:
                continue
            what = f"the post-norm stack {ref(inp)}" if inp.op == "block" else ref(inp)
            node = v.kind.call if (v.kind is not None and v.kind.call is not None and inp.stack is not None
                                   and inp.stack.final_norm is v.kind) else v.node
            path = cls.file.path if node is not v.node else v.path
            last = "whose last layer already ends with a norm" if inp.op == "block" else \
                "whose output is already a norm's output"
            report("NL307", path, node,
                   f"`{v.owner}` applies {ref(v)} to the output of {what} ({inp.kind.name}), {last}: two "
                   "consecutive norms; drop the final norm (or make the layers pre-norm)")


def _conditioned(v: Value) -> bool:
    """A project norm class called with a conditioning tensor beside the stream (a modulated
    norm: `self.norm_out(hidden_states, temb=emb)`)."""
    return v.kind is not None and v.kind.cls is not None and \
        any(i.op not in ("const", "meta", "global") for i in v.inputs[1:])


def _kept_beside(flow: Flow, first: Value, second: Value) -> bool:
    """Whether ``first`` (a norm's output) is kept and later combined with what ``second``
    feeds: ``torch.stack([x, f(norm0(x))])`` (block-attention residuals), the shape of a
    residual sublayer whose pre-norm happens to follow an embedding norm. A copy merely
    used elsewhere (rows of a normalized memory normalized again for another head) is
    still a double norm."""
    return any(u is not second and not second.has_ancestor(u) and u.has_ancestor(second)
               for u in flow.users.get(first.id, ()))


# -- NL308 ------------------------------------------------------------------------------


def _nl308(a: Analysis, cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    s = a.summary(cls)
    if s is None or s.placement != "mixed":
        return
    pre = next(r for r in flow.residuals if r.pre is not None and r.post is None)
    post = next(r for r in flow.residuals if r.post is not None and r.pre is None)
    if exclusive(pre.pre.conds, post.post.conds):
        return  # `if normalize_before:` switches the whole block between pre and post
    if post.post.attr and any(r.pre is not None and r.pre.attr == post.post.attr for r in flow.residuals):
        return  # the "post" norm is the pre-norm instance called again: NL304's finding
    report("NL308", post.post.path, post.post.node,
           f"`{cls.name}.forward` mixes placements: {ref(pre.pre)} normalizes a sublayer's input "
           f"(pre-norm) but {ref(post.post)} normalizes another sublayer's sum (post-norm); use one "
           "placement for every sublayer: `x = x + f(norm(x))`")


# -- NL309 ------------------------------------------------------------------------------


def _branch_module(flow: Flow, r: Residual) -> Value | None:
    """The sublayer call that reads the skip on the branch (`self.attn` in `x + self.attn(x)`)."""
    skip = root(r.skip)
    todo, seen = [skip], set()
    while todo:
        cur = todo.pop(0)
        for u in flow.uses(cur):
            if u.id in seen or u.id > r.branch.id or not (u is r.branch or r.branch.has_ancestor(u)):
                continue
            seen.add(u.id)
            if _sublayer(u):
                return u
            if u.op == "norm":
                return None
            todo.append(u)
    return None


def _branch_norm_free(a: Analysis, flow: Flow, r: Residual) -> bool:
    """Certainly no norm anywhere on the branch: none in this forward between the skip and
    the add, and every module it calls is known and runs none (one level down included)."""
    skip = root(r.skip)
    for u in flow.values[:r.branch.id + 1]:
        # what feeds the branch, apart from the stream's own history
        if not (u is r.branch or r.branch.has_ancestor(u)) or u is skip or skip.has_ancestor(u):
            continue
        if u.op == "norm":
            return False
        if u.op in ("call", "block"):
            k = u.kind
            if k is None or k.category == "unknown":
                return False
            if k.category in ("project", "sequential"):
                if not (u.inputs and (u.inputs[0] is skip or u.inputs[0].has_ancestor(skip))):
                    continue     # a module on another input (a context projection) leaves the stream as it is
                if not a.summaries.reads_input_raw(k):
                    return False
    return True


def _holds_any_norm(a: Analysis, kind: Kind, depth: int = 0) -> bool:
    """The module may run a norm somewhere below it: it registers one, or a module the model
    cannot read (unknown never counts as norm-free)."""
    if depth > 3 or kind.category in ("norm", "unknown"):
        return True
    if kind.category in ("sequential", "stack", "moduledict"):
        return any(_holds_any_norm(a, el, depth + 1) for el in kind.elements or (kind.block,) if el is not None)
    model = a.builder.model_of(kind) if kind.category == "project" else None
    if model is None:
        return kind.category == "project"
    return bool(model.opaque) or any(_holds_any_norm(a, k, depth + 1) for sub in model.submodules.values()
                                     for k in sub.alternatives or [sub.kind])


_NOT_CONTEXT = re.compile(r"mask|rotary|rope|pos|freq|temb|emb|bias|scale|shift|gate|cache")


def _cross_input(sub: Value, r: Residual) -> bool:
    """The sublayer also reads a tensor that is not the stream and not a mask, position or
    conditioning scalar: cross-attention's context (`encoder_hidden_states=...`)."""
    call = sub.call_site if isinstance(sub.call_site, ast.Call) else sub.node
    if not isinstance(call, ast.Call):
        return False
    stream = producer(r.skip).var
    named = [(None, e) for e in call.args[1:]] + [(k.arg, k.value) for k in call.keywords]
    for key, e in named:
        if not isinstance(e, ast.Name) or e.id == stream:
            continue
        if not _NOT_CONTEXT.search(f"{key or ''} {e.id}".lower()):
            return True
    return False


def _modulated(flow: Flow, norm: Value) -> bool:
    """The norm's output is scaled by a value that does not derive from it (adaLN:
    `norm(x) * (1 + scale) + shift`)."""
    return any(u.op == "binop" and u.name == "Mult" and any(not (i is norm or i.has_ancestor(norm))
                                                              for i in u.inputs)
               for u in flow.uses(norm))


def _positional(v: Value) -> bool:
    """A depthwise convolution: a conditional positional encoding (CPVT), not a sublayer."""
    k = v.kind
    return k is not None and k.category == "conv" and k.keyword("groups") is not None


def _nl309(a: Analysis, cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    # per block: the class's own residual adds, or one loop body's
    groups: list[list[Residual]] = []
    in_loops = set()
    for loop in flow.loops:
        body = [r for r in flow.residuals if loop.holds(r.add)]
        if body:
            groups.append(body)
            in_loops.update(id(r) for r in body)
    groups.append([r for r in flow.residuals if id(r) not in in_loops])
    for group in groups:
        pre = [r for r in group if r.pre is not None]
        last = max(group, key=lambda r: r.add.id) if group else None
        # pre-norm, a block-final norm allowed (Conformer)
        if not pre or placement_of(group) != "pre" or any(r.post is not None and r is not last for r in group):
            continue
        shared = set.intersection(*(set(p.add.conds) for p in pre))
        for r in group:
            if r.pre is not None or r.post is not None or r.branch_out is not None or r.scaled:
                continue
            if not set(r.add.conds) <= shared:
                continue      # a sublayer run only under a flag (PixArt's cross-attention without norm2)
            if not _is_stream(flow, r.skip):
                continue
            sub = _branch_module(flow, r)
            if sub is None or _positional(sub) or sub.kind.category == "embedding":
                continue
            if not _branch_norm_free(a, flow, r):
                continue
            if _cross_input(sub, r) and all(_modulated(flow, p.pre) for p in pre):
                continue    # adaLN DiTs (PixArt-alpha, LTX-Video): cross-attention reads the raw stream by design
            other = pre[0].pre
            name = f"self.{sub.attr.split('[')[0]}" if sub.attr else ref(sub)
            report("NL309", sub.path, sub.call_site or sub.node,
                   f"`{cls.name}.forward` adds {name}'s output to the residual stream with no norm in "
                   f"front of it, while the block's other sublayers are pre-norm ({ref(other)}): this "
                   f"branch reads the raw, growing stream; normalize its input: "
                   f"`x = x + {name}(self.norm(x))`")
