"""``normlint audit TARGET`` for every kind of target: Hugging Face directories (real
weights, random init, derived inputs, --text), pickled modules, --weights, factories
imported as ``python -m`` would, --arg, and the meta device."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from normlint.cli import cli

from . import hf_dirs

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore")


def run(*args):
    return CliRunner().invoke(cli, ["audit", *map(str, args)], catch_exceptions=False)


def codes(result) -> set[str]:
    return {word for line in result.stdout.splitlines() for word in line.split()
            if word.startswith("NL") and word[2:].isdigit()}


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return hf_dirs.save_gpt2(tmp_path_factory.mktemp("gpt2"), tokenizer=True, tiny_embeddings=True)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing is ever downloaded: any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("normlint tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---------------------------------------------------------------------- directories
def test_directory_is_audited_with_its_real_weights(gpt2_dir):
    result = run(gpt2_dir)
    assert result.exit_code == 0, result.output   # tiny activations are NL406 info
    assert "audit: GPT2LMHeadModel in eval mode on cpu" in result.stdout
    assert "config.json + model.safetensors" in result.stdout
    assert "inputs: input_ids int64[2,16] (derived from the config: input_ids)" in result.stdout
    # The saved embeddings have std 1e-4: only the real weights put the first norm under eps.
    assert "NL406" in codes(result) and "transformer.h.0.ln_1" in result.stdout
    random = run(gpt2_dir, "--init", "random")
    assert random.exit_code == 0, random.output
    assert "--init random: random weights" in random.stdout and "NL406" not in codes(random)


def test_sharded_directory_names_its_index_not_every_shard(tmp_path):
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(hf_dirs.gpt2_config()).save_pretrained(tmp_path, max_shard_size="20KB")
    shards = len(list(tmp_path.glob("model-*.safetensors")))
    assert shards > 2
    result = run(tmp_path)
    assert result.exit_code == 0, result.output
    assert f"(config.json + model.safetensors.index.json, {shards} shards)" in result.stdout.splitlines()[0]


def test_an_architecture_transformers_lacks_falls_back_to_the_base_model_with_a_note(gpt2_dir, tmp_path):
    import shutil

    target = tmp_path / "fancy"
    shutil.copytree(gpt2_dir, target)
    config = json.loads((target / "config.json").read_text())
    config["architectures"] = ["GPT2FancyModel"]
    (target / "config.json").write_text(json.dumps(config))
    result = run(target)
    assert result.exit_code in (0, 1), result.output
    assert result.stdout.startswith("audit: GPT2Model in eval mode")
    assert "note: config.json names GPT2FancyModel, which transformers" in result.stdout
    assert "the base model GPT2Model" in result.stdout


def test_directory_loading_sets_offline_mode(gpt2_dir, monkeypatch):
    from normlint.runtime import hf

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    seen = {}
    real = transformers.AutoConfig.from_pretrained

    def spy(*args, **kwargs):
        import os

        seen.update(offline=os.environ.get("HF_HUB_OFFLINE"), local=kwargs.get("local_files_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", spy)
    hf.load_directory(str(gpt2_dir), init="random")
    assert seen == {"offline": "1", "local": True}
    import os

    assert "HF_HUB_OFFLINE" not in os.environ  # restored


def test_a_hub_name_is_not_looked_up():
    result = run("openai-community/gpt2")
    assert result.exit_code == 2
    assert "nothing is downloaded" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("kind, inputs", [
    ("vit", "pixel_values float32[2,3,32,32]"),
    ("wav2vec2", "input_values float32[2,400]"),
    ("whisper", "input_features float32[2,16,64], decoder_input_ids int64[2,8]"),
    ("t5", "input_ids int64[2,16], decoder_input_ids int64[2,8]"),
    # a model of two modalities gets both; a vision config without image_size gets 224
    ("clip", "input_ids int64[2,16], pixel_values float32[2,3,32,32]"),
    ("resnet", "pixel_values float32[2,3,224,224]"),
    ("videomae", "pixel_values float32[2,4,3,32,32]"),
    ("speech_to_text", "input_features float32[2,64,80], decoder_input_ids int64[2,8]"),
    ("ast", "input_values float32[2,64,16]"),
    ("parakeet", "input_features float32[2,64,16]"),
])
def test_inputs_derived_per_modality(tmp_path, kind, inputs):
    directory = hf_dirs.save_modality(tmp_path / kind, kind)
    result = run(directory, "--output-format", "full")
    assert result.exit_code in (0, 1), result.output
    assert f"inputs: {inputs} (derived from the config" in result.stdout
    assert "no normalization ran" not in result.stdout


def test_text_for_a_model_of_two_modalities_gets_the_other_derived(tmp_path, gpt2_dir):
    directory = hf_dirs.save_modality(tmp_path / "clip", "clip")
    result = run(directory, "--text", "the cat sat", "--text", "a dog", "--tokenizer", gpt2_dir)
    assert result.exit_code in (0, 1), result.output
    assert "input_ids int64[2,3], attention_mask int64[2,3], pixel_values float32[2,3,32,32]" \
        in result.stdout


def test_images_inside_the_text_are_not_derived_and_a_note_says_so(tmp_path):
    """LLaVA-style models take pixel_values only with as many image tokens in the text as
    the vision tower makes features: the derived token ids have none, so the vision tower
    does not run, and the output says why its norms never ran."""
    result = run(hf_dirs.save_modality(tmp_path / "llava", "llava"))
    assert "inputs: input_ids int64[2,16] (derived" in result.stdout
    assert "note: derived inputs are token ids only" in result.stdout
    assert "vision_tower" in result.stdout


def test_derived_inputs_respect_vocab_and_meta():
    from normlint.runtime.hf import derive_inputs

    model = transformers.GPT2Model(hf_dirs.gpt2_config(vocab_size=7))
    ids = derive_inputs(model)["input_ids"]
    assert ids.shape == (2, 16) and int(ids.max()) < 7 and ids.dtype == torch.int64
    assert derive_inputs(model, meta=True)["input_ids"].is_meta


def test_input_overrides_derived_inputs(gpt2_dir):
    result = run(gpt2_dir, "--input", "input_ids=int64[1,5]:0..100")
    assert "inputs: input_ids int64[1,5] (--input)" in result.stdout


def test_text_is_tokenized_into_a_padded_batch(gpt2_dir):
    from normlint.runtime.hf import tokenize

    model = transformers.GPT2LMHeadModel(hf_dirs.gpt2_config())
    batch, notes = tokenize(["the cat sat", "the dog sat on the mat"], str(gpt2_dir), model)
    assert batch["input_ids"].tolist() == [[2, 4, 6, 0, 0, 0], [2, 5, 6, 7, 2, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]
    assert notes == []
    result = run(gpt2_dir, "--text", "the cat sat", "--text", "the dog sat on the mat")
    assert "inputs: input_ids int64[2,6], attention_mask int64[2,6] (--text" in result.stdout


def test_text_longer_than_the_model_takes_is_truncated(gpt2_dir):
    """Derived ids stop at max_position_embeddings; tokenized sentences must too (GPT2's
    position embedding raised IndexError on the 65th token)."""
    long = " ".join(["the cat sat on the mat"] * 20)   # 120 tokens; n_positions is 64
    result = run(gpt2_dir, "--text", long, "--text", "a dog")
    assert result.exit_code in (0, 1), result.output
    assert "input_ids int64[2,64], attention_mask int64[2,64]" in result.stdout
    assert "note: --text: truncated to the model's 64 positions" in result.stdout


def test_text_on_the_meta_device_passes_the_ids_only(gpt2_dir):
    result = run(gpt2_dir, "--text", "the cat sat", "--text", "a dog", "--device", "meta")
    assert result.exit_code == 0, result.output
    assert "attention_mask not passed" in result.stdout


def test_text_with_a_separate_tokenizer_for_a_factory(tmp_path, gpt2_dir):
    factory = tmp_path / "lm.py"
    factory.write_text(textwrap.dedent("""\
        import torch.nn as nn

        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed, self.norm = nn.Embedding(20, 8), nn.LayerNorm(8)

            def forward(self, input_ids, attention_mask=None):
                return self.norm(self.embed(input_ids))

        def make():
            return LM()

        def plain():
            return nn.Sequential(nn.Embedding(20, 8), nn.LayerNorm(8))
        """))
    result = run(f"{factory}:make", "--text", "the cat", "--text", "a dog sat", "--tokenizer", gpt2_dir)
    assert result.exit_code == 0, result.output
    assert "input_ids int64[2,3], attention_mask int64[2,3]" in result.stdout
    plain = run(f"{factory}:plain", "--text", "the cat", "--tokenizer", gpt2_dir)
    assert plain.exit_code == 2 and "takes none of the tokenizer's outputs" in plain.stderr
    no_tok = run(f"{factory}:make", "--text", "the cat")
    assert no_tok.exit_code == 2 and "--text needs a tokenizer" in no_tok.stderr


# ---------------------------------------------------------------------- pickles and weights
def _factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_lm.py"
    path.write_text(textwrap.dedent("""\
        import torch.nn as nn

        class TinyLM(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.embed = nn.Embedding(50, dim)
                self.norm = nn.LayerNorm(dim)
                self.head = nn.Linear(dim, 50)

            def forward(self, input_ids):
                return self.head(self.norm(self.embed(input_ids)))

        def make(dim=8):
            return TinyLM(dim)
        """))
    return path


IDS = "input_ids=int64[2,8]:0..50"


def test_pickled_module_needs_trust(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8)), path)
    refused = run(path, "--input", "float32[2,4,8]")
    assert refused.exit_code == 2
    assert "pickled module" in refused.stderr and "--trust-pickle" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    trusted = run(path, "--input", "float32[2,4,8]", "--trust-pickle")
    assert trusted.exit_code == 0, trusted.output
    assert "(pickled module)" in trusted.stdout and "1.LayerNorm" not in trusted.stdout


@pytest.mark.parametrize("trust", [[], ["--trust-pickle"]])
def test_state_dict_file_as_target_explains_factory_and_weights(tmp_path, trust):
    path = tmp_path / "weights.pt"
    torch.save(nn.LayerNorm(8).state_dict(), path)
    result = run(path, *trust)
    assert result.exit_code == 2
    assert "state_dict" in result.stderr and f"--weights {path}" in result.stderr


def test_weights_with_missing_and_unexpected_keys_are_reported(tmp_path):
    factory = _factory_file(tmp_path)
    state = nn.ModuleDict({"embed": nn.Embedding(50, 8), "norm": nn.LayerNorm(8)}).state_dict()
    state["norm.weight"] = torch.full((8,), 3.0)
    state["extra.bias"] = torch.zeros(2)
    weights = tmp_path / "w.pt"
    torch.save(state, weights)
    result = run(f"{factory}:make", "--input", IDS, "--weights", weights)
    assert result.exit_code == 0, result.output
    assert "2 of the model's 5 tensors are missing from the file" in result.stdout, result.stdout
    assert "head.weight, head.bias" in result.stdout
    assert "1 tensors in the file are not in the model and were ignored: extra.bias" in result.stdout
    machine = run(f"{factory}:make", "--input", IDS, "--weights", weights, "--output-format", "json")
    assert json.loads(machine.stdout) == [] and "missing from the file" in machine.stderr


def test_weights_are_loaded(tmp_path):
    from normlint.runtime.checkpoints import load_weights

    model = nn.LayerNorm(4)
    path = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    save_file({"weight": torch.full((4,), 2.0), "bias": torch.ones(4)}, str(path))
    assert load_weights(model, str(path), meta=False) == []
    assert model.weight.tolist() == [2.0] * 4 and model.bias.tolist() == [1.0] * 4


def test_weights_nested_and_prefixed_checkpoints(tmp_path):
    from normlint.runtime.checkpoints import load_weights

    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {"module.weight": torch.full((4,), 5.0), "module.bias": torch.zeros(4)},
                "epoch": 3}, path)
    model = nn.LayerNorm(4)
    notes = load_weights(model, str(path), meta=False)
    assert any("'state_dict'" in n for n in notes) and any("'module.'" in n for n in notes)
    assert model.weight.tolist() == [5.0] * 4


def test_weights_of_tied_parameters_are_not_reported_missing(tmp_path):
    """A head tied to the embedding is one tensor under two names; safetensors (and
    save_pretrained) store it once. Loading the file fills both names."""
    from safetensors.torch import save_model

    factory = tmp_path / "tied.py"
    source = _factory_file(tmp_path).read_text()
    assert "    return TinyLM(dim)\n" in source
    factory.write_text(source.replace("    return TinyLM(dim)\n", "    model = TinyLM(dim)\n"
                                      "    model.head.weight = model.embed.weight\n    return model\n"))
    model = nn.Module()
    model.embed, model.norm, model.head = nn.Embedding(50, 8), nn.LayerNorm(8), nn.Linear(8, 50)
    model.head.weight = model.embed.weight
    weights = tmp_path / "tied.safetensors"
    save_model(model, str(weights))
    for meta in ([], ["--device", "meta"]):
        result = run(f"{factory}:make", "--input", IDS, "--weights", weights, *meta)
        assert result.exit_code == 0, result.output
        assert "missing" not in result.stdout, result.stdout


def test_machine_formats_carry_every_note_on_stderr(tmp_path):
    factory = _factory_file(tmp_path)
    for fmt in ("json", "sarif", "github", "junit"):
        result = run(f"{factory}:make", "--input", IDS, "--device", "meta", "--output-format", fmt)
        assert result.exit_code == 0, result.output
        assert "normlint: note: meta device: numeric checks skipped" in result.stderr, fmt
        assert "note:" not in result.stdout


def test_audits_are_reproducible_and_leave_the_rngs_alone(tmp_path, gpt2_dir):
    """Random weights (--init random, a factory's own init) and inputs a factory draws
    with torch, NumPy or Python's random are the same on every run, so CI sees the same
    numbers; the caller's RNG states are as they were."""
    import random

    import numpy as np

    from normlint.runtime.api import RUNTIME_CODES
    from normlint.runtime.cli import AuditRequest, run_audit

    factory = tmp_path / "drawn.py"
    factory.write_text(_factory_file(tmp_path).read_text() + textwrap.dedent("""
        def drawn():
            import random
            import numpy as np
            import torch
            ids = torch.tensor(np.random.randint(0, 50, (2, 8))) + random.randrange(0, 1)
            return TinyLM(), ids % 50
        """))

    def measured(target, **request):
        run_ = run_audit(AuditRequest(target, **request), RUNTIME_CODES, {})
        return [n.stats for n in run_.report.norms]

    rngs = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    for target, request in ((str(gpt2_dir), {"init": "random"}), (f"{factory}:drawn", {})):
        first = measured(target, **request)
        random.random(), np.random.rand(), torch.rand(1)   # the caller's draws in between
        assert measured(target, **request) == first, target
        assert first and first[0]["input_rms"] > 0
    random.setstate(rngs[0])
    np.random.seed(1)
    torch.manual_seed(1)
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    measured(f"{factory}:drawn")
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all() and torch.equal(torch.get_rng_state(), before[2])


# ---------------------------------------------------------------------- factories
def test_package_factory_with_relative_imports_from_cwd(tmp_path, monkeypatch):
    package = tmp_path / "normlint_test_pkg_rel"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text("")
    (package / "layers.py").write_text("import torch.nn as nn\nNorm = nn.LayerNorm\n")
    (package / "models" / "lm.py").write_text(textwrap.dedent("""\
        import torch, torch.nn as nn
        from ..layers import Norm
        from . import helpers

        def make(dim=8):
            model = nn.Sequential(nn.Linear(dim, dim), Norm(dim))
            return model, torch.randn(2, 4, dim)
        """))
    (package / "models" / "helpers.py").write_text("")
    monkeypatch.chdir(tmp_path)
    by_file = run(f"{package / 'models' / 'lm.py'}:make")
    assert by_file.exit_code == 0, by_file.output
    by_module = run("normlint_test_pkg_rel.models.lm:make", "--arg", "dim=16")
    assert by_module.exit_code == 0, by_module.output
    assert "float32[2,4,16]" in by_module.stdout
    assert "normlint_test_pkg_rel" not in sys.modules  # the session forgets what it imported


def test_the_session_keeps_libraries_installed_inside_the_project(tmp_path, monkeypatch):
    """A virtualenv inside the project (``.venv/``, as the README sets one up) is under the
    current directory, but what the audit imports from it is a library, not the user's
    code: dropping it from sys.modules would make the next import run it again (torch
    then refuses to register its operators twice)."""
    site = tmp_path / ".venv" / "lib" / "python3" / "site-packages"
    site.mkdir(parents=True)
    (site / "normlint_test_installed_lib.py").write_text("LOADED = []\nLOADED.append(1)\n")
    monkeypatch.syspath_prepend(str(site))
    (tmp_path / "normlint_test_own_model.py").write_text(textwrap.dedent("""\
        import torch, torch.nn as nn
        import normlint_test_installed_lib

        def make():
            return nn.LayerNorm(8), torch.randn(2, 4, 8)
        """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "normlint_test_installed_lib", raising=False)
    result = run("normlint_test_own_model:make")
    assert result.exit_code == 0, result.output
    assert "normlint_test_own_model" not in sys.modules
    assert sys.modules["normlint_test_installed_lib"].LOADED == [1]


def test_arg_values_are_literals_or_strings():
    from normlint.runtime.targets import parse_arg

    assert parse_arg("depth=4") == ("depth", 4)
    assert parse_arg("act=gelu") == ("act", "gelu")
    assert parse_arg("dims=[1, 2]") == ("dims", [1, 2])
    assert parse_arg("flag=True") == ("flag", True)


def test_arg_only_for_factories(gpt2_dir):
    result = run(gpt2_dir, "--arg", "depth=2")
    assert result.exit_code == 2 and "--arg" in result.stderr


# ---------------------------------------------------------------------- meta device
def test_meta_directory_needs_no_weights(tmp_path):
    hf_dirs.gpt2_config(n_layer=3).save_pretrained(tmp_path)
    result = run(tmp_path, "--device", "meta")
    assert result.exit_code == 0, result.output
    assert "meta device: weights not read" in result.stdout
    assert "numeric checks skipped" in result.stdout
    assert result.stdout.count("LayerNorm") == 7  # 3 blocks x 2 + the final norm


def test_meta_factory_is_built_on_meta(tmp_path):
    factory = tmp_path / "big.py"
    factory.write_text(textwrap.dedent("""\
        import torch, torch.nn as nn
        def make():
            model = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64))
            assert model[0].weight.is_meta, "built outside the meta device"
            return model, torch.zeros(2, 3, 64)
        """))
    result = run(f"{factory}:make", "--device", "meta")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_meta_directory_stays_far_below_the_model_size(tmp_path):
    # 1.6 B parameters: 6.5 GB in float32 if anything were materialized.
    config = transformers.LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=8,
                                      num_attention_heads=32, num_key_value_heads=8, vocab_size=32000)
    config.save_pretrained(tmp_path)
    params = 8 * (4 * 4096 * 4096 * 10 // 16 + 3 * 4096 * 11008) + 2 * 32000 * 4096
    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "normlint", "audit",
                           str(tmp_path), "--device", "meta"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak_bytes = int(proc.stdout.strip().splitlines()[-1]) * 1024
    assert peak_bytes < params * 4 / 5, (peak_bytes, params)
    assert peak_bytes < 1.5 * 2**30


def test_docs_directory_example_is_real(tmp_path, monkeypatch):
    import re
    import shlex

    docs = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text(encoding="utf-8")
    match = re.search(r"^\$ normlint audit tiny-gpt2 (.*?)\n(.*?)^```", docs, re.S | re.M)
    assert match, "docs/audit.md has no tiny-gpt2 example"
    hf_dirs.save_gpt2(tmp_path / "tiny-gpt2", tokenizer=True)
    monkeypatch.chdir(tmp_path)
    result = run("tiny-gpt2", *shlex.split(match[1]))
    assert result.exit_code == 0, result.output
    assert result.stdout == match[2]
