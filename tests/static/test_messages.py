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
