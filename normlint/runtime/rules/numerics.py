"""NL4: numerics of the norms as they ran (dtype, eps, formula, finiteness, gain).

Each rule judges by a measurement the probes took (probes.py), not by the code's shape
alone: NL401 by re-running the norm on an all-zero row in its own dtype, NL402 by comparing
with a float32 recomputation of the same module, NL403 by comparing the module (run in
float32) with the reference formula on rows whose variance is near eps, NL406 by the
measured variances, NL407 by the output RMS against the input normalized without a gain.
"""

from __future__ import annotations

import math

import torch

from ...findings import Severity
from ..tracer import LOW_PRECISION
from . import RuleContext, finite

# Families whose torch kernels accumulate statistics in float32 whatever the input dtype.
_NATIVE_KERNELS = frozenset({"layer", "rms", "group", "batch", "instance"})
# An eps this large dominates the variance of any activation of a sensible scale (RMS ~0.3
# and above): a design error, not an artifact of the inputs (NL406 warning).
EPS_TOO_LARGE = 0.1
# The float16 output error that rounding alone cannot explain (NL402): an upcasting norm's
# output is its float32 result rounded once; one that reduces in low precision is measurably
# worse (1.3-1.5x the rounding error on unit-scale rows), or overflows (float16 x*x >= 65504).
_EXCESS = 1.15


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def eps_vanishes(eps: float, dtype: torch.dtype) -> bool:
    """Whether eps rounds to zero in dtype (at most half the smallest subnormal)."""
    info = torch.finfo(dtype)
    return 0 < eps <= info.smallest_normal * info.eps / 2


def _numerics_place(info) -> str:
    return "implementation" if info.first.handwritten else "construction"


def check_eps_vanishes(ctx: RuleContext) -> None:
    if not ctx.on("NL401"):
        return
    for info in ctx.analysis.norms.values():
        first = info.first
        if first.eps is None or first.dtype not in LOW_PRECISION or not eps_vanishes(first.eps, first.dtype):
            continue
        dtype = _dtype(first.dtype)
        finite = info.value("zero_row_finite")
        if finite == 0.0 or (finite is None and first.handwritten and first.low_precision_stats):
            how = ("re-run on an all-zero (padding) row, it returns NaN/Inf" if finite == 0.0 else
                   "its statistics are reduced in that dtype, so an all-zero (padding) row gives NaN/Inf")
            ctx.report("NL401", f"{info.key}: eps={first.eps:g} rounds to 0 in {dtype}; {how}; use "
                       "eps >= 1e-6 or compute the statistics in float32", norm=info,
                       prefer=_numerics_place(info))
        elif first.family in _NATIVE_KERNELS and not first.handwritten:
            ctx.report("NL401", f"{info.key}: eps={first.eps:g} rounds to 0 in {dtype}; the "
                       f"{first.kind} kernel accumulates in float32 (an all-zero row stays finite), "
                       "but a fused or exported (ONNX fp16) version may not", norm=info,
                       severity=Severity.INFO, prefer="construction")


def check_low_precision_statistics(ctx: RuleContext) -> None:
    if not ctx.on("NL402"):
        return
    for info in ctx.analysis.norms.values():
        first = info.first
        if not first.handwritten or first.dtype not in LOW_PRECISION:
            continue
        dtype = _dtype(first.dtype)
        error, rounding = finite(info.value("fp32_error")), finite(info.value("fp32_rounding"))
        large, large_rounding = finite(info.value("fp32_large_error")), finite(info.value("fp32_large_rounding"))
        if error is not None and rounding is not None:
            overflow = large is not None and large > 0.05 and large > 3 * (large_rounding or 0)
            if error <= _EXCESS * rounding + 1e-4 and not overflow:
                continue  # measured: the statistics run in float32 (or cost nothing)
            measured = (f"its output differs by {error:.2%} from the same module in float32, where "
                        f"rounding the float32 result to {dtype} explains {rounding:.2%}")
            if overflow:
                measured += f", and by {large:.0%} on rows of RMS 1000 (x * x overflows float16)"
        elif first.low_precision_stats:
            measured = "its reductions run in that dtype (seen in the op stream; no module to re-run)"
        else:
            continue
        ctx.report("NL402", f"{info.key}: this hand-written norm computes its statistics in {dtype}: "
                   f"{measured}; upcast before the reduction: x.float().pow(2).mean(-1, keepdim=True)",
                   norm=info, prefer="implementation")


def check_formula(ctx: RuleContext) -> None:
    if not ctx.on("NL403"):
        return
    for info in ctx.analysis.norms.values():
        deviation = finite(info.value("formula"))
        if deviation is not None and deviation > 1e-2:
            ctx.report("NL403", f"{info.key}: this hand-written norm, run in float32, differs by "
                       f"{deviation:.1%} from F.layer_norm/F.rms_norm (whatever its gain) on rows whose "
                       "variance is near eps (unbiased std or eps added to the std?); use "
                       "sqrt(var(unbiased=False) + eps)", norm=info, prefer="implementation")


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
    """Most rows have a variance below eps/10. A warning only when eps itself is too large
    for activations of any sensible scale; otherwise the activations are what is small (the
    tiny branch outputs of a freshly initialised model), which is worth an info."""
    if not ctx.on("NL406"):
        return
    for info in ctx.analysis.norms.values():
        if info.first.family == "batch" and not info.first.training:
            continue  # eval-mode BatchNorm divides by its running variance, not the batch's
        fraction = finite(info.value("below_eps"))
        if fraction is None or fraction <= 0.5:
            continue
        eps = info.first.eps or 0.0
        variance = finite(info.value("median_variance"))
        measured = f" (median variance {variance:.2g})" if variance is not None else ""
        if eps >= EPS_TOO_LARGE:
            ctx.report("NL406", f"{info.key}: eps={eps:g} is larger than the variance of any "
                       f"activation of a sensible scale: for {fraction:.0%} of the rows the variance is "
                       f"below eps/10{measured}, so the layer barely normalizes; use eps <= 1e-5",
                       norm=info, prefer="construction")
        else:
            ctx.report("NL406", f"{info.key}: these activations are tiny: for {fraction:.0%} of the rows "
                       f"the variance is below eps/10 (eps={eps:g}){measured}, so eps, not the "
                       "statistics, sets the scale; expected at initialisation, a problem if it "
                       "persists in training", norm=info, severity=Severity.INFO, prefer="construction")


def _gain(info) -> torch.Tensor | None:
    """The norm's elementwise gain parameter: a 1-D float parameter over the normalized
    features (``weight``, ``scale``, ``gamma``...)."""
    module = info.module
    if module is None or info.first.declared_axes is None:
        return None
    size = math.prod(info.first.in_shape[a] for a in info.first.declared_axes)
    params = [(n, p) for n, p in module.named_parameters(recurse=False)
              if p.is_floating_point() and p.numel() == size and not p.is_meta]
    params.sort(key=lambda item: "bias" in item[0] or "beta" in item[0] or "shift" in item[0])
    return params[0][1].detach().float() if params else None


def check_gain_convention(ctx: RuleContext) -> None:
    """NL407: the output RMS over the RMS of the input normalized without a gain tells which
    gain the code applies. With a gain stored near 0, a ratio near 0 means it is applied as
    ``w`` where ``1 + w`` was meant; with a gain stored near 1, a ratio near ``rms(1 + w)``
    (about 2) means it is applied as ``1 + w`` where ``w`` was meant. Only gains that are
    still near a constant (fresh or ported weights) are judged: trained gains spread."""
    if not ctx.on("NL407"):
        return
    for info in ctx.analysis.norms.values():
        ratio = finite(info.value("gain_ratio"))
        if ratio is None or 0.05 <= ratio < 1.5:
            continue
        gain = _gain(info)
        if gain is None or gain.numel() < 2 or float(gain.std()) > 0.1:
            continue
        mean = float(gain.mean())
        offset_rms = float((1 + gain).pow(2).mean().sqrt())
        if ratio < 0.05 and abs(mean) < 0.05:
            # A zero-initialized norm closing a residual branch starts the block as the identity
            # on purpose (sandwich/peri-LN variants): info.
            deliberate = info.placement == "branch-output"
            ctx.report("NL407", f"{info.key}: its output RMS is {ratio:.2f}x that of its normalized "
                       f"input, with a gain stored near 0 (mean {mean:.2g}): a (1 + w) gain applied as "
                       "a plain w? apply 1 + weight, or initialise the weight to ones",
                       norm=info, prefer="construction",
                       severity=Severity.INFO if deliberate else None)
        elif abs(mean - 1) < 0.1 and abs(ratio - offset_rms) < 0.1 * offset_rms:
            ctx.report("NL407", f"{info.key}: its output RMS is {ratio:.2f}x that of its normalized "
                       f"input, with a gain stored near 1 (mean {mean:.2g}): a plain gain applied as "
                       "(1 + w)? apply the weight as stored, or initialise it to zeros",
                       norm=info, prefer="construction")


CHECKS = [check_eps_vanishes, check_low_precision_statistics, check_formula, check_non_finite,
          check_eps_dominates, check_gain_convention]
