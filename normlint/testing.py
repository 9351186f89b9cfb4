"""Assertions for users' own test suites: keep model code honest about its norms."""

from __future__ import annotations

from typing import Any, Iterable


def assert_normalization_ok(model, inputs: Any = None, *, ignore: Iterable[str] | None = None,
                            select: Iterable[str] | None = None, **audit_kwargs):
    """Audit ``model`` on ``inputs``; raise AssertionError with the norms table and the
    findings if any finding is a warning or an error. Returns the AuditReport."""
    from .runtime.api import audit

    __tracebackhide__ = True
    report = audit(model, inputs, select=select, ignore=ignore, **audit_kwargs)
    if report.failed:
        lines = [f"normlint audit of {report.model} found normalization problems:", "",
                 report.format_table(), ""]
        for f in report.findings:
            lines.append(f"{f.path}:{f.line}: {f.code} [{f.severity.value}] {f.message}")
        raise AssertionError("\n".join(lines))
    return report
