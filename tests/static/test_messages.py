"""What a finding's message suggests is code the user can paste: the names in it are the
ones the reported code uses."""

from __future__ import annotations

from pathlib import Path

from analysis_helpers import run_files

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_nl303_suggests_the_residual_adds_own_variable():
    """`ä = norm(x); x = ä + ff(ä)`: the stream is x, so the suggestion assigns x (a
    suggestion `ä = x + ...` would leave the returned x un-updated)."""
    [f] = [f for f in run_files([FIXTURES / "NL303" / "norm_bound_to_new_name.py"]) if f.code == "NL303"]
    assert "binds `ä` to `self.norm(x)`" in f.message
    assert f.message.endswith("keep the residual: `x = x + self.ff(self.norm(x))`")


def test_nl303_rebinding_suggestion_keeps_the_stream_name():
    [f] = [f for f in run_files([FIXTURES / "NL303" / "norm_first_rebinds_src.py"]) if f.code == "NL303"]
    assert "rebinds `src` to `self.norm1(src)`" in f.message
    assert f.message.endswith("`src = src + self.self_attn(self.norm1(src))`")


def test_nl201_names_the_batch_axis_of_sequence_first_tokens():
    """(L, N, C) tokens (nn.MultiheadAttention without batch_first): dim 1 is the batch, and
    the channels reach dim 1 by a permute; (N, L, C) tokens keep the transpose."""
    [f] = [f for f in run_files([FIXTURES / "NL201" / "batchnorm1d_on_sequence_first_tokens.py"])
           if f.code == "NL201"]
    assert "the (L, N, C) output of self.self_attn" in f.message
    assert "dim 1, the batch axis" in f.message
    assert f.message.endswith("`self.norm(x.permute(1, 2, 0)).permute(2, 0, 1)`")
    [g] = [g for g in run_files([FIXTURES / "NL201" / "batchnorm_after_conv_projection.py"]) if g.code == "NL201"]
    assert "dim 1, the sequence axis" in g.message
    assert g.message.endswith("`self.bn(x.transpose(1, 2)).transpose(1, 2)`")
