"""The module model the rules stand on: names, norm kinds, stacks and depth, dataflow,
sequence evidence, and the project index across files."""

from __future__ import annotations

import textwrap

import pytest

from analysis_helpers import parse, run_source
from normlint.registry import all_codes
from normlint.static.analyzer import analyze
from normlint.static.context import RuleContext
from normlint.static.model import Analysis


def analysis(*sources: tuple[str, str]) -> Analysis:
    files = [parse(path, textwrap.dedent(text)) for path, text in sources]
    return Analysis(files, RuleContext(enabled=frozenset(all_codes())))


def cls(a: Analysis, name: str):
    return next(c for c in a.classes() if c.name == name)


def kind(a: Analysis, class_name: str, attr: str):
    return a.model(cls(a, class_name)).submodules[attr].kind


IMPORTS = "import copy\nimport torch\nimport torch.nn as nn\nfrom functools import partial\n"


@pytest.mark.parametrize("imp, ctor", [
    ("import torch.nn as nn", "nn.LayerNorm(8)"),
    ("from torch import nn", "nn.LayerNorm(8)"),
    ("import torch", "torch.nn.LayerNorm(8)"),
    ("from torch.nn import LayerNorm as LN", "LN(8)"),
])
def test_import_aliases_resolve_torch_norms(imp, ctor):
    a = analysis(("m.py", f"{imp}\nclass M:\n    def __init__(self):\n        self.n = {ctor}\n"))
    k = kind(a, "M", "n")
    assert (k.category, k.family, k.torch_name) == ("norm", "layer", "LayerNorm")


def test_norm_kinds_by_base_structure_and_factory():
    a = analysis(("m.py", IMPORTS + '''
class MyNorm(nn.LayerNorm):
    pass

class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps
    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

class AnnotatedLayerNorm(nn.Module):
    def __init__(self, features, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.eps = eps
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps)

class Block(nn.Module):
    def __init__(self, dim, norm_layer=nn.LayerNorm, act_norm=partial(nn.BatchNorm1d, eps=1e-3),
                 opt_norm=None):
        super().__init__()
        self.a = MyNorm(dim)
        self.b = LlamaRMSNorm(dim)
        self.c = AnnotatedLayerNorm(dim)
        self.d = norm_layer(dim)
        self.e = act_norm(dim)
        self.f = opt_norm(dim) if opt_norm else nn.Identity()
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.g = norm_layer(dim)
        self.fc = nn.Linear(dim, dim)
'''))
    fam = {attr: (kind(a, "Block", attr).category, kind(a, "Block", attr).family) for attr in "abcdefg"}
    assert fam == {"a": ("norm", "layer"), "b": ("norm", "rms"), "c": ("norm", "layer"),
                   "d": ("norm", "layer"), "e": ("norm", "batch"), "f": ("norm", None),
                   "g": ("norm", "layer")}
    assert kind(a, "Block", "fc").category == "linear"


def test_stacks_and_depth_sources():
    a = analysis(("m.py", IMPORTS + '''
from dataclasses import dataclass

N_LAYERS = 5

@dataclass
class Cfg:
    n_layer: int = 7

def clones(module, N):
    return nn.ModuleList([copy.deepcopy(module) for _ in range(N)])

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

class Model(nn.Module):
    DEPTH = 3
    def __init__(self, cfg: Cfg, d=8, depth=4, other=None):
        super().__init__()
        self.a = nn.ModuleList([Block(d) for _ in range(depth)])
        self.b = nn.ModuleList(Block(d) for _ in range(self.DEPTH))
        self.c = nn.Sequential(*[Block(d) for i in range(N_LAYERS)])
        self.d = nn.ModuleList()
        for _ in range(2):
            self.d.append(Block(d))
        self.e = clones(Block(d), 6)
        self.f = nn.ModuleList([Block(d) for _ in range(cfg.n_layer)])
        self.g = nn.ModuleList([Block(d) for _ in range(other)])
        layer = nn.TransformerEncoderLayer(d, 2, norm_first=True)
        self.h = nn.TransformerEncoder(layer, num_layers=depth * 2, norm=nn.LayerNorm(d))
        blk = Block(d)
        self.i = nn.ModuleList([blk] * 3)
'''))
    depths = {attr: kind(a, "Model", attr).depth for attr in "abcdefghi"}
    assert depths == {"a": 4, "b": 3, "c": 5, "d": 2, "e": 6, "f": 7, "g": None, "h": 8, "i": 3}
    assert all(kind(a, "Model", attr).block.name == "Block" for attr in "abcdefgi")
    h = kind(a, "Model", "h")
    assert h.block.norm_first is True and h.final_norm.is_norm
    assert kind(a, "Model", "i").aliased and not kind(a, "Model", "a").aliased


def test_project_index_across_files_prefers_same_file():
    blocks = ("pkg/blocks.py", IMPORTS + '''
class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Linear(d, d)
    def forward(self, x):
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.ff(x))
''')
    model = ("pkg/model.py", IMPORTS + '''
from .blocks import Block

class Encoder(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.layers = nn.ModuleList([Block(d) for _ in range(24)])
    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
''')
    other = ("pkg/other.py", IMPORTS + '''
class Block(nn.Module):
    def forward(self, x):
        return x
''')
    a = analysis(blocks, model, other)
    stack = kind(a, "Encoder", "layers")
    assert stack.block.cls.file.path == "pkg/blocks.py"
    assert a.summary(stack.block.cls).placement == "post"
    ctx = RuleContext(enabled=frozenset(all_codes()))
    analyze([parse(p, textwrap.dedent(t)) for p, t in (blocks, model, other)], ctx, strict=True)
    assert [(f.code, f.path) for f in ctx.findings] == [("NL301", "pkg/model.py")]


def test_dataflow_placement_through_sublayer_connection():
    """The Annotated Transformer: the residual lives in SublayerConnection, which receives
    the sublayer as a lambda; the encoder layer is pre-norm."""
    a = analysis(("m.py", IMPORTS + '''
class LayerNorm(nn.Module):
    def __init__(self, features, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2

def clones(module, N):
    return nn.ModuleList([copy.deepcopy(module) for _ in range(N)])

class SublayerConnection(nn.Module):
    def __init__(self, size, dropout):
        super().__init__()
        self.norm = LayerNorm(size)
        self.dropout = nn.Dropout(dropout)
    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))

class EncoderLayer(nn.Module):
    def __init__(self, size, self_attn, feed_forward, dropout):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size, dropout), 2)
        self.size = size
    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
        return self.sublayer[1](x, self.feed_forward)

class Encoder(nn.Module):
    def __init__(self, layer, N=6):
        super().__init__()
        self.layers = clones(layer, N)
        self.norm = LayerNorm(layer.size)
    def forward(self, x, mask):
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)
'''))
    s = a.summary(cls(a, "EncoderLayer"))
    assert s.placement == "pre"
    assert [r.pre.attr for r in s.flow.residuals] == ["sublayer[0].norm", "sublayer[1].norm"]


def test_residual_rebinding_and_post_norm_are_told_apart():
    a = analysis(("m.py", IMPORTS + '''
class Pre(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.f = nn.Linear(d, d)
    def forward(self, x):
        residual = x
        x = self.norm(x)
        x = self.f(x)
        return residual + x

class Llama(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d)
        self.post_attention_layernorm = nn.LayerNorm(d)
        self.attn = nn.Linear(d, d)
        self.mlp = nn.Linear(d, d)
    def forward(self, hidden_states):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states = self.attn(hidden_states)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        return residual + hidden_states
'''))
    assert a.summary(cls(a, "Pre")).placement == "pre"
    # post_attention_layernorm is LLaMA's pre-FFN norm: names lie, dataflow does not
    assert a.summary(cls(a, "Llama")).placement == "pre"


def test_sequence_evidence_reaches_sublayers_but_attention_alone_is_not_evidence():
    a = analysis(("m.py", IMPORTS + '''
class ConvModule(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv = nn.Conv1d(d, d, 3)
        self.bn = nn.BatchNorm1d(d)
    def forward(self, x):
        return self.bn(self.conv(x))

class SpeechLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv = ConvModule(d)
    def forward(self, hidden_states, attention_mask=None):
        return self.conv(hidden_states)

class ViTBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 2)
        self.bn = nn.BatchNorm1d(d)
    def forward(self, x):
        return self.bn(self.attn(x, x, x)[0])
'''))
    assert a.sequence_context(cls(a, "ConvModule"))
    assert not a.sequence_context(cls(a, "ViTBlock"))


def test_options_allow_list_and_depth_limit():
    src = IMPORTS + '''
class Tagger(nn.Module):
    def __init__(self, vocab, d):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.bn = nn.BatchNorm1d(d)
    def forward(self, input_ids):
        return self.bn(self.embed(input_ids).transpose(1, 2))

class Deep(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, 2)
        self.enc = nn.TransformerEncoder(layer, 10)
'''
    codes = lambda **opts: [f.code for f in run_source(src, options=opts)]  # noqa: E731
    assert codes() == ["NL101"]
    assert codes(NL101={"allow-batchnorm-in": ["Tagger"]}) == []
    assert codes(NL301={"post-norm-max-depth": 6}) == ["NL101", "NL301"]


def test_analyzer_survives_odd_code():
    src = IMPORTS + '''
class Weird(nn.Module):
    def __init__(self, *a, **k):
        super().__init__()
        self.layers = nn.ModuleList([self] * 2)
        self.n = nn.LayerNorm(*a)
    def forward(self, *args, **kwargs):
        x, = args
        for layer in self.layers:
            x = layer(x)
        while x:
            x = self.forward(x)
        return self.n(self.n(x)) if kwargs else (lambda y: y)(x)
'''
    ctx = RuleContext(enabled=frozenset(all_codes()))
    analyze([parse("w.py", src)], ctx, strict=True)


def test_ambiguous_class_names_resolve_by_import_path_or_not_at_all():
    layers = ("timm/layers/mlp.py", IMPORTS + '''
class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
''')
    other = ("timm/models/swiftformer.py", IMPORTS + '''
class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Conv2d(d, d, 1)
''')
    user = ("timm/models/vit.py", IMPORTS + '''
from timm.layers import Mlp
from somewhere import Mlp as Unknown

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mlp = Mlp(d)
        self.other = Unknown(d)
''')
    a = analysis(layers, other, user)
    assert kind(a, "Block", "mlp").cls.file.path == "timm/layers/mlp.py"
    assert kind(a, "Block", "other").cls is None


def test_conv_subclass_with_weight_standardization_is_a_conv_not_a_norm():
    a = analysis(("m.py", IMPORTS + '''
import torch.nn.functional as F

class StdConv2d(nn.Conv2d):
    def forward(self, x):
        flat = self.weight.reshape(1, self.out_channels, -1)
        w = F.batch_norm(flat, None, None, training=True).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)

class Net(nn.Module):
    def __init__(self, d, use_conv=False):
        super().__init__()
        self.conv = StdConv2d(d, d, 3)
        layer = partial(nn.Conv2d, kernel_size=1) if use_conv else nn.Linear
        self.fc = layer(d, d)
'''))
    assert kind(a, "Net", "conv").category == "conv"
    assert kind(a, "Net", "fc").category == "unknown"


# -- the semantic module model (issue 9) -------------------------------------------------


def test_registrations_read_the_way_python_runs_them():
    a = analysis(("m.py", IMPORTS + '''
def FeedForward(d, mult=4):
    return nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d * mult), nn.GELU(), nn.Linear(d * mult, d))

class Block(nn.Module):
    def __init__(self, d, flag=False):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(d), nn.RMSNorm(d)
        self.layers = nn.ModuleList([])
        blk = nn.Linear(d, d)
        self.layers = nn.ModuleList([blk] * 3)
        self.ff = FeedForward(d)
        self.stage = self._make_stage(d)
        self.maybe = nn.Identity()
        if flag:
            self.maybe = nn.LayerNorm(d)

    def _make_stage(self, d):
        return nn.Sequential(nn.Conv1d(d, d, 3), nn.BatchNorm1d(d))
'''))
    m = a.model(cls(a, "Block"))
    assert (m.kind_of("n1").torch_name, m.kind_of("n2").torch_name) == ("LayerNorm", "RMSNorm")
    assert m.kind_of("layers").aliased                            # the last binding wins
    ff = m.kind_of("ff")
    assert ff.category == "sequential" and ff.elements[0].torch_name == "LayerNorm" and ff.made_by is not None
    assert [k.torch_name for k in m.kind_of("stage").elements] == ["Conv1d", "BatchNorm1d"]
    # an if arm competes with the earlier binding; both are remembered
    assert m.kind_of("maybe").is_norm
    assert [k.category for k in m.submodules["maybe"].alternatives] == ["identity", "norm"]


def test_wrappers_are_specialised_by_the_module_they_receive():
    a = analysis(("m.py", IMPORTS + '''
class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn
    def forward(self, x):
        return self.fn(self.norm(x))

class Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
    def forward(self, x):
        return self.qkv(x)

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = PreNorm(d, Attention(d))
        self.ff = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))
        self.raw = nn.Linear(d, d)
    def forward(self, x):
        x = x + self.attn(x)
        x = x + self.ff(x)
        return x + self.raw(x)
'''))
    attn = kind(a, "Block", "attn")
    assert [name for name, _ in attn.bound] == ["fn"]
    inner = a.builder.model_of(attn)
    assert inner.kind_of("fn").cls.name == "Attention"
    assert a.starts_with_norm(attn) and a.starts_with_norm(kind(a, "Block", "ff"))
    assert not a.starts_with_norm(kind(a, "Block", "raw"))
    s = a.summary(cls(a, "Block"))
    assert [r.pre is not None for r in sorted(s.flow.residuals, key=lambda r: r.add.id)] == [True, True, False]


def test_conditions_on_one_attribute_are_exclusive():
    from normlint.static.flow import exclusive
    a = analysis(("m.py", IMPORTS + '''
class B(nn.Module):
    def __init__(self, d, mode="a"):
        super().__init__()
        self.mode = mode
        self.n = nn.LayerNorm(d)
    def forward(self, x):
        if self.mode == "a":
            y = self.n(x)
        elif self.mode in ("b", "c"):
            y = self.n(x)
        if self.mode == "c":
            z = self.n(x)
        if self.ok and self.pre:
            w = self.n(x)
        if self.ok and not self.pre:
            w = self.n(x)
        return y
'''))
    n = a.flow(cls(a, "B")).norms
    assert exclusive(n[0].conds, n[1].conds)          # == "a" / in ("b", "c")
    assert exclusive(n[0].conds, n[2].conds)          # == "a" / == "c"
    assert not exclusive(n[1].conds, n[2].conds)      # in ("b", "c") / == "c"
    assert exclusive(n[3].conds, n[4].conds)          # ok and pre / ok and not pre


def test_layouts_follow_producers_and_moves():
    a = analysis(("m.py", IMPORTS + '''
from einops import rearrange

class M(nn.Module):
    def __init__(self, c, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, c)
        self.conv = nn.Conv2d(3, c, 4, stride=4)
        self.fc = nn.Linear(c, c)
        self.n1, self.n2, self.n3, self.n4, self.n5 = (nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c),
                                                       nn.LayerNorm(c), nn.LayerNorm(c))
    def forward(self, ids, img):
        t = self.n1(self.fc(self.embed(ids)))
        f = self.n2(self.conv(img))
        g = self.n3(self.conv(img).permute(0, 2, 3, 1))
        h = self.n4(rearrange(self.conv(img), "b c h w -> b (h w) c"))
        p = self.n5(self.conv(img).flatten(2).transpose(1, 2)[:, 0])
        return t, f, g, h, p
'''))
    c = cls(a, "M")
    flow = a.flow(c)
    got = [a.layout(v.inputs[0], flow) for v in flow.norms]
    assert got == [("B", "S", "F"), ("B", "F", "S", "S"), ("B", "S", "S", "F"), ("B", "S", "F"), ("B", "F")]


def test_norms_by_structure_not_by_spelling():
    a = analysis(("m.py", IMPORTS + '''
import torch.nn.functional as F

class WeightStd(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d, d))
    def forward(self, x):
        w = self.weight
        w = (w - w.mean(-1, keepdim=True)) / w.std(-1, keepdim=True)
        return F.linear(x, w)

class Loss(nn.Module):
    def forward(self, x):
        x = x - x.mean(-1, keepdim=True)
        return (x ** 2).sum() / x.shape[0]

class RMS(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps
    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return (x * torch.rsqrt(var + self.eps)) * self.weight.float()

class UpcastRMS(RMS):
    def forward(self, x):
        dtype = torch.float32
        h = x.to(dtype)
        return self.weight * h * (h.pow(2).mean(-1, keepdim=True) + self.eps) ** -0.5
'''))
    assert a.hand_norm(cls(a, "WeightStd")) is None
    assert a.hand_norm(cls(a, "Loss")) is None
    rms = a.hand_norm(cls(a, "RMS"))
    assert rms is not None and rms.family == "rms" and [s.upcast for s in rms.stats] == [False]
    assert [v for _, v, _, _ in rms.eps_values] == [1e-6]


def test_a_shared_block_object_is_one_norm_for_every_holder():
    src = IMPORTS + '''
class ConvBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
    def forward(self, x):
        return self.bn(self.conv(x))

class Stage(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block
    def forward(self, x):
        return self.block(x)

class Shared(nn.Module):
    def __init__(self, c):
        super().__init__()
        blk = ConvBlock(c)
        self.a, self.b = Stage(blk), Stage(blk)
    def forward(self, x):
        return self.b(self.a(x))

class Fresh(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = Stage(ConvBlock(c)), Stage(ConvBlock(c))
    def forward(self, x):
        return self.b(self.a(x))
'''
    found = [(f.code, f.line) for f in run_source(src, select=["NL304"])]
    assert found == [("NL304", src.count("\n", 0, src.index("return self.b(self.a(x))")) + 1)]
