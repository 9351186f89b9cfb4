"""What a static rule gets: which codes are on, their options, and a way to report."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..findings import Engine, Finding, Severity
from ..registry import get_rule


@dataclass
class RuleContext:
    enabled: frozenset[str]
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def is_enabled(self, code: str) -> bool:
        return code in self.enabled

    def option(self, code: str, name: str) -> Any:
        rule_opts = self.options.get(code, {})
        if name in rule_opts:
            return rule_opts[name]
        return get_rule(code).option(name).default

    def report(self, code: str, path: str, node: ast.AST | tuple[int, int], message: str,
               severity: Severity | None = None, fix_facts: tuple[tuple[str, str], ...] = ()) -> None:
        """Report at an ast node (its full span) or at a (line, 0-based column) pair."""
        if code not in self.enabled:
            return
        rule = get_rule(code)
        if isinstance(node, tuple):
            line, col = node
            end_line = end_col = None
        else:
            line, col = node.lineno, node.col_offset
            end_line, end_col = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
        self.findings.append(Finding(
            code=code, name=rule.name, severity=severity or rule.severity, engine=Engine.STATIC,
            path=path, line=line, column=col + 1, message=message,
            end_line=end_line, end_column=None if end_col is None else end_col + 1,
            fix_facts=fix_facts,
        ))
