"""NL4: numerics of the norms as they ran (dtype, eps, formula, finiteness)."""

from __future__ import annotations

import torch

from ...findings import Severity
from ..tracer import LOW_PRECISION
from . import RuleContext

# Families whose torch kernels accumulate statistics in float32 whatever the input dtype.
_NATIVE_KERNELS = frozenset({"layer", "rms", "group", "batch", "instance"})


def eps_vanishes(eps: float, dtype: torch.dtype) -> bool:
    """Whether eps rounds to zero in dtype (at most half the smallest subnormal)."""
    info = torch.finfo(dtype)
    return 0 < eps <= info.smallest_normal * info.eps / 2


def check_eps_vanishes(ctx: RuleContext) -> None:
    if not ctx.on("NL401"):
        return
    for info in ctx.analysis.norms.values():
        first = info.first
        if first.eps is None or first.dtype not in LOW_PRECISION or not eps_vanishes(first.eps, first.dtype):
            continue
        dtype = str(first.dtype).replace("torch.", "")
        if first.handwritten and first.low_precision_stats or first.family == "lp":
            ctx.report("NL401", f"{info.key}: eps={first.eps:g} rounds to 0 in {dtype} and the "
                       "statistics are computed in that dtype, so an all-zero (padding) row gives "
                       "NaN/Inf; use eps >= 1e-6 or upcast to float32", norm=info)
        elif first.family in _NATIVE_KERNELS and not first.handwritten:
            ctx.report("NL401", f"{info.key}: eps={first.eps:g} rounds to 0 in {dtype}; the "
                       f"{first.kind} kernel accumulates in float32, but a fused or exported "
                       "(ONNX fp16) version may not", norm=info, severity=Severity.INFO)


def check_low_precision_statistics(ctx: RuleContext) -> None:
    if not ctx.on("NL402"):
        return
    for info in ctx.analysis.norms.values():
        first = info.first
        if not (first.handwritten and first.low_precision_stats and first.dtype in LOW_PRECISION):
            continue
        error = info.value("fp32_error")
        measured = f" (output differs by {error:.2%} from a float32 recomputation)" if error is not None else ""
        ctx.report("NL402", f"{info.key}: the statistics of this hand-written norm are reduced in "
                   f"{str(first.dtype).replace('torch.', '')}{measured}; upcast before the reduction: "
                   "x.float().pow(2).mean(-1, keepdim=True)", norm=info)


def check_formula(ctx: RuleContext) -> None:
    if not ctx.on("NL403"):
        return
    for info in ctx.analysis.norms.values():
        deviation = info.value("formula")
        if deviation is not None and deviation > 1e-2:
            ctx.report("NL403", f"{info.key}: this hand-written norm differs by {deviation:.1%} from "
                       "F.layer_norm/F.rms_norm on rows whose variance is near eps (unbiased std or "
                       "eps added to the std?); use sqrt(var(unbiased=False) + eps)", norm=info)


def check_non_finite(ctx: RuleContext) -> None:
    if not ctx.on("NL405"):
        return
    for info in ctx.analysis.norms.values():
        for event in info.events:
            if event.values.get("input_finite") == 1.0 and event.values.get("output_finite") == 0.0:
                ctx.report("NL405", f"{info.key}: {info.first.kind} produced NaN/Inf from finite "
                           "inputs; raise eps or compute the statistics in float32", norm=info)
                break


def check_eps_dominates(ctx: RuleContext) -> None:
    if not ctx.on("NL406"):
        return
    for info in ctx.analysis.norms.values():
        if info.first.family == "batch" and not info.first.training:
            continue  # eval-mode BatchNorm divides by its running variance, not the batch's
        fraction = info.value("below_eps")
        if fraction is not None and fraction > 0.5:
            ctx.report("NL406", f"{info.key}: for {fraction:.0%} of the rows the variance is below "
                       f"eps/10 (eps={info.first.eps:g}), so the layer barely normalizes; lower eps or find "
                       "why the activations collapsed", norm=info)


CHECKS = [check_eps_vanishes, check_low_precision_statistics, check_formula, check_non_finite,
          check_eps_dominates]
