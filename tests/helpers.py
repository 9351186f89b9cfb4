"""Small builders shared by the CLI and engine tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# A file whose only problem is a bare syntax error: NL900, whatever rules exist.
BROKEN = "def f(:\n    pass\n"
CLEAN = textwrap.dedent("""\
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm = nn.LayerNorm(d)

        def forward(self, x):
            return self.norm(x)
    """)


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def run_normlint(*args: str, cwd: Path, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, "-m", "normlint", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def run_normlint_unprivileged(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``normlint ARGS`` as a user whom file permissions apply to.

    chmod 000 stops everyone but root: as root the run drops to nobody (uid 65534) with
    setpriv, so ``cwd`` must be a directory nobody can enter (pytest's tmp_path is 0700;
    use a ``tempfile.mkdtemp()`` made 0755). Skips where that is impossible.
    """
    import os
    import shutil

    import pytest

    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop privileges")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run([*prefix, sys.executable, "-c", "import normlint.cli"], cwd=cwd,
                               capture_output=True, text=True, timeout=timeout)
        if probe.returncode != 0:
            pytest.skip(f"nobody cannot run normlint here: {probe.stderr.strip()[-200:]}")
    return subprocess.run([*prefix, sys.executable, "-m", "normlint", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def run_normlint_input(*args: str, input: str | bytes, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``normlint ARGS`` with ``input`` on stdin; stdout and stderr as bytes."""
    data = input.encode("utf-8") if isinstance(input, str) else input
    return subprocess.run([sys.executable, "-m", "normlint", *args], cwd=cwd, input=data,
                          capture_output=True, timeout=timeout)
