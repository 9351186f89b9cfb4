"""NL2: the axes a norm reduces over."""

from __future__ import annotations

import ast

from ...findings import Severity
from ..flow import Flow, Value
from ..index import ClassInfo
from ..layouts import rank, role
from ..model import Analysis, built_kinds, walk_kind
from .common import Reporter, producer, ref


def check_class(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    flow = a.flow(cls)
    if flow is not None and report.on("NL201", "NL204", "NL202", "NL203"):
        for v in flow.norms:
            _nl201(a, flow, v, report)
            _nl204(a, flow, v, report)
            _functional_shape(a, cls, v, report)
    if report.on("NL204"):
        _nl204_sequential(a, cls, report)
    if report.on("NL202"):
        _nl202_ctor(a, cls, report)
    hand = a.hand_norm(cls) if a.norm_class(cls) is not None else None
    if hand is not None and report.on("NL202", "NL203"):
        _hand_axes(a, cls, hand, report)


def _source(a: Analysis, flow: Flow, v: Value) -> Value | None:
    """The module call that gave v its layout (through adds, activations and casts)."""
    todo, seen = [v], set()
    while todo and len(seen) < 32:
        cur = producer(todo.pop(0))
        if cur.id in seen:
            continue
        seen.add(cur.id)
        if cur.op in ("call", "block") and cur.kind is not None and cur.kind.category not in ("norm",):
            if a.layout(cur, flow) is not None:
                return cur
        if cur.op in ("add", "binop", "norm", "getitem", "method"):
            todo.extend(cur.inputs)
    return None


def _nl201(a: Analysis, flow: Flow, v: Value, report: Reporter) -> None:
    k = v.kind
    if k is None or k.torch_name not in ("BatchNorm1d", "LazyBatchNorm1d") or not v.inputs:
        return
    layout = a.layout(v.inputs[0], flow)
    # (N, L, C) or (L, N, C): the features last and something else in dim 1, which
    # BatchNorm1d takes for its channels (it accepts 2-D and 3-D input only, so a layout
    # ending in (L, C) is 3-D)
    n = rank(layout)
    if role(layout, -1) != "F" or not (role(layout, -2) == "S" and n in (None, 3)
                                       or n == 3 and layout[1] == "B"):
        return
    # sequence-first tokens (nn.MultiheadAttention's and fairseq's default) put the batch in
    # dim 1: the statistics are then per sample, and the channels need a permute to get there
    seq_first = n == 3 and layout[1] == "B"
    shape = "(L, N, C)" if seq_first else "(N, L, C)"
    src = _source(a, flow, v.inputs[0])
    if src is not None:
        what = f"the {shape} output of {ref(src)} ({src.kind.name})"
    else:
        # known from the residual branches added to the stream it reads, or from what it feeds
        what = f"`{producer(v.inputs[0]).var or 'x'}`, {shape} tokens"
    axis, fix = (("the batch axis", "permute the channels to dim 1 around it: "
                  f"`{ref(v)}(x.permute(1, 2, 0)).permute(2, 0, 1)`") if seq_first else
                 ("the sequence axis", f"transpose around it: `{ref(v)}(x.transpose(1, 2)).transpose(1, 2)`"))
    report("NL201", v.path, v.node,
           f"`{v.owner}.forward` applies {ref(v)} (BatchNorm1d) to {what}: "
           f"BatchNorm1d normalizes dim 1, {axis}; {fix}")


def _nl204(a: Analysis, flow: Flow, v: Value, report: Reporter) -> None:
    k = v.kind
    if k is None or k.family != "layer" or k.channels_first or not v.inputs:
        return
    if k.torch_name is None and k.name != "F.layer_norm" and k.cls is not None:
        return  # project norms: channels-first ones are told apart by structure elsewhere
    if k.call is not None and k.call.args and _is_full_shape(k.call.args[0]) is not None:
        return  # LayerNorm([C, H, W]) covers the channels: NL202's business, not NL204's
    layout = a.layout(v.inputs[0], flow)
    n = rank(layout)
    if n is None or n < 3 or layout[1] != "F" or layout[-1] == "F":
        return
    src = _source(a, flow, v.inputs[0])
    origin = f" of {ref(src)} ({src.kind.name})" if src is not None else ""
    report("NL204", v.path, v.node,
           f"`{v.owner}.forward` applies {ref(v)} ({k.name}) straight to the channels-first output{origin}: "
           "it normalizes the last spatial axis, not the channels; permute to channels-last around it "
           "(`x.permute(0, 2, 3, 1)` ... `permute(0, 3, 1, 2)`) or use a channels-first LayerNorm2d")


_PASS_THROUGH = ("act", "dropout", "identity")


def _nl204_sequential(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    """An nn.Sequential runs each element on the previous one's output, so a conv followed
    (through activations and dropout only) by a LayerNorm gives it (N, C, *spatial) input,
    wherever the Sequential lives: an attribute, a list it is appended to, a local handed
    to a block's constructor, a factory's return value."""
    for k in built_kinds(a.model(cls)):
        if k.category != "sequential":
            continue
        prev = None
        for el in k.elements:
            if el.category in _PASS_THROUGH:
                continue
            if prev is not None and prev.category == "conv" and prev.torch_name is not None \
                    and el.torch_name == "LayerNorm" and not el.channels_first and el.call is not None \
                    and not (el.call.args and _is_full_shape(el.call.args[0]) is not None):
                report("NL204", cls.file.path, el.call,
                       f"`{cls.name}` builds nn.Sequential({prev.name}, ..., {el.name}): the LayerNorm gets the "
                       "conv's channels-first (N, C, *spatial) output and normalizes the last spatial axis, not "
                       "the channels; permute to channels-last around it or use a channels-first LayerNorm2d "
                       "(or GroupNorm(1, C))")
            prev = el


def _is_full_shape(node: ast.expr) -> str | None:
    """'full' for x.shape / x.size(), 'trailing' for x.shape[1:] / [L, C] lists, else None."""
    if isinstance(node, ast.Attribute) and node.attr == "shape":
        return "full"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "size" \
            and not node.args:
        return "full"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("tuple", "list") \
            and node.args:
        return _is_full_shape(node.args[0])
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice) \
            and _is_full_shape(node.value) == "full":
        lower = node.slice.lower
        if lower is not None and isinstance(lower, ast.Constant) and lower.value == 1:
            return "trailing"
        if lower is not None and isinstance(lower, ast.UnaryOp) and isinstance(lower.operand, ast.Constant) \
                and lower.operand.value >= 2:
            return "trailing"
        return None
    if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 2:
        return "trailing"
    return None


def _shape_arg(call: ast.Call) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == "normalized_shape":
            return k.value
    return None


def _functional_shape(a: Analysis, cls: ClassInfo, v: Value, report: Reporter) -> None:
    if v.name != "layer_norm" or not isinstance(v.node, ast.Call) or v.owner != cls.name:
        return
    call = v.node
    shape = call.args[1] if len(call.args) > 1 else _shape_arg(call)
    if shape is None:
        return
    what = _is_full_shape(shape)
    if what == "full":
        report("NL203", v.path, call,
               f"`{cls.name}.forward` calls F.layer_norm with normalized_shape={ast.unparse(shape)}: the "
               "statistics include the batch axis, so each sample depends on the others; normalize the "
               "feature axis: `F.layer_norm(x, x.shape[-1:])`")
    elif what == "trailing":
        _report_seq(a, cls, v.path, call, f"`{cls.name}.forward` calls F.layer_norm with normalized_shape="
                    f"{ast.unparse(shape)}", report)


def _report_seq(a: Analysis, cls: ClassInfo, path: str, node, what: str, report: Reporter) -> None:
    ev = a.sequence_context(cls)
    if ev:
        report("NL202", path, node,
               f"{what}: it reduces over the sequence/field axis as well as the features ({ev.reasons[0]}), "
               "so statistics depend on sequence length and leak across positions; normalize the feature "
               "axis only: `nn.LayerNorm(d_model)`")
    else:
        report("NL202", path, node,
               f"{what}: it normalizes each sample over several axes; fine for a CNN's [C, H, W], wrong for "
               "(L, C) sequences", Severity.INFO)


def _nl202_ctor(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    for sub in a.model(cls).own():
        for k in walk_kind(sub.kind):
            if k.torch_name not in ("LayerNorm", "RMSNorm") or k.call is None:
                continue
            shape = k.call.args[0] if k.call.args else _shape_arg(k.call)
            if shape is None or _is_full_shape(shape) is None:
                continue
            _report_seq(a, cls, cls.file.path, k.call,
                        f"`{cls.name}.{sub.attr}` is {k.name}({ast.unparse(shape)})", report)


def _hand_axes(a: Analysis, cls: ClassInfo, hand, report: Reporter) -> None:
    """A hand-written norm's reduced dims, read against the layouts it is called with."""
    for st in hand.stats:
        if not st.dims:
            continue
        if 0 in st.dims and st.keepdim and not hand.running_stats:
            report("NL203", cls.file.path, st.node,
                   f"`{cls.name}.forward` takes `{st.op}` over dim 0, the batch axis: each sample's output "
                   "depends on the rest of the batch; reduce over the feature axis (dim=-1)")
    if hand.channels_first:
        return
    site = _sequence_call_site(a, cls, hand)
    if site is None:
        return
    parent, layout, why = site
    for st in hand.stats:
        if st.dims and not (0 in st.dims and st.keepdim) and "S" in {role(layout, d) for d in st.dims}:
            report("NL202", cls.file.path, st.node,
                   f"`{cls.name}.forward` takes `{st.op}` over dim {st.dims[0]}, the sequence axis of the "
                   f"(B, T, C) activations `{parent.name}` gives it ({why}): statistics mix positions and "
                   "depend on sequence length; reduce over the feature axis: `dim=-1`")


def _sequence_call_site(a: Analysis, cls: ClassInfo, hand):
    """(caller, input layout, evidence) for a caller that hands the norm token sequences
    whose sequence axis the norm reduces."""
    dims = [d for st in hand.stats if st.dims and not (0 in st.dims and st.keepdim) for d in st.dims]
    if not dims:
        return None
    for parent, call in a.callers(cls):
        if call.op != "norm" or not call.inputs:
            continue
        pflow = a.flow(parent)
        if pflow is None:
            continue
        layout = a.layout(call.inputs[0], pflow)
        if "S" not in {role(layout, d) for d in dims}:
            continue
        ev = a.sequence_context(parent)
        if ev:
            return parent, layout, ev.reasons[0]
    return None
