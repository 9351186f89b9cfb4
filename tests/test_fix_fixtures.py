"""Every fixable rule: an input fixture next to its expected fixed output (TorchFix style).

`fixtures/<CODE>/<name>.fixed.py` is what `normlint check --select ALL --fix --unsafe-fixes`
makes of `<name>.py`. Each pair is tested for the fix itself, for idempotency (fixing the
fixed file changes nothing) and for the re-check (the fixed file has its own `.expected`,
like every fixture, and no fix left that could still apply). After a deliberate change:
`pytest tests/test_fix_fixtures.py --regen-fixtures`, then review the diff.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from normlint.settings import Overrides
from normlint.config import Config
from normlint.fix.apply import FixPolicy
from normlint.fix.attach import attach_fixes
from normlint.fix.catalog import FIXERS
from normlint.fix.run import fix_report
from normlint.static.engine import Component
from normlint.registry import RULES
from normlint.static.engine import check_text

from .conftest import FIXTURES

PAIRS = sorted(FIXTURES.glob("NL*/*.fixed.py"))

# NL302's fix needs the kind and width of the stack's norms, which only the analysis knows
# (Finding.fix_facts). Until the static rules attach them, the tests hand them in; once a
# finding arrives with its own facts, these are not used and the pairs test the real thing.
NL302_FACTS = {
    "gpt_without_ln_f.py": (("norm_ctor", "nn.LayerNorm(n_embd)"), ("stream", "x"), ("stack_attr", "h")),
    "fairseq_normalize_before_encoder.py": (("norm_ctor", "nn.LayerNorm(embed_dim)"), ("stream", "x"),
                                            ("stack_attr", "layers")),
    "mixer_prenorm_residual.py": (("norm_ctor", "nn.LayerNorm(dim)"), ("stream", "x"), ("stack_attr", "layers")),
    "prenorm_torch_encoder_no_final_norm.py": (("norm_ctor", "nn.LayerNorm(d_model)"),),
}
REGISTERED = {r.code for r in RULES}


def input_of(pair):
    return pair.with_name(pair.name.replace(".fixed.py", ".py"))


def rel(path) -> str:
    return path.relative_to(FIXTURES.parent).as_posix()


def fix_everything(text: str, path: str, facts=()):
    """What `check --select ALL --fix --unsafe-fixes` does to one file, facts handed in."""
    config = Overrides(select=("ALL",)).apply(Config())
    findings = check_text(text, path, config)
    if facts:
        findings = attach_fixes([replace(f, fix=None, fix_facts=facts)
                                 if f.code == "NL302" and not f.fix_facts else f for f in findings],
                                {path: text}, strict=True)
    return fix_report(findings, {path: text}, [Component((path,), config)], FixPolicy(unsafe=True))


def test_every_fixable_rule_has_a_fixture_pair():
    codes = {p.parent.name for p in PAIRS}
    assert set(FIXERS) <= codes, sorted(set(FIXERS) - codes)


def test_every_fixed_file_has_its_input():
    assert PAIRS and all(input_of(p).exists() for p in PAIRS)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_pair(pair, regen_fixtures):
    code = pair.parent.name
    if code not in REGISTERED:
        pytest.skip(f"{code} is not a rule on this branch yet (the fixer is tested in test_fixers.py)")
    source = input_of(pair)
    text = source.read_text(encoding="utf-8")
    run = fix_everything(text, rel(source), NL302_FACTS.get(source.name, ()))
    fixed = run.fixed.get(rel(source), text)
    if regen_fixtures:
        pair.write_text(fixed, encoding="utf-8")
        pytest.skip("regenerated")
    assert not run.dropped, [d.reason for d in run.dropped]
    assert any(f.code == code for f in run.applied), f"no {code} fix applied to {source.name}"
    assert fixed == pair.read_text(encoding="utf-8")

    # idempotent: the fixed file has nothing left to fix
    again = fix_everything(fixed, rel(pair))
    assert again.fixed == {} and again.applied == []
    # the re-check: what the fixed file reports is a subset of what the input reported
    before = [f.code for f in check_text(text, rel(source), Overrides(select=("ALL",)).apply(Config()))]
    after = [f.code for f in again.findings]
    assert all(after.count(c) <= before.count(c) for c in set(after)), (before, after)
    assert after.count(code) < before.count(code)
