"""An audit leaves the model exactly as it found it, and works on wrapped models and odd I/O."""

import gc
import weakref

import pytest
import torch
from torch import nn

import normlint
from normlint import AuditError

DIM = 16


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(DIM)
        self.ln = nn.LayerNorm(DIM)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(DIM, DIM)
        self.seen = []

    def forward(self, x):
        h = self.bn(x.transpose(1, 2)).transpose(1, 2)
        h = self.fc(self.drop(self.ln(h)))
        self.seen.append(weakref.ref(h))
        return x + h


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
            {n: m.training for n, m in model.named_modules()},
            torch.get_rng_state().clone())


def _assert_unchanged(model, snapshot):
    state, flags, rng = snapshot
    now = model.state_dict()
    assert now.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(now[key], value), key
    assert {n: m.training for n, m in model.named_modules()} == flags
    assert torch.equal(torch.get_rng_state(), rng)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize("train", [True, False])
def test_state_is_unchanged(train):
    torch.manual_seed(0)
    model = Block().train(train)
    model.bn.running_mean.fill_(0.3)
    x = torch.randn(4, 6, DIM)
    snapshot = _snapshot(model)
    report = normlint.audit(model, x)
    assert {n.module for n in report.norms} == {"bn", "ln"}
    _assert_unchanged(model, snapshot)
    assert model.bn.num_batches_tracked.item() == 0


class Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(DIM)
        self.ln = nn.LayerNorm(DIM)

    def forward(self, x):
        self.bn(x.transpose(1, 2))
        self.ln(x)
        raise ValueError("model bug")


def test_forward_that_raises_is_audit_error_and_cleans_up():
    model = Raises().train()
    x = torch.randn(4, 6, DIM)
    snapshot = _snapshot(model)
    with pytest.raises(AuditError) as info:
        normlint.audit(model, x)
    assert isinstance(info.value.__cause__, ValueError)
    assert "model bug" in str(info.value)
    _assert_unchanged(model, snapshot)


def test_no_activation_is_kept_alive():
    model = Block().eval()
    report = normlint.audit(model, torch.randn(2, 6, DIM))
    gc.collect()
    assert model.seen and all(ref() is None for ref in model.seen)
    assert report.norms


def test_one_host_transfer_per_forward(monkeypatch):
    counts = {"item": 0, "tolist": 0, "__bool__": 0, "cpu": 0}
    for name in counts:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, wrapper)
    model = nn.Sequential(nn.Linear(DIM, DIM), nn.LayerNorm(DIM), nn.Linear(DIM, DIM),
                          nn.LayerNorm(DIM), nn.Linear(DIM, 4)).eval()
    report = normlint.audit(model, torch.randn(2, 6, DIM))
    monkeypatch.undo()
    assert len(report.norms) == 2
    # Two forwards (the second with a shorter sequence, structural only): one transfer.
    assert counts == {"item": 0, "tolist": 1, "__bool__": 0, "cpu": 0}


def _prenorm_without_final():
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(DIM)
            self.fc = nn.Linear(DIM, DIM)
            self.head = nn.Linear(DIM, 4)

        def forward(self, x):
            x = x + self.fc(self.norm(x))
            return self.head(x)
    return Model().eval()


def test_torch_compile_is_audited_through_orig_mod():
    model = _prenorm_without_final()
    compiled = torch.compile(model)
    report = normlint.audit(compiled, torch.randn(2, 6, DIM))
    assert [f.code for f in report.findings] == ["NL302"]
    assert report.model == "Model"


def test_data_parallel_is_unwrapped():
    report = normlint.audit(nn.DataParallel(_prenorm_without_final()), torch.randn(2, 6, DIM))
    assert [f.code for f in report.findings] == ["NL302"]


class KeywordOnly(nn.Module):
    def __init__(self, output: str):
        super().__init__()
        self.embed = nn.Embedding(50, DIM)
        self.norm = nn.LayerNorm(DIM)
        self.output = output

    def forward(self, *, input_ids, attention_mask=None):
        h = self.norm(self.embed(input_ids))
        if self.output == "dict":
            return {"hidden": h, "mask": attention_mask}
        return h, h.mean()


@pytest.mark.parametrize("output", ["dict", "tuple"])
def test_keyword_only_inputs_and_container_outputs(output):
    # As long as the width: the run at another length decides which axis is the sequence.
    ids = torch.randint(0, 50, (2, DIM))
    report = normlint.audit(KeywordOnly(output), {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    assert [n.module for n in report.norms] == ["norm"]
    assert report.norms[0].placement == "embedding"
    assert report.norms[0].sequence_axes == (1,)


def test_meta_device_runs_structural_checks_only():
    with torch.device("meta"):
        model = _prenorm_without_final()
        x = torch.randn(2, 6, DIM)
    report = normlint.audit(model, x)
    assert not report.numeric
    assert [f.code for f in report.findings] == ["NL302"]
    assert report.norms[0].measured_axes is None and report.norms[0].stats == {}


def test_meta_device_llama_70b_config_is_cheap():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(num_hidden_layers=80, hidden_size=8192, num_attention_heads=64,
                                      num_key_value_heads=8, intermediate_size=28672, vocab_size=128256)
    with torch.device("meta"):
        model = transformers.LlamaModel(config).eval()
    report = normlint.audit(model, {"input_ids": torch.zeros(1, 8, dtype=torch.long, device="meta")})
    assert len(report.norms) == 161 and report.findings == []
    assert report.norms[-1].placement == "final"


def test_unknown_check_group_is_a_usage_error():
    with pytest.raises(normlint.NormlintError):
        normlint.audit(nn.LayerNorm(4), torch.randn(2, 4), checks=["nope"])


def test_structural_checks_skip_probes():
    report = normlint.audit(nn.Sequential(nn.Linear(DIM, DIM), nn.LayerNorm(DIM)),
                            torch.randn(2, 6, DIM), checks="structural")
    assert report.norms[0].measured_axes is None and report.norms[0].stats == {}


def test_select_and_ignore():
    model = _prenorm_without_final()
    x = torch.randn(2, 6, DIM)
    assert normlint.audit(model, x, ignore=["NL302"]).findings == []
    assert normlint.audit(model, x, select=["NL1"]).findings == []
    assert [f.code for f in normlint.audit(model, x, select=["NL3"]).findings] == ["NL302"]


def test_a_failing_probe_is_a_note_not_an_error(monkeypatch):
    from normlint.runtime import probes

    def broken(self, *args, **kwargs):
        raise RuntimeError("probe bug")
    monkeypatch.setattr(probes.Probe, "run", broken)
    report = normlint.audit(nn.Sequential(nn.Linear(DIM, DIM), nn.LayerNorm(DIM)), torch.randn(2, 6, DIM))
    assert any("probe bug" in note for note in report.notes)
    assert [n.module for n in report.norms] == ["1"]


def test_mapping_inputs_like_batch_encoding_are_keywords():
    from collections import UserDict
    ids = torch.randint(0, 50, (2, 8))
    report = normlint.audit(KeywordOnly("dict"), UserDict({"input_ids": ids}))
    assert [n.module for n in report.norms] == ["norm"]


def test_distributed_data_parallel_is_unwrapped(tmp_path):
    import torch.distributed as dist
    if not dist.is_available():
        pytest.skip("torch.distributed is not built")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = nn.parallel.DistributedDataParallel(_prenorm_without_final())
        report = normlint.audit(model, torch.randn(2, 6, DIM))
    finally:
        dist.destroy_process_group()
    assert [f.code for f in report.findings] == ["NL302"]
