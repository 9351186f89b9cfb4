"""The README's pre-commit configuration with `args: [--fix]`, for real.

`pre-commit try-repo` cannot pass hook arguments, so this does what try-repo does — a
shadow clone of this checkout with its uncommitted changes committed — and runs
`pre-commit run` with the README's block pointed at it. The hook must fix the file, fail
because it changed it (as ruff's does), and pass on the next run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from .helpers import write
from .test_precommit import REPO, _git, _pre_commit

pytestmark = pytest.mark.slow

RMSNORM = '''\
import torch
import torch.nn as nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
'''


def _shadow_of_this_checkout(dest) -> str:
    """A clone of REPO whose HEAD has the working tree's uncommitted changes; its sha."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True, capture_output=True)
    listed = subprocess.run(["git", "ls-files", "-m", "-o", "--exclude-standard", "-z"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout.split("\0")
    deleted = set(subprocess.run(["git", "ls-files", "-d", "-z"], cwd=REPO, check=True, capture_output=True,
                                 text=True).stdout.split("\0"))
    for rel in filter(None, listed):
        target = dest / rel
        if rel in deleted:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "shadow")
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_hook_with_fix_fixes_fails_then_passes(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- pre-commit-fix -->\n```yaml\n(.*?)```", readme, re.S).group(1)
    assert "args: [--fix]" in block
    pre_commit = _pre_commit()
    sha = _shadow_of_this_checkout(tmp_path / "shadow")
    config = re.sub(r"rev: \S+.*", f"rev: {sha}",
                    block.replace("https://github.com/normlint/normlint", str(tmp_path / "shadow")))

    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    write(project, ".pre-commit-config.yaml", config)
    target = write(project, "model.py", RMSNORM)
    _git(project, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "home")}

    def run():
        return subprocess.run([*pre_commit, "run", "--all-files"], cwd=project, capture_output=True,
                              text=True, env=env, timeout=900)

    first = run()
    assert first.returncode == 1, first.stdout + first.stderr
    assert "files were modified by this hook" in first.stdout
    assert "Found 1 finding (1 fixed, 0 remaining)." in first.stdout
    assert "x.float().pow(2).mean(-1, keepdim=True) + self.eps).to(x.dtype)" in target.read_text()
    _git(project, "add", "-A")
    second = run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Passed" in second.stdout
