"""NL3: where norms sit relative to residual adds, stacks and each other."""

from __future__ import annotations

from ..flow import Flow, Value, is_transparent, root
from ..index import ClassInfo
from ..model import Analysis, walk_kind
from .common import Reporter, exclusive, ref


def check_class(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    model = a.model(cls)
    flow = a.flow(cls)
    if report.on("NL305"):
        _nl305(cls, model, report)
    if report.on("NL306"):
        _nl306(a, cls, model, report)
    if report.on("NL301"):
        _nl301(a, cls, model, report)
    if flow is None:
        return
    if report.on("NL303"):
        _nl303(cls, flow, report)
    if report.on("NL304"):
        _nl304(cls, flow, report)
    if report.on("NL307"):
        _nl307(a, cls, flow, report)
    if report.on("NL308"):
        _nl308(a, cls, flow, report)
    if report.on("NL302"):
        _nl302(a, cls, flow, report)


# -- NL301 ------------------------------------------------------------------------------


def _nl301(a: Analysis, cls: ClassInfo, model, report: Reporter) -> None:
    limit = int(a.ctx.option("NL301", "post-norm-max-depth"))
    for sub in model.submodules.values():
        k = sub.kind
        if k.category not in ("stack", "transformer_stack", "transformer") or k.depth is None \
                or k.depth <= limit:
            continue
        placed = a.block_placement(k.block)
        if placed is None or placed[0] != "post" or placed[2]:
            continue
        block = k.block.name if k.block else "block"
        report("NL301", cls.file.path, k.call or sub.value,
               f"`{cls.name}.{sub.attr}` stacks {k.depth} post-norm `{block}` layers (more than "
               f"{limit}) with no DeepNorm/Admin residual scaling: Post-LN needs warm-up and diverges at "
               "this depth; switch to pre-norm (norm_first=True) with a final norm, or scale the residual "
               "(`norm(alpha * x + f(x))`)")


# -- NL302 ------------------------------------------------------------------------------


def _is_norm(v: Value) -> bool:
    return v.op == "norm"


def _carries(v: Value) -> bool:
    return is_transparent(v) or v.op in ("tuple", "phi", "attr", "getitem") or \
        (v.op == "func" and bool(v.name) and v.name[:1].isupper())


def _normalized_downstream(a: Analysis, flow: Flow, v: Value) -> bool:
    # any later norm computed from v, even after pooling or a permute (Qwen2-Audio), or a
    # module whose forward starts with a norm (a patch merger's ln_q)
    return any(n.has_ancestor(v) for n in flow.norms) or any(
        u.op == "call" and u.kind is not None and u.kind.cls is not None and u.has_ancestor(v)
        and a.starts_with_norm(u.kind.cls) for u in flow.values[v.id + 1:])


def _carried(flow: Flow, v: Value) -> set[int]:
    """v and what passes it on unchanged: indexing, tuples, output dataclasses."""
    out, todo = {v.id}, [v]
    while todo:
        for u in flow.uses(todo.pop()):
            if u.id not in out and _carries(u):
                out.add(u.id)
                todo.append(u)
    return out


def _nl302(a: Analysis, cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    last: dict[str, Value] = {}
    for b in flow.blocks:
        if b.owner == cls.name and b.attr and b.stack is not None:
            last[b.attr.split("[")[0]] = b
    for attr, v in last.items():
        stack = v.stack
        if stack.final_norm is not None:
            continue
        placed = a.block_placement(stack.block)
        if placed is None or placed[0] not in ("pre", "switchable"):
            continue
        if _normalized_downstream(a, flow, v):
            continue
        # a linear layer computed from the stream (after pooling, indexing, ...) is the head
        head = next((u for u in flow.values if u.id > v.id and u.op == "call" and _is_head(u)
                     and u.has_ancestor(v)), None)
        if head is None:
            # An encoder returning its stream may be normalized by the caller, or feed a
            # neck/next stage by design (Swin stages, ViTDet); only a token model that
            # returns the raw stream and whose callers never normalize it is reported (C5, C6).
            carried = _carried(flow, v)
            returned = any(r.id in carried for r in flow.returns)
            if not returned or not _has_token_embedding(a, cls) or _caller_normalizes(a, cls):
                continue
            where = "returns it"
        else:
            where = f"feeds it to {ref(head)}"
        block = stack.block.name if stack.block else "block"
        node = next((f for f, e in flow.for_stacks if e.attr == attr), None) or v.node
        torch_stack = stack.category == "transformer_stack"
        fix = ("pass `norm=nn.LayerNorm(d_model)` to the encoder (and `enable_nested_tensor=False`); "
               "do not switch to post-norm" if torch_stack else
               "add a final norm (`self.norm = nn.LayerNorm(d)`) and apply it after the last block")
        if torch_stack and stack.call is not None:
            node = stack.call
            path = cls.file.path
        else:
            path = v.path
        what = "pre-norm" if placed[0] == "pre" else "(optionally) pre-norm"
        report("NL302", path, node,
               f"`{cls.name}.forward` runs the {what} stack `self.{attr}` ({block}) and {where} without "
               f"a final norm: the residual stream grows with depth and reaches the output un-normalized; "
               f"{fix}")


def _is_head(v: Value) -> bool:
    return v.kind is not None and v.kind.category == "linear"


def _has_token_embedding(a: Analysis, cls: ClassInfo) -> bool:
    return any(k.category == "embedding" for sub in a.model(cls).submodules.values()
               for k in walk_kind(sub.kind))


def _caller_normalizes(a: Analysis, cls: ClassInfo) -> bool:
    """Some model that composes cls applies a norm to its output (encoder-only pieces)."""
    for p in a.parents(cls):
        pflow = a.flow(p)
        if pflow is None:
            continue
        for v in pflow.values:
            if v.op in ("call", "block") and v.kind is not None and (
                    v.kind.cls is cls or (v.stack is not None and v.stack.block is not None
                                          and v.stack.block.cls is cls)):
                if _normalized_downstream(a, pflow, v):
                    return True
    return False


# -- NL303 ------------------------------------------------------------------------------


def _nl303(cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    # only adds on a normalized stream count (Autoformer's trend1 + trend2 does not)
    res = [r for r in flow.residuals if r.pre or r.post or r.branch_out or root(r.skip).op == "norm"]
    if not res:
        return
    last = max(res, key=lambda r: r.add.id)
    # any norm computed from the last sum (even after a decomposition or pooling step)
    # makes the block post-norm in spirit (Autoformer's decomp -> final_layer_norm)
    if last.post is not None or any(n.has_ancestor(last.add) for n in flow.norms):
        return
    for r in sorted(res, key=lambda r: r.add.id):
        s = root(r.skip)
        # a scaled skip (alpha * x + beta * f(x)) on a normalized stream is a deliberate design
        if s.op != "norm" or not r.branch.has_ancestor(s) or not s.attr or r.scaled:
            continue
        var = s.var or "x"
        src = s.inputs[0].var if s.inputs and s.inputs[0].var else var
        users = [u for u in flow.uses(s) if u.op in ("call", "block") and u.attr]
        sub = f"self.{users[0].attr}" if users else "f"
        report("NL303", s.path, s.node,
               f"`{s.owner}.forward` rebinds `{var}` to `{ref(s)}({src})` before the residual add, so the "
               f"skip path carries normalized values; keep the residual: "
               f"`{var} = {src} + {sub}({ref(s)}({src}))`")
        return


# -- NL304 ------------------------------------------------------------------------------


def _nl304(cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    sites: dict[str, list[Value]] = {}
    seen: set = set()
    for v in flow.norms:
        if not v.attr or v.stack is not None:
            continue  # stack elements and nn.TransformerEncoder(norm=...) are one module per call
        # one site per source location: a helper applied to two streams (XLNet's two-stream
        # attention) is one design decision, not a copy-paste slip
        key = id(v.node)
        if key in seen:
            continue
        seen.add(key)
        sites.setdefault(v.attr, []).append(v)
    for vs in sites.values():
        if len(vs) < 2:
            continue
        first = vs[0]
        for other in vs[1:]:
            if exclusive(first.conds, other.conds):
                continue
            # the second call normalizes a value computed from the first one's output: one
            # stream's consecutive sublayers share the norm (OLMo #222). Independent tensors
            # (keys of two attentions, DETR's per-layer auxiliary outputs) are a design choice.
            if other.has_ancestor(first) and any(
                    other.has_ancestor(r.add) and r.add.has_ancestor(first) for r in flow.residuals):
                report("NL304", other.path, other.node,
                       f"`{cls.name}.forward` calls {ref(other)} ({first.kind.name if first.kind else 'norm'}) "
                       f"at two sites (line {first.node.lineno} and line {other.node.lineno}): the sublayers "
                       "share one scale and shift; give each sublayer its own norm (`norm1`, `norm2`)")
                break


# -- NL305 ------------------------------------------------------------------------------


def _nl305(cls: ClassInfo, model, report: Reporter) -> None:
    for sub in model.submodules.values():
        for k in walk_kind(sub.kind):
            if k.category == "stack" and k.aliased:
                block = k.block.name if k.block else "module"
                n = f" {k.depth} times" if k.depth else ""
                report("NL305", cls.file.path, sub.value,
                       f"`{cls.name}.{sub.attr}` repeats one `{block}` instance{n}: every layer shares the "
                       f"same weights and norms; build a fresh module per layer: "
                       f"`nn.ModuleList([{block}(...) for _ in range(n)])`")
                break


# -- NL306 ------------------------------------------------------------------------------


def _nl306(a: Analysis, cls: ClassInfo, model, report: Reporter) -> None:
    if a.index.find_method(cls, "forward") is None:
        return
    norms = [s for s in model.submodules.values() if s.kind.is_norm]
    if not norms:
        return
    used = a.self_attr_loads(cls)
    prefixes = tuple(u[:-1] for u in used if u.endswith("*"))
    for sub in norms:
        if sub.attr in used or sub.attr.startswith(prefixes) or a.read_from_outside(sub.attr, cls):
            continue
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
        if inp.op == "norm" and inp is not v and inp.attr != v.attr:
            report("NL307", v.path, v.node,
                   f"`{v.owner}.forward` applies {ref(v)} directly to the output of {ref(inp)}: the second "
                   "norm is redundant (near-identity); drop one of them")
            continue
        if inp.op in ("block", "call") and inp.kind is not None:
            placed = a.block_placement(inp.kind)
            if placed is not None and placed[0] == "post" and placed[1]:
                what = f"the post-norm stack {ref(inp)}" if inp.op == "block" else ref(inp)
                node = v.kind.call if (v.kind is not None and v.kind.call is not None and inp.stack is not None
                                       and inp.stack.final_norm is v.kind) else v.node
                path = cls.file.path if node is not v.node else v.path
                report("NL307", path, node,
                       f"`{v.owner}` applies {ref(v)} to the output of {what} "
                       f"({inp.kind.name}), whose last layer already ends with a norm: two consecutive "
                       "norms; drop the final norm (or make the layers pre-norm)")


# -- NL308 ------------------------------------------------------------------------------


def _nl308(a: Analysis, cls: ClassInfo, flow: Flow, report: Reporter) -> None:
    s = a.summary(cls)
    if s is None or s.placement != "mixed":
        return
    pre = next(r for r in flow.residuals if r.pre is not None and r.post is None)
    post = next(r for r in flow.residuals if r.post is not None and r.pre is None)
    if exclusive(pre.pre.conds, post.post.conds):
        return  # `if normalize_before:` switches the whole block between pre and post
    report("NL308", post.post.path, post.post.node,
           f"`{cls.name}.forward` mixes placements: {ref(pre.pre)} normalizes a sublayer's input "
           f"(pre-norm) but {ref(post.post)} normalizes another sublayer's sum (post-norm); use one "
           "placement for every sublayer: `x = x + f(norm(x))`")
