"""The evaluation scripts measure the engine they say they measure, on the files they say."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "evaluation"))

import corpora  # noqa: E402
import run_static  # noqa: E402


def test_engine_is_labelled_by_the_checkout_it_imports_not_the_current_directory(tmp_path, monkeypatch):
    decoy = tmp_path / "normlint"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy in the current directory was imported')\n")
    monkeypatch.chdir(tmp_path)
    info = run_static.engine_info(sys.executable)
    import normlint
    assert Path(info["path"]) == Path(normlint.__file__).resolve().parent
    assert info["commit"] != "unknown" and info["describe"] != "unknown"


def test_a_corpus_module_named_like_the_standard_library_does_not_shadow_it(tmp_path, monkeypatch):
    """litgpt ships `types.py`: checking it from the corpus root must still run normlint."""
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "types.py").write_text("raise ImportError('the corpus shadowed the standard library')\n")
    (root / "model.py").write_text(
        "import torch\n\n\ndef rms_norm(x, weight, eps=1e-6):\n"
        "    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight\n")
    fake = corpora.Corpus("fake", "fake==1", "", "", ("*.py",), "test")
    monkeypatch.setitem(run_static.BY_NAME, "fake", fake)
    findings = run_static.run_corpus(sys.executable, root, "fake")
    assert [(f["path"], f["code"]) for f in findings] == [("model.py", "NL402")]


def test_an_sdist_is_unpacked_like_a_wheel(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, text in {"pkg-1.0/pkg/models/net.py": b"x = 1\n", "pkg-1.0/pkg/README.md": b"",
                           "pkg-1.0/tests/test_net.py": b"y = 2\n"}.items():
            member = tarfile.TarInfo(name)
            member.size = len(text)
            tf.addfile(member, io.BytesIO(text))
    target = tmp_path / "out"
    corpora._unpack(archive, "pkg-1.0/pkg", target)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        os.path.join("models", "net.py")]


def test_fresh_corpora_are_pinned_and_separate():
    assert 5 <= len(corpora.FRESH) <= 8
    for c in corpora.FRESH:
        assert "==" in c.requirement and len(c.sha256) == 64, c
        assert c.name not in {o.name for o in corpora.CORPORA}
