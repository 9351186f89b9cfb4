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
        self._chunks: list[torch.Tensor] = []   # 1-D float32 tensors
        self._size = 0

    def add(self, value: torch.Tensor) -> int:
        return self.add_vector(value.reshape(1))[0]

    def add_vector(self, values: torch.Tensor) -> list[int]:
        """Several scalars computed together (one tensor, one entry): their indices."""
        if values.dtype != torch.float32:
            values = values.float()
        self._chunks.append(values)
        first = self._size
        self._size += values.numel()
        return list(range(first, self._size))

    def __len__(self) -> int:
        return self._size

    def resolve(self) -> list[float]:
        out = [math.nan] * self._size
        by_device: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
        start = 0
        for chunk in self._chunks:
            by_device.setdefault(chunk.device, []).append((start, chunk))
            start += chunk.numel()
        for chunks in by_device.values():
            host = torch.cat([c for _, c in chunks]).tolist()
            position = 0
            for first, chunk in chunks:
                n = chunk.numel()
                out[first:first + n] = host[position:position + n]
                position += n
        self._chunks.clear()
        self._size = 0
        return out


def relative_deviation(actual: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    actual, reference = actual.float(), reference.float()
    return (actual - reference).abs().mean() / (reference.abs().mean() + 1e-12)


class Probe:
    def __init__(self, settings: ProbeSettings, buffer: StatBuffer):
        self.settings = settings
        self.buffer = buffer
        self._generators: dict[torch.device, torch.Generator] = {}
        self._formulas: dict[tuple, int | None] = {}
        self._precisions: dict[tuple, dict[str, int]] = {}

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
        """Measure what the norm's declared semantics leave open, re-running it as little as
        possible: the declared axes of a torch kernel, or those seen in a hand-written
        norm's reductions, are exact, so only a norm whose forward is opaque gets the axes
        invariance probe; a norm cannot depend on the batch (on the sequence) unless it
        reduces over axis 0 (that axis), or is opaque; eval-mode BatchNorm divides by its
        running statistics and depends on neither."""
        if not isinstance(y, torch.Tensor) or y.shape != x.shape or not x.is_floating_point():
            return
        declared = event.declared_axes
        running = event.family == "batch" and not event.training
        couples = lambda axis: declared is None or (axis in declared and not running)  # noqa: E731
        batch = self.settings.batch and x.dim() >= 2 and x.shape[0] >= 2 and couples(0)
        # A norm over the last axis alone mixes no positions of any other axis; were the last
        # axis the sequence (LayerNorm(L) on (N, C, L)), NL202 reports the cause.
        per_row = event.family in ("layer", "rms", "lp") and declared is not None \
            and tuple(declared) == (x.dim() - 1,)
        prefixes = [a for a in range(1, x.dim()) if self.settings.padding and x.shape[a] >= 4
                    and couples(a) and not per_row]
        axes = self.settings.axes and declared is None
        formula = self.settings.numerics and event.handwritten and module is not None
        with torch.no_grad():
            if couples(0) and (axes or prefixes or formula or batch):
                small, small_y = _few_samples(rerun, x, y)
            else:   # a per-sample norm's output on two samples is its output's first two rows
                small, small_y = (x[:2], y[:2]) if x.dim() >= 2 else (x, y)
            if self.settings.numerics:
                self._numerics(event, rerun, x, y, module, small, small_y)
            if axes:
                self._axes(event, rerun, small)
            if prefixes:
                self._prefixes(event, rerun, small, small_y, prefixes)
            if batch:
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

    def _prefixes(self, event: NormEvent, rerun, x, y, axes) -> None:
        for axis in axes:
            size = x.shape[axis]
            keep = size - max(1, size // 4)
            try:
                out = rerun(x.narrow(axis, 0, keep))
            except Exception:  # noqa: BLE001 - e.g. LayerNorm([L, C]) on a shorter L
                continue
            expected = y.narrow(axis, 0, keep)
            if isinstance(out, torch.Tensor) and out.shape == expected.shape:
                event.prefix_probes[axis] = self.buffer.add(relative_deviation(out, expected))

    def observe(self, event: NormEvent, x: torch.Tensor, y: torch.Tensor) -> None:
        """Checks cheap enough for every call of every norm: are input and output finite.
        A float32 sum is finite exactly when every element is (a NaN or an Inf
        propagates), so two reductions answer it; ``resolve_values`` reads them."""
        if self.settings.numerics and isinstance(y, torch.Tensor) and x.is_floating_point():
            with torch.no_grad():
                i, o = self.buffer.add_vector(torch.stack([x.sum(dtype=torch.float32),
                                                           y.sum(dtype=torch.float32)]))
            event.probes["input_sum"], event.probes["output_sum"] = i, o

    def _numerics(self, event: NormEvent, rerun, x, y, module, small, small_y) -> None:
        """Scale statistics, on the two-sample slice (per-row quantities; the whole batch
        for a norm that reduces over it), computed together and stored as one vector:
        the mean squares of input and output, the mean square the input would have
        normalized without a gain (NL407 compares the output with it), and how the
        variance compares with eps (NL406). For a variance family ``var/(var + eps)`` is the
        mean square of a row normalized without a gain; for RMSNorm, ``ms/(ms + eps)``.
        ``resolve_values`` turns mean squares into RMS."""
        add = self.buffer.add
        axes = event.declared_axes
        rows, out = (x, y) if axes is None or 0 in axes else (small, small_y)
        rows = rows if rows.dtype == torch.float32 else rows.float()
        out = out if out.dtype == torch.float32 else out.float()
        squares = rows * rows
        names = ["input_ms", "output_ms"]
        values = [squares.mean(), (out * out).mean()]
        if event.eps is not None and axes and event.family != "lp":
            if event.family in _VARIANCE_FAMILIES:
                spread = torch.var_mean(rows, dim=axes, unbiased=False)[0]
            else:
                spread = squares.mean(dim=axes)
            names += ["reference_ms", "below_eps", "median_variance"]
            # eps dominates when it is 10x the variance: the output keeps < 30% of its scale.
            values += [(spread / (spread + event.eps)).mean(), (spread < event.eps / 10).float().mean(),
                       spread.flatten()[:4096].median()]
        for name, index in zip(names, self.buffer.add_vector(torch.stack(values))):
            event.probes[name] = index
        trailing = bool(axes) and axes == tuple(range(x.dim() - len(axes), x.dim()))
        if x.dtype in LOW_PRECISION:
            # Like the formula, a property of the class's code in this dtype: measured once
            # per class, eps and shape (a 22-layer Llama has 45 instances of one RMSNorm).
            key = (type(module), event.eps, tuple(x.shape[1:]), x.dtype) if module is not None else None
            if key is None or key not in self._precisions:
                before = dict(event.probes)
                self._precision(event, rerun, small, module)
                if key is not None:
                    self._precisions[key] = {k: v for k, v in event.probes.items() if k not in before}
            else:
                event.probes.update(self._precisions[key])
        if module is not None and event.handwritten and event.eps and trailing \
                and not event.extra_tensors:
            # The formula is the class's code: measured once per class, eps and shape (a
            # 500-layer model has 500 instances of one RMSNorm class).
            key = (type(module), event.eps, tuple(x.shape[a] for a in axes), x.dtype)
            if key not in self._formulas:
                deviation = _formula_deviation(module, small, axes, event.eps)
                self._formulas[key] = add(deviation) if deviation is not None else None
            if self._formulas[key] is not None:
                event.probes["formula"] = self._formulas[key]

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
    own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
    if x.dtype == torch.float32 and all(t.dtype == torch.float32 or not t.is_floating_point() for t in own):
        saved = [(b, b.clone()) for b in module.buffers(recurse=False)]
        try:   # already float32: the module as it is (its buffers put back, as in a re-run)
            out = module.forward(x)
        except Exception:  # noqa: BLE001
            return None
        finally:
            for buf, value in saved:
                buf.copy_(value)
        return out if isinstance(out, torch.Tensor) else None
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
