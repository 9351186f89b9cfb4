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


def test_files_that_need_the_same_context_are_analysed_together(project, monkeypatch):
    # two models sharing one imported block: one pack reads the block once, up to a size
    from normlint.static import engine

    write(project, "pkg/model2.py", MODEL.replace("class GPT", "class GPT2"))
    write(project, "pkg/other.py", MODEL.replace("from .blocks import Block", "from .head import Block"))
    write(project, "pkg/head.py", PRE_NORM_BLOCK)
    report = check_paths(["pkg/model.py", "pkg/model2.py", "pkg/other.py"])
    expected = [("pkg/model.py", "NL302"), ("pkg/model2.py", "NL302"), ("pkg/other.py", "NL302")]
    assert _codes(report) == expected
    assert report.components_analysed == 2 and report.context_files == 2
    monkeypatch.setattr(engine, "PACK_MAX_BYTES", 10)
    small = check_paths(["pkg/model.py", "pkg/model2.py", "pkg/other.py"])
    assert _codes(small) == expected and small.components_analysed == 3


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
    for i in range(8):   # a chain of subclasses, one per file
        write(tmp_path, f"m{i}.py", f"from m{i + 1} import B{i + 1}\n\n\nclass B{i}(B{i + 1}):\n    pass\n")
    write(tmp_path, "m8.py", "class B8:\n    pass\n")
    assert check_paths(["m0.py"]).context_files == project_module.MAX_DEPTH
    monkeypatch.setattr(project_module, "MAX_DEPTH", 100)
    assert check_paths(["m0.py"]).context_files == 8
    monkeypatch.setattr(project_module, "MAX_CONTEXT_FILES", 3)
    assert check_paths(["m0.py"]).context_files == 3


def test_imports_are_followed_by_name(tmp_path, monkeypatch):
    # model.py needs Block; blocks.py's Block needs Norm (its sublayer), not the logging
    # helper or the unrelated Head that blocks.py also imports
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pkg/__init__.py", "from .blocks import Block\n")
    write(tmp_path, "pkg/blocks.py", textwrap.dedent("""\
        import torch.nn as nn
        from .norms import Norm
        from .heads import Head
        from .log import get_logger

        logger = get_logger()


        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.norm = Norm(d)
        """))
    write(tmp_path, "pkg/norms.py", "import torch.nn as nn\nfrom .util import helper\n\n\nclass Norm(nn.LayerNorm):\n    pass\n")
    for name in ("heads", "log", "util"):
        write(tmp_path, f"pkg/{name}.py", "x = 1\n")
    model = "from pkg import Block\nfrom pkg.heads import x  # imported, never used\n\nblock = Block(4)\n"
    from normlint.static.project import ProjectContext

    context = ProjectContext(lambda p: (p.read_text(), str(p)))     # (text, digest): any key per content
    found = context.closure([((tmp_path / "model.py").resolve(), model, "model", tmp_path.resolve())])
    assert [p.relative_to(tmp_path.resolve()).as_posix() for p in found] == \
        ["pkg/__init__.py", "pkg/blocks.py", "pkg/norms.py"]


def test_module_summary():
    from normlint.static.project import ModuleSummary

    text = textwrap.dedent("""\
        from .blocks import Block, Norm as N
        from . import layers
        from ..pkg.sub import (A,
            B)
        from .everything import *
        import torch.nn as nn, os.path
        LIMIT: int = 3


        @decorator
        class Model(Base):
            def forward(self):
                return self.run(N())

            def run(self, x):
                return Block(x)

            def save(self):
                return layers.dump(self)


        def build():
            return A()
        """)
    s = ModuleSummary.scan(text)
    assert {k: (v.module, v.name) for k, v in s.imports.items()} == {
        "Block": (".blocks", "Block"), "N": (".blocks", "Norm"), "layers": (".", "layers"),
        "A": ("..pkg.sub", "A"), "B": ("..pkg.sub", "B"), "nn": ("torch.nn", None), "os": ("os.path", None)}
    assert s.stars == [".everything"] and "LIMIT" in s.defined
    excerpt = s.excerpt({"Model"})
    assert "def forward" in excerpt and "def run" in excerpt and "def save" not in excerpt
    assert "def build" not in excerpt and "LIMIT: int = 3" in excerpt and "@decorator" in excerpt
    import ast
    ast.parse(excerpt)
    assert s.excerpt(None) == text
    assert {(e.module, e.name) for e in s.edges({"Model"})} == {(".blocks", "Block"), (".blocks", "Norm")}
    assert {(e.module, e.name) for e in s.edges({"build"})} == {("..pkg.sub", "A")}
    assert {(e.module, e.name) for e in s.edges({"Other"})} == {(".everything", "Other")}
    assert {(e.module, e.name) for e in s.edges({"LIMIT"})} == set()


def test_stdin_resolves_imports_in_its_project(project):
    from click.testing import CliRunner

    from normlint.cli import cli

    result = CliRunner().invoke(cli, ["check", "-", "--stdin-filename", "pkg/model.py", "--no-cache"], input=MODEL)
    assert result.exit_code == 1 and result.output.startswith("pkg/model.py:15:9: NL302")


def test_module_summary_round_trips_through_its_cache_row():
    import json

    from normlint.static.project import ModuleSummary

    text = textwrap.dedent("""\
        from .blocks import Block, Norm as N
        import torch.nn as nn
        from .everything import *
        DEPTH = 4


        class Model(nn.Module):
            def forward(self, x):
                return Block(N(x))


        def build():
            return nn.Linear(2, 2)
        """)
    scanned = ModuleSummary.scan(text)
    first = scanned.edges({"Model"})
    loaded = ModuleSummary.from_row(text, json.loads(json.dumps(scanned.to_row())))
    assert (loaded.imports, loaded.stars, loaded.spans, loaded.defined) == \
        (scanned.imports, scanned.stars, scanned.spans, scanned.defined)
    assert loaded.edges({"Model"}) == first
    # a name no earlier run asked for is still derived from the text
    assert loaded.edges({"build"}) == scanned.edges({"build"})
    with pytest.raises((ValueError, TypeError, KeyError)):
        ModuleSummary.from_row(text, ["not", "a", "row"])


def test_a_warm_run_reads_the_project_index_instead_of_scanning(project, monkeypatch):
    from normlint.static import project as project_module

    cache = project / "cache"
    cold = check_paths(["pkg/model.py"], cache_dir=cache)
    scanned: list[str] = []
    real_scan = project_module.ModuleSummary.scan.__func__

    def counting_scan(cls, text):
        scanned.append(text)
        return real_scan(cls, text)

    monkeypatch.setattr(project_module.ModuleSummary, "scan", classmethod(counting_scan))
    warm = check_paths(["pkg/model.py"], cache_dir=cache)
    assert warm.findings == cold.findings and scanned == []
    # an edited file is scanned again (its digest changed); the others still come from the index
    write(project, "pkg/blocks.py", POST_NORM_BLOCK)
    edited = check_paths(["pkg/model.py"], cache_dir=cache)
    assert scanned == [POST_NORM_BLOCK] and _codes(edited) == []
    # an index of another shape is ignored, not trusted
    index = next(cache.rglob("project.json"))
    index.write_text('{"engine": "x", "files": {"0": 1}}')
    scanned.clear()
    again = check_paths(["pkg/model.py"], cache_dir=cache)
    assert _codes(again) == [] and scanned
