"""NL1: the choice of normalizer (batch statistics in sequence models)."""

from __future__ import annotations

from ...findings import Severity
from ..axes import CHANNEL_OPS
from ..probes import tolerance
from . import RuleContext, finite

def _allowed(ctx: RuleContext, info) -> bool:
    allow = set(ctx.option("NL101", "allow-batchnorm-in"))
    return info.module is not None and type(info.module).__name__ in allow

def check_batchnorm_in_sequence_model(ctx: RuleContext) -> None:
    if not ctx.on("NL101") or not ctx.analysis.sequence_model:
        return
    for info in ctx.analysis.norms.values():
        if info.first.family != "batch" or len(info.first.in_shape) != 3 or _allowed(ctx, info):
            continue
        if info.producer in CHANNEL_OPS:
            ctx.report("NL101", f"{info.key}: {info.first.kind} after a convolution inside a "
                       "sequence model (a deliberate Conformer-style choice); its batch statistics "
                       "still mix padding and other sequences", norm=info, severity=Severity.INFO,
                       prefer="construction")
        else:
            ctx.report("NL101", f"{info.key}: {info.first.kind} in a sequence model normalizes with "
                       "statistics over the batch and the sequence; use LayerNorm/RMSNorm over the "
                       "feature axis", norm=info, prefer="construction")

def check_padding(ctx: RuleContext) -> None:
    """Measured: the norm re-run on a prefix of the sequence gives other outputs for the
    same positions. A conv sub-block (Conformer) makes BatchNorm a deliberate *choice*
    (NL101 info), but what padding does to the real frames is measured here, so it stays
    a warning."""
    if not ctx.on("NL102"):
        return
    for info in ctx.analysis.norms.values():
        tol = tolerance(info.first.dtype)
        deviations = [finite(info.value(f"prefix{a}")) for a in info.sequence_axes]
        deviations = [d for d in deviations if d is not None and d > tol]
        if not deviations:
            continue
        ctx.report("NL102", f"{info.key}: {info.first.kind} output for the same tokens changes by "
                   f"{max(deviations):.1%} when the sequence is shortened: its statistics cross the "
                   "sequence axis, so padding changes them; mask padding or normalize the feature "
                   "axis only", norm=info)

def check_batch_dependence(ctx: RuleContext) -> None:
    if not ctx.on("NL103"):
        return
    for info in ctx.analysis.norms.values():
        deviation = finite(info.value("batch"))
        if deviation is None or deviation <= tolerance(info.first.dtype):
            continue  # non-finite outputs are NL405's: the first non-finite producer
        if info.first.family == "batch" and info.first.training and not ctx.analysis.sequence_model:
            continue  # train-mode BatchNorm in a CNN is batch-dependent by design
        # As for NL101, a BatchNorm right after a conv (Conformer's conv module) is deliberate.
        deliberate = info.first.family == "batch" and info.producer in CHANNEL_OPS
        ctx.report("NL103", f"{info.key}: a sample's {info.first.kind} output changes by "
                   f"{deviation:.1%} with the other samples in its batch "
                   f"({'train' if info.first.training else 'eval'} mode)", norm=info,
                   severity=Severity.INFO if deliberate else None)

CHECKS = [check_batchnorm_in_sequence_model, check_padding, check_batch_dependence]
