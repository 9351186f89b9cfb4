"""Options and helpers that `check` and `audit` share, so both speak the same flags."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import NormlintError
from .report import FORMATS


def _codes(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """``--select NL1,NL3 --select NL401`` -> ("NL1", "NL3", "NL401"); None when not given."""
    if not values:
        return None
    return tuple(c.strip() for v in values for c in v.split(",") if c.strip())


def write_output(text: str, output_file: str | None) -> None:
    if output_file:
        try:
            Path(output_file).write_text(text, encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            raise NormlintError(f"cannot write {output_file}: {exc.strerror or exc}") from None
    else:
        click.echo(text, nl=False)


def _not_empty(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    """``--select ""`` (an unset shell variable, say) would silently turn every rule off."""
    for value in values:
        if not any(c.strip() for c in value.split(",")):
            raise NormlintError(f"--{param.name.replace('_', '-')} needs at least one rule code, "
                                f"prefix or ALL; got {value!r}")
    return values


def selection_options(f):
    for opt in reversed([
        click.option("--select", multiple=True, callback=_not_empty, help="Rule codes or prefixes to enable (replaces the config), e.g. NL3,NL101 or ALL."),
        click.option("--extend-select", multiple=True, callback=_not_empty, help="Rule codes or prefixes to enable in addition."),
        click.option("--ignore", multiple=True, callback=_not_empty, help="Rule codes or prefixes to disable."),
    ]):
        f = opt(f)
    return f


def output_options(f=None, *, extra_formats: tuple[str, ...] = ()):
    """``--output-format``, ``-o`` and ``--exit-zero``; ``extra_formats`` adds formats only
    one command speaks (``audit``'s ``html``). Usable as ``@output_options`` or called."""
    if f is None:
        return lambda g: output_options(g, extra_formats=extra_formats)
    for opt in reversed([
        click.option("--output-format", type=click.Choice(FORMATS + tuple(extra_formats)),
                     default="concise", show_default=True),
        click.option("-o", "--output-file", type=click.Path(dir_okay=False), help="Write the report here instead of stdout."),
        click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings are reported."),
    ]):
        f = opt(f)
    return f
