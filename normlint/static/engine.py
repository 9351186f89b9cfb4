"""One static run: discover, read, group files into components, analyse (in parallel, cached),
filter and suppress.

A component is a group of files that can see each other's classes (see facts.py). It is
the unit of analysis, of parallelism and of caching, so ``--jobs 1`` and ``--jobs N``
produce the same findings by construction, and an edit re-analyses only its component.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pathspec

from ..config import Config
from ..findings import Finding, sort_findings
from ..patterns import compile_patterns
from ..selection import resolve_selection
from ..suppress import Suppressions
from .analyzer import analyze
from .cache import Cache, component_key, content_hash, engine_fingerprint
from .context import RuleContext
from .discovery import discover, resolved
from .facts import components, scan
from .reading import parse_source, read_source
from .source import ParsedFile

# Below this much source a process pool costs more than it saves (fork + pickling).
PARALLEL_MIN_BYTES = 400_000


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)      # paths that could not be walked
    files_checked: int = 0
    sources: dict[str, str] = field(default_factory=dict)  # path -> text, for snippets
    components_analysed: int = 0                           # cache misses (for tests and benchmarks)
    components: list[tuple[str, ...]] = field(default_factory=list)   # paths analysed together
    components_cached: int = 0


@dataclass(frozen=True)
class RunOptions:
    jobs: int | None = None          # None: every core
    cache_dir: Path | None = None    # None: no cache


def display_path(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:   # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def enabled_codes(config: Config) -> frozenset[str]:
    return resolve_selection(config.select, config.extend_select, config.ignore)


def config_fingerprint(config: Config) -> str:
    data = {
        "enabled": sorted(enabled_codes(config)),
        "options": config.rule_options,
        "per_file_ignores": [[g, list(c)] for g, c in config.per_file_ignores],
        "root": str(config.root.resolve()),
    }
    return hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=16).hexdigest()


@dataclass
class Policy:
    """What a run reports, resolved once from the config and shared by every component:
    the enabled codes, rule options and per-file ignores (matched once per path)."""

    enabled: frozenset[str]
    options: dict
    per_file: list[tuple[pathspec.GitIgnoreSpec, frozenset[str]]]
    root: Path
    _ignored: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> "Policy":
        return cls(enabled=enabled_codes(config), options=config.rule_options,
                   per_file=[(compile_patterns([glob], where="per-file-ignores"), resolve_selection(selectors))
                             for glob, selectors in config.per_file_ignores],
                   root=config.root.resolve())

    def ignored_codes(self, path: str) -> frozenset[str]:
        if not self.per_file:
            return frozenset()
        if path not in self._ignored:
            abs_path = resolved(Path(path))
            try:
                rel = abs_path.relative_to(self.root).as_posix()
            except ValueError:
                rel = abs_path.name
            self._ignored[path] = frozenset().union(*(codes for spec, codes in self.per_file
                                                      if spec.match_file(rel)))
        return self._ignored[path]

    def reports(self, f: Finding) -> bool:
        return f.code in self.enabled and f.code not in self.ignored_codes(f.path)


def run_files(parsed: Sequence[ParsedFile], failures: Sequence[Finding], policy: Policy,
              *, run_rules: bool = True) -> list[Finding]:
    """Analyse ``parsed`` together, then apply selection, per-file ignores and noqa."""
    ctx = RuleContext(enabled=policy.enabled, options=policy.options)
    if run_rules and parsed:
        analyze(parsed, ctx)
    by_path: dict[str, list[Finding]] = {}
    for f in (*failures, *ctx.findings):
        if policy.reports(f):
            by_path.setdefault(f.path, []).append(f)
    result: list[Finding] = []
    for pf in parsed:
        sup = Suppressions.parse(pf.text)
        result.extend(f for f in by_path.pop(pf.path, []) if not sup.suppresses(f))
        result.extend(f for f in sup.unused(pf.path, policy.enabled) if policy.reports(f))
    for rest in by_path.values():   # NL900 for files that never parsed
        result.extend(rest)
    from ..fix.attach import attach_fixes   # libcst loads only for files with a fixable finding
    return sort_findings(attach_fixes(result, {pf.path: pf.text for pf in parsed}))


@dataclass(frozen=True)
class _Source:
    path: str        # display path
    text: str
    digest: str


def _analyse_component(members: Sequence[_Source], policy: Policy, relevant: bool) -> list[Finding]:
    """Parse and analyse one component; runs in a worker process or in-process."""
    parsed: list[ParsedFile] = []
    failures: list[Finding] = []
    for src in members:
        loaded = parse_source(src.text, src.path)
        (failures if isinstance(loaded, Finding) else parsed).append(loaded)
    return run_files(parsed, failures, policy, run_rules=relevant)


def _pool_context():
    # fork starts workers in milliseconds and shares the imported engine; on macOS (where
    # fork is unsafe) and Windows the platform default is the safe choice.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def check_paths(paths: Sequence[str | os.PathLike], config: Config,
                options: RunOptions = RunOptions()) -> CheckReport:
    exclude = (*config.exclude, *config.extend_exclude)
    found = discover(paths, exclude=exclude, root=config.root)
    report = CheckReport(errors=list(found.errors), files_checked=len(found.files))
    cache = Cache(options.cache_dir) if options.cache_dir else None
    known_facts = cache.facts() if cache else {}

    sources: list[_Source] = []
    facts = []
    findings: list[Finding] = []
    for file in found.files:
        display = display_path(file)
        loaded = read_source(file, display)
        if isinstance(loaded, Finding):
            findings.append(loaded)
            continue
        data, text = loaded
        digest = content_hash(data)
        fact = known_facts.get(digest)
        if fact is None:
            fact = scan(display, text)
            if cache:
                cache.put_facts(digest, fact)
        sources.append(_Source(display, text, digest))
        facts.append(fact)
        report.sources[display] = text
    policy = Policy.from_config(config)
    findings = run_files([], findings, policy)   # selection and per-file ignores for NL900s

    engine_fp = engine_fingerprint() if cache else ""
    config_fp = config_fingerprint(config) if cache else ""
    pending: list[tuple[str, list[_Source], bool]] = []
    for group in components(facts):
        members = [sources[i] for i in group]
        report.components.append(tuple(m.path for m in members))
        relevant = any(facts[i].relevant for i in group)
        key = component_key(engine_fp, config_fp, [(m.path, m.digest) for m in members]) if cache else ""
        cached = cache.get(key) if cache else None
        if cached is not None:
            findings.extend(cached)
            report.components_cached += 1
        else:
            pending.append((key, members, relevant))
    report.components_analysed = len(pending)

    for key, result in _run_pending(pending, policy, options.jobs):
        findings.extend(result)
        if cache:
            cache.put(key, result)
    if cache:
        cache.save_facts({s.digest for s in sources})
    report.findings = sort_findings(findings)
    return report


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and `taskset`
    narrow), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):   # macOS, Windows
        return os.cpu_count() or 1


def _run_pending(pending, policy: Policy, jobs: int | None):
    # More workers than cores only adds forks and memory: --jobs is capped at the cores.
    jobs = min(jobs or available_cores(), available_cores())
    total = sum(len(s.text) for _, members, _ in pending for s in members)
    if jobs <= 1 or len(pending) <= 1 or total < PARALLEL_MIN_BYTES:
        for key, members, relevant in pending:
            yield key, _analyse_component(members, policy, relevant)
        return
    # Largest components first, so one big one does not start last and run alone.
    order = sorted(pending, key=lambda p: -sum(len(s.text) for s in p[1]))
    with ProcessPoolExecutor(max_workers=min(jobs, len(order)), mp_context=_pool_context()) as pool:
        futures = [(key, pool.submit(_analyse_component, members, policy, relevant))
                   for key, members, relevant in order]
        for key, fut in futures:
            yield key, fut.result()


def check_text(text: str, path: str, config: Config) -> list[Finding]:
    return check_texts({path: text}, config)


def check_texts(texts: dict[str, str], config: Config) -> list[Finding]:
    """Check source texts together, as one component (the autofix re-checks a fixed
    component with this)."""
    parsed: list[ParsedFile] = []
    failures: list[Finding] = []
    for path, text in texts.items():
        loaded = parse_source(text, path)
        (failures if isinstance(loaded, Finding) else parsed).append(loaded)
    return run_files(parsed, failures, Policy.from_config(config))
