"""Unit tests of the pieces: tracer, graph, axes, probes, targets."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import normlint
from normlint.errors import NormlintError
from normlint.runtime.axes import (candidate_axis_sets, choose_measured_axes,
                                   declared_module_axes, map_axes)
from normlint.runtime.graph import Graph
from normlint.runtime.probes import StatBuffer, _formula_deviation
from normlint.runtime.targets import build_inputs, parse_input_spec
from normlint.runtime.tracer import Tracer, torch_norm_family


def trace(model, *args):
    paths = {id(m): p for p, m in model.named_modules()}
    with Tracer(model, paths, args) as tracer, torch.no_grad():
        model(*args)
    return tracer.trace


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("fn, family, axes", [
    (lambda x: x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6), "rms", (2,)),
    (lambda x: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5), "layer", (2,)),
    (lambda x: 2.0 * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6), "layer", (2,)),
    (lambda x: x / x.norm(dim=1, keepdim=True), "rms", (1,)),
    (lambda x: F.layer_norm(x, (4,)), "layer", (2,)),
    (lambda x: F.normalize(x, dim=-1), "lp", (2,)),
])
def test_tracer_recognises_norms(fn, family, axes):
    t = trace(Fn(fn), torch.randn(2, 3, 4))
    assert len(t.events) == 1
    event = t.events[0]
    assert event.family == family
    assert event.declared_axes == axes
    assert event.module == "" or event.module is None


def test_tracer_ignores_softmax_and_plain_scaling():
    t = trace(Fn(lambda x: torch.softmax(x, -1) * x.sum(-1, keepdim=True) / 3), torch.randn(2, 3, 4))
    assert t.events == []


def test_leaf_module_norm_collapses_to_one_module_node():
    class RMS(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(4))
            self.eps = 1e-6

        def forward(self, x):
            h = x.to(torch.float32)
            return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    model = nn.Sequential(nn.Linear(4, 4), RMS())
    t = trace(model, torch.randn(2, 4))
    assert [(e.module, e.kind, e.family, e.eps) for e in t.events] == [("1", "RMS", "rms", 1e-6)]
    assert t.events[0].handwritten and not t.events[0].low_precision_stats


def test_torch_norm_family_covers_subclasses():
    class FP32LayerNorm(nn.LayerNorm):
        pass
    assert torch_norm_family(FP32LayerNorm(4)) == "layer"
    assert torch_norm_family(nn.SyncBatchNorm(4)) == "batch"
    assert torch_norm_family(nn.Linear(2, 2)) is None


def test_graph_residual_adds_and_placements():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre, self.post, self.branch = nn.LayerNorm(4), nn.LayerNorm(4), nn.LayerNorm(4)
            self.f, self.g = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            x = x + self.f(self.pre(x))          # pre
            x = x + self.branch(self.g(x))       # branch-output
            return self.post(x)                  # final (closes a pre-norm stream)

    t = trace(Block(), torch.randn(2, 3, 4))
    graph = Graph(t)
    assert len(graph.residual_adds) == 2
    got = {e.module: graph.placement(e.node) for e in t.events}
    assert got == {"pre": "pre", "branch": "branch-output", "post": "final"}
    assert graph.unnormalized_stream_ends([t.events[0].node]) == []


def test_graph_stage_after_a_stem_norm_is_closed_not_post_normed():
    """ConvNeXt with a one-block stage: stem norm -> x + f(x) -> the downsampling norm. The
    skip being a stem norm does not make the stream post-norm; with two blocks it is the
    same design."""
    class Stage(nn.Module):
        def __init__(self, blocks):
            super().__init__()
            self.stem, self.close = nn.LayerNorm(4), nn.LayerNorm(4)
            self.proj, self.down = nn.Linear(3, 4), nn.Linear(4, 8)
            self.fs = nn.ModuleList(nn.Linear(4, 4) for _ in range(blocks))

        def forward(self, x):
            x = self.stem(self.proj(x))
            for f in self.fs:
                x = x + f(x)
            return self.down(self.close(x))

    for blocks in (1, 2):
        t = trace(Stage(blocks), torch.randn(2, 3, 3))
        graph = Graph(t)
        got = {e.module: graph.placement(e.node) for e in t.events}
        assert got == {"stem": "other", "close": "final"}


@pytest.mark.parametrize("pool", [
    lambda x: x.mean(1),                                            # BEiT/ConvNeXt pooled norm
    lambda x: torch.cat([x[:, 0::2], x[:, 1::2]], dim=-1),          # Swin patch merging
    lambda x: x[:, 0],                                              # CLS token
])
def test_graph_norm_of_a_pooled_stream_is_final(pool):
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre, self.f = nn.LayerNorm(4), nn.Linear(4, 4)
            self.norm = nn.LayerNorm(pool(torch.zeros(1, 4, 4)).shape[-1])

        def forward(self, x):
            x = x + self.f(self.pre(x))
            return self.norm(pool(x))

    t = trace(Model(), torch.randn(2, 4, 4))
    graph = Graph(t)
    assert {e.module: graph.placement(e.node) for e in t.events} == {"pre": "pre", "norm": "final"}


class _ProjectionBlock(nn.Module):
    """ResNet's downsampling block: bn(conv(x)) + bn(conv(relu(bn(conv(x)))))."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 8, 3, 2, 1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8)
        self.short, self.bn_short = nn.Conv2d(4, 8, 1, 2), nn.BatchNorm2d(8)

    def forward(self, x):
        x = torch.relu(x)
        branch = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(branch + self.bn_short(self.short(x)))


class _LoraBlock(nn.Module):
    """Pre-norm block whose projection carries a LoRA: base(h) + b(a(h)) on the normalized h
    is one layer, not a residual block."""

    def __init__(self):
        super().__init__()
        self.norm, self.base = nn.LayerNorm(4), nn.Linear(4, 4)
        self.lora_a, self.lora_b = nn.Linear(4, 2), nn.Linear(2, 4)
        self.out = nn.Linear(4, 4)

    def forward(self, x):
        h = self.norm(x)
        return x + self.out(torch.relu(self.base(h) + self.lora_b(self.lora_a(h))))


def test_graph_projection_shortcut_is_a_residual_add():
    t = trace(_ProjectionBlock().eval(), torch.randn(2, 4, 8, 8))
    graph = Graph(t)
    got = {e.module: graph.placement(e.node) for e in t.events}
    assert got == {"bn1": "other", "bn2": "branch-output", "bn_short": "other"}
    assert normlint.audit(_ProjectionBlock().eval(), torch.randn(2, 4, 8, 8)).findings == []


def test_graph_lora_on_a_normalized_input_is_not_a_residual_add():
    model = nn.Sequential(_LoraBlock(), _LoraBlock(), nn.LayerNorm(4))
    t = trace(model, torch.randn(2, 3, 4))
    graph = Graph(t)
    assert len(graph.residual_adds) == 2
    assert [graph.placement(e.node) for e in t.events] == ["pre", "pre", "final"]
    assert normlint.audit(model, torch.randn(2, 3, 4)).findings == []


def test_graph_sees_deepnorm_scaling():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.f = nn.LayerNorm(4), nn.Linear(4, 4)

        def forward(self, x):
            return self.norm(x * 2.5 + self.f(x))

    graph = Graph(trace(Block(), torch.randn(2, 4)))
    (add,) = graph.residual_adds.values()
    assert add.scaled


@pytest.mark.parametrize("op, info, in_shape, out_shape, pos, expected", [
    ("transpose", {"axis_args": (1, 2)}, (2, 3, 4), (2, 4, 3), {0: 2}, {0: 1}),
    ("permute", {"axis_args": (0, 2, 3, 1)}, (2, 8, 5, 5), (2, 5, 5, 8), {0: 1}, {0: 3}),
    ("reshape", {"axis_args": ((6, 4),)}, (2, 3, 4), (6, 4), {0: 2}, {0: 1}),
    ("flatten", {"axis_args": (2,)}, (2, 8, 5, 5), (2, 8, 25), {0: 1}, {0: 1}),
    ("mT", {}, (2, 3, 4), (2, 4, 3), {0: 2}, {0: 1}),
])
def test_map_axes(op, info, in_shape, out_shape, pos, expected):
    assert map_axes(op, info, pos, in_shape, out_shape) == expected


def test_declared_axes_and_measured_choice():
    assert declared_module_axes(nn.LayerNorm([5, 4]), "layer", 3) == (1, 2)
    assert declared_module_axes(nn.BatchNorm1d(4), "batch", 3) == (0, 2)
    assert declared_module_axes(nn.GroupNorm(4, 4), "group", 3) == (2,)
    assert declared_module_axes(nn.GroupNorm(1, 4), "group", 3) == (1, 2)
    assert candidate_axis_sets((2, 1, 4))[:3] == [(0,), (2,), (0, 2)]
    assert choose_measured_axes([((0,), 0.5), ((2,), 1e-5), ((0, 2), 1e-6)], 1e-2) == (2,)
    assert choose_measured_axes([((0,), 0.5)], 1e-2) is None


def test_stat_buffer_reads_back_once():
    buffer = StatBuffer()
    first = buffer.add(torch.tensor(1.5))
    second = buffer.add(torch.tensor(True))
    assert buffer.resolve() == [1.5, 1.0] and (first, second) == (0, 1)
    assert len(buffer) == 0


def test_formula_deviation_separates_annotated_layernorm():
    x = torch.randn(4, 6, 16)
    standard = lambda t: (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, keepdim=True, unbiased=False) + 1e-6)
    annotated = lambda t: (t - t.mean(-1, keepdim=True)) / (t.std(-1, keepdim=True) + 1e-6)
    assert _formula_deviation(Fn(standard), x, (2,), 1e-6).item() < 1e-3
    assert _formula_deviation(Fn(annotated), x, (2,), 1e-6).item() > 1e-2
    # Judged in float32: the same formulas in float16 keep their verdicts.
    assert _formula_deviation(Fn(standard).half(), x.half(), (2,), 1e-6).item() < 1e-3
    assert _formula_deviation(Fn(annotated).half(), x.half(), (2,), 1e-6).item() > 1e-2


def test_input_specs():
    spec = parse_input_spec("input_ids=int64[2,16]:0..1000")
    assert (spec.name, spec.dtype, spec.shape, spec.low, spec.high) == ("input_ids", torch.int64, (2, 16), 0, 1000)
    inputs = build_inputs([spec, parse_input_spec("attention_mask=int64[2,16]")])
    assert set(inputs) == {"input_ids", "attention_mask"} and int(inputs["input_ids"].max()) < 1000
    image = build_inputs([parse_input_spec("float32[2,3,8,8]")])
    assert image.shape == (2, 3, 8, 8) and image.dtype == torch.float32
    for bad in ("int64[2,x]", "complex7[2]", "float32[2]:3..1"):
        with pytest.raises(NormlintError):
            parse_input_spec(bad)
    with pytest.raises(NormlintError):
        build_inputs([spec, parse_input_spec("float32[2]")])


def test_rope_add_is_not_residual_but_parallel_block_is():
    class Rope(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(4)

        def forward(self, x):
            q = self.norm(x)
            rotated = torch.cat([-q[..., 2:], q[..., :2]], dim=-1)
            return q * 0.5 + rotated * 0.25

    assert Graph(trace(Rope(), torch.randn(2, 3, 4))).residual_adds == {}

    class Parallel(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.attn, self.mlp = nn.LayerNorm(4), nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            h = self.norm(x)
            return x + self.attn(h) + self.mlp(h)

    t = trace(Parallel(), torch.randn(2, 3, 4))
    graph = Graph(t)
    assert len(graph.residual_adds) == 2
    assert {a.skip for a in graph.residual_adds.values()} == {graph.norm_input(t.events[0].node)}
    assert graph.placement(t.events[0].node) == "pre"


class _Opaque(nn.Module):
    """Stands in for a fused extension (apex, flash-attn): its ops bypass __torch_function__."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        with torch._C.DisableTorchFunction():
            return self.fn(x)


class FusedRMSNorm(_Opaque):
    def __init__(self):
        super().__init__(lambda x: F.rms_norm(x, x.shape[-1:], eps=1e-6))


def test_opaque_modules_keep_the_dataflow_connected():
    import normlint

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = FusedRMSNorm()
            self.proj = nn.Linear(4, 4)
            self.attn = _Opaque(lambda x: x.tanh())

        def forward(self, x):
            return x + self.attn(self.proj(self.norm(x)))

    model = nn.Sequential(Block(), Block(), FusedRMSNorm(), nn.Linear(4, 2)).eval()
    report = normlint.audit(model, torch.randn(2, 6, 4))
    got = {n.module: (n.placement, n.declared_axes, n.measured_axes) for n in report.norms}
    assert got == {"0.norm": ("pre", None, (2,)), "1.norm": ("pre", None, (2,)),
                   "2": ("final", None, (2,))}
    assert report.findings == []


def test_report_to_dict_is_json():
    import json

    import normlint
    report = normlint.audit(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), torch.randn(2, 3, 4))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["norms"][0]["module"] == "1" and data["norms"][0]["placement"] == "other"
    assert data["findings"] == [] and data["numeric"] is True


class _ConvFrontEnd(nn.Module):
    """Needs at least 7 positions; its output norm (over channels and time, so the run at
    another length matters) keeps the (shortened) time axis."""

    def __init__(self, functional=False):
        super().__init__()
        self.functional = functional
        self.conv, self.norm = nn.Conv1d(4, 4, 7), nn.GroupNorm(1, 4)

    def forward(self, x):
        h = self.conv(x.transpose(1, 2))
        return F.group_norm(h, 1) if self.functional else self.norm(h)


@pytest.mark.parametrize("functional", [False, True])
def test_other_length_run_falls_back_to_a_milder_cut(functional):
    """16 positions cut to 4 break the conv (outside any norm); 12 still run, so the norm's
    time axis is found, by the hook-only recorder for a module norm and by the full tracer
    for a functional one."""
    from normlint.runtime.api import _other_length_trace
    from normlint.runtime.tracer import ShapeEvent

    model, x = _ConvFrontEnd(functional).eval(), torch.randn(2, 16, 4)
    paths = {id(m): p for p, m in model.named_modules()}
    first = trace(model, x)
    with torch.no_grad():
        other = _other_length_trace(model, x, first, paths)
    assert [e.in_shape for e in other.events] == [(2, 4, 6)]
    assert all(isinstance(e, ShapeEvent) for e in other.events) != functional
    report = normlint.audit(model, x)
    assert [n.sequence_axes for n in report.norms] == [(2,)]


def test_other_length_run_is_skipped_when_no_norm_can_depend_on_the_length():
    """Every norm normalizes each row over its last axis, which is not as long as the input:
    the second run could tell nothing (and costs a forward)."""
    from normlint.runtime.api import _other_length_trace

    model = nn.Sequential(nn.Embedding(50, 8), nn.LayerNorm(8)).eval()
    ids = torch.randint(0, 50, (2, 12))
    paths = {id(m): p for p, m in model.named_modules()}
    with torch.no_grad():
        assert _other_length_trace(model, ids, trace(model, ids), paths) is None
        square = torch.randint(0, 50, (2, 8))    # length == width: the run decides
        assert _other_length_trace(model, square, trace(model, square), paths) is not None


def test_shape_recorder_names_the_norm_that_failed():
    """LayerNorm([L, C]) fails whenever only L changes: the failing norm is recorded and
    its shape is not (it produced nothing)."""
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm([8, 4])).eval()
    report = normlint.audit(model, torch.randn(2, 8, 4))
    assert [(f.code, f.module) for f in report.findings] == [("NL202", "1")]
    assert "failed when only the sequence length changed" in report.findings[0].message


class FusedNorm(_Opaque):
    """A leaf norm whose kernel bypasses the op stream (a fused CUDA extension): opaque, so
    the invariance probe measures its axes."""


@pytest.mark.parametrize("fn, declared, x, axes", [
    # Probed on two samples: a train-mode BatchNorm still couples them.
    (lambda t: F.batch_norm(t, None, None, training=True), nn.BatchNorm1d(3).train(),
     torch.randn(8, 3, 5), (0, 2)),
    (lambda t: F.layer_norm(t, (5,)), nn.LayerNorm(5), torch.randn(8, 3, 5), (2,)),
    # Rejects two samples: probed on the full batch.
    (lambda t: F.layer_norm(t, (8, 4)), nn.LayerNorm([8, 4]), torch.randn(8, 4), (0, 1)),
])
def test_axes_probe_on_few_samples(fn, declared, x, axes):
    """Only an opaque norm is probed (declared axes are exact); the probe finds its axes."""
    report = normlint.audit(nn.Sequential(FusedNorm(fn)), x, select=["NL2"])
    assert report.norms[0].declared_axes is None and report.norms[0].measured_axes == axes
    known = normlint.audit(nn.Sequential(declared), x, select=["NL2"])
    assert known.norms[0].declared_axes == axes and known.norms[0].measured_axes is None


@pytest.mark.parametrize("fn, recognised", [
    (lambda x: x / torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-6), True),     # an L2 norm
    (lambda x: x / x.pow(2).sum(dim=1).sqrt()[:, None] , True),                  # over dim 1, no keepdim
    (lambda x: x.exp() / x.exp().sum(-1, keepdim=True), False),                   # a softmax
    (lambda x: x.abs() / x.abs().sum(-1, keepdim=True), False),                   # renormalized weights
])
def test_sums_are_statistics_only_of_squares(fn, recognised):
    t = trace(Fn(fn), torch.randn(2, 3, 4))
    assert bool(t.events) == recognised
