"""Cross-file analysis when only some files are passed: the project files a checked file
imports are read for context, findings come only for the files passed, reading stays
inside the project, and the result is the same as checking the whole project."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from normlint import check_paths

from .helpers import run_normlint, write
from .test_cache_and_jobs import MODEL, POST_NORM_BLOCK, PRE_NORM_BLOCK

# The model imports its block by absolute package name, as scripts and src layouts do.
ABSOLUTE_MODEL = MODEL.replace("from .blocks import Block", "from pkg.blocks import Block")
# One level more: blocks.py re-exports the Block that layers.py defines.
REEXPORT = "from .layers import Block  # noqa: F401\n"


def _codes(report):
    return sorted((f.path, f.code) for f in report.findings)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/blocks.py", PRE_NORM_BLOCK)
    write(tmp_path, "pkg/model.py", MODEL)
    return tmp_path


def test_one_file_sees_the_block_it_imports(project):
    report = check_paths(["pkg/model.py"])
    assert _codes(report) == [("pkg/model.py", "NL302")]
    assert report.files_checked == 1 and report.context_files == 1


def test_findings_only_for_the_files_passed(project):
    # blocks.py has a finding of its own; checking model.py must not report it
    write(project, "pkg/blocks.py", PRE_NORM_BLOCK.replace("self.mlp = nn.Linear(d, d)",
                                                           "self.mlp = nn.Linear(d, d)\n        self.spare = nn.LayerNorm(d)"))
    assert ("pkg/blocks.py", "NL306") in _codes(check_paths(["pkg"]))
    assert _codes(check_paths(["pkg/model.py"])) == [("pkg/model.py", "NL302")]


def test_same_findings_as_checking_the_whole_project(project):
    alone = [f for f in check_paths(["pkg/model.py"]).findings]
    whole = [f for f in check_paths(["."]).findings if f.path == "pkg/model.py"]
    assert alone == whole and alone


def test_the_imported_file_decides(project):
    write(project, "pkg/blocks.py", POST_NORM_BLOCK)
    assert _codes(check_paths(["pkg/model.py"])) == [], "post-norm blocks need no final norm"


@pytest.mark.parametrize("layout", ["flat", "src"])
def test_absolute_imports_from_the_project_root_and_src(tmp_path, monkeypatch, layout):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pyproject.toml", "[tool.normlint]\n")
    base = "src/" if layout == "src" else ""
    write(tmp_path, f"{base}pkg/__init__.py", "")
    write(tmp_path, f"{base}pkg/layers.py", PRE_NORM_BLOCK)
    write(tmp_path, f"{base}pkg/blocks.py", REEXPORT)         # two hops: model -> blocks -> layers
    write(tmp_path, f"{base}pkg/model.py", ABSOLUTE_MODEL)
    report = check_paths([f"{base}pkg/model.py"])
    assert _codes(report) == [(f"{base}pkg/model.py", "NL302")]
    assert report.context_files >= 2


def test_a_script_imports_its_sibling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "exp/blocks.py", PRE_NORM_BLOCK)
    write(tmp_path, "exp/train.py", MODEL.replace("from .blocks import Block", "from blocks import Block"))
    assert _codes(check_paths(["exp/train.py"])) == [("exp/train.py", "NL302")]


def test_reading_stays_inside_the_project_root(tmp_path, monkeypatch):
    # The project root is the configuration's directory: a Block beside it, outside, is
    # not read, so nothing is known about it and nothing is reported.
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "blocks.py", PRE_NORM_BLOCK)
    write(tmp_path, "proj/pyproject.toml", "[tool.normlint]\n")
    write(tmp_path, "proj/model.py", MODEL.replace("from .blocks import Block", "from ..blocks import Block"))
    report = check_paths(["proj/model.py"])
    assert report.context_files == 0 and _codes(report) == []
    write(tmp_path, "pyproject.toml", "[tool.normlint]\n")      # the project is the parent now
    (tmp_path / "proj/pyproject.toml").unlink()
    assert _codes(check_paths(["proj/model.py"])) == [("proj/model.py", "NL302")]


def test_installed_code_is_not_project_code(project):
    # A file under site-packages named explicitly is checked, but what it imports from its
    # package is installed code (default exclude), not the project's: it is not read.
    for base in (".venv/lib/site-packages/lib", "lib"):
        write(project, f"{base}/__init__.py", "")
        write(project, f"{base}/blocks.py", PRE_NORM_BLOCK)
        write(project, f"{base}/models/model.py", MODEL.replace("from .blocks", "from ..blocks"))
    installed = check_paths([".venv/lib/site-packages/lib/models/model.py"])
    assert installed.files_checked == 1 and installed.context_files == 0 and _codes(installed) == []
    assert _codes(check_paths(["lib/models/model.py"])) == [("lib/models/model.py", "NL302")]


def test_excluded_code_is_not_project_code(project):
    write(project, "vendor/blocks.py", PRE_NORM_BLOCK)
    write(project, "pyproject.toml", "[tool.normlint]\nextend-exclude = ['vendor/']\n")
    write(project, "uses_vendor.py", MODEL.replace("from .blocks import Block", "from vendor.blocks import Block"))
    report = check_paths(["uses_vendor.py"])
    assert report.context_files == 0 and _codes(report) == []
    write(project, "pyproject.toml", "[tool.normlint]\n")
    assert _codes(check_paths(["uses_vendor.py"])) == [("uses_vendor.py", "NL302")]


def test_unparsable_context_is_skipped_silently(project):
    write(project, "pkg/blocks.py", "def broken(:\n")
    report = check_paths(["pkg/model.py"])
    assert _codes(report) == [], "the broken import is not the checked file's NL900"


def test_context_is_cached_and_an_edit_to_it_invalidates(project):
    cache = project / "cache"
    cold = check_paths(["pkg/model.py"], cache_dir=cache)
    warm = check_paths(["pkg/model.py"], cache_dir=cache)
    assert warm.findings == cold.findings and warm.components_cached == 1 and warm.components_analysed == 0
    write(project, "pkg/blocks.py", POST_NORM_BLOCK)
    edited = check_paths(["pkg/model.py"], cache_dir=cache)
    assert edited.components_analysed == 1 and _codes(edited) == []


def test_files_passed_together_stay_separate_components(project):
    # two models sharing one imported block: the block is context for each, not glue
    write(project, "pkg/model2.py", MODEL.replace("class GPT", "class GPT2"))
    report = check_paths(["pkg/model.py", "pkg/model2.py"])
    assert _codes(report) == [("pkg/model.py", "NL302"), ("pkg/model2.py", "NL302")]
    assert report.components_analysed == 2


def test_an_unsaved_document_replaces_the_file(project):
    # what an editor or stdin passes: model.py's unsaved text, and an unsaved blocks.py too
    fixed = MODEL.replace("return self.lm_head(x)", "return self.lm_head(self.ln_f(x))").replace(
        "self.lm_head = nn.Linear(d, vocab)", "self.lm_head = nn.Linear(d, vocab)\n        self.ln_f = nn.LayerNorm(d)")
    assert _codes(check_paths([], documents={"pkg/model.py": fixed})) == []
    assert _codes(check_paths([], documents={"pkg/model.py": MODEL})) == [("pkg/model.py", "NL302")]
    report = check_paths([], documents={"pkg/model.py": MODEL, str(project / "pkg/blocks.py"): POST_NORM_BLOCK})
    assert _codes(report) == []


def test_cli_pre_commit_style_invocation(project):
    proc = run_normlint("check", "pkg/model.py", "--no-cache", "-v", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("pkg/model.py:15:9: NL302")
    assert "read 1 more for cross-file context" in proc.stderr


def test_deep_import_chains_are_bounded(tmp_path, monkeypatch):
    from normlint.static import project as project_module

    monkeypatch.chdir(tmp_path)
    for i in range(8):
        write(tmp_path, f"m{i}.py", f"import m{i + 1}\n")
    write(tmp_path, "m8.py", "x = 1\n")
    assert check_paths(["m0.py"]).context_files == project_module.MAX_DEPTH
    monkeypatch.setattr(project_module, "MAX_DEPTH", 100)
    from normlint.static import engine
    monkeypatch.setattr(engine, "MAX_DEPTH", 100)
    monkeypatch.setattr(engine, "MAX_CONTEXT_FILES", 3)
    assert check_paths(["m0.py"]).context_files == 3


def test_import_targets():
    from normlint.static.project import import_targets

    text = textwrap.dedent("""\
        from .blocks import Block, Norm as N
        from . import layers
        from ..pkg.sub import (A,
            B)
        import torch.nn as nn, os
        """)
    targets = import_targets(text)
    assert {".blocks", ".blocks.Block", ".blocks.Norm", ".", ".layers", "..pkg.sub", "..pkg.sub.A",
            "..pkg.sub.B", "torch.nn", "os"} <= set(targets)
