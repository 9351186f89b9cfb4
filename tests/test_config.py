from __future__ import annotations

import pytest

from normlint import check_paths
from normlint.config import Config, load_config
from normlint.errors import ConfigError

from .helpers import BROKEN, write


def test_no_config_gives_defaults(tmp_path):
    cfg = load_config(cwd=tmp_path)
    assert cfg.select is None and cfg.source is None


def test_pyproject_found_walking_up(tmp_path):
    write(tmp_path, "pyproject.toml", "[tool.normlint]\nselect = ['NL3']\nignore = ['NL306']\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    cfg = load_config(cwd=sub)
    assert cfg.select == ("NL3",) and cfg.ignore == ("NL306",)
    assert cfg.root == tmp_path.resolve()


def test_pyproject_without_table_is_skipped(tmp_path):
    write(tmp_path, "pyproject.toml", "[tool.normlint]\nselect = ['NL1']\n")
    write(tmp_path, "inner/pyproject.toml", "[project]\nname = 'x'\n")
    assert load_config(cwd=tmp_path / "inner").select == ("NL1",)


def test_normlint_toml_wins_in_same_directory(tmp_path):
    write(tmp_path, "pyproject.toml", "[tool.normlint]\nselect = ['NL1']\n")
    write(tmp_path, "normlint.toml", "select = ['NL2']\n")
    assert load_config(cwd=tmp_path).select == ("NL2",)


def test_rule_options_are_typed(tmp_path):
    write(tmp_path, "normlint.toml", "[rules.NL301]\npost-norm-max-depth = 24\n")
    assert load_config(cwd=tmp_path).rule_options == {"NL301": {"post-norm-max-depth": 24}}


@pytest.mark.parametrize("body, needle", [
    ("selct = ['NL1']", "unknown key 'selct'"),
    ("select = 'NL1'", "'select' must be a list of strings"),
    ("select = ['NL777']", "'select': unknown rule code or prefix: 'NL777'"),
    ("[rules.NL301]\npost-norm-max-depth = 'deep'", "option 'post-norm-max-depth' of NL301 must be an integer, got str"),
    ("[rules.NL301]\ndepth = 3", "unknown option 'depth' for NL301"),
    ("[rules.NL999]\nx = 1", "unknown rule 'NL999'"),
    ("[per-file-ignores]\n'tests/*' = 'NL1'", "'per-file-ignores.tests/*' must be a list of strings"),
    ("select = [", "invalid TOML"),
])
def test_bad_config_names_the_key(tmp_path, body, needle):
    write(tmp_path, "normlint.toml", body + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)



@pytest.mark.parametrize("name, body, message", [
    ("normlint.toml", 'tool = "normlint"',
     "unknown key 'tool' at the top level (normlint.toml holds [tool.normlint]'s keys there)"),
    ("normlint.toml", "[rules.NL999]\nx = 1", "unknown rule 'NL999' in [rules]"),
    ("normlint.toml", "[rules]\nNL301 = 3", "[rules.NL301] must be a table"),
    ("normlint.toml", "[tool.normlint]\nselct = []", "unknown key 'selct' in [tool.normlint]"),
    ("pyproject.toml", "[tool.normlint]\nselct = []", "unknown key 'selct' in [tool.normlint]"),
    ("pyproject.toml", "[tool.normlint.rules.NL999]\nx = 1", "unknown rule 'NL999' in [tool.normlint.rules]"),
])
def test_config_errors_name_the_table_as_the_file_spells_it(tmp_path, name, body, message):
    # a normlint.toml holds the keys at its top level: "[tool.normlint]" would send the
    # user looking for a table the file does not have
    write(tmp_path, name, body + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path)
    assert str(exc.value) == f"{tmp_path / name}: {message}"


def test_explicit_missing_config(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_cli_flags_win_over_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pyproject.toml", "[tool.normlint]\nselect = ['NL3']\n")
    write(tmp_path, "bad.py", BROKEN)
    assert check_paths(["."]).findings == []                       # NL900 not selected by the file
    assert [f.code for f in check_paths(["."], select=["NL9"]).findings] == ["NL900"]


def test_per_file_ignores_and_excludes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pyproject.toml",
          "[tool.normlint]\nextend-exclude = ['generated']\n[tool.normlint.per-file-ignores]\n'legacy/*.py' = ['NL9']\n")
    write(tmp_path, "legacy/old.py", BROKEN)
    write(tmp_path, "generated/gen.py", BROKEN)
    write(tmp_path, "src/new.py", BROKEN)
    paths = [f.path for f in check_paths(["."]).findings]
    assert paths == ["src/new.py"]
    # a path named explicitly is always checked, even when excluded
    assert [f.path for f in check_paths(["generated/gen.py"]).findings] == ["generated/gen.py"]


def test_exclude_replaces_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "build/x.py", BROKEN)
    assert check_paths(["."]).findings == []
    write(tmp_path, "normlint.toml", "exclude = []\n")
    assert [f.path for f in check_paths(["."]).findings] == ["build/x.py"]


def test_config_object_api():
    assert Config().with_overrides(select=None).select is None
    assert Config().with_overrides(select=("NL1",)).select == ("NL1",)
