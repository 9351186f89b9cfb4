"""Real models: no warning or error (info is allowed) on well-known transformers and timm
files, and no crash anywhere in the transformers models directory. The sources are read as
text, never imported."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from analysis_helpers import run_files
from normlint.findings import Severity


def _root(pkg: str) -> Path | None:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


TRANSFORMERS = _root("transformers")
TIMM = _root("timm")
HF_MODELS = ["gpt2", "llama", "mistral", "qwen2", "gemma2", "bert", "roberta", "t5", "vit", "convnext",
             "resnet", "wav2vec2"]
TIMM_MODELS = ["resnet", "vision_transformer", "convnext", "levit"]


def _clean(path: Path) -> list[str]:
    return [f"{f.code} {f.line}:{f.column} {f.message}" for f in run_files([path])
            if f.severity is not Severity.INFO]


@pytest.mark.skipif(TRANSFORMERS is None, reason="transformers not installed")
@pytest.mark.parametrize("name", HF_MODELS)
def test_transformers_model_is_clean(name):
    assert _clean(TRANSFORMERS / "models" / name / f"modeling_{name}.py") == []


@pytest.mark.skipif(TIMM is None, reason="timm not installed")
@pytest.mark.parametrize("name", TIMM_MODELS)
def test_timm_model_is_clean(name):
    assert _clean(TIMM / "models" / f"{name}.py") == []


@pytest.mark.skipif(TRANSFORMERS is None, reason="transformers not installed")
def test_whole_transformers_models_dir_never_crashes():
    paths = sorted((TRANSFORMERS / "models").glob("*/modeling_*.py"))
    assert paths
    for path in paths:
        run_files([path], strict=True)
