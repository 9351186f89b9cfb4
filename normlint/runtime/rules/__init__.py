"""Runtime rules: each check reads an Analysis and reports with the static engine's codes."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ...findings import Engine, Finding, Severity
from ...registry import get_rule
from ..analysis import Analysis, NormInfo
from ..locate import Place, class_place, is_user_class


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
               module: str | None = None, place: Place | None = None, prefer: str = "call",
               severity: Severity | None = None) -> None:
        """Add a finding. Its place: ``place`` if given, else the norm's place of the kind
        ``prefer`` names (see ``NormInfo.place``), else where ``module`` was built."""
        if code not in self.enabled:
            return
        rule = get_rule(code)
        if place is None and norm is not None:
            place = norm.place(prefer)
        if place is None:
            place = self.module_place(module if module is not None else
                                      (norm.first.module or "") if norm is not None else "")
        if module is None and norm is not None:
            module = norm.first.module or norm.key
        self.findings.append(Finding(
            code=code, name=rule.name, severity=severity or rule.severity, engine=Engine.RUNTIME,
            path=place.path, line=place.line, column=place.column, message=message, module=module,
        ))

    def module_place(self, path: str) -> Place:
        """Where the module at ``path`` was built; else the class of the innermost user
        module on the path; else where the audit was asked for."""
        analysis = self.analysis
        if path and analysis.locator is not None:
            built = analysis.locator.construction(path)
            if built is not None:
                return built
        parts = path.split(".") if path else []
        for n in range(len(parts), -1, -1):
            module = analysis.modules.get(".".join(parts[:n]))
            if module is not None and is_user_class(module):
                place = class_place(module)
                if place is not None:
                    return place
        return analysis.fallback or Place("<unknown>", 1)

    def user_location(self, path: str) -> tuple[str, int]:
        place = self.module_place(path)
        return place.path, place.line


def all_checks() -> list[Callable[[RuleContext], None]]:
    from . import choice, numerics, placement, shape, training
    return [*choice.CHECKS, *shape.CHECKS, *placement.CHECKS, *numerics.CHECKS, *training.CHECKS]


# A finding that explains another one about the same module: report the root cause only.
# Statistics over the sequence axis (NL202) are why padding changes the output (NL102);
# statistics over the batch axis (NL203) are why the batch does (NL103).
_EXPLAINS = {"NL102": "NL202", "NL103": "NL203"}


def run_rules(ctx: RuleContext) -> list[Finding]:
    for check in all_checks():
        try:
            check(ctx)
        except Exception as exc:  # noqa: BLE001 - one rule that trips on a model is a note
            ctx.analysis.notes.append(f"{check.__name__} skipped ({type(exc).__name__}: "
                                      f"{' '.join(str(exc).split())[:200]})")
    causes = {(f.code, f.module) for f in ctx.findings}
    kept = [f for f in ctx.findings
            if not (f.code in _EXPLAINS and (_EXPLAINS[f.code], f.module) in causes)]
    return merge_repeats(kept, ctx.analysis.modules)


def _role(path: str | None, modules) -> tuple[str, str]:
    """What a module is, independently of its layer: (class of its owner, attribute name):
    ``blocks.3.norm1`` and ``blocks.0.norm1`` are both ``PreNormBlock.norm1``."""
    if not path:
        return "", ""
    owner_path, _, attr = path.rpartition(".")
    while attr.isdigit() and owner_path:   # an element of a ModuleList: its container's role
        owner_path, _, attr = owner_path.rpartition(".")
    owner = modules.get(owner_path)
    return (type(owner).__qualname__ if owner is not None else owner_path), attr


def role_name(path: str | None, modules) -> str:
    """A module named by what it is in its class: ``PreNormBlock.norm1``,
    ``MacaronBlock.ffn[0]`` (an element of a container), else its path."""
    if not path:
        return "the model"
    parts = path.split(".")
    index = ""
    while parts and parts[-1].isdigit() and len(parts) > 1:
        index = f"[{parts.pop()}]" + index
    owner = modules.get(".".join(parts[:-1]))
    if owner is None or type(owner).__module__.startswith("torch."):
        return path
    return f"{type(owner).__qualname__}.{parts[-1]}{index}"


def merge_repeats(findings: list[Finding], modules) -> list[Finding]:
    """One finding per root cause and class: the same rule firing on the same module of
    every layer of a stack (same owner class and attribute, same source line) is one finding
    that names the first layer and counts the others."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.code, f.severity, f.path, f.line, _role(f.module, modules)), []).append(f)
    out = []
    for group in groups.values():
        first = group[0]
        if len(group) > 1:
            others = [f.module or "?" for f in group[1:]]
            listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            first = dataclasses.replace(
                first, message=f"{first.message} (the same in {len(others)} more: {listed})")
        out.append(first)
    return out


def finite(value: float | None) -> float | None:
    """A probe value, or None when it was not measured or is NaN/Inf (a norm fed or
    producing non-finite values is NL405's business, not a deviation of "nan%")."""
    return value if value is not None and math.isfinite(value) else None
