"""Which rules have a mechanical fix, how safe it is, and where its code lives.

Kept free of libcst: selection, ``normlint rules`` and the docs read this table, and only a
file with a finding of one of these codes ever loads a fixer (and libcst with it).

Applicability, as in ruff: ``safe`` fixes keep what the model computes (``--fix`` applies
them); ``unsafe`` fixes change numerics, parameters or checkpoints (``--unsafe-fixes``);
``display-only`` fixes are shown and never applied — every finding whose rule has no
mechanical fix, or whose fixer cannot rewrite this occurrence, gets one with a suggestion.
"""

from __future__ import annotations

from dataclasses import dataclass

SAFE = "safe"
UNSAFE = "unsafe"
DISPLAY_ONLY = "display-only"
APPLICABILITIES = (SAFE, UNSAFE, DISPLAY_ONLY)


@dataclass(frozen=True)
class FixerInfo:
    code: str
    module: str            # normlint.fix.fixers.<module>
    function: str
    applicability: str     # the usual one; "safe or unsafe" fixers decide per occurrence
    summary: str           # what the fix does, for `normlint rules` and the rule pages
    needs_tree: bool = True   # False: a text edit (no libcst parse)


FIXERS: dict[str, FixerInfo] = {f.code: f for f in (
    FixerInfo("NL302", "stacks", "final_norm", UNSAFE,
              "register a final norm of the stack's kind and width and apply it after the last "
              "block; only where the analysis knows the kind and width"),
    FixerInfo("NL303", "residual", "keep_residual", UNSAFE,
              "bind the norm's output to a new name (`h = self.norm(x)`) and use it in the branch, "
              "so the residual keeps `x`"),
    FixerInfo("NL304", "reuse", "second_norm", UNSAFE,
              "register a second norm built like the first and call it at the second site"),
    FixerInfo("NL305", "stacks", "fresh_instances", UNSAFE,
              "`[m] * n` -> `[Ctor(...) for _ in range(n)]` (or `copy.deepcopy(m)` when `m` is a name)"),
    FixerInfo("NL401", "numerics", "raise_eps", UNSAFE, "raise the eps literal to 1e-6"),
    FixerInfo("NL402", "numerics", "upcast_statistic", SAFE,
              "upcast the squared value (`x.float()`) and cast back to `x.dtype` after the root "
              "(or the statistic); unsafe (no cast back) when the value is not a plain name"),
    FixerInfo("NL403", "numerics", "standard_formula", UNSAFE,
              "unbiased std/var -> `correction=0`; eps added to the std -> `(var + eps).sqrt()`"),
    FixerInfo("NL404", "numerics", "add_eps", UNSAFE,
              "add eps inside the root (`sqrt(var + eps)`), or clamp a norm denominator "
              "(`.clamp_min(eps)`)"),
    FixerInfo("NL503", "momentum", "convert_momentum", UNSAFE,
              "`momentum=m` -> `momentum=1 - m` (PyTorch weighs the new batch statistic by momentum)"),
    FixerInfo("NL901", "noqa", "remove_unused_code", SAFE,
              "remove the unused code from the `# noqa` comment, or the whole comment", needs_tree=False),
)}


def fixer_info(code: str) -> FixerInfo | None:
    return FIXERS.get(code)
