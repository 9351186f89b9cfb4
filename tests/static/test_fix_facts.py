"""NL302 attaches what a fixer needs (FIX_ANCHORS.md): the final norm's constructor in the
terms of the stack owner's __init__, the variable carrying the stream, the stack attribute —
and nothing when the analysis cannot express the width there."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from analysis_helpers import run_source

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def nl302_facts(text: str, path: str = "model.py") -> list[dict]:
    return [dict(f.fix_facts) for f in run_source(text, path=path, select=["NL302"])]


@pytest.mark.parametrize("fixture, facts", [
    # the width comes through Block(d) in the owner's comprehension
    ("NL302/stack_class_head_in_caller.py", {"norm_ctor": "nn.LayerNorm(d)", "stream": "x",
                                             "stack_attr": "resblocks"}),
    # one level down: the norm is Attention's own, built as Attention(d) in a list of lists
    ("NL302/norms_inside_sublayers_no_final.py", {"norm_ctor": "nn.LayerNorm(d)", "stream": "x",
                                                  "stack_attr": "layers"}),
    # the block's self.embed_dim is args.encoder_embed_dim in the owner's terms
    ("NL302/fairseq_normalize_before_encoder.py", {"norm_ctor": "nn.LayerNorm(args.encoder_embed_dim)",
                                                   "stream": "x", "stack_attr": "layers"}),
    # through Sequential(PreNormResidual(dim, FeedForward(...)))
    ("NL302/mixer_prenorm_residual.py", {"norm_ctor": "nn.LayerNorm(dim)", "stream": "x",
                                         "stack_attr": "layers"}),
    ("NL302/prenorm_torch_encoder_no_final_norm.py", {"norm_ctor": "nn.LayerNorm(d_model)", "stream": "x",
                                                      "stack_attr": "encoder"}),
])
def test_nl302_fix_facts_on_fixtures(fixture, facts):
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    assert nl302_facts(text, path=fixture) == [facts]


def test_nl302_fix_facts_keep_the_norm_spelling_and_eps():
    src = textwrap.dedent('''
        import torch.nn as nn
        from functools import partial

        class RMSNorm(nn.Module):
            def __init__(self, d, eps=1e-6):
                super().__init__()
                self.weight = nn.Parameter(torch.ones(d))
                self.eps = eps
            def forward(self, x):
                return self.weight * x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)

        class Block(nn.Module):
            def __init__(self, cfg, norm_layer=partial(RMSNorm, eps=1e-5)):
                super().__init__()
                hidden = cfg.hidden_size
                self.norm = norm_layer(hidden)
                self.mlp = nn.Linear(hidden, hidden)
            def forward(self, x):
                return x + self.mlp(self.norm(x))

        class Model(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.embed = nn.Embedding(10, config.hidden_size)
                self.layers = nn.ModuleList([Block(config) for _ in range(4)])
                self.head = nn.Linear(config.hidden_size, 10)
            def forward(self, input_ids):
                h = self.embed(input_ids)
                for layer in self.layers:
                    h = layer(h)
                return self.head(h)
    ''')
    assert nl302_facts(src) == [{"norm_ctor": "RMSNorm(config.hidden_size, eps=1e-05)", "stream": "h",
                                 "stack_attr": "layers"}]


def test_nl302_attaches_no_facts_when_the_width_is_not_expressible():
    src = textwrap.dedent('''
        import torch.nn as nn

        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.norm = nn.LayerNorm(d)
                self.mlp = nn.Linear(d, d)
            def forward(self, x):
                return x + self.mlp(self.norm(x))

        class Model(nn.Module):
            def __init__(self, dims):
                super().__init__()
                self.embed = nn.Embedding(10, dims[0])
                self.layers = nn.ModuleList([Block(width) for width in dims])
                self.head = nn.Linear(dims[-1], 10)
            def forward(self, ids):
                x = self.embed(ids)
                for layer in self.layers:
                    x = layer(x)
                return self.head(x)
    ''')
    assert nl302_facts(src) == [{}]


def test_nl302_attaches_no_facts_when_the_blocks_norm_reads_a_view_of_the_stream():
    """The blocks normalize `x.transpose(1, 2)` (GroupNorm, channels-first) while the stack's
    stream is channels-last: adding that norm after the stack would normalize the wrong axis."""
    fixture = "NL302/groupnorm_block_on_channels_last_stream.py"
    assert nl302_facts((FIXTURES / fixture).read_text(encoding="utf-8"), path=fixture) == [{}]
