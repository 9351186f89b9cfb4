"""Jupyter notebooks, written by nbformat as Jupyter writes them: checked by default, code
cells concatenated with IPython syntax masked, findings at `nb.ipynb:cell N:line:col` (and
at the right line of the JSON for GitHub and SARIF), noqa in cells, NL900 for anything
that is not a readable notebook."""

from __future__ import annotations

import json

import pytest

from normlint import check_paths
from normlint.report import render

from .helpers import run_normlint, write

nbformat = pytest.importorskip("nbformat")
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook  # noqa: E402

IMPORTS = "%matplotlib inline\nimport torch\nimport torch.nn as nn\n!pip install einops\nfiles = !ls\n"
# The PyTorch norm_first bug: the residual stream is rebound to the norm's output.
BLOCK = """\
class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Linear(d, d)

    def forward(self, x):
        x = self.norm1(x)
        x = x + self.attn(x)
        x = x + self.mlp(self.norm2(x))
        return x"""
TIMING = "%%time\nblock = Block(8)\nblock?\nout = block(torch.randn(2, 3, 8))"


def _notebook(path, *cells, language="python"):
    nb = new_notebook()
    nb.metadata["language_info"] = {"name": language}
    nb.cells = list(cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def nb(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return _notebook(tmp_path / "model.ipynb", new_markdown_cell("# A transformer block"),
                     new_code_cell(IMPORTS), new_code_cell(BLOCK), new_code_cell(TIMING))


def _where(report):
    return [(f.path, f.cell, f.line, f.column, f.code) for f in report.findings]


def test_findings_are_located_in_their_cell(nb):
    assert _where(check_paths(["."])) == [("model.ipynb", 3, 10, 13, "NL303")]


def test_text_output_names_the_cell(nb, tmp_path):
    proc = run_normlint("check", "model.ipynb", "--no-cache", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("model.ipynb:cell 3:10:13: NL303 [error] `Block.forward` rebinds `x`")
    full = run_normlint("check", "model.ipynb", "--no-cache", "--output-format", "full", cwd=tmp_path).stdout
    assert "  --> model.ipynb:cell 3:10:13\n" in full
    assert "10 |         x = self.norm1(x)\n" in full


def test_json_sarif_and_github_locations(nb):
    finding = check_paths(["model.ipynb"]).findings[0]
    data = json.loads(render([finding], "json"))[0]
    assert (data["cell"], data["line"], data["column"]) == (3, 10, 13)
    # GitHub and SARIF show the file as stored: the line of the notebook's JSON that holds
    # the source line, and the column inside that JSON string
    raw = nb.read_text(encoding="utf-8").splitlines()
    line, column = finding.file_position
    assert raw[line - 1].strip().startswith('"        x = self.norm1(x)')
    assert raw[line - 1][column - 1:].startswith("self.norm1(x)")
    github = render([finding], "github")
    assert github.startswith(f"::error file=model.ipynb,line={line},col={column},title=NL303::"
                             "NL303 model.ipynb:cell 3:10:13: ")
    sarif = json.loads(render([finding], "sarif"))["runs"][0]["results"][0]
    assert sarif["locations"][0]["physicalLocation"]["region"] == {"startLine": line, "startColumn": column}
    assert sarif["properties"]["cell"] == 3 and sarif["properties"]["cellLine"] == 10


def test_position_in_json_with_escapes_and_non_ascii(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = BLOCK.replace("x = self.norm1(x)", 'y = "\\"é\\""; x = self.norm1(x)')
    path = _notebook(tmp_path / "nb.ipynb", new_code_cell("import torch.nn as nn"), new_code_cell(block))
    finding = check_paths(["nb.ipynb"]).findings[0]
    raw = path.read_text(encoding="utf-8").splitlines()
    line, column = finding.file_position
    assert raw[line - 1][column - 1:].startswith("self.norm1(x)")


def test_noqa_in_a_cell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quiet = BLOCK.replace("x = self.norm1(x)", "x = self.norm1(x)  # noqa: NL303")
    _notebook(tmp_path / "nb.ipynb", new_code_cell("import torch.nn as nn"), new_code_cell(quiet))
    assert check_paths(["nb.ipynb"]).findings == []
    stale = quiet.replace("# noqa: NL303", "# noqa: NL303, NL307")
    _notebook(tmp_path / "nb.ipynb", new_code_cell("import torch.nn as nn"), new_code_cell(stale))
    assert _where(check_paths(["nb.ipynb"])) == [("nb.ipynb", 2, 10, 28, "NL901")]


def test_a_broken_cell_is_nl900_and_the_other_cells_are_still_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _notebook(tmp_path / "nb.ipynb", new_code_cell("import torch.nn as nn"), new_code_cell("def f(:\n    pass"),
              new_code_cell(BLOCK))
    assert _where(check_paths(["nb.ipynb"])) == [("nb.ipynb", 2, 1, 7, "NL900"), ("nb.ipynb", 3, 10, 13, "NL303")]


def test_a_broken_cells_column_counts_characters(tmp_path, monkeypatch):
    # CPython reports the leading-zeros error at UTF-8 byte 18 of the line
    monkeypatch.chdir(tmp_path)
    _notebook(tmp_path / "nb.ipynb", new_code_cell("größe = 1; x = 01"))
    assert _where(check_paths(["nb.ipynb"])) == [("nb.ipynb", 1, 1, 16, "NL900")]


def test_cell_magics_that_are_not_python_are_skipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _notebook(tmp_path / "nb.ipynb", new_code_cell("%%bash\nfor f in *; do echo $f; done"),
              new_code_cell("%%writefile x.txt\nnot python at all ("), new_code_cell("  %time 1 + 1\n"),
              new_code_cell("import torch.nn as nn\nfor i in range(2):\n    %time nn.LayerNorm(4)\n    !echo \\\n      hi"))
    assert check_paths(["nb.ipynb"]).findings == []


def test_notebooks_are_found_in_directories_and_a_non_python_kernel_is_skipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _notebook(tmp_path / "a/py.ipynb", new_code_cell("import torch.nn as nn"), new_code_cell(BLOCK))
    _notebook(tmp_path / "a/r.ipynb", new_code_cell("x <- c(1, 2"), language="R")
    report = check_paths(["."])
    assert report.files_checked == 2
    assert _where(report) == [("a/py.ipynb", 2, 10, 13, "NL303")]


def test_a_notebook_sees_the_modules_beside_it(tmp_path, monkeypatch):
    from .test_cache_and_jobs import MODEL, PRE_NORM_BLOCK

    monkeypatch.chdir(tmp_path)
    write(tmp_path, "blocks.py", PRE_NORM_BLOCK)
    _notebook(tmp_path / "train.ipynb", new_code_cell("from blocks import Block"),
              new_code_cell(MODEL.replace("from .blocks import Block\n", "")))
    assert [(f.cell, f.code) for f in check_paths(["train.ipynb"]).findings] == [(2, "NL302")]


@pytest.mark.parametrize("content, message", [
    (b"{ not json", "notebook is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 3"),
    (b'{"cells": 3}', "not a Jupyter notebook: no list of `cells` at the top level"),
    (b"[1, 2]", "not a Jupyter notebook"),
    (b'{"worksheets": [], "nbformat": 3}', "nbformat 3 notebooks are not supported"),
    (b"\xff\xfe{}", "cannot decode as utf-8"),
    (b"", "notebook is not valid JSON"),
])
def test_a_malformed_notebook_is_nl900(tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "bad.ipynb", content)
    (finding,) = check_paths(["bad.ipynb"]).findings
    assert (finding.code, finding.path, finding.cell) == ("NL900", "bad.ipynb", None)
    assert message in finding.message


def test_a_cell_whose_source_is_not_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "odd.ipynb", json.dumps({"cells": [{"cell_type": "code", "source": 42},
                                                       {"cell_type": "code", "source": "import torch.nn as nn\n"},
                                                       "not a cell"], "metadata": {}}))
    assert [(f.code, f.cell) for f in check_paths(["odd.ipynb"]).findings] == [("NL900", 1)]


def test_a_malformed_notebook_in_the_cli(tmp_path):
    write(tmp_path, "bad.ipynb", b"{ not json")
    proc = run_normlint("check", ".", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.startswith("bad.ipynb:1:3: NL900 [error] notebook is not valid JSON")


def test_notebook_from_stdin(tmp_path, nb):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "normlint", "check", "-", "--stdin-filename", "x.ipynb",
                           "--no-cache"], input=nb.read_bytes(), cwd=tmp_path, capture_output=True, timeout=60)
    assert proc.stdout.decode().startswith("x.ipynb:cell 3:10:13: NL303")


def test_add_noqa_and_fix_say_that_notebooks_are_not_rewritten(nb, tmp_path):
    """Edits would have to rewrite the notebook's JSON: they are not offered, and
    --add-noqa says what it skipped instead of claiming there was nothing to do."""
    before = nb.read_bytes()
    proc = run_normlint("check", "model.ipynb", "--no-cache", "--add-noqa", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Added 0 noqa directives (1 line skipped: notebooks are not rewritten).\n"
    fix = run_normlint("check", "model.ipynb", "--no-cache", "--fix", "--unsafe-fixes", cwd=tmp_path)
    assert fix.returncode == 1 and "NL303" in fix.stdout
    assert nb.read_bytes() == before


def test_junit_points_at_the_line_of_the_notebook_file(nb):
    """Like github and sarif: a consumer that opens `file` at `line` sees the cell's line."""
    import xml.etree.ElementTree as ET

    finding = check_paths(["model.ipynb"]).findings[0]
    case = ET.fromstring(render([finding], "junit").split("\n", 1)[1]).find("./testsuite/testcase")
    assert case.get("file") == "model.ipynb" and case.get("line") == str(finding.file_position[0])
    assert "model.ipynb:cell 3:10:13" in case.get("name")
