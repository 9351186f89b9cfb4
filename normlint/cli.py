"""The command line: parses flags, calls the engines, prints. No analysis happens here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__
from .config import Config, load_config
from .errors import NormlintError
from .registry import RULES, get_rule
from .report import FORMATS, exit_code, render
from .report.text import render_statistics
from .selection import validate_selectors


def _codes(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """``--select NL1,NL3 --select NL401`` -> ("NL1", "NL3", "NL401"); None when not given."""
    if not values:
        return None
    return tuple(c.strip() for v in values for c in v.split(",") if c.strip())


class _Group(click.Group):
    """Turns normlint's own errors into one line on stderr and exit 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NormlintError as exc:
            click.echo(f"normlint: error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("normlint: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="normlint")
def cli() -> None:
    """Find normalization bugs in PyTorch models."""


def write_output(text: str, output_file: str | None) -> None:
    if output_file:
        try:
            Path(output_file).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise NormlintError(f"cannot write {output_file}: {exc.strerror or exc}") from None
    else:
        click.echo(text, nl=False)


def selection_options(f):
    for opt in reversed([
        click.option("--select", multiple=True, help="Rule codes or prefixes to enable (replaces the config), e.g. NL3,NL101 or ALL."),
        click.option("--extend-select", multiple=True, help="Rule codes or prefixes to enable in addition."),
        click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable."),
    ]):
        f = opt(f)
    return f


def output_options(f):
    for opt in reversed([
        click.option("--output-format", type=click.Choice(FORMATS), default="concise", show_default=True),
        click.option("-o", "--output-file", type=click.Path(dir_okay=False), help="Write the report here instead of stdout."),
        click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings are reported."),
    ]):
        f = opt(f)
    return f


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@selection_options
@output_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Use this config file instead of discovering one.")
@click.option("--statistics", is_flag=True, help="Show the number of findings per rule instead of each finding.")
@click.option("-q", "--quiet", is_flag=True, help="Print only findings: no summary line, nothing when clean.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: every core).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="NORMLINT_CACHE_DIR",
              help="Where to keep the result cache (default: .normlint_cache next to the config, "
                   "or in the current directory; env NORMLINT_CACHE_DIR).")
def check(paths, select, extend_select, ignore, output_format, output_file, exit_zero, config_file,
          statistics, quiet, jobs, no_cache, cache_dir) -> None:
    """Check Python files for normalization bugs (static analysis; never imports your code)."""
    from .api import check_paths

    config = load_config(Path(config_file) if config_file else None)
    if no_cache:
        cache_dir = None
    elif cache_dir is None:
        cache_dir = (config.source.parent if config.source else Path.cwd()) / ".normlint_cache"
    report = check_paths(list(paths) or ["."], config=config, select=_codes(select),
                         extend_select=_codes(extend_select), ignore=_codes(ignore),
                         jobs=jobs, cache_dir=cache_dir)
    for message in report.errors:
        click.echo(f"normlint: error: {message}", err=True)
    findings = report.findings
    if statistics and output_format in ("concise", "full"):
        text = render_statistics(findings)
    elif statistics and output_format == "json":
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.code] = counts.get(f.code, 0) + 1
        text = json.dumps([{"code": c, "name": get_rule(c).name, "count": n}
                           for c, n in sorted(counts.items())], indent=2) + "\n"
    else:
        text = render(findings, output_format, sources=report.sources)
    if quiet and output_format in ("concise", "full"):
        text = "".join(line + "\n" for line in text.splitlines()[:-1])  # drop the summary line
    write_output(text, output_file)
    if report.errors:
        sys.exit(2)
    sys.exit(0 if exit_zero else exit_code(findings))


@cli.command()
@click.argument("code")
def rule(code: str) -> None:
    """Print the documentation page of a rule (by code or name)."""
    from .rule_docs import read_page

    try:
        found = get_rule(code)
    except KeyError:
        raise NormlintError(f"unknown rule {code!r}; `normlint rules` lists them") from None
    page = read_page(found.code)
    if page is None:
        raise NormlintError(f"no documentation page found for {found.code}")
    click.echo(page, nl=not page.endswith("\n"))


@cli.command("rules")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_rules(output_format: str) -> None:
    """List every rule: code, name, engines, severity, default, fixable."""
    if output_format == "json":
        click.echo(json.dumps([{
            "code": r.code, "name": r.name, "engines": list(r.engines), "severity": r.severity.value,
            "default": r.default_on, "fixable": r.fixable, "summary": r.summary,
        } for r in RULES], indent=2))
        return
    click.echo(f"{'code':<7} {'name':<42} {'engines':<15} {'severity':<8} {'default':<7} fixable")
    for r in RULES:
        click.echo(f"{r.code:<7} {r.name:<42} {','.join(r.engines):<15} {r.severity.value:<8} "
                   f"{'on' if r.default_on else 'off':<7} {'yes' if r.fixable else 'no'}")


def main() -> None:
    cli(prog_name="normlint")
