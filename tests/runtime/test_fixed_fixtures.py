"""The fixed fixtures run, and compute what the fix promises (the static tests only show
that they parse and re-check clean)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _load(rel: str):
    spec = importlib.util.spec_from_file_location("normlint_fixed_" + rel.replace("/", "_").replace(".", "_"),
                                                  FIXTURES / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nl403_fix_gives_nn_layernorm():
    before = _load("NL403/annotated_transformer_layernorm.py").LayerNorm(16)
    after = _load("NL403/annotated_transformer_layernorm.fixed.py").LayerNorm(16)
    x = torch.randn(4, 7, 16)
    reference = F.layer_norm(x, (16,), eps=1e-6)
    assert not torch.allclose(before(x), reference, atol=1e-3)
    torch.testing.assert_close(after(x), reference, atol=1e-5, rtol=1e-5)


def test_nl402_fix_keeps_the_dtype_and_stops_the_fp16_overflow():
    before = _load("NL402/llama_rmsnorm_without_upcast.py").RMSNorm(64).half()
    after = _load("NL402/llama_rmsnorm_without_upcast.fixed.py").RMSNorm(64).half()
    x = torch.full((2, 64), 300.0, dtype=torch.float16)      # x * x = 90000 > fp16 max
    assert not torch.isfinite(before(x).float()).all() or (before(x) == 0).all()
    out = after(x)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), torch.ones(2, 64), atol=1e-2, rtol=1e-2)


def test_nl404_fix_makes_a_constant_row_finite():
    for cls in ("ScaleNorm", "SimpleLayerNorm"):
        before = getattr(_load("NL404/normalize_without_eps.py"), cls)(8)
        after = getattr(_load("NL404/normalize_without_eps.fixed.py"), cls)(8)
        x = torch.zeros(2, 8)
        assert not torch.isfinite(before(x)).all()
        assert torch.isfinite(after(x)).all()


def test_nl401_fix_eps_survives_half_precision():
    after = _load("NL401/tiny_eps_rmsnorm.fixed.py").RMSNorm(8).half()
    assert torch.isfinite(after(torch.zeros(2, 8, dtype=torch.float16))).all()


def test_nl305_fix_builds_distinct_modules():
    enc = _load("NL305/aliased_layers.fixed.py").Encoder(d=8, n_layers=3)
    assert len({id(m) for m in enc.layers}) == 3 and len({id(m) for m in enc.norms}) == 3
    assert sum(p.numel() for p in enc.parameters()) == 3 * (8 * 8 + 8 + 2 * 8) + 3 * 16 + 16
    assert enc(torch.randn(2, 5, 8)).shape == (2, 5, 8)


@pytest.mark.parametrize("rel,build,inputs", [
    ("NL302/gpt_without_ln_f.fixed.py", lambda m: m.GPT(vocab_size=50, n_layer=2, n_embd=16, n_head=2),
     lambda: (torch.randint(0, 50, (2, 5)),)),
    ("NL302/prenorm_torch_encoder_no_final_norm.fixed.py", lambda m: m.TextClassifier(50, d_model=16, nhead=2,
                                                                                        num_layers=2),
     lambda: (torch.randint(0, 50, (2, 5)),)),
    ("NL303/gpt_block_rebinds_x.fixed.py", lambda m: m.Block(16, 2, 0.0, 0.0), lambda: (torch.randn(2, 5, 16),)),
    ("NL304/olmo_shared_norm.fixed.py", lambda m: m.OLMoBlock(16, 2), lambda: (torch.randn(2, 5, 16),)),
])
def test_structural_fixes_build_and_run(rel, build, inputs):
    model = build(_load(rel)).eval()
    calls: dict[str, int] = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.register_forward_hook(lambda mod, args, out, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    with torch.no_grad():
        out = model(*inputs())
    assert torch.isfinite(out).all()
    if rel.startswith("NL302"):
        norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert norms, "the final norm is registered"
    if rel.startswith("NL304"):
        # the second site now calls the norm the class registered for it (ff_norm)
        assert calls == {"attn_norm": 1, "ff_norm": 1}


def test_nl503_fix_momentum():
    block = _load("NL503/keras_batchnorm_momentum.fixed.py").ConvBlock(3, 4)
    assert block.bn.momentum == pytest.approx(0.01)
