"""The HTML report's plots, drawn with matplotlib into inline SVG (the ``report`` extra).

Text is drawn as paths (``svg.fonttype = "path"``), so an SVG needs no font; the XML
prolog, the DOCTYPE (it names an external DTD) and the metadata block are dropped, so the
SVG embeds in HTML and refers to nothing outside it. Only ``matplotlib.figure.Figure`` is
used, never pyplot: no global figure state, no GUI backend.
"""

from __future__ import annotations

import io
import math
import re
from typing import TYPE_CHECKING

from ..errors import NormlintError

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.profile import DepthProfile

_RC = {"svg.fonttype": "path", "svg.hashsalt": "normlint", "font.size": 9,
       "axes.spines.top": False, "axes.spines.right": False}
_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise NormlintError("the HTML report needs matplotlib: pip install 'normlint[report]'") from None
    return matplotlib, Figure


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = _METADATA.sub("", _PROLOG.sub("", buffer.getvalue(), count=1))
    return text.strip()


def _positive(value) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def depth_profile_svg(profile: "DepthProfile") -> str:
    """Residual-stream RMS after each block and each norm's input and output RMS, against
    depth (block i spans [i, i+1); norms before the stack are left of 0), log scale."""
    matplotlib, Figure = _matplotlib()
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(9, 3.6))
        ax = figure.subplots()
        if profile.stream:
            xs, ys = zip(*[(x, y) for x, y in profile.stream if _positive(y)] or [(0, 1)])
            ax.plot(xs, ys, color="black", marker="o", markersize=3, linewidth=1.5,
                    label="residual stream (block output)")
        for attr, color, marker, label in (("input_rms", "#1f77b4", "^", "norm input"),
                                           ("output_rms", "#ff7f0e", "v", "norm output")):
            points = [(n.x, getattr(n, attr)) for n in profile.norms if _positive(getattr(n, attr))]
            if points:
                xs, ys = zip(*points)
                ax.scatter(xs, ys, s=14, color=color, marker=marker, label=label, zorder=3)
        if 0 < profile.layers <= 64:
            for i in range(profile.layers + 1):
                ax.axvline(i, color="#dddddd", linewidth=0.6, zorder=0)
        values = [y for line in ax.get_lines() for y in line.get_ydata()] + \
            [y for c in ax.collections for _, y in c.get_offsets()]
        if values and max(values) > 10 * min(values):  # log only where it spans decades
            ax.set_yscale("log")
        elif values:
            ax.set_ylim(0, max(values) * 1.15)
        if profile.stack is None and profile.norms:  # x is each norm's index: name them
            step = max(1, math.ceil(len(profile.norms) / 40))
            ax.set_xlim(-0.5, len(profile.norms) - 0.5)
            ax.set_xticks(range(0, len(profile.norms), step))
            ax.set_xticklabels([n.module for n in profile.norms[::step]], rotation=90, fontsize=7)
        ax.set_xlabel(f"depth: block i of {profile.stack or 'the stack'} spans [i, i+1)"
                      if profile.stack is not None else "norms in the order they ran")
        ax.set_ylabel("RMS")
        ax.set_title("Depth profile")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", frameon=False)
        return _svg(figure)


def variance_eps_svg(profile: "DepthProfile") -> str:
    """For each norm, the spread of the per-row statistic it divides by (variance, or mean
    square for RMS norms: 5-95 % whiskers, 25-75 % box, median dot) beside its eps (red)."""
    matplotlib, Figure = _matplotlib()
    norms = [n for n in profile.norms if n.quantiles is not None]
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(9, 3.8))
        ax = figure.subplots()
        for i, norm in enumerate(norms):
            _, q05, q25, q50, q75, q95, _ = (max(q, 1e-30) for q in norm.quantiles)
            ax.vlines(i, q05, q95, color="#1f77b4", linewidth=1)
            ax.vlines(i, q25, q75, color="#1f77b4", linewidth=4)
            ax.plot([i], [q50], marker="o", markersize=3, color="white",
                    markeredgecolor="#1f77b4", zorder=3)
            if _positive(norm.eps):
                ax.hlines(norm.eps, i - 0.4, i + 0.4, color="#d62728", linewidth=1.5, zorder=4)
        ax.set_yscale("log")
        ax.set_xlim(-1, max(len(norms), 1))
        step = max(1, math.ceil(len(norms) / 40))
        ax.set_xticks(range(0, len(norms), step))
        ax.set_xticklabels([norms[i].module for i in range(0, len(norms), step)], rotation=90,
                           fontsize=7)
        ax.set_ylabel("per-row variance / mean square")
        ax.set_title("Variance vs eps per norm (blue: rows' spread, red: eps)")
        return _svg(figure)
