"""Fix a whole check run: every component with an applicable fix, the rest untouched."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from ..config import Config
from ..findings import Finding, sort_findings
from ..selection import resolve_selection
from .apply import Dropped, FixPolicy, fix_component

if TYPE_CHECKING:
    from ..static.engine import Component


@dataclass
class FixRun:
    findings: list[Finding]                                 # what remains, for every file
    applied: list[Finding] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    originals: dict[str, str] = field(default_factory=dict)   # path -> text, changed files only
    fixed: dict[str, str] = field(default_factory=dict)       # path -> new text
    unconverged: list[tuple[str, ...]] = field(default_factory=list)   # components out of passes


def fix_policy(config: Config, *, unsafe: bool | None = None, fixable: Iterable[str] | None = None,
               unfixable: Iterable[str] | None = None) -> FixPolicy:
    """Flags win over ``fixable`` / ``unfixable`` / ``unsafe-fixes`` in the configuration."""
    fixable = tuple(fixable) if fixable is not None else config.fixable
    unfixable = (*config.unfixable, *(unfixable or ()))
    codes = None if fixable is None and not unfixable else \
        resolve_selection(fixable if fixable is not None else ("ALL",), None, unfixable)
    return FixPolicy(unsafe=bool(config.unsafe_fixes if unsafe is None else unsafe), fixable=codes)


def fix_report(findings: list[Finding], sources: dict[str, str], components: Sequence["Component"],
               policy: FixPolicy | Callable[[Config], FixPolicy]) -> FixRun:
    """Fix every component that has an applicable fix. ``policy`` is one policy for every
    file, or a function giving each component's policy from its own configuration
    (``fixable``/``unfixable``/``unsafe-fixes`` are per project, like every other key)."""
    from ..static.engine import check_texts

    by_path: dict[str, list[Finding]] = {}
    for f in findings:
        by_path.setdefault(f.path, []).append(f)
    run = FixRun(findings=[])
    in_components: set[str] = set()
    for component in components:
        members = component.paths
        in_components.update(members)
        mine = [f for p in members for f in by_path.get(p, ())]
        policy_here = policy(component.config) if callable(policy) else policy
        if not any(policy_here.applies(f) for f in mine):
            run.findings.extend(mine)
            continue

        def recheck(texts, component=component):
            # the same configuration and cross-file context the run used
            return check_texts(dict(texts), component.config, component.context)

        outcome = fix_component({p: sources[p] for p in members}, mine, recheck, policy_here)
        run.findings.extend(outcome.findings)
        run.applied.extend(outcome.applied)
        run.dropped.extend(outcome.dropped)
        if not outcome.converged:
            run.unconverged.append(tuple(members))
        for p in members:
            if outcome.texts[p] != sources[p]:
                run.originals[p] = sources[p]
                run.fixed[p] = outcome.texts[p]
    run.findings.extend(f for p, fs in by_path.items() if p not in in_components for f in fs)
    run.findings = sort_findings(run.findings)
    return run
