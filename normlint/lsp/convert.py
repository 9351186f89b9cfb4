"""Findings as LSP diagnostics, and their fixes as quick-fix code actions.

Findings' and edits' columns are 1-based and count characters; the client counts from 0
in the encoding it negotiated (UTF-16 by default), which pygls' position codec converts to.
"""

from __future__ import annotations

from typing import Sequence

from lsprotocol import types as lsp
from pygls.workspace import TextDocument

from ..findings import Edit, Finding, Severity
from ..report.sarif import DOCS_BASE

SOURCE = "normlint"
_SEVERITY = {Severity.ERROR: lsp.DiagnosticSeverity.Error, Severity.WARNING: lsp.DiagnosticSeverity.Warning,
             Severity.INFO: lsp.DiagnosticSeverity.Information}


def _line(lines: Sequence[str], index: int) -> str:
    return lines[index].rstrip("\r\n") if 0 <= index < len(lines) else ""


def finding_range(f: Finding, doc: TextDocument) -> lsp.Range:
    lines = doc.lines
    if f.cell is not None:
        # A notebook opened as text: the document is the notebook's JSON.
        line, column = f.file_position or (1, 1)
        start = lsp.Position(line - 1, column - 1)
        end = lsp.Position(line - 1, len(_line(lines, line - 1)))
    else:
        first = _line(lines, f.line - 1)
        start = lsp.Position(f.line - 1, min(max(f.column - 1, 0), len(first)))
        if f.end_line is not None and f.end_column is not None:
            last = _line(lines, f.end_line - 1)
            end = lsp.Position(f.end_line - 1, min(max(f.end_column - 1, 0), len(last)))
        else:
            end = lsp.Position(f.line - 1, len(first))   # to the end of the line
        if (end.line, end.character) < (start.line, start.character):
            end = start
    return doc.position_codec.range_to_client_units(lines, lsp.Range(start, end))


def diagnostic(f: Finding, doc: TextDocument) -> lsp.Diagnostic:
    return lsp.Diagnostic(
        range=finding_range(f, doc),
        message=f.message,
        severity=_SEVERITY[f.severity],
        code=f.code,
        code_description=lsp.CodeDescription(href=f"{DOCS_BASE}{f.code}.md"),
        source=SOURCE,
    )


def _text_edit(edit: Edit, doc: TextDocument) -> lsp.TextEdit:
    # Edit lines and columns are 1-based, columns in characters; LSP's are 0-based.
    rng = lsp.Range(lsp.Position(edit.line - 1, edit.column - 1), lsp.Position(edit.end_line - 1, edit.end_column - 1))
    return lsp.TextEdit(range=doc.position_codec.range_to_client_units(doc.lines, rng), new_text=edit.replacement)


def _overlaps(a: lsp.Range, b: lsp.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and \
        (b.start.line, b.start.character) <= (a.end.line, a.end.character)


def code_actions(findings: Sequence[Finding], doc: TextDocument, requested: lsp.Range) -> list[lsp.CodeAction]:
    """A quick fix for every finding with a fix whose range touches ``requested``."""
    actions = []
    for f in findings:
        if f.fix is None or not f.fix.edits or f.fix.applicability == "display-only" or f.cell is not None:
            continue
        diag = diagnostic(f, doc)
        if not _overlaps(diag.range, requested):
            continue
        actions.append(lsp.CodeAction(
            title=f"{f.code}: {f.fix.message}" + (" (changes behaviour)" if f.fix.applicability == "unsafe" else ""),
            kind=lsp.CodeActionKind.QuickFix,
            diagnostics=[diag],
            is_preferred=f.fix.applicability == "safe",
            edit=lsp.WorkspaceEdit(changes={doc.uri: [_text_edit(e, doc) for e in f.fix.edits]}),
        ))
    return actions
