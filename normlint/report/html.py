"""``normlint audit --output-format html``: one self-contained page a person can look at.

The page holds the audit's header (what was audited, on which inputs, in which mode), the
findings with links to the text of their rule pages (included in the page), the norms
table with the measured statistics, a depth-profile plot and a variance-vs-eps plot. It
loads nothing: no script, no stylesheet, no font, no image from outside (plots are inline
SVG, and a Content-Security-Policy forbids every fetch), so it opens offline and can be
attached to a CI run as it is. Needs the ``report`` extra (matplotlib, markdown-it-py).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .. import __version__
from ..errors import NormlintError
from ..rule_docs import read_page

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.api import AuditReport
    from ..runtime.profile import DepthProfile

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.wide{overflow-x:auto;max-width:100%}td.name{min-width:12em}
table{border-collapse:collapse;font-size:12.5px}td,th{border:1px solid #ddd;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f4f4f4}tr.flagged td{background:#fff4e5}
.error{color:#b00020;font-weight:600}.warning{color:#a15c00;font-weight:600}.info{color:#555}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}dl.meta{display:grid;
grid-template-columns:max-content auto;gap:2px 1em}dl.meta dt{font-weight:600}
dl.meta dd{margin:0}code,pre{font:12px ui-monospace,Menlo,Consolas,monospace}
pre{background:#f6f8fa;padding:.6em;overflow:auto}section.rule{border:1px solid #ddd;
padding:0 1em;margin:1em 0;border-radius:4px}figure{margin:1em 0}figure svg{width:100%;max-width:1000px;
height:auto}.summary{font-size:1.1em}
"""


@dataclass(frozen=True)
class AuditSummary:
    """What the header of the page says about the run."""

    target: str
    source: str
    inputs: str
    device: str
    dtype: str
    torch_version: str


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _breakable(value) -> str:
    """Escaped, with line-break opportunities after the dots of a module path and the
    slashes of a file path (a deep model's names are wider than a table cell)."""
    return re.sub(r"([./])", r"\1<wbr>", _e(value))


def _number(value) -> str:
    if value is None or not isinstance(value, (int, float)):
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def _axes(axes) -> str:
    return "?" if axes is None else "(" + ",".join(map(str, axes)) + ")"


def _markdown():
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        raise NormlintError("the HTML report needs markdown-it-py: pip install 'normlint[report]'") from None
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _rule_section(code: str, included: set[str], md) -> str:
    page = read_page(code)
    if page is None:
        return f'<section class="rule" id="rule-{_e(code)}"><p>No page for {_e(code)}.</p></section>'
    tokens = md.parse(page)
    for token in tokens:
        for child in token.children or ():
            if child.type != "link_open":
                continue
            href = child.attrGet("href") or ""
            match = re.fullmatch(r"(NL\d{3})\.md", href)
            if match:  # a link to another rule page: inside this page, or plain text
                if match[1] in included:
                    child.attrSet("href", f"#rule-{match[1]}")
                else:
                    child.attrs.pop("href", None)
            elif not href.startswith(("http://", "https://", "#")):
                child.attrs.pop("href", None)
            else:
                child.attrSet("rel", "noreferrer")
    body = md.renderer.render(tokens, md.options, {})
    return f'<section class="rule" id="rule-{_e(code)}">{body}</section>'


def _findings_table(findings) -> str:
    if not findings:
        return "<p>No findings.</p>"
    rows = []
    for f in findings:
        severity = f.severity.value
        rows.append(
            f'<tr><td class="{_e(severity)}">{_e(severity)}</td>'
            f'<td><a href="#rule-{_e(f.code)}">{_e(f.code)}</a></td>'
            f'<td class="name">{_breakable(f.module or "")}</td>'
            f'<td class="name"><code>{_breakable(f.path)}:{f.line}</code></td>'
            f"<td>{_e(f.message)}</td></tr>")
    return _wide("<table><thead><tr><th>severity</th><th>rule</th><th>module</th><th>location</th>"
                 f"<th>message</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _wide(table: str) -> str:
    """A table that scrolls inside the page when it is wider than the screen (a deep model's
    module names, site-packages paths) instead of running off its right edge."""
    return f'<div class="wide">{table}</div>'


def _percent(value) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, (int, float)) and math.isfinite(value) else ""


def _norms_table(report: "AuditReport", profile: "DepthProfile | None") -> str:
    if not report.norms:
        return "<p>No normalization ran.</p>"
    flagged = {f.module for f in report.findings}
    median = {}
    for norm in (profile.norms if profile else ()):
        if norm.quantiles is not None and norm.eps:
            median[norm.module] = norm.quantiles[3] / norm.eps
    header = ("module", "kind", "placement", "reduced axes (declared/measured)", "feature axis",
              "calls", "dtype", "eps", "input RMS", "output RMS", "rows with var < eps/10",
              "median var / eps", "verdict")
    rows = []
    for n in report.norms:
        axes = _axes(n.declared_axes)
        if n.measured_axes is not None and n.measured_axes != n.declared_axes:
            axes += "/" + _axes(n.measured_axes)
        cells = [n.module, n.kind, n.placement, axes,
                 "?" if n.feature_axis is None else n.feature_axis, n.calls, n.dtype]
        numbers = [_number(n.eps), _number(n.stats.get("input_rms")),
                   _number(n.stats.get("output_rms")), _percent(n.stats.get("rows_below_eps")),
                   _number(median.get(n.module))]
        css = ' class="flagged"' if n.module in flagged else ""
        rows.append(f'<tr{css}><td class="name">{_breakable(cells[0])}</td>'
                    + "".join(f"<td>{_e(c)}</td>" for c in cells[1:])
                    + "".join(f'<td class="num">{v}</td>' for v in numbers)
                    + f"<td>{_e(n.verdict)}</td></tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return _wide(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _plots(profile: "DepthProfile | None", numeric: bool) -> str:
    if profile is None or not numeric:
        return ("<p>The audit ran on the meta device: nothing was computed, so there is "
                "nothing to plot (structural checks only).</p>")
    from .plots import depth_profile_svg, variance_eps_svg

    if profile.stack is not None:
        depth = ("<h3>Depth profile</h3><p>The residual stream's RMS after each block of "
                 f"<code>{_e(profile.stack)}</code> ({profile.layers} blocks; the point at 0 is "
                 "the stream entering the first block), and each norm's input and output RMS "
                 "at its place in the stack. A pre-norm stream grows with depth; post-norm "
                 "keeps it flat.</p>")
    else:
        depth = ("<h3>Depth profile</h3><p>No stack of blocks holds these norms, so there is "
                 "no residual stream to follow: each norm's input and output RMS, in the "
                 "order the norms ran.</p>")
    parts = [
        depth,
        f"<figure>{depth_profile_svg(profile)}</figure>",
        "<h3>Variance vs eps</h3><p>Per norm, the spread over rows of the statistic it divides "
        "by (variance; mean square for RMS norms) and its eps. Where the box sits at or below "
        "the red tick, eps dominates and the norm scales instead of normalizing (NL406).</p>",
        f"<figure>{variance_eps_svg(profile)}</figure>",
    ]
    return "".join(parts)


def render_html(report: "AuditReport", summary: AuditSummary,
                profile: "DepthProfile | None" = None, notes: Sequence[str] = ()) -> str:
    """The whole page, as a string (UTF-8 when written)."""
    md = _markdown()
    codes = sorted({f.code for f in report.findings})
    counts = {}
    for f in report.findings:
        counts[f.severity.value] = counts.get(f.severity.value, 0) + 1
    verdict = ", ".join(f"{n} {s}{'s' if n > 1 else ''}" for s, n in sorted(counts.items())) \
        or "no findings"
    all_notes = list(notes) + list(report.notes) + list(profile.notes if profile else ())
    meta = [("target", summary.target), ("loaded", summary.source), ("model", report.model),
            ("mode", report.mode), ("inputs", summary.inputs), ("device", summary.device),
            ("dtype", summary.dtype), ("norms", len(report.norms)),
            ("versions", f"normlint {__version__}, torch {summary.torch_version}")]
    rules = "".join(_rule_section(code, set(codes), md) for code in codes)
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>normlint audit: {_e(report.model)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>normlint audit: {_e(report.model)}</h1>",
        f'<p class="summary">{_e(verdict)}</p>',
        '<dl class="meta">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in meta) + "</dl>",
        "<h2>Findings</h2>", _findings_table(report.findings),
        "<h2>Norms</h2>", _norms_table(report, profile),
        "<h2>Measurements</h2>", _plots(profile, report.numeric),
        ("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in all_notes) + "</ul>")
        if all_notes else "",
        f"<h2>Rules</h2>{rules}" if rules else "",
        "</body></html>\n",
    ])
