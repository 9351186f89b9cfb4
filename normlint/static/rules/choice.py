"""NL1: the choice of normalizer (BatchNorm in a sequence model)."""

from __future__ import annotations

from ...findings import Severity
from ..index import ClassInfo
from ..flow import Flow, Value
from ..model import Analysis, Evidence, class_text, walk_kind
from .common import Reporter, producer


def check_class(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    if not report.on("NL101"):
        return
    model = a.model(cls)
    batch_attrs: list[tuple[str, object, object]] = []
    for sub in model.own():
        for k in walk_kind(sub.kind):
            if k.is_norm and k.family == "batch":
                batch_attrs.append((sub.attr, k, sub))
                break
    # the dataflow is only needed for F.batch_norm; most classes can be ruled out by text
    flow = a.flow(cls) if "batch_norm" in class_text(cls) else None
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
    conv_block = _builds_convs(a, cls)
    for attr, kind, sub in batch_attrs:
        if _normalizes_a_side_input(a, cls, ev, attr):
            continue
        after_conv = conv_block or _after_conv(a, cls, attr, sub.kind)
        severity = Severity.INFO if after_conv else None
        node = kind.call or sub.value
        extra = (" (it sits in a convolution sub-block, a common deliberate design)"
                 if after_conv else "")
        report("NL101", cls.file.path, node,
               f"`{cls.name}.{attr}` is {kind.name} in a sequence model ({why}){extra}: batch "
               "statistics mix padding and other sequences into every token; use nn.LayerNorm(d) "
               "or RMSNorm over the feature axis", severity)
    for v in functional:
        report("NL101", v.path, v.node,
               f"`{cls.name}.forward` calls F.batch_norm in a sequence model ({why}): batch statistics "
               "mix padding and other sequences into every token; use F.layer_norm over the feature axis")


# what a token stream comes out of: a value computed from one of these is on the stream
_STREAM_CATEGORIES = frozenset({"embedding", "rnn", "transformer", "transformer_stack", "transformer_layer"})


def _normalizes_a_side_input(a: Analysis, cls: ClassInfo, ev: Evidence, attr: str) -> bool:
    """The BatchNorm ``attr`` normalizes a raw input of the model whose embeddings are the
    only sequence evidence, apart from every lookup: a tabular model batch-normalizes its
    continuous columns beside the embeddings of its categorical ones (pytorch-tabular's
    Embedding2dLayer). The host is the class itself, or the direct parent that carries the
    evidence and calls ``cls`` (a BatchNorm wrapper); every call there must take a value
    computed from forward inputs only, with no embedding, RNN or sequence module upstream."""
    host, attrs = cls, {attr}
    if ev.inherited_from:
        host = next((p for p in a.parents(cls) if p.name == ev.origin), None)
        if host is None or a.sequence_context(host).inherited_from:
            return False
        attrs = {s.attr for s in a.model(host).submodules.values()
                 if any(k.cls is cls for k in walk_kind(s.kind))}
    if not attrs or not a.evidence_is_lookups_only(host):
        return False
    flow = a.flow(host)
    if flow is None or flow.truncated:
        return False
    calls = [v for v in flow.values if v.attr in attrs and v.op in ("call", "norm", "block") and v.inputs]
    return bool(calls) and all(_raw_input(flow, v.inputs[0]) for v in calls)


def _raw_input(flow: Flow, v: Value) -> bool:
    """``v`` comes from the forward's inputs through no stream module (embedding, RNN,
    transformer) and no project module (whose inside is not looked at here)."""
    upstream = [u for u in flow.values if u is v or v.has_ancestor(u)]
    for u in upstream:
        if u.op in ("call", "norm", "block") and u.kind is not None and (
                u.kind.category in _STREAM_CATEGORIES or u.kind.cls is not None):
            return False
    return any(u.op == "param" for u in upstream)


def _builds_convs(a: Analysis, cls: ClassInfo, depth: int = 0) -> bool:
    """The class is a convolution sub-block: it builds a conv, directly or through a project
    module that does (Conformer's conv module, a MobileOne/RepMixer token mixer, wav2vec2's
    positional conv). BatchNorm there is the conv design's, not a choice of sequence norm."""
    for sub in a.model(cls).submodules.values():
        for k in walk_kind(sub.kind):
            if k.category == "conv":
                return True
            if k.cls is not None and k.cls is not cls and depth < 1 and _builds_convs(a, k.cls, depth + 1):
                return True
    return False


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
