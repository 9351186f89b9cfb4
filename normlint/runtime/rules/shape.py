"""NL2: which axes a norm reduces over, against the feature, sequence and batch axes."""

from __future__ import annotations

from ..axes import CHANNEL_OPS
from . import RuleContext

_PER_FEATURE = frozenset({"layer", "rms", "lp"})


def _axes(axes) -> str:
    return "(" + ", ".join(str(a) for a in axes) + ")" if axes is not None else "?"


def check_batchnorm_over_sequence(ctx: RuleContext) -> None:
    if not ctx.on("NL201"):
        return
    for info in ctx.analysis.norms.values():
        first = info.first
        if first.family != "batch" or len(first.in_shape) != 3:
            continue
        shape = tuple(first.in_shape)
        if info.feature_axis is not None and info.feature_axis != 1:
            ctx.report("NL201", f"{info.key}: {first.kind} gets an (N, L, C) activation {shape} and "
                       f"treats axis 1 as channels while the features are on axis "
                       f"{info.feature_axis}; transpose to (N, C, L) around it", norm=info)
        elif info.failed_other_length:
            ctx.report("NL201", f"{info.key}: {first.kind} failed when only the sequence length "
                       f"changed: its channel axis is the sequence axis of {shape}", norm=info)


def check_norm_over_sequence(ctx: RuleContext) -> None:
    if not ctx.on("NL202"):
        return
    analysis = ctx.analysis
    for info in analysis.norms.values():
        first = info.first
        if first.family not in _PER_FEATURE:
            continue
        reduced = info.reduced_axes or ()
        crossed = sorted(set(reduced) & set(info.sequence_axes))
        if crossed:
            why = f"reduces over axis {crossed[0]}, whose size follows the sequence length"
        elif info.failed_other_length:
            why = "failed when only the sequence length changed: its normalized shape includes it"
        elif (not info.sequence_axes and analysis.sequence_model and len(first.in_shape) == 3
              and info.feature_axis in reduced and set(reduced) - {info.feature_axis, 0}):
            # The feature axis and another one (LayerNorm([L, C]) at a fixed length). A norm
            # whose only reduced axis is not the voted feature axis says more about the vote:
            # a token-mixing MLP (MLP-Mixer) contracts the token axis right after the norm.
            why = (f"reduces over axes {_axes(reduced)} of {tuple(first.in_shape)} while the "
                   f"features are on axis {info.feature_axis}")
        else:
            continue
        ctx.report("NL202", f"{info.key}: {first.kind} {why}; statistics then mix positions "
                   "(future tokens in a causal model); normalize the feature axis only", norm=info)


def check_norm_over_batch(ctx: RuleContext) -> None:
    if not ctx.on("NL203"):
        return
    for info in ctx.analysis.norms.values():
        first = info.first
        if first.family in ("batch",) or not first.in_shape or first.in_shape[0] < 2:
            continue
        if info.module is not None and any(n.startswith("running_") for n, _ in info.module.named_buffers()):
            continue  # a BatchNorm implementation's own running statistics
        if 0 in (info.reduced_axes or ()):
            ctx.report("NL203", f"{info.key}: {first.kind} reduces over axes "
                       f"{_axes(info.reduced_axes)} including the batch axis 0: each sample's "
                       "output depends on the rest of the batch", norm=info)


def check_layernorm_on_channels_first(ctx: RuleContext) -> None:
    if not ctx.on("NL204"):
        return
    for info in ctx.analysis.norms.values():
        first = info.first
        if first.family not in ("layer", "rms") or len(first.in_shape) < 3:
            continue
        if info.producer in CHANNEL_OPS and info.feature_axis == 1 and 1 not in (info.reduced_axes or (1,)):
            ctx.report("NL204", f"{info.key}: {first.kind} normalizes axes {_axes(info.reduced_axes)} "
                       f"of a channels-first conv output {tuple(first.in_shape)}, not the channel "
                       "axis 1; permute to channels-last around it or use a channels-first norm",
                       norm=info)


CHECKS = [check_batchnorm_over_sequence, check_norm_over_sequence, check_norm_over_batch,
          check_layernorm_on_channels_first]
