"""NL1: the choice of normalizer (BatchNorm in a sequence model)."""

from __future__ import annotations

from ...findings import Severity
from ..index import ClassInfo
from ..model import Analysis, walk_kind
from .common import Reporter, producer


def check_class(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    if not report.on("NL101"):
        return
    model = a.model(cls)
    flow = a.flow(cls)
    batch_attrs: list[tuple[str, object, object]] = []
    for sub in model.submodules.values():
        for k in walk_kind(sub.kind):
            if k.is_norm and k.family == "batch":
                batch_attrs.append((sub.attr, k, sub))
                break
    functional = [v for v in (flow.norms if flow else []) if v.name == "batch_norm" and v.owner == cls.name]
    if not batch_attrs and not functional:
        return
    allowed = set(a.ctx.option("NL101", "allow-batchnorm-in") or [])
    if allowed and a.ancestors_named(cls, allowed):
        return
    ev = a.sequence_context(cls)
    if not ev:
        return
    why = ev.reasons[0]
    for attr, kind, sub in batch_attrs:
        after_conv = _after_conv(a, cls, attr, sub.kind)
        severity = Severity.INFO if after_conv else None
        node = kind.call or sub.value
        extra = (" (it follows a convolution inside a conv sub-block, a common deliberate design)"
                 if after_conv else "")
        report("NL101", cls.file.path, node,
               f"`{cls.name}.{attr}` is {kind.name} in a sequence model ({why}){extra}: batch "
               "statistics mix padding and other sequences into every token; use nn.LayerNorm(d) "
               "or RMSNorm over the feature axis", severity)
    for v in functional:
        report("NL101", v.path, v.node,
               f"`{cls.name}.forward` calls F.batch_norm in a sequence model ({why}): batch statistics "
               "mix padding and other sequences into every token; use F.layer_norm over the feature axis")


def _after_conv(a: Analysis, cls: ClassInfo, attr: str, kind) -> bool:
    """The BatchNorm normalizes a convolution output (conv -> BN), directly or in a Sequential."""
    for k in walk_kind(kind):
        if k.category == "sequential":
            for prev, cur in zip(k.elements, k.elements[1:]):
                if cur.is_norm and cur.family == "batch" and prev.category == "conv":
                    return True
    flow = a.flow(cls)
    if flow is None:
        return False
    for v in flow.norms:
        if v.attr == attr and v.inputs:
            p = producer(v.inputs[0])
            if p.op == "call" and p.kind is not None and (
                    p.kind.category == "conv"
                    or (p.kind.cls is not None and a.output_category(p.kind.cls) == "conv")):
                return True
    return False
