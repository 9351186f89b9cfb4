"""Audit findings obey the project like check's: config, per-file-ignores, noqa; both engines
point at the same line; a norm in a container points where the container was built."""

import ast
import importlib
import os
import sys
import textwrap

import pytest
from click.testing import CliRunner

import normlint
from normlint.cli import cli
from normlint.registry import RULES
from normlint.runtime.cli import audit_command

from .runtime_fixtures import FIXTURES, load_fixture, rule_fixture_names

cli.add_command(audit_command)

MODEL = textwrap.dedent('''\
    import torch
    from torch import nn


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(8)
            self.ff1, self.ff2 = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            x = x + self.ff1(self.norm(x))
            return x + self.ff2(self.norm(x)){noqa}


    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.block = Block()
            self.final = nn.LayerNorm(8)

        def forward(self, input_ids):
            return self.final(self.block(self.embed(input_ids)))


    def make():
        torch.manual_seed(0)
        return Model().eval(), torch.randint(0, 20, (2, 6))
    ''')
REUSE_LINE = 13   # the second call of self.norm: where check and audit report NL304


def _project(tmp_path, noqa: str = "", config: str = ""):
    (tmp_path / "model.py").write_text(MODEL.format(noqa=noqa))
    if config:
        (tmp_path / "pyproject.toml").write_text(config)
    return tmp_path


def _import(folder, name: str = "model"):
    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop(name, None)
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def test_audit_reports_at_the_line_check_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(_project(tmp_path))
    static = normlint.check_paths(["model.py"]).findings
    model, inputs = _import(tmp_path).make()
    runtime = normlint.audit(model, inputs).findings
    assert [(f.code, f.line) for f in static] == [("NL304", REUSE_LINE)]
    assert [(f.code, f.path, f.line) for f in runtime] == [("NL304", "model.py", REUSE_LINE)]


def test_noqa_suppresses_the_audit_finding(tmp_path, monkeypatch):
    monkeypatch.chdir(_project(tmp_path, noqa="  # noqa: NL304"))
    model, inputs = _import(tmp_path).make()
    assert normlint.audit(model, inputs).findings == []


GATED = textwrap.dedent('''\
    import torch
    from torch import nn


    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)
            self.norm = nn.LayerNorm(8)  # noqa: NL306
            self.use_norm = False

        def forward(self, x):
            x = self.proj(x)
            return self.norm(x) if self.use_norm else x


    def make():
        return Gated().eval(), torch.randn(2, 8)
    ''')


def test_a_noqa_the_audit_used_is_not_unused_for_check(tmp_path, monkeypatch):
    """check sees the norm used (its forward names it) and would call the noqa unused; the
    audit sees it never ran (NL306, info) and uses the noqa, which check then respects."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gated.py").write_text(GATED)
    (tmp_path / "pyproject.toml").write_text("[tool.normlint]\nextend-select = ['NL901']\n")
    runner = CliRunner()
    before = runner.invoke(cli, ["check", "gated.py", "--no-cache"])
    assert "NL901" in before.output, before.output
    model, inputs = _import(tmp_path, "gated").make()
    assert normlint.audit(model, inputs).findings == []      # NL306 (info), suppressed
    after = runner.invoke(cli, ["check", "gated.py", "--no-cache"])
    assert "NL901" not in after.output, after.output
    # Once the line no longer carries the noqa, the record does not exempt anything.
    (tmp_path / "gated.py").write_text(GATED.replace("  # noqa: NL306", "  # noqa: NL305"))
    assert "NL901" in runner.invoke(cli, ["check", "gated.py", "--no-cache"]).output


def test_per_file_ignores_and_selection_apply(tmp_path, monkeypatch):
    project = _project(tmp_path, config="[tool.normlint]\n[tool.normlint.per-file-ignores]\n'model.py' = ['NL304']\n")
    monkeypatch.chdir(project)
    model, inputs = _import(tmp_path).make()
    assert normlint.audit(model, inputs).findings == []
    assert [f.code for f in normlint.audit(model, inputs, config=False).findings] == ["NL304"]


def test_config_is_discovered_from_the_model_source_not_the_cwd(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    project.mkdir()
    _project(project, config="[tool.normlint]\nignore = ['NL304']\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    model, inputs = _import(project).make()
    assert normlint.audit(model, inputs).findings == []
    # The pytest plugin's assertion reads it the same way.
    from normlint.testing import assert_normalization_ok
    assert assert_normalization_ok(model, inputs).findings == []


def test_a_config_edited_between_two_audits_applies_to_the_second(tmp_path, monkeypatch):
    """No process-wide memo: the second audit reads the edited file even when the edit
    keeps its size and mtime (two writes within the file system's clock tick do)."""
    project = _project(tmp_path, config="[tool.normlint]\nignore = ['NL304']\n")
    monkeypatch.chdir(project)
    model, inputs = _import(tmp_path).make()
    assert normlint.audit(model, inputs).findings == []
    pyproject = project / "pyproject.toml"
    before = pyproject.stat()
    pyproject.write_text("[tool.normlint]\nignore = ['NL305']\n")
    os.utime(pyproject, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert pyproject.stat().st_size == before.st_size
    assert [f.code for f in normlint.audit(model, inputs).findings] == ["NL304"]


def test_a_held_discovery_remembers_until_a_config_file_changes(tmp_path):
    from normlint.runtime.project import ConfigDiscovery

    (tmp_path / "pyproject.toml").write_text("[tool.normlint]\nignore = ['NL304']\n")
    sub = tmp_path / "pkg"
    sub.mkdir()
    discovery = ConfigDiscovery()
    first = discovery.in_folder(sub)
    assert first.ignore == ("NL304",)
    assert discovery.in_folder(sub) is first                    # remembered
    assert ConfigDiscovery().in_folder(sub) is not first        # another holder reads again
    (tmp_path / "pyproject.toml").write_text("[tool.normlint]\nignore = ['NL304', 'NL305']\n")
    assert discovery.in_folder(sub).ignore == ("NL304", "NL305")  # the file changed
    (sub / "normlint.toml").write_text("ignore = ['NL306']\n")
    assert discovery.in_folder(sub).ignore == ("NL306",)         # a nearer file appeared
    (sub / "normlint.toml").unlink()
    (tmp_path / "pyproject.toml").unlink()
    assert discovery.in_folder(sub) is None


def test_cli_reads_config_and_noqa(tmp_path, monkeypatch):
    monkeypatch.chdir(_project(tmp_path, noqa="  # noqa: NL304"))
    result = CliRunner().invoke(cli, ["audit", "model.py:make"])
    assert result.exit_code == 0, result.output


def test_norm_in_a_sequential_points_where_the_sequential_was_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seq.py").write_text(textwrap.dedent('''\
        import torch
        from torch import nn


        def make():
            model = nn.Sequential(
                nn.Linear(8, 8),
                nn.LayerNorm(8, eps=1.0),
            )
            return model.eval(), torch.randn(2, 4, 8) * 1e-2
        '''))
    result = CliRunner().invoke(cli, ["audit", "seq.py:make", "--output-format", "concise"])
    assert "seq.py:8:" in result.output and "NL406" in result.output, result.output


def _both_engines():
    for name in rule_fixture_names():
        module = load_fixture(name)
        for attr in sorted(dir(module)):
            if attr.startswith("bad"):
                yield pytest.param(name, attr, id=f"{name}:{attr}")


BOTH = {r.code for r in RULES if set(r.engines) == {"static", "runtime"}}


def _top_scope(tree, line: int) -> str:
    """The top-level class or function a line belongs to: one bug lives in one of them."""
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.lineno <= line <= node.end_lineno:
            return node.name
    return ""


def _agreement(name, factory):
    """(code, runtime line, static lines) for each runtime finding of a rule both engines
    have, in a class where check reports that rule too."""
    path = FIXTURES / f"{name}.py"
    text = path.read_text()
    tree = ast.parse(text)
    static = {(f.code, _top_scope(tree, f.line), f.line)
              for f in normlint.check_source(text, path=os.path.relpath(path), select=["ALL"])}
    made = getattr(load_fixture(name), factory)()
    kwargs = made[2] if len(made) > 2 else {}
    runtime = {(f.code, _top_scope(tree, f.line), f.line)
               for f in normlint.audit(made[0], made[1], config=False, **kwargs).findings
               if f.code in BOTH and os.path.exists(f.path) and os.path.samefile(f.path, path)}
    pairs = []
    for code, scope, line in runtime:
        static_lines = {ln for c, sc, ln in static if (c, sc) == (code, scope)}
        if static_lines:
            pairs.append((code, line, static_lines))
    return pairs


@pytest.mark.parametrize("name, factory", list(_both_engines()))
def test_both_engines_point_at_the_same_line(name, factory):
    for code, line, static_lines in _agreement(name, factory):
        assert line in static_lines, (code, line, static_lines)


def test_the_engines_overlap_on_the_fixtures():
    """The comparison above is not vacuous: both engines report these rules on the same
    bugs of the fixture files."""
    codes = {code for name, factory in [p.values for p in _both_engines()]
             for code, _, _ in _agreement(name, factory)}
    assert {"NL101", "NL201", "NL204", "NL304", "NL306"} <= codes, codes
