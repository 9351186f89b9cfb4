"""What the tracer does not understand never reaches the user as a bare exception: odd
outputs are fine, a recording failure stops recording with a note, a rule that trips on a
model is a note; the user's own errors are AuditError with their message on one line."""

import pytest
import torch
from torch import nn

import normlint
from normlint.runtime import tracer as tracer_module
from normlint.runtime.rules import placement


class OddOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln, self.fc = nn.LayerNorm(4), nn.Linear(4, 4)

    def forward(self, x):
        y = self.ln(x)
        return {"a": [self.fc(y), None, "text", (y.sum(),)], "b": 3}


class WrongShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(4)

    def forward(self, x):
        return self.ln(x) @ torch.ones(5, 5)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state()


def _same(model, state):
    params, rng = state
    return all(torch.equal(v, params[k]) for k, v in model.state_dict().items()) and torch.equal(
        torch.get_rng_state(), rng)


def test_odd_outputs_are_audited():
    report = normlint.audit(OddOutputs(), torch.randn(2, 3, 4))
    assert [n.module for n in report.norms] == ["ln"] and report.notes == []


def test_an_input_that_does_not_fit_is_one_line_audit_error():
    with pytest.raises(normlint.AuditError) as info:
        normlint.audit(WrongShape(), torch.randn(2, 3, 4))
    assert "\n" not in str(info.value) and "cannot be multiplied" in str(info.value)


def test_recording_failure_is_a_note_and_the_model_is_restored(monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("internal\nfailure")

    model, x = OddOutputs(), torch.randn(2, 3, 4)
    state = _state(model)
    monkeypatch.setattr(tracer_module.Tracer, "_record", broken)
    report = normlint.audit(model, x)
    assert len(report.notes) == 1 and "recording stopped" in report.notes[0]
    assert "\n" not in report.notes[0]
    assert _same(model, state)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_rule_that_trips_is_a_note(monkeypatch):
    def broken(ctx):
        raise IndexError("list index out of range")

    monkeypatch.setattr(placement, "CHECKS", [broken, *placement.CHECKS[1:]])
    report = normlint.audit(OddOutputs(), torch.randn(2, 3, 4))
    assert any("broken skipped (IndexError" in n for n in report.notes)
