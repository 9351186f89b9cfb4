"""Jupyter notebooks (``.ipynb``, nbformat 4) as Python source, and findings back to cells.

The code cells are concatenated into one text, the way ruff reads a notebook, so a Block
defined in one cell and stacked in another is one module to the analysis. IPython syntax
that is not Python is masked line by line (``%time x``, ``!pip install``, ``files = !ls``,
``obj?``), keeping every line where it was; a cell magic whose body is not Python
(``%%bash``) masks its whole cell. A cell that still does not parse becomes an NL900
finding and is blanked, so the other cells are still checked.

Findings are mapped back to ``(cell, line, column)``: the cell's 1-based index among all
cells (markdown cells count, as ruff counts them) and the position within it. The same
spot in the notebook's JSON text is kept too, for consumers that show the file itself
(GitHub annotations, SARIF).
"""

from __future__ import annotations

import ast
import bisect
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable

from ..findings import Finding
from .reading import syntax_error_position, syntax_finding

NOTEBOOK_SUFFIX = ".ipynb"

# Cell magics whose body is Python: only their first line is masked.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "memit"})
_LINE_MAGIC = re.compile(r"^([ \t]*)(?:[%!]|\?\??\S|[\w.]+\?\??[ \t]*$)")
_ASSIGNED_MAGIC = re.compile(r"^([ \t]*[\w.\[\], ()*]+?[ \t]*=[ \t]*)[%!]")


@dataclass(frozen=True)
class _Cell:
    number: int              # 1-based index among all cells
    start: int               # its first line in the concatenated text (1-based)
    lines: int
    # per source line: (line, column) in the JSON text where the line's string starts,
    # and whether that string escapes non-ASCII characters; None when not found
    raw: tuple[tuple[int, int, bool] | None, ...]
    indent: int = 0          # leading indentation IPython strips from the cell (and we did)


@dataclass(frozen=True)
class Notebook:
    """A notebook's code as one Python text, and the way back to its cells."""

    path: str
    text: str
    cells: tuple[_Cell, ...]
    problems: tuple[Finding, ...] = ()   # NL900 for cells that do not parse (already mapped)
    sources: tuple[tuple[int, str], ...] = ()   # (cell number, source as written), for snippets

    def cell_texts(self) -> dict[int, str]:
        """Cell number -> its source as written (magics included), for snippets."""
        return dict(self.sources)

    def _cell_at(self, line: int) -> _Cell | None:
        starts = [c.start for c in self.cells]
        i = bisect.bisect_right(starts, line) - 1
        if i < 0:
            return None
        cell = self.cells[i]
        return cell if line < cell.start + max(cell.lines, 1) else None

    def locate(self, finding: Finding) -> Finding:
        """``finding`` (at a line of the concatenated text) at its cell, line and column."""
        if finding.path != self.path or finding.cell is not None:
            return finding
        cell = self._cell_at(finding.line)
        if cell is None:
            return replace(finding, line=1, column=1, end_line=None, end_column=None, fix=None)
        line = finding.line - cell.start + 1
        column = finding.column + cell.indent
        end_line = end_column = None
        if finding.end_line is not None and cell.start <= finding.end_line < cell.start + cell.lines:
            end_line = finding.end_line - cell.start + 1
            end_column = None if finding.end_column is None else finding.end_column + cell.indent
        # Edits are in the concatenated text: rewriting the JSON is not supported, so a
        # notebook finding offers no fix rather than a wrong one.
        return replace(finding, cell=cell.number, line=line, column=column, end_line=end_line,
                       end_column=end_column, fix=None, file_position=self._raw_position(cell, line, column))

    def _raw_position(self, cell: _Cell, line: int, column: int) -> tuple[int, int] | None:
        if not 1 <= line <= len(cell.raw) or cell.raw[line - 1] is None:
            return None
        raw_line, raw_col, ascii_only = cell.raw[line - 1]
        # the JSON holds the source as written, magics included, with escapes where the
        # writer used them; a finding's column counts characters of the source
        source_line = _split_lines(dict(self.sources).get(cell.number, ""))[line - 1:line] or [""]
        before = source_line[0][:max(column - 1, 0)]
        prefix = json.dumps(before, ensure_ascii=ascii_only)[1:-1]
        return raw_line, raw_col + 1 + len(prefix) + 1   # the opening quote, then 1-based


def _source_lines(cell: dict) -> list[str] | None:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    return _split_lines(source) if isinstance(source, str) else None


def _mask(lines: list[str]) -> list[str]:
    """IPython-only lines replaced by Python that keeps the line count and indentation."""
    if lines and lines[0].lstrip().startswith("%%"):
        name = lines[0].lstrip()[2:].split(None, 1)[0] if lines[0].strip() != "%%" else ""
        if name not in _PYTHON_CELL_MAGICS:
            return ["\n"] * len(lines)
        lines = ["\n", *lines[1:]]
    out = []
    continued = False
    for line in lines:
        body = line.rstrip("\r\n")
        if continued:          # the continuation of a masked magic (`%time f(a, \`)
            out.append("\n")
            continued = body.endswith("\\")
            continue
        assigned = _ASSIGNED_MAGIC.match(body)
        magic = _LINE_MAGIC.match(body)
        if assigned:
            out.append(f"{assigned.group(1)}None\n")
            continued = body.endswith("\\")
        elif magic:
            out.append(f"{magic.group(1)}pass\n")
            continued = body.endswith("\\")
        else:
            out.append(line if line.endswith("\n") else line + "\n")
    return out


def _is_python(nb: dict) -> bool:
    metadata = nb.get("metadata")
    if not isinstance(metadata, dict):
        return True
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        info = metadata.get(key)
        if isinstance(info, dict) and isinstance(info.get(field), str):
            return info[field].lower() == "python"
    return True


_SOURCE_KEY = re.compile(r'"source"\s*:\s*')
_NEWLINE = re.compile(r"\r\n|\r|\n")


def _split_lines(text: str) -> list[str]:
    """Lines with their endings, broken where Python's tokenizer breaks them (not at \\f)."""
    out, pos = [], 0
    for m in _NEWLINE.finditer(text):
        out.append(text[pos:m.end()])
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def _raw_lines(raw: str, cells: list[Any]) -> list[tuple[tuple[int, int, bool] | None, ...]]:
    """Where each source line of each cell starts in the JSON text: (line, column, whether
    the JSON string escapes non-ASCII).

    nbformat writes a cell's source as a list with one JSON string per line, after the
    cell's ``"source":`` key; a string value never contains an unescaped ``"source":``, so
    the keys are found in order. A source written as one string has all its lines on one
    JSON line. Anything unexpected leaves that cell's positions unknown.
    """
    line_starts = [0] + [m.end() for m in re.finditer("\n", raw)]

    def line_col(offset: int) -> tuple[int, int]:
        i = bisect.bisect_right(line_starts, offset) - 1
        return i + 1, offset - line_starts[i]

    def search(piece: str, pos: int) -> tuple[int, bool, int] | None:
        hits = []
        for ascii_only in (False, True):
            encoded = json.dumps(piece, ensure_ascii=ascii_only)
            at = raw.find(encoded, pos)
            if at >= 0:
                hits.append((at, ascii_only, len(encoded)))
        return min(hits) if hits else None

    out: list[tuple[tuple[int, int, bool] | None, ...]] = []
    pos = 0
    for cell in cells:
        key = _SOURCE_KEY.search(raw, pos) if isinstance(cell, dict) and "source" in cell else None
        lines = _source_lines(cell) if isinstance(cell, dict) else None
        if key is None or lines is None:
            out.append(())
            continue
        pos = key.end()
        source = cell["source"]
        found: list[tuple[int, int, bool] | None] = []
        if isinstance(source, list) and len(source) == len(lines):
            for piece in source:
                hit = search(piece, pos)
                if hit is None:
                    found.append(None)
                    continue
                found.append((*line_col(hit[0]), hit[1]))
                pos = hit[0] + hit[2]
        elif isinstance(source, str):
            hit = search(source, pos)
            if hit is not None:
                raw_line, raw_col = line_col(hit[0])
                before = ""
                for line in lines:   # the n-th line starts after the escaped text before it
                    found.append((raw_line, raw_col + len(json.dumps(before, ensure_ascii=hit[1])) - 2, hit[1]))
                    before += line
                pos = hit[0] + hit[2]
        out.append(tuple(found))
    return out


def read_notebook(data: bytes, path: str) -> Notebook | Finding:
    """The notebook's code cells as one Python text, or the NL900 that says why not."""
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return syntax_finding(path, f"notebook is not valid UTF-8 (byte {exc.start}: {exc.reason})")
    try:
        nb = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = f": {exc.msg} at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        line, column = (exc.lineno, exc.colno) if isinstance(exc, json.JSONDecodeError) else (1, 1)
        return syntax_finding(path, f"notebook is not valid JSON{detail}", line, column)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        if isinstance(nb, dict) and "worksheets" in nb:
            return syntax_finding(path, "nbformat 3 notebooks are not supported; convert with "
                                        "`jupyter nbconvert --to notebook --nbformat 4`")
        return syntax_finding(path, "not a Jupyter notebook: no list of `cells` at the top level")
    cells = nb["cells"]
    raw_positions = _raw_lines(raw, cells)
    python = _is_python(nb)
    pieces: list[str] = []
    spans: list[_Cell] = []
    problems: list[Finding] = []
    originals: list[tuple[int, str]] = []
    next_line = 1
    for number, (cell, raw_cell) in enumerate(zip(cells, raw_positions), start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code" or not python:
            continue
        lines = _source_lines(cell)
        if lines is None:
            problems.append(replace(syntax_finding(path, "cell source is not text"), cell=number))
            continue
        originals.append((number, "".join(lines)))
        masked = _mask(lines)
        error = _parse_error(masked)
        indent = 0
        if error is not None and masked and masked[0][:1] in (" ", "\t"):
            # IPython strips the first line's indentation from every line that has it
            lead = masked[0][:len(masked[0]) - len(masked[0].lstrip(" \t"))]
            dedented = [m[len(lead):] if m.startswith(lead) else m for m in masked]
            if _parse_error(dedented) is None:
                masked, error, indent = dedented, None, len(lead)
        if error is not None:
            msg, line, column = error
            problems.append(replace(syntax_finding(path, msg, line, column), cell=number))
            masked = ["\n"] * len(masked)
        spans.append(_Cell(number, next_line, len(masked), raw_cell, indent))
        pieces.extend(masked)
        next_line += len(masked)
    notebook = Notebook(path, "".join(pieces), tuple(spans), sources=tuple(originals))
    problems = [replace(p, file_position=_first_position(notebook, p)) for p in problems]
    return replace(notebook, problems=tuple(problems))


def _first_position(notebook: Notebook, finding: Finding) -> tuple[int, int] | None:
    cell = next((c for c in notebook.cells if c.number == finding.cell), None)
    return None if cell is None else notebook._raw_position(cell, finding.line, finding.column)


def _parse_error(lines: list[str]) -> tuple[str, int, int] | None:
    text = "".join(lines)
    try:
        ast.parse(text)
    except SyntaxError as exc:
        return (f"SyntaxError: {exc.msg or 'invalid syntax'}", *syntax_error_position(exc, text))
    except (RecursionError, MemoryError, ValueError) as exc:
        return f"cannot parse: {exc}", 1, 1
    return None


def locate_all(findings: Iterable[Finding], notebooks: dict[str, Notebook]) -> list[Finding]:
    return [notebooks[f.path].locate(f) if f.path in notebooks else f for f in findings]
