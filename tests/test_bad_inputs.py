"""Bad input of every kind the static side meets: each gives its NL900 or its one-line error,
exit codes CI can trust (1: findings, 2: an error, never a traceback), and nothing is lost
(the other files are still checked).

The audit-side reproducers of the same issue (#14) are in tests/runtime/test_state_restoration.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from normlint.cli import cli
from normlint.static import engine, reading
from normlint.suppress import MALFORMED, Suppressions

from .helpers import BROKEN, CLEAN, run_normlint, write

# A file with exactly one finding (NL303 on line 5), whatever else the rules learn.
ONE_FINDING = """\
import torch.nn as nn

class Layer(nn.Module):
    def forward(self, src):
        src = self.norm1(src)
        src = src + self.attn(src)
        return src

    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.Linear(d, d)
"""


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "ok.py", ONE_FINDING)
    return tmp_path


def _check(runner, *args):
    result = runner.invoke(cli, ["check", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def _one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("normlint: ") and needle in result.stderr, result.stderr


def _findings(result) -> list[tuple[str, str]]:
    """(path, code) of every finding line of the concise output."""
    out = []
    for line in result.stdout.splitlines():
        if ": NL" in line:
            where, rest = line.split(": ", 1)
            out.append((where.split(":")[0], rest.split()[0]))
    return out


def test_finding_exits_one(runner, tree):
    result = _check(runner, "ok.py")
    assert result.exit_code == 1 and _findings(result) == [("ok.py", "NL303")]


# ---- file names and file kinds ------------------------------------------------------------

def _non_utf8_name(root: Path) -> Path:
    name = os.fsdecode(b"\xff.py")
    try:
        path = write(root, name, ONE_FINDING)
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take file names that are not UTF-8")
    return path


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("fmt", ["concise", "full", "json", "sarif", "github", "junit"])
def test_file_name_that_is_not_utf8(runner, tree, cache, fmt):
    _non_utf8_name(tree)
    args = [".", "--output-format", fmt, "-o", "report.out"] + ([] if cache else ["--no-cache"])
    result = _check(runner, *args)
    assert result.exit_code == 1, result.output
    text = (tree / "report.out").read_text(encoding="utf-8")   # valid UTF-8 whatever the name
    if fmt == "sarif":
        uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                for r in json.loads(text)["runs"][0]["results"]]
        assert sorted(uris) == ["%FF.py", "ok.py"]
    elif fmt == "json":
        assert sorted(d["path"] for d in json.loads(text)) == ["\\xff.py", "ok.py"]
    else:
        assert "\\xff.py" in text and "ok.py" in text
    # and on stdout
    assert "\\xff.py:5:15: NL303" in _check(runner, ".", *([] if cache else ["--no-cache"])).stdout


@pytest.mark.parametrize("fmt", ["concise", "full", "json", "sarif", "github", "junit"])
def test_file_name_with_control_characters(runner, tree, fmt):
    """`a\\x01b.py` and a name with a newline: junit stays well-formed XML (XML 1.0 has no
    \\x01) and text output keeps one finding per line; the characters show as \\xNN."""
    try:
        write(tree, "a\x01b.py", ONE_FINDING)
        write(tree, "new\nline.py", ONE_FINDING)
    except OSError:
        pytest.skip("this file system does not take control characters in file names")
    result = _check(runner, ".", "--no-cache", "--output-format", fmt)
    assert result.exit_code == 1, result.output
    out = result.stdout
    if fmt == "junit":
        cases = ET.fromstring(out.split("\n", 1)[1]).findall("./testsuite/testcase")
        assert sorted(c.get("file") for c in cases) == ["a\\x01b.py", "new\\x0aline.py", "ok.py"]
    elif fmt == "sarif":
        uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                for r in json.loads(out)["runs"][0]["results"]]
        assert sorted(uris) == ["a%01b.py", "new%0Aline.py", "ok.py"]
    elif fmt == "json":
        assert sorted(d["path"] for d in json.loads(out)) == ["a\\x01b.py", "new\\x0aline.py", "ok.py"]
    elif fmt == "concise":
        assert [line.split(":")[0] for line in out.splitlines()[:3]] == ["a\\x01b.py", "new\\x0aline.py", "ok.py"]
    else:
        assert "a\\x01b.py" in out and "new\\x0aline.py" in out and "\x01" not in out


def test_file_symlink_loop_inside_a_folder(runner, tree):
    write(tree, "t/ok.py", ONE_FINDING)
    os.symlink("x.py", tree / "t" / "x.py")     # t/x.py -> t/x.py
    result = _check(runner, "t")
    assert result.exit_code == 1
    assert sorted(_findings(result)) == [("t/ok.py", "NL303"), ("t/x.py", "NL900")]
    assert "t/x.py:1:1: NL900 [error] cannot read file: Too many levels of symbolic links" in result.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_never_hangs_in_a_folder_or_named(tmp_path):
    write(tmp_path, "pkg/ok.py", ONE_FINDING)
    os.mkfifo(tmp_path / "pkg" / "x.py")
    os.mkfifo(tmp_path / "named.py")
    # A subprocess with a timeout: a hang fails the test instead of hanging the suite.
    proc = run_normlint("check", "--no-cache", "pkg", "named.py", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    assert "pkg/x.py:1:1: NL900 [error] cannot read file: not a regular file (a FIFO)" in proc.stdout
    assert "named.py:1:1: NL900 [error] cannot read file: not a regular file (a FIFO)" in proc.stdout
    assert "pkg/ok.py:5:15: NL303" in proc.stdout


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_symlink_to_dev_zero_is_read_with_a_bound(tmp_path):
    os.symlink("/dev/zero", tmp_path / "z.py")
    write(tmp_path, "ok.py", ONE_FINDING)
    proc = run_normlint("check", "--no-cache", "z.py", "ok.py", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "z.py:1:1: NL900 [error] cannot read file: not a regular file (a character device)" in proc.stdout
    assert "ok.py:5:15: NL303" in proc.stdout


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="no procfs")
def test_a_regular_file_that_reports_size_zero_is_still_bounded(monkeypatch):
    # procfs files say st_size == 0 and have content: only a bounded read stops at the limit.
    assert os.stat("/proc/self/maps").st_size == 0
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 16)
    result = reading.read_source(Path("/proc/self/maps"), "maps.py")
    assert result.code == "NL900" and "too large" in result.message


def test_read_regular_file_reads_at_most_limit_plus_one(tmp_path):
    f = write(tmp_path, "big.py", b"x" * 1000)
    assert len(reading.read_regular_file(f, 10)) == 11
    assert reading.read_regular_file(f, 5000) == b"x" * 1000


def _unreadable_run() -> tuple[int, str]:
    """``normlint check ok.py unreadable.py`` as a user who may not read unreadable.py.

    As a normal user, chmod 000 is enough. As root (who reads everything) the check runs in
    a forked child that first drops to uid/gid 65534 (nobody); the normlint modules are
    imported beforehand, since nobody cannot read the interpreter's own directories here.
    """
    root = Path(tempfile.mkdtemp(prefix="normlint-perm-"))
    try:
        root.chmod(0o755)
        write(root, "ok.py", ONE_FINDING).chmod(0o644)
        write(root, "unreadable.py", CLEAN).chmod(0o000)
        args = ["check", "--no-cache", "ok.py", "unreadable.py"]
        cwd = os.getcwd()
        os.chdir(root)
        try:
            CliRunner().invoke(cli, args)          # imports everything the run needs
            if os.geteuid() != 0:
                result = CliRunner().invoke(cli, args)
                return result.exit_code, result.output
            if not hasattr(os, "fork"):
                pytest.skip("running as root without fork: cannot drop privileges")
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:   # the child: drop privileges, run, report, exit without cleanup
                try:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    result = CliRunner().invoke(cli, args)
                    os.write(write_end, json.dumps([result.exit_code, result.output]).encode())
                finally:
                    os._exit(0)
            os.close(write_end)
            with os.fdopen(read_end, "rb") as fh:
                data = fh.read()
            os.waitpid(pid, 0)
            if not data:
                pytest.skip("could not drop privileges to uid 65534")
            code, output = json.loads(data)
            return code, output
        finally:
            os.chdir(cwd)
    finally:
        (root / "unreadable.py").chmod(0o644)
        shutil.rmtree(root)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unreadable_file_named_explicitly_is_nl900_and_the_rest_is_checked():
    code, output = _unreadable_run()
    assert code == 1, output
    assert "unreadable.py:1:1: NL900 [error] cannot read file: Permission denied" in output
    assert "ok.py:5:15: NL303" in output
    assert "Traceback" not in output and "Usage:" not in output


# ---- patterns and configuration ----------------------------------------------------------

def test_invalid_gitignore_lines_are_skipped_like_git_does(runner, tree):
    (tree / ".git").mkdir()
    write(tree, ".gitignore", "\\\n!\nignored.py\n")
    write(tree, "ignored.py", BROKEN)
    result = _check(runner, ".")
    assert result.exit_code == 1 and _findings(result) == [("ok.py", "NL303")]


@pytest.mark.parametrize("key", ["exclude", "extend-exclude"])
@pytest.mark.parametrize("pattern", ["!", "\\\\"])
def test_invalid_exclude_pattern_is_a_config_error(runner, tree, key, pattern):
    write(tree, "pyproject.toml", f'[tool.normlint]\n{key} = ["{pattern}"]\n')
    _one_line_error(_check(runner, "."), f"pyproject.toml: '{key}': invalid pattern")


@pytest.mark.parametrize("pattern", ["!", "\\\\"])
def test_invalid_per_file_ignores_glob_is_a_config_error(runner, tree, pattern):
    write(tree, "pyproject.toml", f'[tool.normlint.per-file-ignores]\n"{pattern}" = ["NL3"]\n')
    _one_line_error(_check(runner, "."), "pyproject.toml: 'per-file-ignores': invalid pattern")


def test_invalid_pattern_through_the_api_is_a_normlint_error(tree):
    from normlint import NormlintError, check_paths
    from normlint.config import Config

    with pytest.raises(NormlintError, match="exclude: invalid pattern '!'"):
        check_paths(["."], config=Config(extend_exclude=("!",)))
    with pytest.raises(NormlintError, match="per-file-ignores: invalid pattern"):
        check_paths(["."], config=Config(per_file_ignores=(("!", ("NL3",)),)))


@pytest.mark.parametrize("name, body, needle", [
    ("pyproject.toml", b"[tool.normlint]\nselect = ['NL3']\n# \xff\n", "not UTF-8"),
    ("pyproject.toml", b"tool = 1\n", "'tool' must be a table, got an integer"),
    ("pyproject.toml", b"[tool]\nnormlint = 5\n", "[tool.normlint] must be a table, got an integer"),
    ("normlint.toml", b'tool = "normlint"\n', "unknown key 'tool' at the top level"),
    ("pyproject.toml", b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    ("normlint.toml", b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
])
def test_config_of_the_wrong_shape_is_a_config_error_naming_the_file(runner, tree, name, body, needle):
    write(tree, name, body)
    result = _check(runner, "ok.py")
    _one_line_error(result, needle)
    assert str(tree / name) in result.stderr


@pytest.mark.parametrize("content", ["[]", "null", '{"k": 1}', '{"k": [1, 2, 3]}', "[[", "{}" * 3,
                                     '{"k": ["m", [[["a"], [1]]], true]}'])
def test_damaged_facts_file_is_a_miss_not_a_crash(runner, tree, content):
    write(tree, "sub/b.py", ONE_FINDING)
    clean = _check(runner, ".")
    assert clean.exit_code == 1
    (facts,) = (tree / ".normlint_cache").rglob("facts.json")
    facts.write_text(content)
    damaged = _check(runner, ".")
    assert (damaged.exit_code, damaged.output) == (clean.exit_code, clean.output)
    assert _check(runner, ".").output == clean.output     # rewritten, readable again


@pytest.mark.parametrize("entry", [
    None, {}, [1], "[[",
    [{"code": "NL303"}],
    [{"code": 1, "name": "x", "severity": "error", "engine": "static", "path": "ok.py",
      "line": 1, "column": 1, "message": "m"}],
    [{"code": "NL303", "name": "x", "severity": "fatal", "engine": "static", "path": "ok.py",
      "line": 1, "column": 1, "message": "m"}],
    [{"code": "NL303", "name": "x", "severity": "error", "engine": "static", "path": "ok.py",
      "line": "1", "column": 1, "message": "m"}],
])
def test_cache_entry_of_the_wrong_shape_is_a_miss(runner, tree, entry):
    clean = _check(runner, ".")
    for f in (tree / ".normlint_cache").rglob("*.json"):
        if f.name != "facts.json":
            f.write_text(json.dumps(entry))
    assert _check(runner, ".").output == clean.output


# ---- exit codes and usage ----------------------------------------------------------------

def test_internal_error_exits_two_on_one_line(runner, tree, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyError("boom\nsecond line")

    monkeypatch.setattr(engine, "run_files", crash)
    monkeypatch.delenv("NORMLINT_DEBUG", raising=False)
    result = runner.invoke(cli, ["check", "--no-cache", "ok.py"])
    _one_line_error(result, "normlint: internal error: KeyError: 'boom")
    assert "NORMLINT_DEBUG=1" in result.stderr
    monkeypatch.setenv("NORMLINT_DEBUG", "1")
    verbose = runner.invoke(cli, ["check", "--no-cache", "ok.py"])
    assert verbose.exit_code == 2 and "Traceback" in verbose.stderr


@pytest.mark.parametrize("flag", ["--select", "--extend-select", "--ignore"])
@pytest.mark.parametrize("value", ["", ",,,", " , "])
def test_empty_selection_is_a_usage_error(runner, tree, flag, value):
    result = _check(runner, "ok.py", flag, value)
    _one_line_error(result, f"{flag} needs at least one rule code")


def test_empty_selection_is_a_usage_error_for_audit_too(runner, tree):
    result = runner.invoke(cli, ["audit", "no_such_target.py:build", "--select", ""])
    _one_line_error(result, "--select needs at least one rule code")


def test_jobs_is_capped_at_the_cores(monkeypatch):
    seen = []

    class Pool:
        def __init__(self, max_workers, mp_context):
            seen.append(max_workers)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            from concurrent.futures import Future
            future = Future()
            future.set_result(fn(*args))
            return future

        def map(self, fn, items, chunksize=1):
            return [fn(item) for item in items]

    monkeypatch.setattr(engine, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(engine, "available_cores", lambda: 2)
    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)
    from normlint import check_paths

    from .conftest import FIXTURES
    check_paths([FIXTURES], jobs=64)
    # both passes (the per-file import scan and the analysis) ran in a pool of 2
    assert seen == [2, 2]


# ---- noqa comments that are not what they look like ---------------------------------------

@pytest.mark.parametrize("comment, suppressed, malformed", [
    ("# noqa:", set(), True),
    ("# noqa: NL", set(), True),
    ("# noqa:NL303NL101", set(), True),
    ("# noqa : NL303", {"NL303"}, False),
    ("# noqa: ,NL303", {"NL303"}, False),
    ("# noqa\uff1aNL303", {"NL303"}, False),        # a full-width colon
    ("# noqa NL303", {"NL303"}, False),             # a list that lost its colon
    ("# noqa: NL303 because of X", {"NL303"}, False),
    ("# noqa: NL303, NL", {"NL303"}, False),
    ("# noqa", {"NL303", "NL101"}, False),          # bare: every code, as in flake8 and ruff
    ("# noqa  because of X", {"NL303", "NL101"}, False),
    ("# noqa: E501", set(), False),                 # another linter's code
    ("# noqa: 401", set(), False),                  # another linter's typo (torchvision)
    ("# normlint: noqa: 401", set(), True),         # ours, and names no code
])
def test_malformed_noqa_never_suppresses_every_code(comment, suppressed, malformed):
    from normlint.findings import Engine, Finding, Severity

    sup = Suppressions.parse(f"x = 1  {comment}\n")
    got = {code for code in ("NL303", "NL101")
           if sup.suppresses(Finding(code, "x", Severity.ERROR, Engine.STATIC, "m.py", 1, 1, "m"))}
    assert got == suppressed
    reports = sup.unused("m.py", frozenset({"NL901"}))
    assert [f.message for f in reports] == ([MALFORMED.format(got=comment)] if malformed else [])


@pytest.mark.parametrize("comment", ["# noqa:", "# noqa: NL", "# noqa : NL", "# noqa\uff1a"])
def test_malformed_noqa_in_a_run_reports_nl901_and_keeps_the_finding(runner, tree, comment):
    write(tree, "ok.py", ONE_FINDING.replace("src = self.norm1(src)", f"src = self.norm1(src)  {comment}"))
    result = _check(runner, "ok.py")
    assert result.exit_code == 1
    assert _findings(result) == [("ok.py", "NL303"), ("ok.py", "NL901")]
    assert "malformed `noqa` directive" in result.stdout


def test_malformed_file_level_noqa_does_not_skip_the_file(runner, tree):
    write(tree, "ok.py", "# normlint: noqa: NL\n" + ONE_FINDING)
    result = _check(runner, "ok.py")
    assert _findings(result) == [("ok.py", "NL901"), ("ok.py", "NL303")]
    write(tree, "ok.py", "# normlint: noqa\n" + ONE_FINDING)
    assert _check(runner, "ok.py").exit_code == 0


def test_exit_codes_do_not_depend_on_permissions_of_the_cache(runner, tree):
    blocker = tree / ".normlint_cache"
    blocker.write_text("a file where the cache directory should be")
    blocker.chmod(stat.S_IRUSR)
    assert _check(runner, "ok.py").exit_code == 1


def test_compiler_warnings_about_checked_code_do_not_reach_stderr():
    # Python 3.12+ warns on `"\d"` while parsing (3.11: DeprecationWarning): the checked
    # code's business, not a line of normlint's output.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = reading.parse_source('import re\nx = re.compile("\\d")\ny = 1()\n', "w.py")
    assert parsed.tree is not None


def test_a_string_where_codes_are_expected_is_one_selector_not_its_letters(tree):
    """`select="NL3"` would otherwise be iterated letter by letter ("unknown rule code 'N'"),
    and `exclude="*.py"` would exclude everything by its '*'."""
    import normlint

    text = ONE_FINDING
    assert [f.code for f in normlint.check_source(text, select="NL3")] == ["NL303"]
    assert normlint.check_source(text, ignore="NL303,NL9") == []
    assert [f.code for f in normlint.check_source(text, select="NL1", extend_select="NL303")] == ["NL303"]
    assert normlint.fix_source(text, unsafe_fixes=True, fixable="NL4").applied == []
    assert normlint.check_paths(".", exclude="other.py").files_checked == normlint.check_paths(".").files_checked


@pytest.mark.parametrize("call, needle", [
    (lambda n: n.check_source(b"import torch\n"), "text must be a str"),
    (lambda n: n.check_source(None), "text must be a str"),
    (lambda n: n.fix_source(b"import torch\n"), "text must be a str"),
    (lambda n: n.check_source("x = 1\n", config={"select": ["NL3"]}), "config must be a normlint.config.Config"),
    (lambda n: n.check_paths(["."], config={"select": ["NL3"]}), "config must be a normlint.config.Config"),
    (lambda n: n.check_paths([b"."]), "paths must be str or os.PathLike"),
    (lambda n: n.check_paths(["."], jobs="2"), "jobs must be a positive int"),
    (lambda n: n.check_paths(["."], jobs=0), "jobs must be a positive int"),
    (lambda n: n.check_paths([], documents={"x.py": 5}), "documents must map a path to str or bytes"),
    (lambda n: n.check_source("x = 1\n", select=[5]), "select must be codes"),
])
def test_api_misuse_is_a_normlint_error_naming_the_argument(tree, call, needle):
    import normlint

    with pytest.raises(normlint.NormlintError, match=needle):
        call(normlint)


def test_check_paths_defaults_to_the_current_directory(tree):
    import normlint

    assert normlint.check_paths().files_checked == normlint.check_paths(["."]).files_checked > 0
