"""The depth profile the HTML report plots: residual-stream RMS per layer, and per norm its
input/output RMS and the spread of the statistic it divides by, against its eps.

Measured in one extra forward (after the audit, in the mode the audit ran in) with hooks on
the blocks of the model's main stack and on each norm module; the model's state is kept
as the audit keeps it (``state.PreservedState``) and the forward runs on clones of the
inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .api import AuditReport, NormRecord, call_model
from .state import PreservedState, clone_inputs

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_MAX_ROWS = 1 << 20


@dataclass
class NormProfile:
    """One norm on the depth axis (x: block i spans [i, i+1); before the stack < 0)."""

    module: str
    kind: str
    x: float
    input_rms: float | None
    output_rms: float | None
    eps: float | None
    statistic: str                           # "variance" or "mean square" (RMS norms)
    quantiles: tuple[float, ...] | None      # of the per-row statistic, at QUANTILES


@dataclass
class DepthProfile:
    stack: str | None                        # the container of the main stack of blocks
    layers: int                              # its number of blocks
    stream: list[tuple[float, float]]        # (x, residual-stream RMS): x=0 enters block 0
    norms: list[NormProfile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _main_stack(model: nn.Module, records: list[NormRecord]) -> tuple[str | None, list[str]]:
    """The ModuleList/Sequential whose children hold the most norms: the model's layers.

    Blocks are children with norms inside them, at least two: a Sequential of bare layers
    (VGG's conv, BatchNorm, ReLU, pool) is a pipeline, and a wrapper whose one child holds
    every norm is not a stack either; neither has a stream running through blocks."""
    best, best_count = None, 0
    for path, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < 2:
            continue
        prefix = f"{path}." if path else ""
        inside = [sum(r.module.startswith(f"{prefix}{name}.") for r in records)
                  for name, _ in module.named_children()]
        count = sum(inside) if sum(n > 0 for n in inside) >= 2 else 0
        if count > best_count:
            best, best_count = path, count
    if best is None:
        return None, []
    prefix = f"{best}." if best else ""
    return best, [f"{prefix}{name}" for name, _ in dict(model.named_modules())[best].named_children()]


def _positions(records: list[NormRecord], blocks: list[str]) -> dict[str, float]:
    """x of each norm: inside block i at i + k/(n+1), before the stack in (-1, 0), after it
    in (L, L+1), in the order the norms first ran; without a stack, 0, 1, 2, ..."""
    if not blocks:  # no stack of blocks: the norms in the order they ran
        return {record.module: float(k) for k, record in enumerate(records)}

    def block_of(record):
        return next((i for i, b in enumerate(blocks)
                     if record.module == b or record.module.startswith(b + ".")), None)

    groups: dict[Any, list[NormRecord]] = {}
    seen_stack = False
    for record in records:
        index = block_of(record)
        seen_stack |= index is not None
        key = index if index is not None else ("after" if seen_stack else "before")
        groups.setdefault(key, []).append(record)
    positions = {}
    for key, members in groups.items():
        start = -1 if key == "before" else len(blocks) if key == "after" else key
        for k, record in enumerate(members):
            positions[record.module] = start + (k + 1) / (len(members) + 1)
    return positions


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict) or hasattr(value, "values"):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


def _rms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().float().pow(2).mean().sqrt()


def _row_statistic(x: torch.Tensor, axes: tuple[int, ...], centred: bool) -> torch.Tensor:
    xf = x.detach().float()
    stat = xf.var(dim=axes, unbiased=False) if centred else xf.pow(2).mean(dim=axes)
    stat = stat.flatten()
    if stat.numel() > _MAX_ROWS:
        stat = stat[:: stat.numel() // _MAX_ROWS + 1]
    return torch.quantile(stat, torch.tensor(QUANTILES, device=stat.device))


def measure_profile(model: nn.Module, inputs: Any, report: AuditReport) -> DepthProfile:
    """One forward with hooks on the main stack's blocks and on each norm module."""
    records = report.norms
    stack, blocks = _main_stack(model, records)
    profile = DepthProfile(stack=stack, layers=len(blocks), stream=[])
    positions = _positions(records, blocks)
    if not report.numeric:
        profile.notes.append("meta device: nothing was computed, so there are no numbers to plot")
        return profile
    modules = dict(model.named_modules())
    stream: dict[float, torch.Tensor] = {}
    stats: dict[str, torch.Tensor] = {}
    handles = []

    def stream_hook(x_position):
        def hook(module, args, kwargs, output):
            tensor = _first_tensor(output)
            if tensor is not None and tensor.is_floating_point() and x_position not in stream:
                stream[x_position] = _rms(tensor)
        return hook

    def entry_hook(module, args, kwargs):
        tensor = _first_tensor(args) if args else _first_tensor(kwargs)
        if tensor is not None and tensor.is_floating_point() and 0.0 not in stream:
            stream[0.0] = _rms(tensor)

    def norm_hook(record: NormRecord, axes: tuple[int, ...], centred: bool):
        def hook(module, args):
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if x is not None and x.is_floating_point() and record.module not in stats:
                dims = tuple(a for a in axes if a < x.dim())
                if dims:
                    stats[record.module] = _row_statistic(x, dims, centred)
        return hook

    try:
        for i, path in enumerate(blocks):
            block = modules[path]
            if i == 0:
                handles.append(block.register_forward_pre_hook(entry_hook, with_kwargs=True))
            handles.append(block.register_forward_hook(stream_hook(float(i + 1)), with_kwargs=True))
        skipped = []
        for record in records:
            module = modules.get(record.module)
            axes = record.declared_axes or record.measured_axes
            if module is None or not axes:
                skipped.append(record.module)
                continue
            centred = "rms" not in record.kind.lower()
            handles.append(module.register_forward_pre_hook(norm_hook(record, axes, centred)))
        if skipped:
            profile.notes.append(f"no per-row statistics for {len(skipped)} norm(s) without a "
                                 f"module or known axes: {', '.join(skipped[:5])}")
        with PreservedState(model) as state, torch.no_grad():
            if report.mode in ("eval", "train"):
                model.train(report.mode == "train")
            with state.guard:
                call_model(model, clone_inputs(inputs))
    finally:
        for handle in handles:
            handle.remove()
    profile.stream = sorted((x, float(v)) for x, v in stream.items())
    for record in records:
        quantiles = stats.get(record.module)
        profile.norms.append(NormProfile(
            module=record.module, kind=record.kind, x=positions.get(record.module, 0.0),
            input_rms=record.stats.get("input_rms"), output_rms=record.stats.get("output_rms"),
            eps=record.eps, statistic="mean square" if "rms" in record.kind.lower() else "variance",
            quantiles=tuple(float(q) for q in quantiles.cpu()) if quantiles is not None else None))
    return profile

