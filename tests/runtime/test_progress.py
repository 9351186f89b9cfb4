"""Stage progress: only on a terminal, only once an audit has run for a while, erased at the end."""

from __future__ import annotations

import io
import time

from click.testing import CliRunner

from normlint.cli import cli
from normlint.runtime.progress import Progress

from .runtime_fixtures import FIXTURES


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_long_audit_shows_its_stages_on_a_terminal():
    stream = Terminal()
    with Progress(stream, delay=0.05, interval=0.02) as progress:
        progress.stage("loading the model")
        time.sleep(0.15)
        progress.stage("forward with probes")
        time.sleep(0.05)
    text = stream.getvalue()
    assert "normlint: loading the model (" in text and "normlint: forward with probes (" in text
    assert text.endswith("\r\x1b[K")  # the line is erased at the end


def test_short_audit_prints_nothing():
    stream = Terminal()
    with Progress(stream, delay=5) as progress:
        progress.stage("loading the model")
    assert stream.getvalue() == ""


def test_nothing_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    with Progress(stream, delay=0, interval=0.01) as progress:
        progress.stage("loading the model")
        time.sleep(0.05)
    assert stream.getvalue() == ""


def test_cli_output_has_no_progress_when_piped():
    result = CliRunner().invoke(cli, ["audit", f"{FIXTURES}/nl303_residual_rebound_to_normalized.py:bad"])
    assert "\r" not in result.output and "normlint: forward" not in result.output
