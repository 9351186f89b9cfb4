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


def test_what_the_users_code_prints_clears_the_progress_line_first():
    """A factory or forward that prints while the line is shown must not leave
    `normlint: loading the model (4.0 s)factory says hi` in the scrollback."""
    stream = Terminal()
    with Progress(stream, delay=0.0, interval=0.01) as progress:
        progress.stage("loading the model")
        time.sleep(0.05)
        progress.writer.write("factory says")
        time.sleep(0.05)            # no redraw over a line the user's code has not ended
        progress.writer.write(" hi\n")
        time.sleep(0.05)
    text = stream.getvalue()
    assert "\r\x1b[Kfactory says hi\n" in text
    assert "normlint: loading the model" in text.split("factory says hi\n")[1]   # redrawn after
    assert text.endswith("\r\x1b[K")


def test_progress_takes_over_sys_stderr_only_while_it_runs(monkeypatch):
    import sys

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    with Progress(delay=5) as progress:
        assert sys.stderr is progress.writer and sys.stderr.isatty()
    assert sys.stderr is stream
    with Progress(io.StringIO(), delay=5):   # not a terminal: nothing is replaced
        assert sys.stderr is stream
