"""The command line: parses flags, calls the engines, prints. No analysis happens here."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import click

from . import __version__
from .cli_files import file_options
from .cli_fix import (FilePolicies, FixFlags, add_noqa_summary, add_noqa_to_files, fix_hint, fix_only_summary, fix_options, fixed_summary,
                      show_fixes, unified_diff, write_all)
from .cli_options import _codes, output_options, selection_options, write_output
from .errors import NormlintError
from .registry import RULES, get_rule
from .report import exit_code, render
from .report.text import render_statistics, statistics as rule_statistics, summary_line


class _Group(click.Group):
    """Turns every error into one line on stderr and exit 2, never a traceback: exit 1
    means "findings" to CI, so a crash must never look like one."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except NormlintError as exc:
            click.echo(f"normlint: error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("normlint: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # The reader went away (`normlint check | head`): nothing more can be said on stdout.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(2)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if os.environ.get("NORMLINT_DEBUG"):
                traceback.print_exc()
            message = (str(exc).strip().splitlines() or [""])[0]
            click.echo(f"normlint: internal error: {type(exc).__name__}"
                       f"{': ' + message if message else ''} (a bug in normlint; "
                       f"NORMLINT_DEBUG=1 shows the traceback)", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="normlint")
def cli() -> None:
    """Find normalization bugs in PyTorch models."""


@cli.command()
# readable=False: an unreadable file is an NL900 finding and the run goes on, not a usage error.
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@selection_options
@output_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False, readable=False),
              help="Use this config file for every file instead of discovering one per file.")
@click.option("--statistics", is_flag=True, help="Show the number of findings per rule instead of each finding.")
@click.option("-q", "--quiet", is_flag=True, help="Print only findings: no summary line, nothing when clean.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: every core).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="NORMLINT_CACHE_DIR",
              help="Where to keep the result cache (default: .normlint_cache next to each config, "
                   "or in the current directory; env NORMLINT_CACHE_DIR).")
@file_options
@fix_options
def check(paths, select, extend_select, ignore, output_format, output_file, exit_zero, config_file,
          statistics, quiet, jobs, no_cache, cache_dir, exclude, extend_exclude, stdin_filename,
          show_files, show_settings, verbose, **fix_flags) -> None:
    """Check Python files and notebooks for normalization bugs (static analysis; never imports
    your code). PATHS default to the current directory; `-` reads the source from stdin."""
    from .cli_files import NO_FILES, show_files as list_files, show_settings as settings_text
    from .cli_files import split_stdin, stdin_documents, verbose_lines
    from .fix.apply import MAX_PASSES
    from .fix.run import fix_report
    from .settings import Overrides, Settings
    from .static.engine import RunOptions, check_paths

    flags = FixFlags(**fix_flags)
    flags.validate()
    overrides = Overrides(select=_codes(select), extend_select=_codes(extend_select), ignore=_codes(ignore),
                          exclude=_codes(exclude), extend_exclude=_codes(extend_exclude) or ())
    settings = Settings.from_file(config_file, overrides)
    walk, documents = split_stdin(paths, stdin_filename)
    if show_files or show_settings:
        names, errors = list_files(walk, documents, settings)
        for message in errors:
            click.echo(f"normlint: error: {message}", err=True)
        text = settings_text(walk, documents, settings) if show_settings else "".join(f"{n}\n" for n in names)
        if not names:
            click.echo(f"normlint: warning: {NO_FILES}", err=True)
        write_output(text or "", output_file)
        sys.exit(2 if errors else 0)
    options = RunOptions(jobs=jobs, documents=documents,
                         cache_dir=None if no_cache or cache_dir is None else Path(cache_dir),
                         cache_per_project=not no_cache and cache_dir is None)
    report = check_paths(walk, settings, options)
    if verbose:
        where = "off" if no_cache else cache_dir or ".normlint_cache next to each config"
        for line in verbose_lines(report, settings, where):
            click.echo(line, err=True)
    errors = list(report.errors)
    for message in report.errors:
        click.echo(f"normlint: error: {message}", err=True)
    findings = report.findings
    if report.files_checked == 0:
        # As ruff: a warning, not "All checks passed!", and no failure by itself.
        click.echo(f"normlint: warning: {NO_FILES}", err=True)
    # Each file's own configuration decides which of its fixes apply, and so its marks.
    policies = FilePolicies({p: c.config for c in report.components for p in c.paths},
                            settings.config_for_dir(Path.cwd()), flags.unsafe_fixes)
    # A document read from stdin is written back to stdout: the report goes to stderr.
    stdin = stdin_documents(documents) if flags.writes or flags.add_noqa else {}
    if flags.add_noqa:
        added, skipped, failed = add_noqa_to_files(findings, report.sources, stdin)
        for message in failed:
            click.echo(f"normlint: error: {message}", err=True)
        if not quiet:
            click.echo(add_noqa_summary(added, skipped), err=bool(stdin))
        sys.exit(2 if errors or failed else 0)
    run = None
    sources = report.sources
    if flags.fixing:
        run = fix_report(findings, report.sources, report.components, policies.of)
        for d in run.dropped:
            click.echo(f"normlint: warning: {d.finding.path}:{d.finding.line}: {d.finding.code} fix not "
                       f"applied: {d.reason}", err=True)
        for members in run.unconverged:
            click.echo(f"normlint: warning: {', '.join(members)}: fixes still applicable after "
                       f"{MAX_PASSES} passes; run --fix again", err=True)
        findings, sources = run.findings, {**report.sources, **run.fixed}
        if flags.show_diff:
            click.echo(unified_diff(run.originals, run.fixed, stdin_documents(documents)), nl=False)
        elif flags.writes:
            for message in write_all(run.originals, run.fixed, stdin):
                errors.append(message)
                click.echo(f"normlint: error: {message}", err=True)
        if flags.show_diff or flags.fix_only:
            if not quiet:
                lines = [*(show_fixes(run.applied) if flags.show_fixes else ()),
                         fix_only_summary(len(run.applied), findings, policies, would=flags.show_diff)]
                click.echo("\n".join(lines), err=flags.show_diff or bool(stdin))
            sys.exit(2 if errors else (1 if flags.show_diff and run.applied else 0))
    if statistics and output_format in ("concise", "full"):
        text = render_statistics(findings)
    elif statistics and output_format == "json":
        text = json.dumps([{"code": code, "name": get_rule(code).name, "severity": severity.value, "count": n}
                           for (code, severity), n in rule_statistics(findings)], indent=2) + "\n"
    else:
        text = render(findings, output_format, sources=sources, fixable=policies.applies)
    if output_format in ("concise", "full"):
        lines = text.splitlines()[:-1]    # the renderer's summary line, replaced by the fix-aware one
        if not quiet and report.files_checked:
            lines += show_fixes(run.applied) if run is not None and flags.show_fixes else []
            lines.append(fixed_summary(len(run.applied) if run else 0, findings, summary_line))
            hint = fix_hint(findings, policies)
            lines += [hint] if hint else []
        text = "".join(line + "\n" for line in lines)
    if stdin and not output_file:
        click.echo(text, nl=False, err=True)
    else:
        write_output(text, output_file)
    if errors:
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
    """List every rule: code, name, engines, severity, default, fix (safe / unsafe / no)."""
    from .fix.catalog import fixer_info

    def fix(r) -> str | None:
        info = fixer_info(r.code) if r.fixable else None
        return info.applicability if info else None

    if output_format == "json":
        click.echo(json.dumps([{
            "code": r.code, "name": r.name, "engines": list(r.engines), "severity": r.severity.value,
            "default": r.default_on, "fixable": r.fixable, "fix": fix(r), "summary": r.summary,
        } for r in RULES], indent=2))
        return
    click.echo(f"{'code':<7} {'name':<42} {'engines':<15} {'severity':<8} {'default':<7} fix")
    for r in RULES:
        click.echo(f"{r.code:<7} {r.name:<42} {','.join(r.engines):<15} {r.severity.value:<8} "
                   f"{'on' if r.default_on else 'off':<7} {fix(r) or 'no'}")


@cli.command()
def server() -> None:
    """Run the language server over stdin/stdout, for editors (needs the `lsp` extra)."""
    try:
        from .lsp.server import main as serve
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ("pygls", "lsprotocol", "cattrs"):
            raise NormlintError("the language server needs pygls: pip install 'normlint[lsp]'") from None
        raise
    serve()


from .runtime.cli import audit_command  # noqa: E402  (cheap: torch loads inside the command)

cli.add_command(audit_command)


def main() -> None:
    cli(prog_name="normlint")
