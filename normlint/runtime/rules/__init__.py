"""Runtime rules: each check reads an Analysis and reports with the static engine's codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ...findings import Engine, Finding, Severity
from ...registry import get_rule
from ..analysis import Analysis, NormInfo, location_of_class


@dataclass
class RuleContext:
    analysis: Analysis
    enabled: frozenset[str]
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def on(self, code: str) -> bool:
        return code in self.enabled

    def option(self, code: str, name: str):
        configured = self.options.get(code, {})
        return configured[name] if name in configured else get_rule(code).option(name).default

    def report(self, code: str, message: str, *, norm: NormInfo | None = None,
               module: str | None = None, location: tuple[str, int] | None = None,
               severity: Severity | None = None) -> None:
        if code not in self.enabled:
            return
        rule = get_rule(code)
        if location is None:
            if norm is not None:
                location = (norm.path, norm.line)
            else:
                location = self.user_location(module or "")
        if module is None and norm is not None:
            module = norm.first.module or norm.key
        self.findings.append(Finding(
            code=code, name=rule.name, severity=severity or rule.severity, engine=Engine.RUNTIME,
            path=location[0], line=location[1], column=1, message=message, module=module,
        ))

    def user_location(self, path: str) -> tuple[str, int]:
        """The class of the innermost module on ``path`` that is user code, not torch.nn."""
        modules = self.analysis.modules
        parts = path.split(".") if path else []
        for n in range(len(parts), -1, -1):
            module = modules.get(".".join(parts[:n]))
            if module is not None and not type(module).__module__.startswith("torch."):
                return location_of_class(module)
        return location_of_class(self.analysis.model)


def all_checks() -> list[Callable[[RuleContext], None]]:
    from . import choice, numerics, placement, shape, training
    return [*choice.CHECKS, *shape.CHECKS, *placement.CHECKS, *numerics.CHECKS, *training.CHECKS]


def run_rules(ctx: RuleContext) -> list[Finding]:
    for check in all_checks():
        check(ctx)
    return ctx.findings
