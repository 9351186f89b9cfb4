"""A fix must never break a file: every fix on every fixture, byte-level preservation
(CRLF, BOM, PEP 263, comments, file mode), atomic writes, syntax errors, noqa, the cache."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from normlint.settings import Overrides
from normlint.config import Config
from normlint.findings import Edit, Fix
from normlint.fix import write as fix_write
from normlint.fix.apply import FixPolicy
from normlint.fix.run import fix_report
from normlint.static.engine import Component
from normlint.positions import apply_edits
from normlint.fix.verify import check_fixes
from normlint.static.engine import check_text

from .conftest import FIXTURES, REPO
from .helpers import BROKEN, run_normlint, run_normlint_unprivileged, write

ALL = Overrides(select=("ALL",)).apply(Config())
PROJECT_SOURCES = sorted(p for p in [*FIXTURES.rglob("*.py"), *(REPO / "examples").rglob("*.py")]
                         if not p.name.endswith(".fixed.py"))

RMSNORM = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-12):  # eps from the paper
            super().__init__()
            self.eps = eps
            self.gain_é = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            # the statistic, in the input dtype
            return self.gain_é * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)  # note
    """)
FIXED_RMSNORM = (RMSNORM.replace("eps=1e-12", "eps=1e-6")
                 .replace("x.pow(2).mean(-1, keepdim=True) + self.eps)",
                          "x.float().pow(2).mean(-1, keepdim=True) + self.eps).to(x.dtype)"))


def _rel(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


@pytest.mark.parametrize("source", PROJECT_SOURCES, ids=_rel)
def test_every_unsafe_fix_on_every_fixture_keeps_it_valid(source):
    """Each fix alone, and all of them in passes: the result parses and gains no finding."""
    text = source.read_text(encoding="utf-8")
    path = _rel(source)
    before = check_text(text, path, ALL)
    for f in before:
        if not f.fix.edits:
            continue
        fixed = apply_edits(text, f.fix.edits)
        ast.parse(fixed)
        after = check_text(fixed, path, ALL)
        assert check_fixes(before, after, {path: f.fix.edits}, [f]) is None, f"{f.code} at {f.line}"
    run = fix_report(before, {path: text}, [Component((path,), ALL)], FixPolicy(unsafe=True))
    assert not run.dropped, [(d.finding.code, d.reason) for d in run.dropped]
    if any(f.code == "NL900" for f in before):
        assert run.fixed == {}           # a file that does not parse is never touched
        return
    result = run.fixed.get(path, text)
    ast.parse(result)
    gained = Counter(f.code for f in check_text(result, path, ALL)) - Counter(f.code for f in before)
    assert not gained


def test_crlf_bom_comments_and_non_ascii_columns_survive(tmp_path):
    data = b"\xef\xbb\xbf" + RMSNORM.replace("\n", "\r\n").encode("utf-8")
    target = write(tmp_path, "m.py", data)
    proc = run_normlint("check", "--fix", "--unsafe-fixes", "--no-cache", "m.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert target.read_bytes() == b"\xef\xbb\xbf" + FIXED_RMSNORM.replace("\n", "\r\n").encode("utf-8")


def test_inserted_lines_use_the_file_line_ending(tmp_path):
    text = (FIXTURES / "NL304" / "seq2seq_shared_layer_norm.py").read_text(encoding="utf-8")
    target = write(tmp_path, "m.py", text.replace("\n", "\r\n").encode())
    proc = run_normlint("check", "--fix", "--unsafe-fixes", "--no-cache", "m.py", cwd=tmp_path)
    assert "1 fixed" in proc.stdout, proc.stdout + proc.stderr
    data = target.read_bytes()
    assert b"self.layer_norm_2 = nn.LayerNorm(hid_dim)\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


def test_pep263_encoding_and_file_mode_are_kept(tmp_path):
    text = "# -*- coding: latin-1 -*-\n# Müller's RMSNorm\n" + RMSNORM
    target = write(tmp_path, "m.py", text.encode("latin-1"))
    target.chmod(0o751)
    proc = run_normlint("check", "--fix", "--unsafe-fixes", "--no-cache", "m.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert target.read_bytes() == ("# -*- coding: latin-1 -*-\n# Müller's RMSNorm\n" + FIXED_RMSNORM).encode("latin-1")
    assert stat.S_IMODE(target.stat().st_mode) == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]   # no temporary file left


def test_a_file_with_a_syntax_error_is_never_touched(tmp_path):
    broken = write(tmp_path, "broken.py", BROKEN + "# x.pow(2).mean(-1)\n")
    good = write(tmp_path, "m.py", RMSNORM)
    proc = run_normlint("check", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert proc.returncode == 1 and "NL900" in proc.stdout
    assert broken.read_text() == BROKEN + "# x.pow(2).mean(-1)\n"
    assert good.read_text(encoding="utf-8") == FIXED_RMSNORM


def test_noqa_lines_are_never_fixed(tmp_path):
    suppressed = RMSNORM.replace("+ self.eps)  # note", "+ self.eps)  # noqa: NL402")
    target = write(tmp_path, "m.py", suppressed)
    run_normlint("check", "--fix", "--unsafe-fixes", "--no-cache", "m.py", cwd=tmp_path)
    assert "x.pow(2).mean(-1, keepdim=True) + self.eps)  # noqa: NL402" in target.read_text(encoding="utf-8")
    # a fix that would have to edit a line carrying someone else's noqa is display-only
    text = (FIXTURES / "NL303" / "gpt_block_rebinds_x.py").read_text(encoding="utf-8")
    text = text.replace("need_weights=False)[0])", "need_weights=False)[0])  # noqa: E501")
    [f] = [f for f in check_text(text, "m.py", ALL) if f.code == "NL303"]
    assert f.fix.applicability == "display-only" and "noqa" in f.fix.message


def test_second_run_changes_nothing(tmp_path):
    target = write(tmp_path, "m.py", (FIXTURES / "NL303" / "norm_first_rebinds_src.py").read_text())
    first = run_normlint("check", "--fix", "--unsafe-fixes", "--no-cache", "m.py", cwd=tmp_path)
    assert "2 fixed" in first.stdout, first.stdout + first.stderr
    once = target.read_bytes()
    second = run_normlint("check", "--fix", "--unsafe-fixes", "--no-cache", "m.py", cwd=tmp_path)
    assert second.returncode == 0 and "fixed" not in second.stdout
    assert target.read_bytes() == once


def test_a_file_edited_while_fixing_is_left_alone(tmp_path):
    target = write(tmp_path, "m.py", RMSNORM)
    error = fix_write.write_fixed(str(target), RMSNORM.replace("eps", "EPS"), FIXED_RMSNORM)
    assert "changed while it was being fixed" in error
    assert target.read_text(encoding="utf-8") == RMSNORM



def test_a_fixed_file_is_renamed_into_place_and_a_failed_write_changes_nothing(tmp_path, monkeypatch):
    # Atomic: the fixed text goes to a new file that replaces the old by a rename, so a
    # reader (or a crash) never sees half a file. Runs as root too, unlike the test below.
    target = write(tmp_path, "m.py", RMSNORM)
    before = target.stat().st_ino
    assert fix_write.write_fixed(str(target), RMSNORM, FIXED_RMSNORM) is None
    assert target.read_text(encoding="utf-8") == FIXED_RMSNORM
    assert target.stat().st_ino != before, "written in place, not renamed into place"

    other = write(tmp_path, "n.py", RMSNORM)

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fix_write.os, "replace", disk_full)
    error = fix_write.write_fixed(str(other), RMSNORM, FIXED_RMSNORM)
    assert error == "cannot write " + str(other) + ": No space left on device"
    assert other.read_text(encoding="utf-8") == RMSNORM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py", "n.py"], "a temporary was left"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_unwritable_directory_is_a_one_line_error():
    # the directory, not the file, is read-only: an in-place write would succeed, the
    # atomic one (a temporary beside the file) cannot
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="normlint-fix-perm-"))
    try:
        root.chmod(0o755)
        target = write(root, "d/m.py", RMSNORM)
        target.chmod(0o666)
        target.parent.chmod(0o555)
        proc = run_normlint_unprivileged("check", "--fix", "--no-cache", "d/m.py", cwd=root)
        target.parent.chmod(0o755)
        assert proc.returncode == 2 and "cannot write d/m.py" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert target.read_text(encoding="utf-8") == RMSNORM
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("bad", ["breaks the syntax", "does not remove the finding"])
def test_a_fix_the_recheck_does_not_confirm_is_dropped(monkeypatch, bad):
    from normlint.fix.fixers import numerics

    def broken_fixer(tree, finding, node):
        # the literal `1e-12` -> `((` (a syntax error) or `1e-13` (still below the floor)
        col = finding.column + 3
        return Fix("bad", (Edit(finding.line, col, finding.line, col + 2,
                                "((" if bad == "breaks the syntax" else "13"),), "unsafe")

    monkeypatch.setattr(numerics, "raise_eps", broken_fixer)
    text = RMSNORM
    before = check_text(text, "m.py", ALL)
    run = fix_report(before, {"m.py": text}, [Component(("m.py",), ALL)], FixPolicy(unsafe=True))
    assert [d.finding.code for d in run.dropped] == ["NL401"]
    assert ("does not parse" if bad == "breaks the syntax" else "still reported") in run.dropped[0].reason
    assert "eps=1e-12" in run.fixed["m.py"]                  # the NL401 fix was not applied
    assert [f.code for f in run.applied] == ["NL402"]         # the other one was
    assert [f.code for f in run.findings] == ["NL401"]


def test_fixes_are_cached_with_their_findings_and_a_warm_run_needs_no_libcst(tmp_path):
    write(tmp_path, "m.py", RMSNORM)
    cold = run_normlint("check", "--output-format", "json", "m.py", cwd=tmp_path)
    code = ("import json, sys; from normlint.cli import main; sys.argv = ['normlint', 'check', "
            "'--output-format', 'json', 'm.py']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LIBCST' if 'libcst' in sys.modules else 'NO-LIBCST', file=sys.stderr)")
    warm = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert warm.stdout == cold.stdout and '"applicability": "safe"' in warm.stdout
    assert warm.stderr.strip().endswith("NO-LIBCST"), warm.stderr
    nocache = subprocess.run([sys.executable, "-c", code.replace("'json', 'm.py'", "'json', '--no-cache', 'm.py'")],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert nocache.stdout == cold.stdout and nocache.stderr.strip().endswith("LIBCST")


def test_check_without_fixable_findings_does_not_import_libcst(tmp_path):
    from .helpers import CLEAN

    write(tmp_path, "m.py", CLEAN + "\n\nclass Head(nn.Module):\n    def __init__(self):\n"
                                    "        super().__init__()\n        self.ln = nn.LayerNorm(4)\n\n"
                                    "    def forward(self, x):\n        return x\n")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "normlint", "check", "--no-cache", "m.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "NL306" in proc.stdout      # a finding, but one without a fixer
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "normlint.fix.attach" in imported
    assert not {m for m in imported if m.split(".")[0] in ("libcst", "torch")}


def test_fix_dataclass_round_trips_through_json_output(tmp_path):
    write(tmp_path, "m.py", RMSNORM)
    import json

    out = json.loads(run_normlint("check", "--output-format", "json", "--no-cache", "m.py", cwd=tmp_path).stdout)
    fixes = {d["code"]: d["fix"] for d in out}
    assert fixes["NL401"]["applicability"] == "unsafe" and fixes["NL402"]["applicability"] == "safe"
    fix = Fix(fixes["NL402"]["message"], tuple(__import__("normlint").findings.Edit(**e)
                                              for e in fixes["NL402"]["edits"]), "safe")
    assert "x.float().pow(2)" in apply_edits(RMSNORM, fix.edits)


def test_passes_are_bounded_and_running_out_is_reported():
    text = (FIXTURES / "NL303" / "norm_first_rebinds_src.py").read_text(encoding="utf-8")
    before = check_text(text, "m.py", ALL)
    one = fix_report(before, {"m.py": text}, [Component(("m.py",), ALL)], FixPolicy(unsafe=True, max_passes=1))
    assert [f.code for f in one.applied] == ["NL303"] and one.unconverged == [("m.py",)]
    two = fix_report(before, {"m.py": text}, [Component(("m.py",), ALL)], FixPolicy(unsafe=True, max_passes=2))
    assert [f.code for f in two.applied] == ["NL303", "NL303"] and two.unconverged == []
