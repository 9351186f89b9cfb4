"""``normlint audit`` through click, registered the way the main CLI registers it."""

import json

import pytest
from click.testing import CliRunner

from normlint.cli import cli
from normlint.runtime.cli import audit_command

from .runtime_fixtures import FIXTURES

cli.add_command(audit_command)


def run(*args):
    return CliRunner().invoke(cli, ["audit", *args], catch_exceptions=False)


def test_text_output_prints_table_and_findings():
    result = run(f"{FIXTURES}/nl302_pre_norm_stack_missing_final_norm.py:bad")
    assert result.exit_code == 1, result.output
    assert "placement" in result.output and "blocks.0.norm1" in result.output
    assert "NL302" in result.output


def test_clean_model_exits_zero():
    result = run(f"{FIXTURES}/nl302_pre_norm_stack_missing_final_norm.py:good")
    assert result.exit_code == 0, result.output


def test_exit_zero_and_json(tmp_path):
    out = tmp_path / "report.json"
    result = run(f"{FIXTURES}/nl201_batchnorm_over_sequence_axis.py:bad", "--output-format", "json",
                 "-o", str(out), "--exit-zero")
    assert result.exit_code == 0
    findings = json.loads(out.read_text())
    assert "NL201" in {f["code"] for f in findings}
    assert all(f["engine"] == "runtime" for f in findings)


@pytest.mark.parametrize("fmt", ["sarif", "github", "junit", "full"])
def test_other_formats(fmt):
    result = run(f"{FIXTURES}/nl201_batchnorm_over_sequence_axis.py:bad", "--output-format", fmt)
    assert result.exit_code == 1 and "NL201" in result.output


def test_input_spec_for_a_model_returned_alone(tmp_path):
    target = tmp_path / "model.py"
    target.write_text(
        "import torch.nn as nn\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.embed = nn.Embedding(100, 8)\n"
        "        self.norm = nn.LayerNorm(8)\n"
        "    def forward(self, input_ids):\n"
        "        return self.norm(self.embed(input_ids))\n"
        "def make():\n"
        "    return M()\n")
    result = run(f"{target}:make", "--input", "input_ids=int64[2,16]:0..100")
    assert result.exit_code == 0, result.output
    assert "embedding" in result.output
    assert run(f"{target}:make").exit_code == 2  # no inputs at all


def test_dtype_and_select():
    result = run(f"{FIXTURES}/nl401_eps_vanishes_in_half_precision.py:good_native", "--select", "NL401")
    assert result.exit_code == 0 and "NL401" in result.output  # info only
    result = run(f"{FIXTURES}/nl406_eps_dominates_variance.py:bad", "--dtype", "bfloat16",
                 "--ignore", "NL406")
    assert result.exit_code == 0 and "bfloat16" in result.output


@pytest.mark.parametrize("target, message", [
    ("nope.py:make", "not found"),
    ("no_such_package_xyz:make", "cannot import"),
    ("missing_colon", "bad target"),
    (f"{FIXTURES}/nl201_batchnorm_over_sequence_axis.py:nothing", "no attribute"),
])
def test_bad_target_is_one_line_exit_2(target, message):
    result = CliRunner().invoke(cli, ["audit", target])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_bad_input_spec_is_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["audit", f"{FIXTURES}/nl201_batchnorm_over_sequence_axis.py:bad",
                                      "--input", "int64[2,x]"])
    assert result.exit_code == 2 and "bad --input" in result.output


def test_forward_error_is_exit_2(tmp_path):
    target = tmp_path / "broken.py"
    target.write_text("import torch, torch.nn as nn\n"
                      "class M(nn.Module):\n"
                      "    def forward(self, x):\n"
                      "        raise RuntimeError('shape mismatch in my model')\n"
                      "def make():\n"
                      "    return M(), torch.zeros(2, 3)\n")
    result = CliRunner().invoke(cli, ["audit", f"{target}:make"])
    assert result.exit_code == 2 and "shape mismatch in my model" in result.output


def test_config_file_selection_and_rule_options(tmp_path):
    config = tmp_path / "normlint.toml"
    config.write_text('ignore = ["NL101"]\n[rules.NL301]\npost-norm-max-depth = 20\n')
    deep = f"{FIXTURES}/nl301_post_norm_deep_stack.py:bad"
    assert run(deep).exit_code == 1
    result = run(deep, "--config", str(config))
    assert result.exit_code == 0 and "NL301" not in result.output
    result = run(f"{FIXTURES}/nl101_batchnorm_in_sequence_model.py:bad", "--config", str(config))
    assert result.exit_code == 0
    result = run(f"{FIXTURES}/nl201_batchnorm_over_sequence_axis.py:bad", "--config", str(config),
                 "--ignore", "NL2")
    assert result.exit_code == 0


def test_sequence_markers_option(tmp_path):
    target = tmp_path / "series.py"
    target.write_text(
        "import torch, torch.nn as nn\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.proj = nn.Linear(4, 8)\n"
        "        self.bn = nn.BatchNorm1d(8)\n"
        "    def forward(self, frames):\n"
        "        return self.bn(self.proj(frames).transpose(1, 2))\n"
        "def make():\n"
        "    return M().eval(), {'frames': torch.randn(2, 3, 4)}\n")
    assert run(f"{target}:make").exit_code == 0
    config = tmp_path / "normlint.toml"
    config.write_text('[rules.NL101]\nsequence-markers = ["frames"]\n')
    result = run(f"{target}:make", "--config", str(config))
    assert result.exit_code == 1 and "NL101" in result.output


def test_docs_example_output_is_real(monkeypatch):
    repo = FIXTURES.parents[1]
    monkeypatch.chdir(repo)
    result = run("fixtures/runtime/nl303_residual_rebound_to_normalized.py:bad")
    assert result.exit_code == 1
    assert result.output.strip() in (repo / "docs" / "audit.md").read_text()


def test_target_file_with_dataclass_config(tmp_path):
    target = tmp_path / "cfg_model.py"
    target.write_text(
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n"
        "import torch, torch.nn as nn\n"
        "@dataclass\n"
        "class Config:\n"
        "    dim: int = 8\n"
        "def make():\n"
        "    cfg = Config()\n"
        "    return nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.LayerNorm(cfg.dim)), torch.randn(2, 3, cfg.dim)\n")
    assert run(f"{target}:make").exit_code == 0
