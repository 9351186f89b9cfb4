"""The pre-commit hook, for real: a throw-away repository uses this checkout as its hook repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import BROKEN, CLEAN, write

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


def _run_hook(project: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    # try-repo takes the checkout as it is on disk, uncommitted changes included.
    return subprocess.run([*_pre_commit(), "try-repo", str(REPO), "normlint", "--all-files"],
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
    proc = _run_hook(_project(tmp_path, {"model.py": CLEAN, "broken.py": BROKEN}), hook_home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "broken.py:1:7: NL900" in proc.stdout
    assert "model.py:" not in proc.stdout


def test_hook_passes_on_a_clean_file(tmp_path, hook_home):
    proc = _run_hook(_project(tmp_path, {"model.py": CLEAN}), hook_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout
