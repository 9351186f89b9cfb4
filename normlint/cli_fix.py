"""The fix side of ``normlint check``: --fix, --unsafe-fixes, --diff, --fix-only,
--show-fixes, --add-noqa, and the summary lines that say what was or could be fixed.

Conventions are ruff's: `--fix` applies safe fixes and writes; `--unsafe-fixes` adds the
fixes that change numerics or parameters; `--diff` prints a unified diff, writes nothing
and exits 1 when there is something to fix; `--fix-only` fixes and does not report what
remains (exit 0). The exit status otherwise follows what remains after fixing.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import click

from .config import Config
from .errors import NormlintError
from .findings import Finding
from .registry import get_rule


def fix_options(f):
    for opt in reversed([
        click.option("--fix", is_flag=True, help="Apply safe fixes and write the files."),
        click.option("--unsafe-fixes/--no-unsafe-fixes", "unsafe_fixes", default=None,
                     help="Also apply fixes that change numerics or parameters (or, with --no-..., "
                          "neither apply them nor hint at them)."),
        click.option("--diff", "show_diff", is_flag=True,
                     help="Print the fixes as a unified diff; write nothing (exit 1 when there is one)."),
        click.option("--fix-only", is_flag=True, help="Apply fixes; do not report what remains."),
        click.option("--show-fixes", is_flag=True, help="List the fixes that were applied."),
        click.option("--add-noqa", is_flag=True,
                     help="Add `# noqa: CODE` to every line with a finding (merging existing ones)."),
    ]):
        f = opt(f)
    return f


@dataclass(frozen=True)
class FixFlags:
    fix: bool = False
    unsafe_fixes: bool | None = None
    show_diff: bool = False
    fix_only: bool = False
    show_fixes: bool = False
    add_noqa: bool = False

    @property
    def fixing(self) -> bool:
        return self.fix or self.show_diff or self.fix_only

    @property
    def writes(self) -> bool:
        return (self.fix or self.fix_only) and not self.show_diff

    def validate(self) -> None:
        """--add-noqa silences what a fix would change: asking for both is a mistake."""
        if self.add_noqa and self.fixing:
            flag = "--fix" if self.fix else "--fix-only" if self.fix_only else "--diff"
            raise NormlintError(f"--add-noqa cannot be combined with {flag}: fix first, then add "
                                f"`noqa` comments for what remains")


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


@dataclass
class FilePolicies:
    """Which fixes apply to each finding: ``fixable``, ``unfixable`` and ``unsafe-fixes``
    come from the finding's own file's configuration, as every other key does, so the
    `[*]` marks and the summary say what `--fix` does wherever normlint runs from."""

    configs: Mapping[str, Config]     # path -> the configuration its file was checked with
    default: Config                   # for the rest (files that did not parse)
    unsafe: bool | None = None        # --unsafe-fixes / --no-unsafe-fixes
    _policies: dict = field(default_factory=dict)

    def of(self, config: Config):
        from .fix.run import fix_policy

        if id(config) not in self._policies:
            self._policies[id(config)] = (config, fix_policy(config, unsafe=self.unsafe))
        return self._policies[id(config)][1]

    def _config(self, f: Finding) -> Config:
        return self.configs.get(f.path, self.default)

    def applies(self, f: Finding) -> bool:
        return self.of(self._config(f)).applies(f)

    def hidden(self, f: Finding) -> bool:
        """An unsafe fix that --unsafe-fixes would apply, unless --no-unsafe-fixes or its
        configuration's `unsafe-fixes = false` says so (then it is not even mentioned)."""
        config = self._config(f)
        wanted = config.unsafe_fixes if self.unsafe is None else self.unsafe
        return wanted is not False and self.of(config).hidden(f)


def fix_hint(findings: Sequence[Finding], policies: FilePolicies) -> str | None:
    """"[*] 2 fixable with the `--fix` option (1 hidden fix can be enabled with ...)."."""
    applicable = sum(1 for f in findings if policies.applies(f))
    hidden = sum(1 for f in findings if policies.hidden(f))
    more = (f"{_plural(hidden, 'hidden fix', 'hidden fixes')} can be enabled with the "
            f"`--unsafe-fixes` option")
    if applicable:
        return f"[*] {applicable} fixable with the `--fix` option" + (f" ({more})." if hidden else ".")
    if hidden:
        return f"No fixes available ({more})."
    return None


def fixed_summary(fixed: int, remaining: Sequence[Finding], summary_line) -> str:
    """"Found 3 findings (2 fixed, 1 remaining): 1 warning."."""
    if not fixed:
        return summary_line(remaining)
    total = fixed + len(remaining)
    rest = summary_line(remaining)
    breakdown = rest.split(": ", 1)[1].rstrip(".") if remaining and ": " in rest else ""
    return (f"Found {_plural(total, 'finding')} ({fixed} fixed, {len(remaining)} remaining)"
            + (f": {breakdown}." if breakdown else "."))


def fix_only_summary(fixed: int, remaining: Sequence[Finding], policies: FilePolicies, *, would: bool) -> str:
    hidden = sum(1 for f in remaining if policies.hidden(f))
    note = f" ({_plural(hidden, 'fix', 'fixes')} available with `--unsafe-fixes`)" if hidden else ""
    if fixed:
        verb = "Would fix" if would else "Fixed"
        return f"{verb} {_plural(fixed, 'finding')}{note}."
    return f"No findings {'would be ' if would else ''}fixed{note}."


def show_fixes(applied: Sequence[Finding]) -> list[str]:
    """ruff's --show-fixes listing: per file, how many of each code were fixed."""
    if not applied:
        return []
    by_path: dict[str, dict[str, int]] = {}
    for f in applied:
        by_path.setdefault(f.path, {}).setdefault(f.code, 0)
        by_path[f.path][f.code] += 1
    out = [f"Fixed {_plural(len(applied), 'finding')}:"]
    for path in sorted(by_path):
        out.append(f"- {path}:")
        for code, n in sorted(by_path[path].items()):
            try:
                name = get_rule(code).name
            except KeyError:
                name = code
            out.append(f"    {n} × {code} ({name})")
    return out


STDIN_LABEL = "<stdin>"   # a diff's file label for stdin read without --stdin-filename


def unified_diff(originals: dict[str, str], fixed: dict[str, str],
                 stdin: Mapping[str, bytes] | None = None) -> str:
    """A patch `git apply` and `patch` accept: lines break where Python's do (not at form
    feeds), and a last line with no newline is followed by git's marker on each side.

    ``stdin`` maps the path a document read from stdin is reported as to its bytes: with
    ``--stdin-filename`` that name labels its diff like a file's; without one the label is
    ``<stdin>`` on both sides (ruff prints no file header there; ``a/-`` read as a file
    named ``-``)."""
    from .positions import split_lines

    out: list[str] = []
    for path in sorted(fixed):
        unnamed = path == "-" and path in (stdin or {})
        before, after = (STDIN_LABEL, STDIN_LABEL) if unnamed else (f"a/{path}", f"b/{path}")
        for line in difflib.unified_diff(split_lines(originals[path]), split_lines(fixed[path]),
                                         fromfile=before, tofile=after):
            out.append(line)
            if not line.endswith(("\n", "\r")):
                out.append("\n\\ No newline at end of file\n")
    return "".join(out)


def write_all(originals: dict[str, str], fixed: dict[str, str], stdin: Mapping[str, bytes] | None = None) -> list[str]:
    """Write every fixed file; the errors, one line each. ``stdin`` maps the path a
    document read from stdin is reported as to its bytes: that document goes to stdout,
    fixed or as it was (ruff's convention: an editor replaces its buffer with the output)."""
    from .fix.write import encode_like, write_fixed

    stdin = stdin or {}
    errors = []
    for path in sorted(fixed):
        if path in stdin:
            continue
        error = write_fixed(path, originals[path], fixed[path])
        if error is not None:
            errors.append(error)
    for path, data in stdin.items():
        out = sys.stdout.buffer
        try:
            out.write(encode_like(data, fixed[path]) if path in fixed else data)
        except UnicodeEncodeError as exc:
            out.write(data)
            errors.append(f"cannot encode the fixed {path} in its declared encoding: {exc.reason}")
        out.flush()
    return errors


def add_noqa_to_files(findings: Sequence[Finding], sources: dict[str, str],
                      stdin: Mapping[str, bytes] | None = None) -> tuple[int, dict[str, int], list[str]]:
    """(directives added, lines skipped by reason, errors) over every file with a finding;
    ``stdin`` as for ``write_all``."""
    from .fix.add_noqa import NOT_SUPPRESSIBLE, add_noqa

    by_path: dict[str, list[Finding]] = {}
    in_notebooks = set()
    for f in findings:
        if f.cell is not None:
            if f.code not in NOT_SUPPRESSIBLE:
                in_notebooks.add((f.path, f.cell, f.line))
        elif f.path in sources:
            by_path.setdefault(f.path, []).append(f)
    originals, fixed = {}, {}
    added = skipped = 0
    for path, fs in sorted(by_path.items()):
        result = add_noqa(sources[path], fs)
        added += result.added
        skipped += result.skipped
        if result.text != sources[path]:
            originals[path], fixed[path] = sources[path], result.text
    skipped_by = {"a comment cannot go there": skipped, "notebooks are not rewritten": len(in_notebooks)}
    return added, {why: n for why, n in skipped_by.items() if n}, write_all(originals, fixed, stdin)


def add_noqa_summary(added: int, skipped: dict[str, int]) -> str:
    """E.g. "Added 2 noqa directives (1 line skipped: a comment cannot go there)."""
    notes = "; ".join(f"{_plural(n, 'line')} skipped: {why}" for why, n in skipped.items())
    return f"Added {_plural(added, 'noqa directive')}{f' ({notes})' if notes else ''}."
