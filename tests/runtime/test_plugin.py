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
