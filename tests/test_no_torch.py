"""The static path must start fast: `normlint check` may never import torch."""

from __future__ import annotations

import subprocess
import sys

from .helpers import CLEAN, write


def test_check_does_not_import_torch(tmp_path):
    write(tmp_path, "m.py", CLEAN)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "normlint", "check", "m.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "normlint.static.engine" in imported, "importtime output not captured"
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}


def test_import_normlint_and_plugin_do_not_import_torch():
    code = ("import sys, normlint, normlint.pytest_plugin, normlint.api; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
