"""The pre-commit hook, for real: a throw-away repository uses this checkout as its hook repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import BROKEN, CLEAN, write
from .test_cache_and_jobs import MODEL, PRE_NORM_BLOCK

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _pre_commit() -> list[str]:
    exe = Path(sys.executable).with_name("pre-commit")
    if exe.exists():
        return [str(exe)]
    if shutil.which("pre-commit"):
        return ["pre-commit"]
    pytest.skip("pre-commit is not installed (it is in the 'test' extra)")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def hook_home(tmp_path_factory):
    # One PRE_COMMIT_HOME for the module: the hook environment is built once.
    return tmp_path_factory.mktemp("pre-commit-home")


_GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}


def _run_hook(project: Path, home: Path, *, all_files: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), **_GIT_ENV}
    # try-repo takes the checkout as it is on disk, uncommitted changes to tracked files
    # included; without --all-files the hook gets the staged files only, as on a commit.
    return subprocess.run([*_pre_commit(), "try-repo", str(REPO), "normlint", *(["--all-files"] if all_files else [])],
                          cwd=project, capture_output=True, text=True, env=env, timeout=600)


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    for rel, text in files.items():
        write(project, rel, text)
    write(project, "README.txt", "not python: the hook's `types: [python]` skips it\n")
    _git(project, "add", "-A")
    return project


def test_hook_fails_on_a_bad_file(tmp_path, hook_home):
    proc = _run_hook(_project(tmp_path, {"model.py": CLEAN, "broken.py": BROKEN, "nb.ipynb": "{ not json"}),
                     hook_home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "broken.py:1:7: NL900" in proc.stdout
    assert "nb.ipynb:1:3: NL900" in proc.stdout, "notebooks are staged files too"
    assert "model.py:" not in proc.stdout


def test_hook_passes_on_a_clean_file(tmp_path, hook_home):
    proc = _run_hook(_project(tmp_path, {"model.py": CLEAN}), hook_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout


def test_hook_sees_the_unstaged_file_a_staged_one_imports(tmp_path, hook_home):
    """The bug from issue 13: the commit drops the final norm from model.py; its blocks live
    in blocks.py, which is not staged. The hook must still see that they are pre-norm."""
    with_final_norm = MODEL.replace("self.lm_head = nn.Linear(d, vocab)",
                                    "self.ln_f = nn.LayerNorm(d)\n        self.lm_head = nn.Linear(d, vocab)") \
        .replace("return self.lm_head(x)", "return self.lm_head(self.ln_f(x))")
    project = _project(tmp_path, {"pkg/__init__.py": "", "pkg/blocks.py": PRE_NORM_BLOCK, "pkg/model.py": with_final_norm})
    subprocess.run(["git", "commit", "-q", "-m", "model"], cwd=project, check=True, env={**os.environ, **_GIT_ENV})
    clean = _run_hook(project, hook_home, all_files=False)
    assert clean.returncode == 0 and "no files to check" in clean.stdout.lower(), clean.stdout

    write(project, "pkg/model.py", MODEL)          # drop the final norm
    _git(project, "add", "pkg/model.py")
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=project, capture_output=True, text=True)
    assert staged.stdout.split() == ["pkg/model.py"]
    proc = _run_hook(project, hook_home, all_files=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pkg/model.py:15:9: NL302" in proc.stdout
    assert "blocks.py:" not in proc.stdout


def test_readme_hook_config_pins_a_commit_with_autoupdate(tmp_path, hook_home):
    """The README's pre-commit block works before any release is tagged: autoupdate
    replaces its `rev` with the newest commit of the repository."""
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## pre-commit\n.*?```yaml\n(.*?)```", readme, re.S).group(1)
    url = "https://github.com/normlint/normlint"
    assert f"repo: {url}" in block
    clone = tmp_path / "normlint"
    _git(tmp_path, "clone", "-q", str(REPO), str(clone))
    project = _project(tmp_path, {"model.py": CLEAN})
    write(project, ".pre-commit-config.yaml", block.replace(f"repo: {url}", f"repo: {clone}"))
    env = {**os.environ, "PRE_COMMIT_HOME": str(hook_home), **_GIT_ENV}
    proc = subprocess.run([*_pre_commit(), "autoupdate", "--repo", str(clone)], cwd=project,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    assert f"rev: {head}" in (project / ".pre-commit-config.yaml").read_text()
