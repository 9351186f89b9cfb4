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
