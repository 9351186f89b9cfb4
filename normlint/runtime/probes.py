"""Numeric probes run on a norm while its input and output are alive (inside the hook).

Every measurement stays a 0-d tensor on the model's device in a StatBuffer; the buffer is
read back once per forward (one host transfer), never with ``.item()`` per hook, so an
audit does not serialize a GPU run. Re-runs of a norm go through ``rerun``, which never
changes the module (train-mode BatchNorm running stats are restored).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .axes import candidate_axis_sets
from .tracer import LOW_PRECISION, NormEvent

_VARIANCE_FAMILIES = frozenset({"layer", "batch", "group", "instance"})


@dataclass(frozen=True)
class ProbeSettings:
    axes: bool = True        # invariance probe for the measured reduced axes
    batch: bool = True       # sub-batch re-run (NL103)
    padding: bool = True     # sequence-prefix re-runs (NL102)
    numerics: bool = True    # finiteness, eps, low precision, formula (NL401-NL406)


def tolerance(dtype: torch.dtype) -> float:
    """Relative deviation below which two outputs count as the same."""
    return 5e-2 if dtype in LOW_PRECISION else 1e-2


class StatBuffer:
    """Device-side scalars, read back with one transfer per device."""

    def __init__(self):
        self._values: list[torch.Tensor] = []

    def add(self, value: torch.Tensor) -> int:
        self._values.append(value.detach().reshape(()).float())
        return len(self._values) - 1

    def __len__(self) -> int:
        return len(self._values)

    def resolve(self) -> list[float]:
        out = [math.nan] * len(self._values)
        by_device: dict[torch.device, list[int]] = {}
        for i, value in enumerate(self._values):
            by_device.setdefault(value.device, []).append(i)
        for indices in by_device.values():
            host = torch.stack([self._values[i] for i in indices]).tolist()
            for i, value in zip(indices, host):
                out[i] = value
        self._values.clear()
        return out


def relative_deviation(actual: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    actual, reference = actual.float(), reference.float()
    return (actual - reference).abs().mean() / (reference.abs().mean() + 1e-12)


class Probe:
    def __init__(self, settings: ProbeSettings, buffer: StatBuffer):
        self.settings = settings
        self.buffer = buffer
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        # A private generator: the model's global RNG stream is not touched by the audit.
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(0)
            self._generators[device] = gen
        return gen

    def run(self, event: NormEvent, rerun: Callable, x: torch.Tensor, y: torch.Tensor,
            module=None) -> None:
        if not isinstance(y, torch.Tensor) or y.shape != x.shape or not x.is_floating_point():
            return
        with torch.no_grad():
            small, small_y = _few_samples(rerun, x, y)
            if self.settings.numerics:
                self._numerics(event, rerun, x, y, module, small, small_y)
            if self.settings.axes:
                self._axes(event, rerun, small)
            if self.settings.padding:
                self._prefixes(event, rerun, small, small_y)
            if self.settings.batch and x.dim() >= 2 and x.shape[0] >= 2:
                if small_y is not y:   # the two samples re-run alone: the sub-batch probe
                    event.probes["batch"] = self.buffer.add(relative_deviation(small_y, y[:2]))
                else:
                    self._compare(event, "batch", rerun, x[:1], y[:1])

    def _compare(self, event: NormEvent, name: str, rerun, x, expected) -> None:
        try:
            out = rerun(x)
        except Exception:  # noqa: BLE001 - a norm that rejects the smaller input is not measured
            return
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            event.probes[name] = self.buffer.add(relative_deviation(out, expected))

    def _axes(self, event: NormEvent, rerun, x) -> None:
        # Bring the input to unit RMS first, so eps cannot hide the invariance of a norm
        # whose input happens to be tiny (branch outputs at init); the axes stay the same.
        x = x / (x.float().pow(2).mean().sqrt() + 1e-12).to(x.dtype)
        try:
            y = rerun(x)
        except Exception:  # noqa: BLE001
            return
        event.probes["input_nonzero"] = self.buffer.add((x != 0).any())
        gen = self._generator(x.device)
        for axes in candidate_axis_sets(tuple(x.shape)):
            shape = [1 if a in axes else size for a, size in enumerate(x.shape)]
            factor = (torch.rand(shape, generator=gen, device=x.device) * 2 + 1).to(x.dtype)
            try:
                out = rerun(x * factor)
            except Exception:  # noqa: BLE001
                continue
            if isinstance(out, torch.Tensor) and out.shape == y.shape:
                event.axis_probes.append((axes, self.buffer.add(relative_deviation(out, y))))

    def _prefixes(self, event: NormEvent, rerun, x, y) -> None:
        for axis in range(1, x.dim()):
            size = x.shape[axis]
            if size < 4:
                continue
            keep = size - max(1, size // 4)
            try:
                out = rerun(x.narrow(axis, 0, keep))
            except Exception:  # noqa: BLE001 - e.g. LayerNorm([L, C]) on a shorter L
                continue
            expected = y.narrow(axis, 0, keep)
            if isinstance(out, torch.Tensor) and out.shape == expected.shape:
                event.prefix_probes[axis] = self.buffer.add(relative_deviation(out, expected))

    def observe(self, event: NormEvent, x: torch.Tensor, y: torch.Tensor) -> None:
        """Checks cheap enough for every call of every norm."""
        if self.settings.numerics and isinstance(y, torch.Tensor) and x.is_floating_point():
            with torch.no_grad():
                event.probes["input_finite"] = self.buffer.add(torch.isfinite(x).all())
                event.probes["output_finite"] = self.buffer.add(torch.isfinite(y).all())

    def _numerics(self, event: NormEvent, rerun, x, y, module, small, small_y) -> None:
        add = self.buffer.add
        xf = x.float()
        event.probes["input_rms"] = add(xf.pow(2).mean().sqrt())
        event.probes["output_rms"] = add(y.float().pow(2).mean().sqrt())
        axes = event.declared_axes
        if event.eps is not None and axes and event.family != "lp":
            centred = event.family in _VARIANCE_FAMILIES
            spread = xf.var(dim=axes, unbiased=False) if centred else xf.pow(2).mean(dim=axes)
            # eps dominates when it is 10x the variance: the output keeps < 30% of its scale.
            event.probes["below_eps"] = add((spread * 10 < event.eps).float().mean())
            event.probes["median_variance"] = add(spread.flatten().median())
        trailing = bool(axes) and axes == tuple(range(x.dim() - len(axes), x.dim()))
        if trailing and event.family in ("layer", "rms"):
            event.probes["gain_ratio"] = add(_gain_ratio(event, small, small_y))
        if x.dtype in LOW_PRECISION:
            self._precision(event, rerun, small, module)
        if module is not None and event.handwritten and event.eps and trailing \
                and not event.extra_tensors:
            deviation = _formula_deviation(module, small, axes, event.eps)
            if deviation is not None:
                event.probes["formula"] = add(deviation)

    def _precision(self, event: NormEvent, rerun, x, module) -> None:
        """What the low-precision run costs, measured (NL401, NL402): the norm re-run on an
        all-zero row (does eps keep it finite?), and its output against the same module
        recomputed in float32 (parameters and input upcast), next to what rounding the
        float32 result to this dtype alone would cost; for float16, also on rows scaled to
        RMS 1000, where ``x * x`` overflows."""
        add = self.buffer.add
        try:
            zero = rerun(torch.zeros_like(x))
        except Exception:  # noqa: BLE001
            zero = None
        if isinstance(zero, torch.Tensor):
            event.probes["zero_row_finite"] = add(torch.isfinite(zero).all())
        if module is None or event.extra_tensors:
            return
        probes = [("fp32", x)]
        if x.dtype == torch.float16:
            rows = x.float()
            scale = 1000.0 / (rows.pow(2).mean(dim=-1, keepdim=True).sqrt() + 1e-12)
            probes.append(("fp32_large", (rows * scale).to(x.dtype)))
        for name, probe in probes:
            reference = _fp32_reference(module, probe)
            try:
                out = rerun(probe)
            except Exception:  # noqa: BLE001
                continue
            if reference is None or not isinstance(out, torch.Tensor) or out.shape != reference.shape:
                continue
            event.probes[f"{name}_error"] = add(relative_deviation(out, reference))
            event.probes[f"{name}_rounding"] = add(relative_deviation(reference.to(x.dtype), reference))


def _gain_ratio(event: NormEvent, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RMS of the norm's output over the RMS of its input normalized without any gain
    (F.layer_norm / F.rms_norm): about 1 for a gain near 1, whatever the parameterisation;
    about 0 when a zero-initialized ``(1 + w)`` gain is applied as ``w``, about 2 for the
    reverse (NL407)."""
    shape = tuple(x.shape[a] for a in event.declared_axes)
    xf = x.float()
    eps = event.eps if event.eps is not None else 1e-5
    reference = F.layer_norm(xf, shape, eps=eps) if event.family == "layer" else F.rms_norm(xf, shape, eps=eps)
    return y.float().pow(2).mean().sqrt() / (reference.pow(2).mean().sqrt() + 1e-12)


def _few_samples(rerun, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first two samples and the norm's own output on them, for the probes that re-run
    the norm many times (axes, sequence prefixes, formula): what they measure is per sample
    or per row, so two samples tell it (a batch-coupled norm still couples two) at a
    fraction of the cost.

    The reference is re-computed on the two samples, since a batch-coupled norm gives them
    other outputs than in the full batch. A norm that rejects the smaller input is probed
    on the full input as before.
    """
    if x.dim() < 2 or x.shape[0] <= 2:
        return x, y
    try:
        small_y = rerun(x[:2])
    except Exception:  # noqa: BLE001
        return x, y
    if not isinstance(small_y, torch.Tensor) or small_y.shape != (2,) + tuple(x.shape[1:]):
        return x, y
    return x[:2], small_y


def _fp32_reference(module, x: torch.Tensor) -> torch.Tensor | None:
    """The same module recomputed in float32 (parameters, buffers and input upcast)."""
    state = {name: t.float() if t.is_floating_point() else t
             for name, t in list(module.named_parameters(recurse=False))
             + list(module.named_buffers(recurse=False))}
    try:
        out = torch.func.functional_call(module, state, (x.float(),))
    except Exception:  # noqa: BLE001
        return None
    return out if isinstance(out, torch.Tensor) else None


def _formula_deviation(module, x: torch.Tensor, axes: tuple[int, ...], eps: float
                       ) -> torch.Tensor | None:
    """How far a hand-written norm is from F.layer_norm / F.rms_norm, after the best
    per-feature affine fit, so any gain parameterisation (``w``, ``1 + w``, zeros) counts
    as neutral.

    The module runs in float32 (parameters and input upcast, as ``_fp32_reference``), so a
    float16 model is judged on its formula, not on its precision (NL402's business). Rows
    are rescaled to standard deviations from 1 down to sqrt(eps): where eps matters,
    ``(x - mean) / (std + eps)`` and the unbiased ``std`` part ways with the standard formula.
    """
    shape = tuple(x.shape[a] for a in axes)
    rows = x.float().reshape(-1, math.prod(shape))
    if rows.shape[0] < 4 or rows.shape[1] < 2:
        return None
    std = rows.std(dim=1, unbiased=False, keepdim=True).clamp_min(1e-12)
    target = torch.logspace(0, math.log10(math.sqrt(eps)), rows.shape[0], device=x.device)
    probe = (rows / std * target[:, None]).reshape(x.shape)
    out = _fp32_reference(module, probe)
    if out is None or out.shape != x.shape:
        return None
    out_rows = out.float().reshape(-1, rows.shape[1])
    deviations = []
    for reference in (F.layer_norm(probe, shape, eps=eps), F.rms_norm(probe, shape, eps=eps)):
        deviations.append(_affine_fit_error(reference.reshape(-1, rows.shape[1]), out_rows))
    return torch.minimum(*deviations)


def _affine_fit_error(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Residual of the least-squares fit y ~ gamma * z + beta per feature, relative to y."""
    z_mean, y_mean = z.mean(0), y.mean(0)
    zc, yc = z - z_mean, y - y_mean
    gamma = (zc * yc).mean(0) / (zc.pow(2).mean(0) + 1e-12)
    residual = yc - gamma * zc
    return residual.abs().mean() / (yc.abs().mean() + 1e-12)
