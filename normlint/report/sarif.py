"""SARIF 2.1.0, the format GitHub code scanning and most CI dashboards ingest."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Sequence
from urllib.parse import quote

from ..findings import Finding, Severity
from ..registry import RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
DOCS_BASE = "https://github.com/normlint/normlint/blob/main/rules/"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _uri(path: str) -> dict:
    p = Path(path)
    if p.is_absolute():
        return {"uri": p.as_uri()}
    # Relative to the directory normlint ran in; code scanning resolves it against the checkout.
    # The file name's bytes, percent-encoded: also right for names that are not UTF-8.
    return {"uri": quote(os.fsencode(PurePosixPath(*p.parts).as_posix())), "uriBaseId": "%SRCROOT%"}


def _region(f: Finding) -> dict:
    if f.cell is not None:
        # A notebook: the region is in the file as stored (its JSON text); the cell and the
        # position inside it are in the result's properties.
        line, column = f.file_position or (1, 1)
        return {"startLine": line, "startColumn": column}
    region = {"startLine": max(f.line, 1), "startColumn": max(f.column, 1)}
    if f.end_line:
        region["endLine"] = f.end_line
        if f.end_column:
            region["endColumn"] = f.end_column
    return region


def _fix(f: Finding) -> dict:
    """A SARIF fix: the edits as replacements of regions of the finding's file."""
    return {
        "description": {"text": f"{f.fix.message} ({f.fix.applicability} fix)"},
        "artifactChanges": [{
            "artifactLocation": _uri(f.path),
            "replacements": [{
                "deletedRegion": {"startLine": e.line, "startColumn": e.column,
                                  "endLine": e.end_line, "endColumn": e.end_column},
                "insertedContent": {"text": e.replacement},
            } for e in f.fix.edits],
        }],
    }


def render(findings: Sequence[Finding]) -> str:
    from .. import __version__

    index = {rule.code: i for i, rule in enumerate(RULES)}
    rules = [{
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "helpUri": f"{DOCS_BASE}{rule.code}.md",
        "help": {"text": f"{rule.summary}. Fix: {rule.fix_hint}."},
        "defaultConfiguration": {"level": _LEVEL[rule.severity], "enabled": rule.default_on},
        "properties": {"engines": list(rule.engines)},
    } for rule in RULES]
    results = []
    for f in findings:
        result = {
            "ruleId": f.code,
            "level": _LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {"artifactLocation": _uri(f.path),
                                                "region": _region(f)}}],
            "properties": {"engine": f.engine.value},
        }
        if f.cell is not None:
            result["properties"].update(cell=f.cell, cellLine=f.line, cellColumn=f.column)
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        if f.module:
            result["locations"][0]["logicalLocations"] = [
                {"fullyQualifiedName": f.module, "kind": "module"}]
        if f.fix is not None and f.fix.edits:
            result["fixes"] = [_fix(f)]
        results.append(result)
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "normlint",
                "version": __version__,
                "informationUri": "https://github.com/normlint/normlint",
                "rules": rules,
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"
