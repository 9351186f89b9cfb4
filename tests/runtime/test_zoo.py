"""The model zoo (issue 6): real architectures from tiny configs, audited one by one.

The zoo itself (models, inputs, the expected placement of every norm, read from each
model's source) lives in evaluation/run_zoo.py, which also writes the table in
docs/evaluation.md, so the test and the published table cannot drift apart.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("x_transformers")

ROOT = Path(__file__).resolve().parents[2]


def _load_zoo():
    name = "normlint_eval_run_zoo"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "evaluation" / "run_zoo.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


zoo = _load_zoo()
MODELS = zoo.all_models()

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def test_zoo_covers_the_issue():
    names = {m.name for m in MODELS}
    required = {"gpt2", "gpt_neox", "gptj", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2",
                "phi", "opt", "bloom", "falcon", "olmo", "olmo2", "starcoder2", "bert", "roberta",
                "electra", "albert", "t5", "bart", "vit", "deit", "swin", "convnext", "resnet",
                "wav2vec2", "hubert", "wav2vec2-conformer", "x-transformers pre-norm",
                "x-transformers post-norm", "x-transformers sandwich", "x-transformers rmsnorm",
                "x-transformers scalenorm"}
    assert required <= names
    assert len(names) == len(MODELS)


@pytest.mark.parametrize("entry", MODELS, ids=[m.name for m in MODELS])
def test_zoo_model(entry):
    result = zoo.run(entry)
    assert result.error is None
    assert result.mismatches == []
    # No warning or error on a correct implementation, except the true positives it declares,
    # which must still be found.
    assert result.unexpected == []
    failing = {(code, module) for severity, code, module in result.findings if severity != "info"}
    assert failing == set(entry.known)


def test_placement_check_catches_a_wrong_expectation():
    entry = next(m for m in MODELS if m.name == "gpt2")
    got = {"h.0.ln_1": "pre", "h.0.ln_2": "post", "ln_f": "final", "h.0.extra": "other"}
    assert zoo.placement_mismatches(entry, got) == [
        "h.0.ln_2: post, expected pre", "h.0.extra: unexpected norm (other)"]
    assert zoo.placement_mismatches(entry, {"h.0.ln_1": "pre"}) == [
        "h.*.ln_2: no such norm ran", "ln_f: no such norm ran"]


def test_docs_table_lists_every_zoo_model():
    text = (ROOT / "docs" / "evaluation.md").read_text()
    section = text.split(zoo.HEADING, 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")}
    assert {m.name for m in MODELS} <= rows


def test_write_section_replaces_only_its_own_section(tmp_path):
    doc = tmp_path / "evaluation.md"
    doc.write_text(f"# Evaluation\n\n## Static\n\nkept\n\n{zoo.HEADING}\n\nold\n\n## Later\n\nalso kept\n")
    zoo.write_section(doc, f"{zoo.HEADING}\n\nnew\n\n")
    assert doc.read_text() == (f"# Evaluation\n\n## Static\n\nkept\n\n{zoo.HEADING}\n\nnew\n\n"
                               "## Later\n\nalso kept\n")
