"""The result cache changes results exactly where it should, and --jobs never changes them."""

from __future__ import annotations

import textwrap

import pytest

import normlint
from normlint import check_paths
from normlint.static import engine

from .conftest import FIXTURES
from .helpers import BROKEN, run_normlint, write

PRE_NORM_BLOCK = textwrap.dedent("""\
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.ln_1 = nn.LayerNorm(d)
            self.attn = nn.Linear(d, d)
            self.ln_2 = nn.LayerNorm(d)
            self.mlp = nn.Linear(d, d)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x = x + self.mlp(self.ln_2(x))
            return x
    """)
POST_NORM_BLOCK = PRE_NORM_BLOCK.replace(
    "x = x + self.attn(self.ln_1(x))\n        x = x + self.mlp(self.ln_2(x))",
    "x = self.ln_1(x + self.attn(x))\n        x = self.ln_2(x + self.mlp(x))")
MODEL = textwrap.dedent("""\
    import torch.nn as nn

    from .blocks import Block


    class GPT(nn.Module):
        def __init__(self, vocab=1000, n_layer=4, d=64):
            super().__init__()
            self.wte = nn.Embedding(vocab, d)
            self.h = nn.ModuleList([Block(d) for _ in range(n_layer)])
            self.lm_head = nn.Linear(d, vocab)

        def forward(self, idx):
            x = self.wte(idx)
            for block in self.h:
                x = block(x)
            return self.lm_head(x)
    """)
UNRELATED = "import torch.nn as nn\n\n\nclass Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.n = nn.LayerNorm(4)\n\n    def forward(self, x):\n        return self.n(x)\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/blocks.py", PRE_NORM_BLOCK)
    write(tmp_path, "pkg/model.py", MODEL)
    write(tmp_path, "pkg/head.py", UNRELATED)
    return tmp_path


def _run(cache, **kw):
    return check_paths(["pkg"], cache_dir=cache, **kw)


def _codes(report):
    return [(f.path, f.code) for f in report.findings]


def test_cross_file_finding_and_warm_run(project):
    cache = project / "cache"
    cold = _run(cache)
    assert ("pkg/model.py", "NL302") in _codes(cold), "the pre-norm Block is seen from model.py"
    assert cold.components_cached == 0
    warm = _run(cache)
    assert warm.findings == cold.findings
    assert warm.components_analysed == 0 and warm.components_cached == cold.components_analysed
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")


def test_editing_a_dependency_reanalyses_its_importer_only(project):
    cache = project / "cache"
    _run(cache)
    (project / "pkg/blocks.py").write_text(POST_NORM_BLOCK)
    after = _run(cache)
    assert ("pkg/model.py", "NL302") not in _codes(after), "post-norm blocks need no final norm"
    assert after.components_analysed == 1, "only the blocks.py/model.py component is re-analysed"
    assert after.components_cached >= 1
    assert after.findings == _run(None).findings


def test_config_change_and_version_upgrade_invalidate(project, monkeypatch):
    cache = project / "cache"
    _run(cache)
    narrowed = _run(cache, select=["NL1"])
    assert narrowed.components_cached == 0 and narrowed.findings == []
    assert _run(cache, select=["NL1"]).components_analysed == 0
    monkeypatch.setattr(normlint, "__version__", "99.0.0")
    upgraded = _run(cache)
    assert upgraded.components_cached == 0
    assert (cache / "99.0.0").is_dir()


def test_syntax_error_cached_and_fixed(project):
    cache = project / "cache"
    write(project, "pkg/broken.py", BROKEN)
    assert ("pkg/broken.py", "NL900") in _codes(_run(cache))
    assert ("pkg/broken.py", "NL900") in _codes(_run(cache))
    write(project, "pkg/broken.py", "x = 1\n")
    assert ("pkg/broken.py", "NL900") not in _codes(_run(cache))


def test_unwritable_cache_still_gives_results(project):
    blocker = project / "cache"
    blocker.write_text("a file where the cache directory should be")
    assert _codes(_run(blocker)) == _codes(_run(None))


def test_jobs_one_and_many_give_identical_output(monkeypatch):
    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)   # force the pool even for small trees
    one = check_paths([FIXTURES], select=["ALL"], jobs=1)
    many = check_paths([FIXTURES], select=["ALL"], jobs=3)
    assert one.findings == many.findings
    assert len(one.findings) > 20


def test_cli_cache_flags(project):
    proc = run_normlint("check", "pkg", cwd=project)
    assert proc.returncode == 1
    assert (project / ".normlint_cache" / "CACHEDIR.TAG").exists()
    elsewhere = project / "elsewhere"
    run_normlint("check", "pkg", "--cache-dir", str(elsewhere), cwd=project)
    assert (elsewhere / "CACHEDIR.TAG").exists()
    import shutil
    shutil.rmtree(project / ".normlint_cache")
    assert run_normlint("check", "pkg", "--no-cache", cwd=project).stdout == proc.stdout
    assert not (project / ".normlint_cache").exists()
    assert run_normlint("check", "pkg", "-j", "2", cwd=project).stdout == proc.stdout
    shutil.rmtree(project / ".normlint_cache")
    from_env = project / "from-env"
    run_normlint("check", "pkg", cwd=project, env={"NORMLINT_CACHE_DIR": str(from_env)})
    assert (from_env / "CACHEDIR.TAG").exists() and not (project / ".normlint_cache").exists()
