"""`normlint check` with fix flags, through click's runner: ruff's conventions, our rules."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from normlint.cli import cli
from normlint.fix.catalog import FIXERS
from normlint.registry import RULES

from .conftest import FIXTURES
from .helpers import write

RMSNORM = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-12):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
    """)
SAFE_FIXED = RMSNORM.replace("x.pow(2).mean(-1, keepdim=True) + self.eps)",
                             "x.float().pow(2).mean(-1, keepdim=True) + self.eps).to(x.dtype)")
ALL_FIXED = SAFE_FIXED.replace("eps=1e-12", "eps=1e-6")


@pytest.fixture
def runner():
    return CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.py", RMSNORM)
    return tmp_path


def _check(runner, *args):
    return runner.invoke(cli, ["check", "--no-cache", *args])


def test_check_marks_and_counts_what_fix_would_do(runner, project):
    result = _check(runner, "m.py")
    lines = result.stdout.splitlines()
    assert result.exit_code == 1
    assert "NL402 [*] [warning]" in lines[1] and "NL401 [warning]" in lines[0]
    assert lines[-2] == "Found 2 findings: 2 warnings."
    assert lines[-1] == ("[*] 1 fixable with the `--fix` option (1 hidden fix can be enabled with the "
                         "`--unsafe-fixes` option).")
    unsafe = _check(runner, "m.py", "--unsafe-fixes")
    assert unsafe.stdout.splitlines()[-1] == "[*] 2 fixable with the `--fix` option."
    assert (project / "m.py").read_text() == RMSNORM        # checking never writes


def test_fix_applies_safe_fixes_and_exits_by_what_remains(runner, project):
    result = _check(runner, "m.py", "--fix")
    assert (project / "m.py").read_text() == SAFE_FIXED
    lines = result.stdout.splitlines()
    # with the statistics upcast, the tiny eps is only advice (info): the run passes
    assert lines[-2] == "Found 2 findings (1 fixed, 1 remaining): 1 info."
    assert lines[-1] == "No fixes available (1 hidden fix can be enabled with the `--unsafe-fixes` option)."
    assert result.exit_code == 0
    write(project, "m.py", RMSNORM.replace("self.weight = nn.Parameter(torch.ones(dim))",
                                           "self.weight = nn.Parameter(torch.ones(dim))\n        self.n = nn.LayerNorm(dim)"))
    assert _check(runner, "m.py", "--fix").exit_code == 1      # NL306 remains: a warning
    write(project, "m.py", SAFE_FIXED)
    result = _check(runner, "m.py", "--fix", "--unsafe-fixes")
    assert (project / "m.py").read_text() == ALL_FIXED
    assert result.stdout.splitlines()[-1] == "Found 1 finding (1 fixed, 0 remaining)."
    assert result.exit_code == 0


def test_diff_writes_nothing_and_exits_one_when_there_is_a_fix(runner, project):
    result = _check(runner, "m.py", "--diff", "--unsafe-fixes")
    assert result.exit_code == 1
    assert (project / "m.py").read_text() == RMSNORM
    assert result.stdout.startswith("--- a/m.py\n+++ b/m.py\n@@")
    assert "-    def __init__(self, dim, eps=1e-12):\n+    def __init__(self, dim, eps=1e-6):\n" in result.stdout
    assert "Would fix 2 findings." in result.stderr
    (project / "m.py").write_text(ALL_FIXED)
    clean = _check(runner, "m.py", "--diff")
    assert clean.exit_code == 0 and clean.stdout == ""
    assert "No findings would be fixed." in clean.stderr


def test_fix_only_does_not_report_what_remains(runner, project):
    result = _check(runner, "m.py", "--fix-only", "--show-fixes")
    assert result.exit_code == 0
    assert "NL401" not in result.stdout
    assert result.stdout.splitlines() == [
        "Fixed 1 finding:", "- m.py:", "    1 × NL402 (norm-statistics-in-low-precision)",
        "Fixed 1 finding (1 fix available with `--unsafe-fixes`)."]


def test_show_fixes_and_quiet(runner, project):
    result = _check(runner, "m.py", "--fix", "--unsafe-fixes", "--show-fixes")
    assert "Fixed 2 findings:\n- m.py:\n    1 × NL401 (eps-vanishes-in-half-precision)\n" \
           "    1 × NL402 (norm-statistics-in-low-precision)\n" in result.stdout
    write(project, "m.py", RMSNORM)
    quiet = _check(runner, "m.py", "--fix", "-q")
    assert quiet.stdout.splitlines() == [line for line in quiet.stdout.splitlines() if "NL401" in line]


def test_config_keys(runner, project):
    write(project, "pyproject.toml", '[tool.normlint]\nunsafe-fixes = true\nunfixable = ["NL402"]\n')
    result = _check(runner, "m.py", "--fix")
    assert (project / "m.py").read_text() == RMSNORM.replace("eps=1e-12", "eps=1e-6")
    assert "NL402 [warning]" in result.stdout      # unfixable: no [*]
    write(project, "pyproject.toml", '[tool.normlint]\nfixable = ["NL4"]\nunsafe-fixes = false\n')
    result = _check(runner, "m.py")
    assert result.stdout.splitlines()[-1] == "[*] 1 fixable with the `--fix` option."   # no hint
    write(project, "pyproject.toml", '[tool.normlint]\nunsafe-fixes = "yes"\n')
    bad = _check(runner, "m.py")
    assert bad.exit_code == 2 and "'unsafe-fixes' must be true or false" in bad.stderr
    write(project, "pyproject.toml", '[tool.normlint]\nfixable = ["NL999"]\n')
    assert _check(runner, "m.py").exit_code == 2



@pytest.mark.parametrize("config", ["", "[tool.normlint]\nunsafe-fixes = true\n"])
def test_no_unsafe_fixes_neither_applies_nor_mentions_them(runner, project, config):
    # README: `--no-unsafe-fixes` "neither apply nor mention them", as `unsafe-fixes = false`
    # does, and the flag wins over the file
    if config:
        write(project, "pyproject.toml", config)
    result = _check(runner, "m.py", "--no-unsafe-fixes")
    assert result.stdout.splitlines()[-1] == "[*] 1 fixable with the `--fix` option."
    diff = _check(runner, "m.py", "--no-unsafe-fixes", "--diff")
    assert diff.stderr.splitlines()[-1] == "Would fix 1 finding."
    fixed = _check(runner, "m.py", "--no-unsafe-fixes", "--fix")
    assert (project / "m.py").read_text() == SAFE_FIXED
    assert fixed.stdout.splitlines()[-1].startswith("Found 2 findings (1 fixed, 1 remaining)")  # no hint


def test_fix_writes_remaining_findings_in_json(runner, project):
    result = _check(runner, "m.py", "--fix", "--output-format", "json")
    data = json.loads(result.stdout)
    assert [d["code"] for d in data] == ["NL401"]
    assert data[0]["fix"]["applicability"] == "unsafe" and data[0]["fix"]["edits"]


def test_full_output_shows_the_fix(runner, project):
    result = _check(runner, "m.py", "--output-format", "full")
    assert "  = help: Compute `x.pow(2).mean(-1, keepdim=True)` and its root in float32, then cast back to `x.dtype`\n" \
           "  = safe fix:\n" in result.stdout
    assert "  12 -         return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)" \
        in result.stdout
    assert "  12 +         return self.weight * x * torch.rsqrt(x.float().pow(2)" in result.stdout


def test_add_noqa_merges_and_then_the_check_passes(runner, project):
    text = RMSNORM.replace("def __init__(self, dim, eps=1e-12):", "def __init__(self, dim, eps=1e-12):  # noqa: E501")
    text += 'DOC = """\nx.pow(2).mean(-1)\n"""\n'
    write(project, "m.py", text)
    result = _check(runner, "m.py", "--add-noqa")
    assert result.exit_code == 0 and result.stdout == "Added 2 noqa directives.\n"
    fixed = (project / "m.py").read_text()
    assert "eps=1e-12):  # noqa: E501, NL401\n" in fixed
    assert "+ self.eps)  # noqa: NL402\n" in fixed
    assert _check(runner, "m.py").exit_code == 0
    assert _check(runner, "m.py", "--add-noqa").stdout == "Added 0 noqa directives.\n"


def test_add_noqa_skips_lines_where_a_comment_cannot_go():
    from normlint.findings import Engine, Finding, Severity
    from normlint.fix.add_noqa import add_noqa

    text = 'x = f("""a\nb""") + \\\n    g()\ny = 1\n'
    findings = [Finding(c, "n", Severity.WARNING, Engine.STATIC, "m.py", line, 1, "m")
                for c, line in (("NL303", 1), ("NL304", 2), ("NL305", 4))]
    result = add_noqa(text, findings)
    assert result.skipped == 2 and result.added == 1
    assert result.text == 'x = f("""a\nb""") + \\\n    g()\ny = 1  # noqa: NL305\n'


def test_rules_listing_shows_fixability(runner):
    text = runner.invoke(cli, ["rules"]).stdout
    row = next(line for line in text.splitlines() if line.startswith("NL402"))
    assert row.split()[-1] == "safe"
    row = next(line for line in text.splitlines() if line.startswith("NL303"))
    assert row.split()[-1] == "unsafe"
    row = next(line for line in text.splitlines() if line.startswith("NL306"))
    assert row.split()[-1] == "no"
    data = json.loads(runner.invoke(cli, ["rules", "--output-format", "json"]).stdout)
    assert {d["code"]: d["fix"] for d in data}["NL303"] == "unsafe"


def test_registry_fixable_matches_the_fixers():
    assert {r.code for r in RULES if r.fixable} == set(FIXERS) & {r.code for r in RULES}


def test_fixture_tree_fix_diff_is_stable(runner, monkeypatch):
    """--diff over the whole fixtures tree (components, several files) writes nothing."""
    monkeypatch.chdir(FIXTURES.parent)
    before = {p: p.read_bytes() for p in FIXTURES.rglob("*.py")}
    result = _check(runner, "fixtures", "--select", "ALL", "--diff", "--unsafe-fixes")
    assert result.exit_code == 1 and "+++ b/fixtures/NL303/gpt_block_rebinds_x.py" in result.stdout
    assert {p: p.read_bytes() for p in FIXTURES.rglob("*.py")} == before


def _stdin(project, *args, text: str | bytes = RMSNORM):
    from .helpers import run_normlint_input

    return run_normlint_input("check", "--no-cache", *args, input=text, cwd=project)


def test_fix_on_stdin_prints_the_fixed_source_and_reports_on_stderr(project):
    """ruff's convention for editors and pipes: with `-`, the fixed source goes to stdout
    (the source as it was when nothing applies) and the report to stderr; no file is
    written, not even the one --stdin-filename names."""
    (project / "m.py").write_text(RMSNORM)
    proc = _stdin(project, "-", "--stdin-filename", "m.py", "--fix")
    assert proc.stdout == SAFE_FIXED.encode()
    assert b"Found 2 findings (1 fixed, 1 remaining): 1 info." in proc.stderr
    assert proc.returncode == 0
    assert (project / "m.py").read_text() == RMSNORM
    proc = _stdin(project, "-", "--fix-only", "--unsafe-fixes")
    assert proc.stdout == ALL_FIXED.encode() and b"Fixed 2 findings." in proc.stderr and proc.returncode == 0
    clean = _stdin(project, "-", "--fix", "--unsafe-fixes", text=ALL_FIXED)
    assert clean.stdout == ALL_FIXED.encode() and clean.returncode == 0
    broken = _stdin(project, "-", "--fix", text="def f(:\n")
    assert broken.stdout == b"def f(:\n" and b"NL900" in broken.stderr and broken.returncode == 1


def test_diff_on_stdin_is_labelled_by_the_stdin_filename_or_as_stdin(runner, project):
    """As ruff: --stdin-filename names the document in the diff's header; without it the
    header says `<stdin>`, not `a/-` (a file named `-`, which keeps that label)."""
    named = _stdin(project, "-", "--stdin-filename", "src/m.py", "--diff", "--unsafe-fixes")
    assert named.stdout.startswith(b"--- a/src/m.py\n+++ b/src/m.py\n@@"), named.stdout
    unnamed = _stdin(project, "-", "--diff", "--unsafe-fixes")
    assert unnamed.stdout.startswith(b"--- <stdin>\n+++ <stdin>\n@@"), unnamed.stdout
    assert b"Would fix 2 findings." in unnamed.stderr and unnamed.returncode == 1
    write(project, "-", RMSNORM)
    dash = _check(runner, "./-", "--diff", "--unsafe-fixes")
    assert dash.stdout.startswith("--- a/-\n+++ b/-\n@@"), dash.stdout


def test_fix_on_stdin_keeps_crlf_and_bom(project):
    data = b"\xef\xbb\xbf" + RMSNORM.replace("\n", "\r\n").encode()
    proc = _stdin(project, "-", "--fix", text=data)
    assert proc.stdout == b"\xef\xbb\xbf" + SAFE_FIXED.replace("\n", "\r\n").encode()


def test_add_noqa_on_stdin_prints_the_source(project):
    proc = _stdin(project, "-", "--add-noqa")
    assert proc.returncode == 0, proc.stderr
    assert b"eps=1e-12):  # noqa: NL401\n" in proc.stdout and b"self.eps)  # noqa: NL402\n" in proc.stdout
    assert b"Added 2 noqa directives." in proc.stderr


@pytest.mark.parametrize("flags", [["--add-noqa", "--fix"], ["--add-noqa", "--fix-only"], ["--add-noqa", "--diff"]])
def test_add_noqa_with_a_fix_flag_is_a_usage_error(runner, project, flags):
    result = _check(runner, "m.py", *flags)
    assert result.exit_code == 2
    assert "--add-noqa cannot be combined with" in result.stderr
    assert (project / "m.py").read_text() == RMSNORM


def test_marks_and_hints_follow_each_files_own_configuration(runner, tmp_path, monkeypatch):
    """A sub-project that sets `unsafe-fixes = true` gets its unsafe fixes applied by --fix
    wherever normlint runs from: `[*]` and the summary must say so, and must not promise
    an unsafe fix to a file whose own configuration does not allow it."""
    write(tmp_path, "pyproject.toml", "[tool.normlint]\nselect = ['ALL']\n")
    write(tmp_path, "root.py", RMSNORM)
    write(tmp_path, "sub/normlint.toml", "unsafe-fixes = true\n")
    write(tmp_path, "sub/m.py", RMSNORM)
    monkeypatch.chdir(tmp_path)
    lines = _check(runner, ".").stdout.splitlines()
    assert [l.split(":")[0] for l in lines if "NL401 [*]" in l] == ["sub/m.py"]
    assert lines[-1] == ("[*] 3 fixable with the `--fix` option (1 hidden fix can be enabled with the "
                         "`--unsafe-fixes` option).")
    monkeypatch.chdir(tmp_path / "sub")
    lines = _check(runner, ".", "../root.py").stdout.splitlines()
    assert [l.split(":")[0] for l in lines if "NL401 [*]" in l] == ["m.py"]
    assert lines[-1] == ("[*] 3 fixable with the `--fix` option (1 hidden fix can be enabled with the "
                         "`--unsafe-fixes` option).")
    fixed = _check(runner, ".", "../root.py", "--fix-only")
    assert fixed.stdout.splitlines()[-1] == "Fixed 3 findings (1 fix available with `--unsafe-fixes`)."
    assert (tmp_path / "root.py").read_text() == SAFE_FIXED and (tmp_path / "sub/m.py").read_text() == ALL_FIXED


def test_diff_of_a_file_without_a_final_newline_or_with_form_feeds_is_a_valid_patch(runner, project):
    """Each diff line is one line of the patch: a last line with no newline gets git's
    marker right after it (on the `-` and on the `+` side), and a form feed inside a line
    (old GNU-style page breaks) is not a line break."""
    old = "        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)"
    new = ("        return self.weight * x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + "
           "self.eps).to(x.dtype)")
    write(project, "m.py", RMSNORM.rstrip("\n"))
    out = _check(runner, "m.py", "--diff").stdout
    assert out.endswith(f"-{old}\n\\ No newline at end of file\n+{new}\n\\ No newline at end of file\n"), out
    write(project, "m.py", RMSNORM + "\x0c\nDEPTH = 2")
    out = _check(runner, "m.py", "--diff").stdout
    assert out.endswith(f"-{old}\n+{new}\n \x0c\n DEPTH = 2\n\\ No newline at end of file\n"), out
    assert all(line[:1] in " -+@\\" for line in out.split("\n")[:-1]), out
