"""Which files are checked and with which settings: configuration per file (found from the
file, not the current directory), --config, --exclude, --show-files, --show-settings,
--verbose, stdin, and the "No Python files found" warning."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from normlint import check_paths
from normlint.cli import cli

from .helpers import BROKEN, CLEAN, run_normlint, run_normlint_unprivileged, write

NO_FILES = "normlint: warning: No Python files found"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def proj(tmp_path):
    """A project whose config selects NL9 only, next to an empty directory to run from."""
    root = tmp_path / "proj"
    write(root, "pyproject.toml", "[tool.normlint]\nselect = ['NL9']\n")
    write(root, "a.py", BROKEN)
    write(root, "b.py", BROKEN.replace("def f", "def g") + "import torch.nn as nn\nx = nn.BatchNorm1d(4)  # noqa: NL101\n")
    (tmp_path / "elsewhere").mkdir()
    return root


def _codes(stdout: str) -> list[str]:
    return sorted(line.split(": ")[1].split()[0] for line in stdout.splitlines() if ": NL" in line)


def test_config_is_found_from_the_checked_files_not_the_cwd(proj, tmp_path):
    outside = run_normlint("check", str(proj), "--no-cache", cwd=tmp_path / "elsewhere")
    inside = run_normlint("check", ".", "--no-cache", cwd=proj)
    assert _codes(outside.stdout) == _codes(inside.stdout) == ["NL900", "NL900"]
    # without the project's config the same files also report the unused noqa (NL901)
    defaults = run_normlint("check", str(proj), "--no-cache", "--config", str(tmp_path / "none.toml"),
                            cwd=tmp_path / "elsewhere")
    assert defaults.returncode == 2 and "config file not found" in defaults.stderr


def test_files_under_different_configs_get_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pyproject.toml", "[tool.normlint]\nignore = ['NL900']\n")
    write(tmp_path, "top.py", BROKEN)
    write(tmp_path, "sub/normlint.toml", "select = ['ALL']\n")
    write(tmp_path, "sub/inner.py", BROKEN)
    report = check_paths(["."])
    assert [(f.path, f.code) for f in report.findings] == [("sub/inner.py", "NL900")]
    assert {str(k.name) for k in report.configs} == {"pyproject.toml", "normlint.toml"}


def test_a_subproject_config_excludes_in_its_own_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "sub/normlint.toml", "extend-exclude = ['gen/']\n")
    write(tmp_path, "sub/gen/x.py", BROKEN)
    write(tmp_path, "gen/y.py", BROKEN)
    assert [f.path for f in check_paths(["."]).findings] == ["gen/y.py"]


def test_config_flag_overrides_discovery(runner, proj, monkeypatch):
    monkeypatch.chdir(proj)
    write(proj, "other.toml", "select = ['NL1']\n")
    assert runner.invoke(cli, ["check", ".", "--no-cache"]).exit_code == 1
    result = runner.invoke(cli, ["check", ".", "--no-cache", "--config", "other.toml"])
    assert result.exit_code == 0, result.output


def test_exclude_and_extend_exclude_on_the_command_line(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel in ["src/a.py", "src/gen/b.py", "build/c.py", "tests/d.py"]:
        write(tmp_path, rel, BROKEN)

    def files(*args):
        out = runner.invoke(cli, ["check", ".", "--show-files", *args]).output
        return out.split()

    assert files() == ["src/a.py", "src/gen/b.py", "tests/d.py"]               # build/ by default
    assert files("--extend-exclude", "gen,tests") == ["src/a.py"]
    assert files("--extend-exclude", "/src/gen/") == ["src/a.py", "tests/d.py"]  # relative to the cwd
    assert files("--exclude", "tests") == ["build/c.py", "src/a.py", "src/gen/b.py"]  # replaces the defaults
    assert runner.invoke(cli, ["check", "--exclude", "src", "--no-cache"]).output.count("NL900") == 2


def test_show_settings_and_verbose(proj, tmp_path):
    shown = run_normlint("check", str(proj / "a.py"), "--show-settings", cwd=tmp_path / "elsewhere")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"config = {proj / 'pyproject.toml'}" in lines
    assert 'select = ["NL9"]' in lines and 'enabled = ["NL900", "NL901"]' in lines
    assert f"project-root = {proj}" in lines
    verbose = run_normlint("check", str(proj), "-v", "--no-cache", cwd=tmp_path / "elsewhere")
    assert f"normlint: configuration {proj / 'pyproject.toml'} for 3 files" not in verbose.stderr
    assert f"normlint: configuration {proj / 'pyproject.toml'} for 2 files" in verbose.stderr
    bare = run_normlint("check", ".", "-v", "--no-cache", cwd=tmp_path / "elsewhere")
    assert "no configuration file found" not in bare.stderr   # nothing checked, nothing configured
    write(tmp_path / "elsewhere", "c.py", CLEAN)
    bare = run_normlint("check", ".", "-v", "--no-cache", cwd=tmp_path / "elsewhere")
    assert "normlint: no configuration file found: default settings for 1 file" in bare.stderr


# ---- nothing checked -----------------------------------------------------------------------

def test_missing_path_is_an_error_and_no_files_not_all_passed(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["check", "nope.py"])
    assert result.exit_code == 2
    assert "All checks passed" not in result.output
    assert "nope.py: no such file or directory" in result.output and NO_FILES in result.output


def test_empty_directory_warns_and_exits_zero(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_normlint("check", "empty", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == "" and proc.stderr.strip() == NO_FILES
    as_json = run_normlint("check", "empty", "--output-format", "json", cwd=tmp_path)
    assert json.loads(as_json.stdout) == [] and NO_FILES in as_json.stderr


def test_a_site_packages_directory_named_explicitly_is_checked(tmp_path):
    pkg = tmp_path / ".venv/lib/python3.11/site-packages/somepkg"
    write(pkg, "mod.py", BROKEN)
    write(pkg, "build/gen.py", BROKEN)        # patterns still apply below the named directory
    proc = run_normlint("check", str(pkg), "--no-cache", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert _codes(proc.stdout) == ["NL900"] and "mod.py:1:7" in proc.stdout
    # walking from above still skips it
    assert run_normlint("check", ".", cwd=tmp_path).stderr.strip() == NO_FILES


def test_a_gitignored_directory_named_explicitly_is_checked(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path, ".gitignore", "generated/\n")
    write(tmp_path, "generated/x.py", BROKEN)
    assert run_normlint("check", ".", cwd=tmp_path).stderr.strip() == NO_FILES
    assert _codes(run_normlint("check", "generated", "--no-cache", cwd=tmp_path).stdout) == ["NL900"]


# ---- stdin -----------------------------------------------------------------------------------

def test_stdin_with_a_filename_uses_that_files_config(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "lenient/pyproject.toml", "[tool.normlint]\nignore = ['NL900']\n")

    def check(name):
        return runner.invoke(cli, ["check", "-", "--stdin-filename", name, "--no-cache"], input=BROKEN)

    assert check("lenient/new.py").output == "All checks passed!\n"
    strict = check("strict/new.py")
    assert strict.exit_code == 1 and strict.output.startswith("strict/new.py:1:7: NL900")
    assert not (tmp_path / "lenient/new.py").exists()       # nothing is written
    plain = runner.invoke(cli, ["check", "-", "--no-cache"], input=BROKEN)
    assert plain.output.startswith("-:1:7: NL900")


def test_stdin_without_dash_when_only_a_filename_is_given(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["check", "--stdin-filename", "x.py", "--no-cache"], input=BROKEN)
    assert result.output.startswith("x.py:1:7: NL900")


def test_undecodable_stdin_is_nl900_not_a_traceback(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "normlint", "check", "-", "--stdin-filename", "m.py"],
                          cwd=tmp_path, input=b"x = '\xff\xfe'\n", capture_output=True, timeout=60)
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr
    assert proc.stdout.startswith(b"m.py:1:6: NL900 [error] cannot decode as utf-8")


def test_stdin_is_listed_and_described(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli, ["check", "-", "--stdin-filename", "pkg/m.py", "--show-files"],
                         input="").output == "pkg/m.py\n"
    shown = runner.invoke(cli, ["check", "-", "--show-settings"], input="").output
    assert shown.startswith("file = -\nconfig = none (defaults)")


# ---- bad configuration files -----------------------------------------------------------------

@pytest.mark.parametrize("content", [b"[tool.normlint]\nselect = ['\xff']\n", b"[tool.normlint\n"])
def test_unreadable_config_is_one_line(tmp_path, content):
    write(tmp_path, "pyproject.toml", content)
    write(tmp_path, "a.py", CLEAN)
    proc = run_normlint("check", "a.py", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "invalid TOML" in proc.stderr
    assert "Traceback" not in proc.stderr



@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_config_without_read_permission_is_one_line():
    import shutil
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="normlint-config-perm-"))
    try:
        root.chmod(0o755)
        write(root, "a.py", CLEAN).chmod(0o644)
        config = write(root, "pyproject.toml", "[tool.normlint]\nselect = ['ALL']\n")
        config.chmod(0o000)
        proc = run_normlint_unprivileged("check", "--no-cache", "a.py", cwd=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr == f"normlint: error: cannot read config file {config}: Permission denied\n"


def test_a_symlinked_file_gets_the_configuration_of_the_directory_it_is_linked_into(tmp_path, monkeypatch):
    """`proj/pkg/shared.py -> ../../vendor/shared.py`: checked as a file of proj, it gets
    proj's configuration and per-file ignores (by its path in proj), as ruff reads it."""
    write(tmp_path, "vendor/shared.py", BROKEN)
    write(tmp_path, "proj/pyproject.toml", "[tool.normlint]\nselect = ['NL9']\n"
                                            "[tool.normlint.per-file-ignores]\n'pkg/shared.py' = ['NL900']\n")
    (tmp_path / "proj/pkg").mkdir(parents=True)
    (tmp_path / "proj/pkg/shared.py").symlink_to(tmp_path / "vendor/shared.py")
    monkeypatch.chdir(tmp_path / "proj")
    report = check_paths(["."])
    assert report.configs == {tmp_path / "proj/pyproject.toml": 1}
    assert report.findings == []
    write(tmp_path, "proj/pyproject.toml", "[tool.normlint]\nselect = ['NL9']\n")
    assert [(f.path, f.code) for f in check_paths(["."]).findings] == [("pkg/shared.py", "NL900")]
