"""The pytest11 plugin's fixture and normlint.testing.assert_normalization_ok."""

import pytest

from normlint.testing import assert_normalization_ok

from .runtime_fixtures import load_fixture


def test_fixture_is_provided_by_the_entry_point(request):
    check = request.getfixturevalue("normlint_audit")
    model, inputs = load_fixture("nl302_pre_norm_stack_missing_final_norm").good()
    report = check(model, inputs)
    assert report.findings == []


def test_failure_shows_table_and_findings():
    model, inputs = load_fixture("nl302_pre_norm_stack_missing_final_norm").bad()
    with pytest.raises(AssertionError) as info:
        assert_normalization_ok(model, inputs)
    text = str(info.value)
    assert "reduced axes" in text and "blocks.0.norm1" in text and "pre" in text
    assert "NL302 [warning]" in text


def test_ignore_and_info_findings_pass():
    model, inputs = load_fixture("nl302_pre_norm_stack_missing_final_norm").bad()
    assert assert_normalization_ok(model, inputs, ignore=["NL302"]).findings == []
    model, inputs = load_fixture("nl101_batchnorm_in_sequence_model").good_conv_module()
    report = assert_normalization_ok(model, inputs)
    assert [f.severity.value for f in report.findings] == ["info"]


def test_plugin_and_testing_modules_do_not_import_torch():
    import subprocess
    import sys
    code = "import sys, normlint.pytest_plugin, normlint.testing, normlint.runtime, normlint.runtime.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


PROJECT_TEST = '''\
import torch
from torch import nn


def _model():
    return nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8, eps=1.0)).eval(), torch.randn(2, 4, 8) * 1e-2


def test_reads_the_project_config(normlint_audit):
    normlint_audit(*_model())


def test_without_config_the_eps_is_a_warning(normlint_audit):
    normlint_audit(*_model(), config=False)
'''


def test_fixture_reads_the_project_config_from_pytests_rootdir(tmp_path):
    """Run from outside the project on a library model (torch's Sequential, whose source is
    not the project's): the fixture still applies the project's [tool.normlint]."""
    import subprocess
    import sys

    project = tmp_path / "proj"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        "[tool.normlint]\nignore = ['NL406']\n\n[tool.pytest.ini_options]\naddopts = ''\n")
    (project / "tests" / "test_model.py").write_text(PROJECT_TEST)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "proj/tests", "-o", "console_output_style=classic"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 failed, 1 passed" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]
    assert "NL406 [warning]" in out.stdout and "test_without_config_the_eps_is_a_warning" in out.stdout
