"""NL4: numerics of hand-written norms (eps, precision, formula)."""

from __future__ import annotations

import ast

from ...findings import Severity
from ..flow import Flow, Value
from ..handnorm import rescalings
from ..index import ClassInfo, FileInfo
from ..model import Analysis, class_text, node_text, walk_kind
from .common import Reporter

FP16_MIN_SUBNORMAL = 5.96e-8


def check_class(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    if report.on("NL401"):
        _eps_at_instantiation(a, cls, report)
    nf = a.norm_class(cls)
    hand = a.hand_norm(cls) if nf is not None else None
    if hand is None:
        if report.on("NL404"):
            _inline_rescalings(a, cls, report)
        return
    path = cls.file.path
    if report.on("NL401"):
        for node, value, where, in_fp32 in hand.eps_values:
            if 0 < value < FP16_MIN_SUBNORMAL:
                upcast = hand.upcast or in_fp32
                sev = Severity.INFO if upcast else None
                note = (" (the statistics are upcast to float32 first, so this only bites when the "
                        "upcast is removed)" if upcast else "")
                report("NL401", where, node,
                       f"`{cls.name}` adds eps={value:g}, below float16's smallest subnormal (5.96e-8): it "
                       f"rounds to 0 in half precision and all-zero (padding) rows give NaN{note}; use "
                       "eps >= 1e-6", sev)
    if report.on("NL402"):
        _squared_in_input_dtype(f"{cls.name}.forward", path, hand, report)
    if report.on("NL403") and hand.centered:
        for st in hand.stats:
            if st.op in ("std", "var") and not st.biased:
                report("NL403", path, st.node,
                       f"`{cls.name}.forward` uses `{ast.unparse(st.node)}`, the unbiased (N-1) estimate: "
                       "its output differs from nn.LayerNorm and ported weights behave differently; pass "
                       "`unbiased=False` (or use F.layer_norm)")
        for div in hand.divisions:
            if div.eps_outside_root:
                report("NL403", path, div.node,
                       f"`{cls.name}.forward` adds eps to the standard deviation "
                       f"(`{ast.unparse(div.denominator)}`) instead of the variance: the output differs "
                       "from nn.LayerNorm; use `(x - mean) / torch.sqrt(var + eps)`")
    if report.on("NL404"):
        for div in hand.divisions:
            if not div.has_eps:
                report("NL404", path, div.node,
                       f"`{cls.name}.forward` divides by `{ast.unparse(div.denominator)}` with no eps: a "
                       "constant row (padding) makes it 0 and the output NaN/Inf; add eps inside the root "
                       "(`torch.sqrt(var + eps)`) or clamp the denominator")


def check_file(a: Analysis, info: FileInfo, report: Reporter) -> None:
    """NL402 on a norm written as a module-level function (`def rms_norm(x, weight, eps)`),
    called from wherever: the same structure as a norm class's forward."""
    if not report.on("NL402"):
        return
    for fn in info.functions.values():
        hand = a.hand_norm_function(info, fn)
        if hand is not None:
            _squared_in_input_dtype(f"{fn.name}", info.path, hand, report)


def _squared_in_input_dtype(where: str, path: str, hand, report: Reporter) -> None:
    if hand.family == "batch":
        return
    st = next((s for s in hand.stats if s.upcast is False and s.squared), None)
    if st is not None:
        report("NL402", path, st.node,
               f"`{where}` computes a squared statistic (`{ast.unparse(st.node)}`) in the "
               "input dtype: under fp16/bf16 it loses precision and fp16 x*x overflows at |x| >= 256; "
               "upcast first: "
               "`x.float().pow(2).mean(-1, keepdim=True)` and cast the result back")


def _eps_at_instantiation(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    """MyRMSNorm(d, eps=1e-12): a tiny eps handed to a hand-written norm without upcast."""
    for sub in a.model(cls).own():
        for k in walk_kind(sub.kind):
            if not k.is_norm or k.cls is None or k.call is None:
                continue
            hand = a.hand_norm(k.cls)
            if hand is None or hand.upcast:
                continue
            for kw in k.call.keywords:
                if kw.arg in ("eps", "epsilon", "variance_epsilon") and isinstance(kw.value, ast.Constant) \
                        and isinstance(kw.value.value, float) and 0 < kw.value.value < FP16_MIN_SUBNORMAL:
                    report("NL401", cls.file.path, kw.value,
                           f"`{cls.name}.{sub.attr}` builds {k.name} with eps={kw.value.value:g}, which rounds "
                           "to 0 in float16 (the hand-written norm does not upcast): all-zero rows give NaN; "
                           "use eps >= 1e-6")


_RESCALE_TOKENS = (".norm(", "linalg.norm(", "vector_norm(", "std(", "sqrt(", "** 0.5", "**0.5", "** -0.5", "**-0.5")


def _inline_rescalings(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    """NL404 outside norm modules: an activation divided by its own norm (cosine attention,
    CLIP features written as `x / x.norm(dim=-1, keepdim=True)`) in forward or in a method
    the module's users call, with no eps and no clamp."""
    text = class_text(cls)
    # a statistic that rescales its own tensor keeps its dims (else it would not broadcast)
    if "keepdim" not in text or not any(tok in text for tok in _RESCALE_TOKENS):
        return
    flows: list[tuple[Flow, bool]] = []
    flow = a.flow(cls)
    if flow is not None:
        flows.append((flow, True))
    for fn in a.entry_methods(cls):
        body = node_text(cls.file, fn)
        if any(tok in body for tok in _RESCALE_TOKENS):
            flows.append((a.entry_flow(cls, fn), False))
    for flow, is_forward in flows:
        for r in rescalings(flow, _data_of(flow, is_forward)):
            if r.division.has_eps:
                continue
            data = r.data.var or r.data.text()
            report("NL404", r.data.path, r.node,
                   f"`{r.data.owner}` divides `{data}` by its own norm (`{ast.unparse(r.stat.node)}`) with no "
                   "eps: a zero row (padding, a masked position) gives 0/0 = NaN; use "
                   "`F.normalize(x, dim=-1)` (it clamps the norm) or `.clamp_min(eps)` the denominator")


def _data_of(flow: Flow, is_forward: bool):
    """What counts as an activation in a flow: whatever derives from forward's inputs or
    from a module's output; in another entry method, from its parameters that reach a
    module (the inputs it runs the network on) or from a module's output. A parameter's
    or buffer's own statistics (weight standardization, a codebook) are not."""
    outputs = [v for v in flow.values if v.op in ("call", "block", "norm")]
    params = list(flow.params.values())
    if not is_forward:
        params = [p for p in params if any(o.has_ancestor(p) for o in outputs)]
    sources = params + outputs

    def is_data(v: Value) -> bool:
        return any(v is s or v.has_ancestor(s) for s in sources)
    return is_data
