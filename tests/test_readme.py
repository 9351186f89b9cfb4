"""The README's quick-start commands are the ones CI runs, and its example output is real."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def _block_after(marker: str) -> str:
    m = re.search(re.escape(marker) + r"\n```\w*\n(.*?)```", README, re.S)
    assert m, f"no code block after {marker}"
    return m.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [ln for ln in (REPO / ".ci/run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert ci_lines[-1] == _block_after("<!-- test-command -->")


def test_ci_also_runs_the_suite_on_the_oldest_python_pyproject_admits():
    """The leg before the README's command: requires-python's floor, the README command's
    extras but the runtime one (no torch), and the whole suite (no path, no -k, no -m)."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    floor = re.search(r'requires-python = ">=(\d+\.\d+)"', pyproject).group(1)
    venv = ".venv" + floor.replace(".", "")
    ci = [ln.strip() for ln in (REPO / ".ci/run").read_text().splitlines()
          if ln.strip() and not ln.strip().startswith("#")]
    assert f"python{floor}" in ci[ci.index("py310=\"\"") + 1]
    leg = [ln for ln in ci if ln.startswith(f"{venv}/bin/")]
    extras = re.search(r"-e '\.\[([^\]]+)\]'", _block_after("<!-- test-command -->")).group(1).split(",")
    expected = ",".join(e for e in extras if e != "runtime")
    assert leg == [f"{venv}/bin/pip install -q -e '.[{expected}]'",
                   f"{venv}/bin/pip install -q --no-deps timm==1.0.31",
                   f"{venv}/bin/python -m pytest -q"]


def test_quick_start_has_exactly_two_commands():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert quick.count("```bash") == 2


def test_example_output_is_what_normlint_prints():
    import subprocess
    import sys

    block = _block_after("<!-- example-output -->").splitlines()
    assert block[0].startswith("$ normlint ")
    args = block[0].split()[2:]   # drop "$ normlint"
    proc = subprocess.run([sys.executable, "-m", "normlint", *args, "--no-cache"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines() == block[1:]


def test_audit_example_matches_the_tested_one_in_docs():
    # docs/audit.md's example is run for real in tests/runtime/test_cli.py
    block = _block_after("<!-- audit-output -->")
    assert block.startswith("$ normlint audit ")
    assert block in (REPO / "docs" / "audit.md").read_text(encoding="utf-8")


def test_audit_directory_example_matches_the_tested_one_in_docs():
    # docs/audit.md's tiny-gpt2 example is run for real in tests/runtime/test_targets.py
    block = _block_after("<!-- audit-directory-output -->")
    assert block.startswith("$ normlint audit tiny-gpt2 ")
    assert block in (REPO / "docs" / "audit.md").read_text(encoding="utf-8")



def _untracked(repo: Path) -> str:
    import subprocess

    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout


def test_a_fresh_clone_has_room_for_the_quick_starts_virtualenv(tmp_path):
    # The quick start runs `python3 -m venv .venv` in a fresh clone: a tracked `.venv` (a
    # symlink to some checkout's venv slipped in once: `.venv/` ignores directories only)
    # makes it fail with "Unable to create directory".
    import shutil
    import subprocess

    import pytest

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    tracked = subprocess.run(["git", "ls-files", "--", ".venv"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    assert tracked == "", f"tracked: {tracked}"
    # the project's .gitignore keeps a .venv of either kind out of `git add -A`
    repo = tmp_path / "clone"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    (repo / ".venv").symlink_to(tmp_path)
    assert ".venv" not in _untracked(repo)
    (repo / ".venv").unlink()
    (repo / ".venv").mkdir()
    (repo / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert ".venv" not in _untracked(repo)
