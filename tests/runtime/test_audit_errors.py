"""Every bad input to ``normlint audit`` is one line on stderr naming the problem, exit 2,
no traceback; the user's code can neither exit the audit nor write on its stdout."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import normlint
from normlint.cli import cli

from . import hf_dirs

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore")


def run(*args):
    return CliRunner().invoke(cli, ["audit", *map(str, args)], catch_exceptions=False)


def assert_one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("normlint: error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return hf_dirs.save_gpt2(tmp_path_factory.mktemp("gpt2"))


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


MODEL = """\
    import torch, torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(8)

        def forward(self, x):
            {forward}
            return self.norm(x)

    def make():
        {factory}
        return M(), torch.randn(2, 3, 8)
    """


def model_file(tmp_path, forward="pass", factory="pass", top="") -> Path:
    source = top + textwrap.dedent(MODEL).format(forward=forward, factory=factory)
    return write(tmp_path / "model.py", source)


# ---------------------------------------------------------------------- issue 12's list
def test_directory_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert_one_line_error(run(tmp_path), "has no config.json")


def test_unknown_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_arch_xyz",
                                                      "architectures": ["NoSuchModel"]}))
    assert_one_line_error(run(tmp_path), "does not know the architecture 'no_such_arch_xyz'")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_safetensors_in_a_directory(tmp_path, gpt2_dir, damage):
    target = tmp_path / "broken"
    shutil.copytree(gpt2_dir, target)
    weights = target / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a tensor file")
    assert_one_line_error(run(target), "cannot load the weights in", "SafetensorError")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_weights_file(tmp_path, damage):
    from safetensors.torch import save_file

    factory = model_file(tmp_path)
    weights = tmp_path / "w.safetensors"
    save_file(nn.ModuleDict({"norm": nn.LayerNorm(8)}).state_dict(), str(weights))
    data = weights.read_bytes()
    weights.write_bytes(data[:20] if damage == "truncated" else b"\x00" * 3)
    assert_one_line_error(run(f"{factory}:make", "--weights", weights), "cannot read weights")
    torch_file = tmp_path / "w.pt"
    torch_file.write_bytes(b"garbage that is no zip and no pickle")
    assert_one_line_error(run(f"{factory}:make", "--weights", torch_file), "cannot read")


def test_pickle_without_trust(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(nn.LayerNorm(8), path)
    assert_one_line_error(run(path), "runs code", "--trust-pickle")


def test_weights_that_do_not_fit(tmp_path, gpt2_dir):
    factory = model_file(tmp_path)
    weights = tmp_path / "w.pt"
    torch.save({"norm.weight": torch.ones(16), "norm.bias": torch.zeros(16)}, weights)
    assert_one_line_error(run(f"{factory}:make", "--weights", weights),
                          "do not fit M", "norm.weight (16,) in the file, (8,) in the model")
    # A directory whose config.json no longer matches its weights.
    target = tmp_path / "resized"
    shutil.copytree(gpt2_dir, target)
    config = json.loads((target / "config.json").read_text())
    config["n_embd"] = 48
    (target / "config.json").write_text(json.dumps(config))
    assert_one_line_error(run(target), "do not fit its config.json")


def test_weights_sharing_no_name(tmp_path):
    factory = model_file(tmp_path)
    weights = tmp_path / "w.pt"
    torch.save({"encoder.weight": torch.ones(8)}, weights)
    assert_one_line_error(run(f"{factory}:make", "--weights", weights), "share no tensor name")


def test_weights_with_code_in_the_pickle(tmp_path):
    factory = model_file(tmp_path)
    weights = tmp_path / "w.pt"
    torch.save({"norm": nn.LayerNorm(8)}, weights)
    assert_one_line_error(run(f"{factory}:make", "--weights", weights), "weights_only=True")


def test_tokenizer_missing_for_text(gpt2_dir):
    assert_one_line_error(run(gpt2_dir, "--text", "the cat sat"), "--text needs a tokenizer")


def test_tokenizer_without_a_pad_token(tmp_path, gpt2_dir):
    target = tmp_path / "nopad"
    shutil.copytree(gpt2_dir, target)
    hf_dirs.save_tokenizer(target, pad=False)
    assert_one_line_error(run(target, "--text", "the cat", "--text", "a dog sat"), "no pad token")


def test_factory_that_raises(tmp_path):
    factory = model_file(tmp_path, factory="raise ValueError('depth must be even')")
    assert_one_line_error(run(f"{factory}:make"), "model.py:make raised ValueError: depth must be even",
                          "--verbose")


def test_import_that_raises(tmp_path):
    factory = model_file(tmp_path, top="import no_such_module_xyz\n")
    assert_one_line_error(run(f"{factory}:make"), "cannot import", "ModuleNotFoundError")


def test_directory_without_weights(tmp_path):
    hf_dirs.gpt2_config().save_pretrained(tmp_path)
    assert_one_line_error(run(tmp_path), "no weights", "--init random")


def test_custom_code_directory_is_refused(tmp_path):
    hf_dirs.gpt2_config().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_mine.MyModel"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert_one_line_error(run(tmp_path, "--init", "random"), "custom modeling code")


# ---------------------------------------------------------------------- issue 14's audit items
@pytest.mark.parametrize("spec, needle", [
    ("float32[2,8,16]:1e..2", "expected e.g."),
    ("float32[2,8,16]:-..1", "expected e.g."),
    ("float32[2,8,16]:1..2..3", "expected e.g."),
    ("int64[2,8]:0.2..0.9", "integer bounds"),
    ("int64[..]:0..1e30", "expected e.g."),
    ("int64[2,8]:0..1e30", "does not fit int64"),
    ("float32[99999999999,16]", "GiB"),
    ("bool[2,3]:0..1", "takes no range"),
    ("complex7[2]", "unknown dtype"),
    ("float32[2]:3..1", "empty range"),
])
def test_bad_input_specs(tmp_path, spec, needle):
    factory = model_file(tmp_path)
    assert_one_line_error(run(f"{factory}:make", "--input", spec), "bad --input", needle)


def test_huge_input_on_meta_allocates_nothing(tmp_path):
    factory = model_file(tmp_path)
    result = run(f"{factory}:make", "--input", "float32[99999999999,8]", "--device", "meta")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("device, needle", [
    ("cuda", "--device cuda is not available"),
    ("cuda:0", "--device cuda:0 is not available"),
    ("tpu9", "bad --device 'tpu9'"),
])
def test_unavailable_device_with_a_parameter_free_model(tmp_path, device, needle):
    if torch.cuda.is_available() and device.startswith("cuda"):
        pytest.skip("this machine has CUDA")
    factory = write(tmp_path / "free.py", """\
        import torch, torch.nn.functional as F
        class Free(torch.nn.Module):
            def forward(self, x):
                return F.layer_norm(x, x.shape[-1:])
        def make():
            return Free(), torch.randn(2, 3, 8)
        """)
    assert_one_line_error(run(f"{factory}:make", "--device", device), needle)


def test_device_strings_torch_accepts():
    from normlint.runtime.targets import parse_device

    assert parse_device("cpu:0") == torch.device("cpu", 0)
    assert parse_device("meta").type == "meta"


@pytest.mark.parametrize("factory, needle", [
    ("import sys; sys.exit(0)", "SystemExit(0)"),
    ("import sys; sys.exit(3)", "SystemExit(3)"),
    ("raise SystemExit('bye')", "SystemExit('bye')"),
])
def test_factory_that_exits(tmp_path, factory, needle):
    path = model_file(tmp_path, factory=factory)
    assert_one_line_error(run(f"{path}:make"), needle, "must not exit")


def test_systemexit_at_import(tmp_path):
    path = model_file(tmp_path, top="raise SystemExit(7)\n")
    assert_one_line_error(run(f"{path}:make"), "SystemExit(7)")


def test_forward_that_exits(tmp_path):
    path = model_file(tmp_path, forward="import sys; sys.exit(0)")
    assert_one_line_error(run(f"{path}:make"), "SystemExit(0)")


def test_prints_of_the_users_code_go_to_stderr(tmp_path):
    path = model_file(tmp_path, forward="print('forward says hi')",
                      factory="print('factory says hi')", top="print('import says hi')\n")
    result = run(f"{path}:make", "--output-format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    for who in ("import", "factory", "forward"):
        assert f"{who} says hi" in result.stderr


def test_multiline_exception_is_one_line_and_verbose_shows_the_rest(tmp_path):
    path = model_file(tmp_path, forward="raise RuntimeError('shapes differ\\n  left: (2, 3)\\n  right: (3, 2)')")
    line = assert_one_line_error(run(f"{path}:make"), "shapes differ", "--verbose shows the rest")
    assert "left:" not in line
    verbose = run(f"{path}:make", "--verbose")
    assert verbose.exit_code == 2
    assert "right: (3, 2)" in verbose.stderr and "Traceback" in verbose.stderr
    assert verbose.stderr.splitlines()[-1].startswith("normlint: error: ")


# ---------------------------------------------------------------------- issue 13's audit items
class _DropoutNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.norm(self.drop(x))


def test_api_audits_in_the_current_mode_and_says_so():
    model = _DropoutNorm()
    x = torch.randn(2, 3, 8)
    assert normlint.audit(model, x).mode == "train"          # a fresh module trains
    assert normlint.audit(model.eval(), x).mode == "eval"
    model.drop.train()
    assert normlint.audit(model, x).mode == "mixed"
    report = normlint.audit(model, x, mode="eval")
    assert report.mode == "eval" and model.drop.training and not model.norm.training  # restored
    assert report.to_dict()["mode"] == "eval"
    with pytest.raises(normlint.NormlintError):
        normlint.audit(model, x, mode="inference")


def test_cli_says_which_mode_it_audited(tmp_path):
    path = model_file(tmp_path)
    assert "in eval mode" in run(f"{path}:make").stdout.splitlines()[0]
    assert "in train mode" in run(f"{path}:make", "--train").stdout.splitlines()[0]


# ---------------------------------------------------------------------- found by using it
def test_output_written_below_python_stays_off_stdout(tmp_path):
    """A forward that writes to file descriptor 1 itself (a C extension's printf, a child
    process, os.write) must not corrupt --output-format json either."""
    import subprocess
    import sys

    forward = ("import os, ctypes, subprocess; os.write(1, b'fd one says hi\\n'); "
               "subprocess.run(['echo', 'child says hi']); "
               "ctypes.CDLL(None).printf(b'printf says hi\\n')")
    path = model_file(tmp_path, forward=forward)
    result = subprocess.run([sys.executable, "-m", "normlint", "audit", f"{path}:make",
                             "--output-format", "json"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    for who in ("fd one", "child", "printf"):
        assert f"{who} says hi" in result.stderr


@pytest.mark.parametrize("texts", [[""], ["", "   "]])
def test_text_that_makes_no_tokens(gpt2_dir, texts, tmp_path):
    target = tmp_path / "tok"
    shutil.copytree(gpt2_dir, target)
    hf_dirs.save_tokenizer(target)
    args = [a for t in texts for a in ("--text", t)]
    assert_one_line_error(run(target, *args), "--text", "no tokens")


def test_tokenizer_directory_that_does_not_exist(gpt2_dir, tmp_path):
    assert_one_line_error(run(gpt2_dir, "--text", "a cat", "--tokenizer", tmp_path / "nope"),
                          "--tokenizer", "no such directory")


def test_empty_example_inputs_are_refused(tmp_path):
    """A batch of 0 samples runs every norm on no value: nothing is measured, and a clean
    report would be a lie."""
    factory = model_file(tmp_path)
    assert_one_line_error(run(f"{factory}:make", "--input", "float32[0,3,8]"), "empty", "float32[0,3,8]")
    empty = write(tmp_path / "empty.py", MODEL.replace("torch.randn(2, 3, 8)", "torch.randn(0, 3, 8)")
                  .format(forward="pass", factory="pass"))
    assert_one_line_error(run(f"{empty}:make"), "empty")
    with pytest.raises(normlint.NormlintError, match="empty"):
        normlint.audit(nn.LayerNorm(8), torch.randn(0, 3, 8))
    assert normlint.audit(nn.LayerNorm(8), torch.randn(1, 3, 8)).norms   # one sample is fine


def test_forward_that_reads_values_on_meta_says_why(tmp_path):
    path = model_file(tmp_path, forward="assert x.abs().max().item() < 1e9")
    line = assert_one_line_error(run(f"{path}:make", "--device", "meta"), "meta")
    assert "values" in line and "cpu" in line.lower()


def test_pickle_whose_classes_cannot_be_imported(tmp_path, monkeypatch):
    package = tmp_path / "src" / "normlint_gone_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent("""\
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.norm = nn.LayerNorm(8)
            def forward(self, x):
                return self.norm(x)
        """))
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "import torch, normlint_gone_pkg as p; "
                    "torch.save(p.Net(), 'net.pt')"], cwd=tmp_path, check=True,
                   env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "src")})
    monkeypatch.chdir(tmp_path)
    line = assert_one_line_error(run("net.pt", "--trust-pickle", "--input", "float32[2,3,8]"),
                                 "normlint_gone_pkg")
    assert "importable" in line and "PYTHONPATH" in line


def test_garbage_weights_file_does_not_advise_weights_only_false(tmp_path):
    factory = model_file(tmp_path)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"\x00garbage" * 10)
    line = assert_one_line_error(run(f"{factory}:make", "--weights", weights), "cannot read")
    assert "weights_only` set to `False`" not in line and "likely succeed" not in line


def test_api_refuses_an_empty_selection():
    with pytest.raises(normlint.NormlintError, match="select"):
        normlint.audit(nn.LayerNorm(8), torch.randn(2, 3, 8), select=[])
