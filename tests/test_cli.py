"""The CLI through click's runner (fast) and through a real subprocess (what users run)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from normlint.cli import cli
from normlint.registry import RULES

from .helpers import BROKEN, CLEAN, run_normlint, write


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pkg/clean.py", CLEAN)
    write(tmp_path, "pkg/broken.py", BROKEN)
    return tmp_path


def test_clean_file_exits_zero(runner, tree):
    result = runner.invoke(cli, ["check", "pkg/clean.py"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "All checks passed!"


def test_findings_exit_one_sorted_with_summary(runner, tree):
    write(tree, "pkg/a_broken.py", BROKEN)
    result = runner.invoke(cli, ["check", "pkg"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("pkg/a_broken.py:1:7: NL900 [error] SyntaxError")
    assert lines[1].startswith("pkg/broken.py:1:7: NL900")
    assert lines[-1] == "Found 2 findings: 2 errors."


def test_exit_zero_and_quiet(runner, tree):
    result = runner.invoke(cli, ["check", "pkg", "--exit-zero", "--quiet"])
    assert result.exit_code == 0
    assert "Found" not in result.output
    assert "NL900" in result.output
    assert runner.invoke(cli, ["check", "pkg/clean.py", "-q"]).output == ""


def test_info_never_fails_a_run():
    from normlint.findings import Engine, Finding, Severity
    from normlint.report import exit_code

    info = Finding("NL502", "norm-affine-disabled", Severity.INFO, Engine.STATIC, "a.py", 1, 1, "m")
    warn = Finding("NL306", "unused-norm", Severity.WARNING, Engine.STATIC, "a.py", 1, 1, "m")
    assert exit_code([info]) == 0
    assert exit_code([info, warn]) == 1


def test_ignore_and_select(runner, tree):
    assert runner.invoke(cli, ["check", "pkg", "--ignore", "NL900"]).exit_code == 0
    assert runner.invoke(cli, ["check", "pkg", "--select", "NL3,NL4"]).exit_code == 0
    assert runner.invoke(cli, ["check", "pkg", "--select", "NL3", "--extend-select", "NL9"]).exit_code == 1
    assert runner.invoke(cli, ["check", "pkg", "--select", "ALL", "--ignore", "NL9"]).exit_code == 0


@pytest.mark.parametrize("flag", ["--select", "--ignore", "--extend-select"])
def test_unknown_code_is_a_one_line_usage_error(runner, tree, flag):
    result = runner.invoke(cli, ["check", "pkg", flag, "NL999"])
    assert result.exit_code == 2
    assert result.output.strip() == "normlint: error: unknown rule code or prefix: 'NL999'"


def test_missing_path_reports_and_still_checks_the_rest(runner, tree):
    result = runner.invoke(cli, ["check", "pkg/broken.py", "nope.py"])
    assert result.exit_code == 2
    assert "nope.py: no such file or directory" in result.output
    assert "pkg/broken.py:1:7: NL900" in result.output


def test_statistics(runner, tree):
    write(tree, "pkg/b2.py", BROKEN)
    result = runner.invoke(cli, ["check", "pkg", "--statistics"])
    assert result.exit_code == 1
    assert result.output.splitlines()[0].split() == ["2", "NL900", "[error]", "syntax-error"]
    as_json = runner.invoke(cli, ["check", "pkg", "--statistics", "--output-format", "json"])
    assert json.loads(as_json.output) == [{"code": "NL900", "name": "syntax-error", "severity": "error", "count": 2}]


def test_full_format_shows_source_and_caret_and_help(runner, tree):
    result = runner.invoke(cli, ["check", "pkg/broken.py", "--output-format", "full"])
    out = result.output
    assert "1 | def f(:" in out
    assert "  |       ^" in out
    assert "= help: fix the syntax error" in out


def test_output_file(runner, tree):
    result = runner.invoke(cli, ["check", "pkg", "--output-format", "json", "-o", "out.json"])
    assert result.exit_code == 1
    assert result.output == ""
    data = json.loads((tree / "out.json").read_text())
    assert {d["code"] for d in data} == {"NL900"}


def test_unwritable_output_file_is_one_line(runner, tree):
    result = runner.invoke(cli, ["check", "pkg", "-o", "no/such/dir/out.txt"])
    assert result.exit_code == 2
    assert result.output.startswith("normlint: error: cannot write no/such/dir/out.txt")


def test_rules_listing_text_and_json(runner):
    text = runner.invoke(cli, ["rules"]).output
    assert all(r.code in text for r in RULES)
    data = json.loads(runner.invoke(cli, ["rules", "--output-format", "json"]).output)
    assert [d["code"] for d in data] == [r.code for r in RULES]
    assert {"code", "name", "engines", "severity", "default"} <= set(data[0])
    nl502 = next(d for d in data if d["code"] == "NL502")
    assert nl502["default"] is False and nl502["severity"] == "info"


def test_rule_page_by_code_and_by_name(runner):
    by_code = runner.invoke(cli, ["rule", "NL303"])
    assert by_code.exit_code == 0
    assert by_code.output.startswith("# NL303: residual-rebound-to-normalized")
    assert runner.invoke(cli, ["rule", "residual-rebound-to-normalized"]).output == by_code.output
    unknown = runner.invoke(cli, ["rule", "NL000"])
    assert unknown.exit_code == 2 and "unknown rule 'NL000'" in unknown.output


def test_config_error_is_one_line(runner, tree):
    write(tree, "pyproject.toml", "[tool.normlint]\nselct = ['NL1']\n")
    result = runner.invoke(cli, ["check", "pkg"])
    assert result.exit_code == 2
    assert result.output.strip().endswith("unknown key 'selct' in [tool.normlint]")


# ---- real subprocesses: the entry point users run -------------------------------------------

def test_subprocess_bad_tree_exits_one_without_traceback(tmp_path):
    write(tmp_path, "syntax.py", BROKEN)
    write(tmp_path, "latin1.py", b"name = 'caf\xe9'\n")
    write(tmp_path, "blob.py", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path, "ok.py", CLEAN)
    proc = run_normlint("check", ".", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    codes = [ln.split(": ")[1].split()[0] for ln in proc.stdout.splitlines() if ": NL" in ln]
    assert codes == ["NL900", "NL900", "NL900"]
    assert "blob.py:1:1: NL900 [error] binary file" in proc.stdout
    assert "latin1.py:1:12: NL900 [error] cannot decode as utf-8 at byte 11" in proc.stdout


def test_subprocess_usage_error_exit_two(tmp_path):
    proc = run_normlint("check", "--output-format", "xml", ".", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_subprocess_version_and_help(tmp_path):
    assert run_normlint("--version", cwd=tmp_path).stdout.startswith("normlint, version ")
    assert "check" in run_normlint("--help", cwd=tmp_path).stdout


def test_statistics_count_the_severity_each_finding_was_reported_with():
    # NL101 is a warning by default, info in a convolution sub-block: one line per severity,
    # and the lines add up to the summary
    from .conftest import FIXTURES

    files = [str(FIXTURES / "NL101" / n) for n in ("conformer_conv_module.py", "bilstm_tagger_batchnorm.py")]
    result = CliRunner().invoke(cli, ["check", *files, "--statistics", "--no-cache"])
    lines = result.output.splitlines()
    assert [ln.split()[:3] for ln in lines[:-1]] == [["1", "NL101", "[warning]"], ["1", "NL101", "[info]"]]
    assert lines[-1] == "Found 2 findings: 1 warning, 1 info."
    as_json = json.loads(CliRunner().invoke(cli, ["check", *files, "--statistics", "--no-cache",
                                                  "--output-format", "json"]).output)
    assert [(d["severity"], d["count"]) for d in as_json] == [("warning", 1), ("info", 1)]


def test_findings_read_well_in_an_assert_message():
    from normlint.findings import Engine, Finding, Severity

    f = Finding("NL303", "residual-rebound-to-normalized", Severity.ERROR, Engine.RUNTIME, "model.py",
                18, 1, "the residual path carries this norm's output", module="blocks.0.norm1")
    assert str(f) == "model.py:18:1 (blocks.0.norm1): NL303 [error] the residual path carries this norm's output"
    assert repr([f]) == f"[<Finding {f}>]"
    with pytest.raises(AssertionError) as exc:
        assert not [f], [f]
    assert "model.py:18:1 (blocks.0.norm1): NL303 [error]" in str(exc.value)
    cell = Finding("NL303", "n", Severity.ERROR, Engine.STATIC, "nb.ipynb", 2, 5, "m", cell=3)
    assert str(cell) == "nb.ipynb:cell 3:2:5: NL303 [error] m"
