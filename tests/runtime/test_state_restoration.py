"""The audit restores everything it touched, including what the user's forward touches:
parameters (values bit for bit and identity), buffers, submodules, flags, the caller's
input tensors, and the Python, NumPy and torch RNG states. Also: lazy modules, TorchScript
and arguments of the wrong kind."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import normlint
from normlint import NormlintError

D = 8


def _snapshot(model: nn.Module, inputs) -> dict:
    """Everything an audit must leave as it was, by identity and bit for bit."""
    def tensors(mapping):
        return {k: (v, None if v is None else v.detach().clone()) for k, v in mapping.items()}

    modules = {}
    for name, m in model.named_modules():
        modules[name] = dict(module=m, training=m.training, parameters=tensors(m._parameters),
                             buffers=tensors(m._buffers), children=dict(m._modules),
                             grads={k: (p.requires_grad, p.grad) for k, p in m._parameters.items()})
    flat = inputs.values() if isinstance(inputs, dict) else inputs if isinstance(inputs, tuple) else (inputs,)
    return dict(modules=modules, inputs=[(t, t.clone(), t._version) for t in flat],
                python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())


def _assert_restored(model: nn.Module, snap: dict) -> None:
    assert dict(model.named_modules()).keys() == snap["modules"].keys()
    for name, m in model.named_modules():
        before = snap["modules"][name]
        assert m is before["module"] and m.training == before["training"], name
        assert dict(m._modules) == before["children"], name
        for kind in ("parameters", "buffers"):
            live = getattr(m, f"_{kind}")
            assert live.keys() == before[kind].keys(), (name, kind)
            for key, (obj, value) in before[kind].items():
                assert live[key] is obj, f"{name}.{key}: a different object"
                if value is not None:
                    assert obj.dtype == value.dtype and obj.shape == value.shape, f"{name}.{key}"
                    assert torch.equal(obj, value), f"{name}.{key}: values changed"
        for key, (requires_grad, grad) in before["grads"].items():
            assert m._parameters[key].requires_grad == requires_grad, f"{name}.{key}"
            assert m._parameters[key].grad is grad, f"{name}.{key}"
    for tensor, value, version in snap["inputs"]:
        assert torch.equal(tensor, value) and tensor._version == version, "the caller's input changed"
    assert random.getstate() == snap["python"]
    numpy_now = np.random.get_state()
    assert numpy_now[0] == snap["numpy"][0] and np.array_equal(numpy_now[1], snap["numpy"][1])
    assert numpy_now[2:] == snap["numpy"][2:]
    assert torch.equal(torch.get_rng_state(), snap["torch"])
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert torch._C._len_torch_function_stack() == 0


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(D)
        self.scale = nn.Parameter(torch.ones(D))
        self.fc = nn.Linear(D, D)


class InPlaceParameterUpdate(Base):
    def forward(self, x):
        with torch.no_grad():
            self.scale.mul_(0.5)                  # through the parameter
            self.fc.weight.data.add_(1.0)         # through a .data alias (no version bump)
            self.fc.bias[0] = 3.0                 # __setitem__
            torch.nn.init.normal_(self.norm.weight)
        return self.fc(self.norm(x)) * self.scale


class ParameterDataReplaced(Base):
    def forward(self, x):
        self.scale.data = torch.full((2 * D,), 7.0)[:D]    # new storage behind the same object
        self.fc.weight.requires_grad_(False)
        return self.norm(x) * self.scale


class ParameterReassigned(Base):
    def forward(self, x):
        self.scale = nn.Parameter(self.scale.detach() * 2)
        self.fc = nn.Linear(D, D)                           # a new submodule
        self.register_buffer("seen", torch.ones(1))         # a new buffer
        return self.fc(self.norm(x)) * self.scale


class InPlaceInputUpdate(Base):
    def forward(self, x, mask):
        x.mul_(2)
        mask.zero_()
        return self.norm(x)


class PythonAndNumpyRandomness(Base):
    def forward(self, x):
        noise = random.random() + float(np.random.rand()) + torch.rand(()).item()
        return self.norm(x) * noise


class TrainModeBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(D)
        self.norm = nn.LayerNorm(D)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return self.norm(self.drop(self.bn(x.transpose(1, 2)).transpose(1, 2)))


CASES = [
    (InPlaceParameterUpdate, False),
    (ParameterDataReplaced, False),
    (ParameterReassigned, False),
    (InPlaceInputUpdate, False),
    (PythonAndNumpyRandomness, False),
    (TrainModeBatchNorm, True),
]


@pytest.mark.parametrize("cls, train", CASES, ids=[c.__name__ for c, _ in CASES])
def test_everything_is_restored_bit_for_bit(cls, train):
    torch.manual_seed(0)
    model = cls().train(train)
    x = torch.randn(2, 6, D)
    inputs = (x, torch.ones(2, 6)) if cls is InPlaceInputUpdate else x
    snap = _snapshot(model, inputs)
    report = normlint.audit(model, inputs)
    assert report.norms, "the audit saw the model's norms"
    _assert_restored(model, snap)


def test_a_plain_forward_would_have_changed_the_same_model():
    """The cases above are not vacuous: without the audit's care these forwards do change
    the model, the inputs and the global RNGs."""
    model = InPlaceParameterUpdate()
    x = torch.randn(2, 6, D)
    snap = _snapshot(model, x)
    with torch.no_grad():
        model(x)
    with pytest.raises(AssertionError):
        _assert_restored(model, snap)
    model = InPlaceInputUpdate()
    x, mask = torch.randn(2, 6, D), torch.ones(2, 6)
    snap = _snapshot(model, (x, mask))
    model(x, mask)
    with pytest.raises(AssertionError, match="input"):
        _assert_restored(model, snap)


def test_dict_inputs_are_left_alone():
    model = InPlaceInputUpdate()
    inputs = {"x": torch.randn(2, 6, D), "mask": torch.ones(2, 6)}
    before = dict(inputs)
    snap = _snapshot(model, inputs)
    normlint.audit(model, inputs)
    assert inputs == before and all(inputs[k] is before[k] for k in before)
    _assert_restored(model, snap)


def test_lazy_modules_are_initialised_by_one_plain_forward():
    model = nn.Sequential(nn.LazyLinear(4), nn.LayerNorm(4))
    x = torch.randn(2, 3, 5)
    rng = torch.get_rng_state()
    report = normlint.audit(model, x)
    assert [n.module for n in report.norms] == ["1"]
    assert "lazy modules initialised by one plain forward before the audit: 0 (LazyLinear)" in report.notes
    assert type(model[0]) is nn.Linear and model[0].weight.shape == (4, 5)
    assert torch.equal(torch.get_rng_state(), rng)
    # From here on the model is an ordinary one, and the next audit changes nothing.
    snap = _snapshot(model, x)
    normlint.audit(model, x)
    _assert_restored(model, snap)



def test_a_lazy_model_whose_first_forward_fails_says_so():
    model = nn.Sequential(nn.LazyLinear(4), nn.LayerNorm(5))       # LayerNorm(5) after 4 features
    with pytest.raises(normlint.AuditError) as exc:
        normlint.audit(model, torch.randn(2, 3, 5))
    assert str(exc.value).startswith("Sequential forward raised RuntimeError while initialising "
                                     "its lazy modules 0 (LazyLinear): ")
    # as a plain forward leaves it: the first layer materialised before the second failed
    assert type(model[0]) is nn.Linear and model[0].weight.shape == (4, 5)


def test_lazy_batchnorm_in_train_mode_keeps_its_initial_statistics():
    model = nn.Sequential(nn.LazyBatchNorm1d(), nn.Flatten(), nn.LazyLinear(4), nn.LayerNorm(4)).train()
    normlint.audit(model, torch.randn(4, 3, 5) * 10 + 3)
    bn = model[0]
    assert torch.equal(bn.running_mean, torch.zeros(3)) and torch.equal(bn.running_var, torch.ones(3))
    assert bn.num_batches_tracked.item() == 0 and model.training and bn.training


def _scripted_submodule():
    model = nn.Sequential(nn.Linear(D, D), nn.LayerNorm(D))
    model[1] = torch.jit.script(model[1])
    return model


@pytest.mark.parametrize("build, where", [
    (lambda: torch.jit.trace(nn.Sequential(nn.Linear(D, D), nn.LayerNorm(D)), torch.randn(2, D)),
     "the model is a TopLevelTracedModule"),
    (lambda: torch.jit.script(nn.Sequential(nn.Linear(D, D), nn.LayerNorm(D))),
     "the model is a RecursiveScriptModule"),
    (_scripted_submodule, "submodule '1' is a RecursiveScriptModule"),
], ids=["trace", "script", "scripted-submodule"])
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_is_refused_plainly(build, where):
    model = build()
    with pytest.raises(NormlintError) as info:
        normlint.audit(model, torch.randn(2, D))
    message = str(info.value)
    assert message.startswith("cannot audit TorchScript") and where in message, message
    assert "\n" not in message
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


@pytest.mark.parametrize("kwargs, needle", [
    ({"optimizer": "adam"}, "audit(optimizer=...)"),
    ({"optimizer": object()}, "audit(optimizer=...)"),
    ({"ignore": 5}, "audit(ignore=...)"),
    ({"select": [1]}, "audit(select=...)"),
    ({"select": b"NL3"}, "audit(select=...)"),
    ({"checks": None}, "audit(checks=...)"),
    ({"checks": [3]}, "audit(checks=...)"),
    ({"checks": "everything"}, "unknown check group 'everything'"),
])
def test_api_misuse_names_the_argument(kwargs, needle):
    with pytest.raises(NormlintError) as info:
        normlint.audit(nn.LayerNorm(D), torch.randn(2, D), **kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_real_optimizer_and_code_lists_are_accepted():
    model = nn.Sequential(nn.Linear(D, D), nn.LayerNorm(D))
    optimizer = torch.optim.AdamW(model.parameters(), weight_decay=0.1)
    report = normlint.audit(model, torch.randn(2, 6, D), optimizer=optimizer,
                            select=("NL5",), ignore=iter(["NL502"]), checks=["axes"])
    assert [f.code for f in report.findings] == ["NL501"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_rng_is_restored():
    class CudaNoise(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(D)

        def forward(self, x):
            return self.norm(x) + torch.rand_like(x)

    model = CudaNoise().cuda()
    x = torch.randn(2, 6, D, device="cuda")
    before = torch.cuda.get_rng_state()
    snap = _snapshot(model, x)
    normlint.audit(model, x)
    assert torch.equal(torch.cuda.get_rng_state(), before)
    _assert_restored(model, snap)


def test_parameters_are_copied_only_when_written():
    """Copy on write: an ordinary forward copies no parameter, a writing one copies exactly
    what it writes (metadata-only changes such as requires_grad copy nothing)."""
    from normlint.runtime.state import ParameterGuard

    model = InPlaceParameterUpdate()
    x = torch.randn(2, 6, D)
    with torch.no_grad():
        guard = ParameterGuard(list(model.parameters()))
        with guard:
            nn.Sequential(model.norm, model.fc)(x)
            model.scale.requires_grad = False
            model.fc.weight.requires_grad_(True)
        assert guard.saved == {}
        with guard:
            model(x)
    written = {model.scale, model.fc.weight, model.fc.bias, model.norm.weight}
    assert {id(p) for p in written} == set(guard.saved)
