"""Apply fixes to one component (files analysed together), in bounded, verified passes.

Each pass takes, per file, the applicable fixes whose edited regions do not overlap (the
region of a fix spans all of its edits: NL304 edits ``__init__`` and ``forward``, so two
fixes in one class wait for each other), applies them, re-parses every changed file and
re-checks the whole component. If the findings say the fixes did what they claim
(verify.py), the pass is kept; otherwise each fix is tried alone, and one that fails is
dropped with the reason and never retried. The next pass starts from the new text and its
freshly computed fixes, until nothing applies or ``max_passes`` is reached (as in ruff).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..findings import Finding
from .catalog import SAFE, UNSAFE
from ..positions import apply_edits
from .verify import check_fixes

MAX_PASSES = 10

Recheck = Callable[[Mapping[str, str]], list[Finding]]


@dataclass(frozen=True)
class FixPolicy:
    """Which fixes a run applies: the safe ones, the unsafe ones too, of which codes."""

    unsafe: bool = False
    fixable: frozenset[str] | None = None     # None: every code
    max_passes: int = MAX_PASSES

    def selected(self, f: Finding) -> bool:
        return f.fix is not None and bool(f.fix.edits) and (self.fixable is None or f.code in self.fixable)

    def applies(self, f: Finding) -> bool:
        return self.selected(f) and (f.fix.applicability == SAFE
                                     or (self.unsafe and f.fix.applicability == UNSAFE))

    def hidden(self, f: Finding) -> bool:
        """An unsafe fix that --unsafe-fixes would apply."""
        return self.selected(f) and not self.unsafe and f.fix.applicability == UNSAFE


@dataclass(frozen=True)
class Dropped:
    finding: Finding
    reason: str


@dataclass
class ComponentFix:
    texts: dict[str, str]                                   # every member, after fixing
    findings: list[Finding]                                 # what the component reports now
    applied: list[Finding] = field(default_factory=list)    # as found in the pass that fixed them
    dropped: list[Dropped] = field(default_factory=list)
    converged: bool = True                                  # False: max_passes ran out first


def _fix_key(f: Finding) -> tuple:
    return f.path, f.code, f.fix.message, tuple(e.replacement for e in f.fix.edits)


def _choose(findings: Sequence[Finding], policy: FixPolicy, refused: set) -> dict[str, list[Finding]]:
    batch: dict[str, list[Finding]] = {}
    taken: dict[str, list[tuple]] = {}
    candidates = [f for f in findings if policy.applies(f) and _fix_key(f) not in refused]
    for f in sorted(candidates, key=lambda f: (f.path, min((e.line, e.column) for e in f.fix.edits))):
        lo = min((e.line, e.column) for e in f.fix.edits)
        hi = max((e.end_line, e.end_column) for e in f.fix.edits)
        if any(lo <= other_hi and hi >= other_lo for other_lo, other_hi in taken.get(f.path, ())):
            continue
        taken.setdefault(f.path, []).append((lo, hi))
        batch.setdefault(f.path, []).append(f)
    return batch


def _syntax_error(texts: Mapping[str, str]) -> str | None:
    for path, text in texts.items():
        try:
            ast.parse(text, filename=path)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return f"the fixed {path} does not parse: {getattr(exc, 'msg', exc)}"
    return None


def fix_component(texts: Mapping[str, str], findings: Sequence[Finding], recheck: Recheck,
                  policy: FixPolicy) -> ComponentFix:
    state = ComponentFix(texts=dict(texts), findings=list(findings))
    refused: set = set()

    def attempt(batch: dict[str, list[Finding]]) -> tuple[list[Finding], str | None]:
        changed = {p: apply_edits(state.texts[p], [e for f in fs for e in f.fix.edits]) for p, fs in batch.items()}
        reason = _syntax_error(changed)
        if reason is not None:
            return [], reason
        trial = {**state.texts, **changed}
        after = recheck(trial)
        reason = check_fixes(state.findings, after, {p: [e for f in fs for e in f.fix.edits]
                                                     for p, fs in batch.items()},
                             [f for fs in batch.values() for f in fs])
        if reason is None:
            state.texts = trial
        return after, reason

    for _ in range(policy.max_passes):
        batch = _choose(state.findings, policy, refused)
        if not batch:
            break
        flat = [f for fs in batch.values() for f in fs]
        after, reason = attempt(batch)
        if reason is None:
            state.findings = after
            state.applied.extend(flat)
            continue
        # find the culprit: each fix alone; the first that passes is kept (the others'
        # edits are stale after it, and come back fresh in the next pass)
        for f in flat:
            after, reason = attempt({f.path: [f]}) if len(flat) > 1 else (after, reason)
            if reason is None:
                state.findings = after
                state.applied.append(f)
                break
            refused.add(_fix_key(f))
            state.dropped.append(Dropped(f, reason))
    else:
        state.converged = not _choose(state.findings, policy, refused)
    return state
