"""What `normlint check` reads and which settings it uses: stdin, ``--show-files``,
``--show-settings``, ``--verbose`` and the "nothing was checked" warning."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:   # the engine loads when `check` runs, not for `normlint --help`
    from .settings import Settings
    from .static.engine import CheckReport

NO_FILES = "No Python files found"


def file_options(f):
    for opt in reversed([
        click.option("--exclude", multiple=True, metavar="PATTERNS",
                     help="Gitignore-style patterns to skip, replacing the configured `exclude` "
                          "(relative to the current directory; comma-separated or repeated)."),
        click.option("--extend-exclude", multiple=True, metavar="PATTERNS",
                     help="Patterns to skip in addition to the configured ones."),
        click.option("--stdin-filename", type=click.Path(dir_okay=False),
                     help="Check the source read from stdin (path `-`) as this file: its "
                          "configuration, its project's imports, its name in the report."),
        click.option("--show-files", is_flag=True, help="List the files that would be checked, then exit."),
        click.option("--show-settings", is_flag=True,
                     help="Print the settings used for the first file that would be checked, then exit."),
        click.option("-v", "--verbose", is_flag=True,
                     help="Say on stderr which configuration each file used and what was read."),
    ]):
        f = opt(f)
    return f


def split_stdin(paths: Sequence[str], stdin_filename: str | None) -> tuple[list[str], dict[str, bytes]]:
    """The paths to walk, and the document read from stdin (``-``, or ``--stdin-filename``
    with no path) under the name it is reported as."""
    walk = [p for p in paths if p != "-"]
    if "-" not in paths and (walk or not stdin_filename):
        return walk or ["."], {}
    stream = sys.stdin
    data = b"" if stream is None else (stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode())
    return walk, {stdin_filename or "-": data}


def stdin_documents(documents: dict[str, bytes]) -> dict[str, bytes]:
    """The documents read from stdin, by the path they are reported as."""
    from .static.engine import display_path

    return {n if n == "-" else display_path(Path(n)): data for n, data in documents.items()}


def show_files(paths: Sequence[str], documents: dict[str, bytes], settings: Settings) -> tuple[list[str], list[str]]:
    """The display paths that would be checked, sorted, and the paths that could not be walked."""
    from .static.discovery import discover
    from .static.engine import display_path

    found = discover(paths, settings=settings)
    names = {display_path(f) for f in found.files} | set(stdin_documents(documents))
    return sorted(names), found.errors


def show_settings(paths: Sequence[str], documents: dict[str, bytes], settings: Settings) -> str | None:
    """The resolved settings of the first file that would be checked; None when there is none."""
    from .settings import describe
    from .static.discovery import discover

    first = next(iter(documents), None)
    if first is not None:
        target = Path(first)
    else:
        found = discover(paths, settings=settings).files
        if not found:
            return None
        target = found[0]
    config = settings.config_for(target.absolute())
    return "\n".join(describe(config, target, settings)) + "\n"


def verbose_lines(report: CheckReport, settings: Settings, cache_dirs: str) -> list[str]:
    lines = []
    for source, n in report.configs.items():
        files = _count(n, "file")
        if source is None:
            lines.append(f"no configuration file found: default settings for {files}")
        else:
            how = " (--config)" if settings.fixed else ""
            lines.append(f"configuration {source}{how} for {files}")
    lines.append(f"checked {_count(report.files_checked, 'file')}; read {report.context_files} more "
                 f"for cross-file context")
    lines.append(f"{_count(report.components_analysed, 'component')} analysed, "
                 f"{report.components_cached} from the cache ({cache_dirs})")
    return [f"normlint: {line}" for line in lines]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
