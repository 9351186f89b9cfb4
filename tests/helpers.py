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


def run_normlint_input(*args: str, input: str | bytes, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``normlint ARGS`` with ``input`` on stdin; stdout and stderr as bytes."""
    data = input.encode("utf-8") if isinstance(input, str) else input
    return subprocess.run([sys.executable, "-m", "normlint", *args], cwd=cwd, input=data,
                          capture_output=True, timeout=timeout)
