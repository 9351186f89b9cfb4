"""The norms table printed by ``normlint audit`` and by failing ``assert_normalization_ok``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .analysis import NormInfo
    from .api import NormRecord

_HEADER = ("module", "kind", "placement", "reduced axes (declared/measured)", "feature axis",
           "calls", "dtype", "verdict")


def _axes(axes) -> str:
    if axes is None:
        return "?"
    return "(" + ",".join(str(a) for a in axes) + ")"


def verdict(info: "NormInfo") -> str:
    first = info.first
    reduced = set(info.reduced_axes or ())
    if first.family == "batch":
        if len(first.in_shape) == 3 and info.feature_axis not in (None, 1):
            return "reduces features"
        return "ok"
    if first.family in ("group", "instance", "lrn"):
        return "crosses sequence" if reduced & set(info.sequence_axes) else "ok"
    if reduced & set(info.sequence_axes) or info.failed_other_length:
        return "crosses sequence"
    if 0 in reduced and first.in_shape and first.in_shape[0] > 1:
        return "crosses batch"
    if info.feature_axis is None:
        return "ok (feature axis unknown)"
    if info.feature_axis not in reduced:
        return "misses feature axis"
    return "ok"


def format_norms_table(records: Iterable["NormRecord"]) -> str:
    rows = [_HEADER]
    for r in records:
        axes = _axes(r.declared_axes)
        if r.measured_axes is not None and r.measured_axes != r.declared_axes:
            axes += "/" + _axes(r.measured_axes)
        rows.append((r.module, r.kind, r.placement, axes,
                     "?" if r.feature_axis is None else str(r.feature_axis),
                     str(r.calls), r.dtype, r.verdict))
    if len(rows) == 1:
        return "no normalization ran"
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
