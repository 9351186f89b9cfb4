"""Every runtime rule: its fixture's bad* factories trigger it, its good* twins do not."""

import pytest

import normlint
from normlint.registry import RULES, get_rule

from .runtime_fixtures import load_fixture, rule_fixture_names

RUNTIME_CODES = {r.code for r in RULES if "runtime" in r.engines}


def _cases():
    for name in rule_fixture_names():
        module = load_fixture(name)
        for attr in sorted(dir(module)):
            if attr.startswith(("bad", "good")) and callable(getattr(module, attr)):
                yield pytest.param(name, attr, id=f"{module.CODE}-{attr}")


def _audit(factory):
    made = factory()
    model, inputs = made[0], made[1]
    kwargs = made[2] if len(made) > 2 else {}
    return normlint.audit(model, inputs, **kwargs)


def test_every_runtime_rule_has_a_fixture():
    codes = {load_fixture(name).CODE for name in rule_fixture_names()}
    assert codes == RUNTIME_CODES


@pytest.mark.parametrize("name, factory", list(_cases()))
def test_fixture(name, factory):
    module = load_fixture(name)
    report = _audit(getattr(module, factory))
    hits = [f for f in report.findings if f.code == module.CODE]
    if factory.startswith("bad"):
        assert hits, f"{module.CODE} not reported\n{report.format_table()}\n{report.findings}"
        assert all(f.severity == get_rule(module.CODE).severity for f in hits)
        assert all(f.engine.value == "runtime" and f.line >= 1 and f.path for f in hits)
    else:
        failing = [f for f in hits if f.severity.fails_run]
        assert not failing, f"{failing}\n{report.format_table()}"


@pytest.mark.parametrize("name, factory, cause, effect", [
    ("nl202_norm_over_sequence_axis", "bad_handwritten", "NL202", "NL102"),
    ("nl202_norm_over_sequence_axis", "bad_handwritten_no_keepdim", "NL202", "NL102"),
    ("nl203_norm_over_batch_axis", "bad", "NL203", "NL103"),
])
def test_one_finding_per_root_cause(name, factory, cause, effect):
    """Statistics over the sequence (batch) axis are why padding (the batch) changes the
    output: the audit names the cause and does not repeat the effect on the same norm."""
    made = getattr(load_fixture(name), factory)()
    both = {(f.code, f.module) for f in normlint.audit(made[0], made[1], config=False).findings}
    alone = {(f.code, f.module) for f in normlint.audit(made[0], made[1], config=False, ignore=[cause]).findings}
    modules = {m for c, m in alone if c == effect}
    assert modules, f"{effect} is measured on {name}:{factory} when {cause} is off"
    assert {(cause, m) for m in modules} <= both and not {(effect, m) for m in modules} & both


def test_nl304_once_per_class_with_the_count_of_layers():
    """A norm reused in every layer of a stack is one finding for the class, naming the layers."""
    made = load_fixture("nl304_norm_instance_reused").bad_in_every_layer()
    hits = [f for f in normlint.audit(made[0], made[1], config=False).findings if f.code == "NL304"]
    assert len(hits) == 1 and len(made[0].blocks) == 3, hits
    assert "3 layers: blocks.0.norm, blocks.1.norm, blocks.2.norm" in hits[0].message
