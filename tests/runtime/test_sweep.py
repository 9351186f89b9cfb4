"""Every transformers architecture (evaluation/sweep_transformers.py): the committed results
hold the targets, every warning in them is triaged, and a fixed sample runs in CI.

The sample runs each model in a forked child, as the full sweep does: it must build, the
audit must not raise or time out, the model must come back exactly as it was, and every
warning or error must be a triaged true positive.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    module_name = f"normlint_eval_{name}"
    if module_name not in sys.modules:
        if str(ROOT / "evaluation") not in sys.path:
            sys.path.insert(0, str(ROOT / "evaluation"))
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "evaluation" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


sweep = _load("sweep_transformers")


def test_the_sample_is_diverse_and_large_enough():
    assert len(set(sweep.SAMPLE)) == len(sweep.SAMPLE) >= 40
    families = {"gpt2", "llama", "mamba2", "jamba", "mixtral", "bert", "t5", "whisper", "wav2vec2",
                "vit", "swin", "convnext", "resnet", "detr", "clip", "llava", "patchtst", "reformer"}
    assert families <= set(sweep.SAMPLE)


def test_committed_results_hold_the_targets():
    records = sweep.load_results()
    assert len(records) >= 600, "the full sweep's results are committed"
    assert [r.model_type for r in records.values() if r.status in ("crash", "timeout")] == []
    assert [r.model_type for r in records.values() if r.restored is False] == []
    assert sweep.untriaged(records.values(), sweep.load_triage()) == []


def test_triage_rows_are_true_positives_with_reasons():
    triage = sweep.load_triage()
    assert triage, "evaluation/results/sweep_triage.csv lists the warnings"
    for key, (verdict, reason) in triage.items():
        assert verdict == "true positive" and len(reason) > 20, key


def test_untriaged_names_what_is_missing():
    record = sweep.SweepRecord("toy", "audited", findings=[
        {"severity": "warning", "code": "NL304", "module": "a.norm", "path": "x.py", "line": 1, "message": ""},
        {"severity": "info", "code": "NL306", "module": "b", "path": "x.py", "line": 2, "message": ""}])
    assert sweep.untriaged([record], {}) == [("toy", "NL304", "a.norm")]
    assert sweep.untriaged([record], {("toy", "NL304", "a.norm"): ("true positive", "why")}) == []


@pytest.fixture(scope="module")
def sample_results(tmp_path_factory):
    """The sample, run by the sweep script in a fresh interpreter (its children are forked
    from a process that has run no torch kernel yet, which keeps fork safe)."""
    import subprocess

    out = tmp_path_factory.mktemp("sweep") / "sample.jsonl"
    proc = subprocess.run([sys.executable, str(ROOT / "evaluation" / "sweep_transformers.py"), "--sample",
                           "--results", str(out)], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep.load_results(out)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", sweep.SAMPLE)
def test_sample_architecture(sample_results, model_type):
    record = sample_results[model_type]
    assert record.status == "audited", record.error
    assert record.restored is True
    assert sweep.untriaged([record], sweep.load_triage()) == [], record.failing
