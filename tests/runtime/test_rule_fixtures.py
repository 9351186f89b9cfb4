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
