"""One static run: discover, read, scan each file's imports (in parallel, cached), group
files into components, add the project files they import (context, see project.py),
analyse (in parallel, cached), filter and suppress.

Files under different configurations are checked in separate groups, each with its own
selection, options and cache.

A component is a group of files that can see each other's classes (see facts.py). It is
the unit of analysis, of parallelism and of caching, so ``--jobs 1`` and ``--jobs N``
produce the same findings by construction, and an edit re-analyses only its component.
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import pathspec

from ..config import Config
from ..settings import Settings
from ..findings import Finding, sort_findings
from ..patterns import compile_patterns
from ..selection import resolve_selection
from ..suppress import Suppressions, drop_noqa_used_by_audit
from .analyzer import analyze
from .cache import Cache, component_key, content_hash, engine_fingerprint
from .columns import character_columns
from .context import RuleContext
from .discovery import ProjectFilter, discover, resolved
from .facts import FileFacts, components, scan
from .notebook import NOTEBOOK_SUFFIX, Notebook, locate_all, read_notebook
from .project import ALL, ModuleSummary, ProjectContext
from .reading import decode_source, parse_source, read_source
from .source import ParsedFile

# Below this much source a process pool costs more than it saves (fork + pickling).
PARALLEL_MIN_BYTES = 400_000
# Checked source per pack of components that share context (see _Run._packs).
PACK_MAX_BYTES = 1_000_000


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)      # paths that could not be walked
    files_checked: int = 0
    sources: dict[str, str] = field(default_factory=dict)  # path (or "nb.ipynb:cell N") -> text, for snippets
    components_analysed: int = 0                           # cache misses (for tests and benchmarks)
    components: list["Component"] = field(default_factory=list)   # what was analysed together
    components_cached: int = 0
    context_files: int = 0                                 # files read only to resolve imports
    # configuration file (None: defaults) -> how many checked files it governed
    configs: dict[Path | None, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOptions:
    jobs: int | None = None          # None: every core
    cache_dir: Path | None = None    # None: no cache, unless cache_per_project
    # .normlint_cache next to each configuration file (else in the current directory),
    # as the CLI does by default; ignored when cache_dir is given
    cache_per_project: bool = False
    # path -> content checked instead of the file on disk (stdin, an editor's unsaved buffer)
    documents: Mapping[str, bytes] = field(default_factory=dict)


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
            rel = _relative(Path(os.path.abspath(path)), self.root)
            self._ignored[path] = frozenset().union(*(codes for spec, codes in self.per_file
                                                      if spec.match_file(rel)))
        return self._ignored[path]

    def reports(self, f: Finding) -> bool:
        return f.code in self.enabled and f.code not in self.ignored_codes(f.path)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the (resolved) project ``root``: by its directory, so that a file
    symlinked into the project counts as the project's, else by its target; else its name."""
    for candidate in (resolved(path.parent) / path.name, resolved(path)):
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            continue
    return path.name


def run_files(parsed: Sequence[ParsedFile], failures: Sequence[Finding], policy: Policy,
              *, run_rules: bool = True, context: Sequence[ParsedFile] = ()) -> list[Finding]:
    """Analyse ``parsed`` together (with ``context``: files read only to resolve imports,
    nothing is reported for them), then apply selection, per-file ignores and noqa. Columns
    leave here counting characters (see columns.py)."""
    ctx = RuleContext(enabled=policy.enabled, options=policy.options)
    if run_rules and parsed:
        analyze([*parsed, *context], ctx)
    skip = {pf.path for pf in context}
    texts = {pf.path: pf.text for pf in parsed}
    by_path: dict[str, list[Finding]] = {}
    for f in (*failures, *character_columns(ctx.findings, texts)):
        if f.path not in skip and policy.reports(f):
            by_path.setdefault(f.path, []).append(f)
    result: list[Finding] = []
    for pf in parsed:
        sup = Suppressions.parse(pf.text)
        result.extend(f for f in by_path.pop(pf.path, []) if not sup.suppresses(f))
        result.extend(f for f in sup.unused(pf.path, policy.enabled) if policy.reports(f))
    for rest in by_path.values():   # NL900 for files that never parsed
        result.extend(rest)
    from ..fix.attach import attach_fixes   # libcst loads only for files with a fixable finding
    return sort_findings(attach_fixes(result, texts))


@dataclass(frozen=True)
class Component:
    """Files analysed together, with what they were analysed under: the autofix re-checks a
    fixed component the same way, so that a fix is judged by the findings the run gave."""

    paths: tuple[str, ...]
    config: Config
    context: tuple["_Source", ...] = ()


@dataclass(frozen=True)
class _Source:
    path: str        # display path
    text: str
    digest: str
    file: Path       # absolute
    # context only: the whole file, analysed when the excerpt in ``text`` does not parse
    fallback: str | None = None


def _analyse_component(members: Sequence[_Source], policy: Policy, relevant: bool,
                       context: Sequence[_Source] = ()) -> list[Finding]:
    """Parse and analyse one component; runs in a worker process or in-process."""
    with _collected_after():
        return _analyse(members, policy, relevant, context)


@contextmanager
def _collected_after():
    """Collect garbage once after a component instead of while it is analysed.

    Parsing and analysing allocate millions of small objects (AST nodes, flow states); the
    generational collector then runs hundreds of times per file, each pass traversing the
    whole young heap, which cost about 30 % of a cold run. Nearly all of that memory is
    freed by reference counting; the cycles left (parent links, memo tables) are collected
    here, once, so memory stays bounded by the largest component."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect(0)


def _analyse(members: Sequence[_Source], policy: Policy, relevant: bool,
             context: Sequence[_Source]) -> list[Finding]:
    parsed: list[ParsedFile] = []
    failures: list[Finding] = []
    for src in members:
        loaded = parse_source(src.text, src.path)
        (failures if isinstance(loaded, Finding) else parsed).append(loaded)
    readable: list[ParsedFile] = []
    for src in context if relevant else ():
        loaded = parse_source(src.text, src.path)
        if isinstance(loaded, Finding) and src.fallback is not None:
            loaded = parse_source(src.fallback, src.path)
        if not isinstance(loaded, Finding):     # unreadable context is just not known
            readable.append(loaded)
    return run_files(parsed, failures, policy, run_rules=relevant, context=readable)


def _pool_context():
    # fork starts workers in milliseconds and shares the imported engine; on macOS (where
    # fork is unsafe) and Windows the platform default is the safe choice.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def check_paths(paths: Sequence[str | os.PathLike], settings: Settings | Config,
                options: RunOptions = RunOptions()) -> CheckReport:
    """Check ``paths`` (and ``options.documents``) with each file's own configuration."""
    if isinstance(settings, Config):
        settings = Settings(settings)
    found = discover(paths, settings=settings)
    report = CheckReport(errors=list(found.errors))
    checked: dict[Path, tuple[str, Path]] = {}       # resolved path -> (display, path as given)
    for file in found.files:
        checked.setdefault(resolved(file), (display_path(file), file))
    documents: dict[Path, bytes] = {}
    for name, data in options.documents.items():
        key = _document_key(name)
        documents[key] = data
        checked[key] = (name if name == "-" else display_path(Path(name)), Path(name))
    groups: dict[int, tuple[Config, list[tuple[Path, str, Path]]]] = {}
    for key, (display, given) in checked.items():
        config = settings.config_for(given)   # where the file was found: a symlink's own directory
        groups.setdefault(id(config), (config, []))[1].append((key, display, given))
    caches: dict[Path, tuple[Cache, set[str]]] = {}
    run = _Run(settings, options, report, ProjectFilter(settings), documents)
    for config, files in groups.values():
        report.configs[config.source] = report.configs.get(config.source, 0) + len(files)
        cache_dir = options.cache_dir or (config.project_cache_dir if options.cache_per_project else None)
        if cache_dir is not None and cache_dir not in caches:
            caches[cache_dir] = (Cache(cache_dir), set())
        run.check_group(config, files, *(caches[cache_dir] if cache_dir is not None else (None, None)))
    for cache, digests in caches.values():
        cache.save_facts(digests)
        cache.save_project_index(run.context.rows())
    report.context_files = len(run.context_paths)
    report.files_checked = len(checked)
    report.findings = sort_findings(report.findings)
    return report


@dataclass
class _Run:
    """One run's reading, context look-ups and analysis, shared by its configuration groups."""

    settings: Settings
    options: RunOptions
    report: CheckReport
    project: ProjectFilter
    documents: dict[Path, bytes]     # resolved path -> content that replaces the file's
    _context: dict[Path, _Source | None] = field(default_factory=dict)
    context_paths: set[Path] = field(default_factory=set)   # every project file read for context
    _closures: dict[tuple, dict[Path, set[str] | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.context = ProjectContext(self._context_text)

    def _load(self, key: Path, display: str, given: Path) -> _Source | Finding | Notebook:
        data = self.documents.get(key)
        notebook = display.endswith(NOTEBOOK_SUFFIX)
        if data is None:
            loaded = read_source(given, display)
            if isinstance(loaded, Finding):
                return loaded
            data, text = loaded
        elif not notebook:
            text = decode_source(data, display)
            if isinstance(text, Finding):
                return text
        if notebook:
            return read_notebook(data, display)
        return _Source(display, text, content_hash(data), key)

    def _context_text(self, path: Path) -> tuple[str, str] | None:
        found = self._context_source(path)
        return None if found is None else (found.text, found.digest)

    def _context_source(self, path: Path) -> _Source | None:
        if path not in self._context:
            self._context[path] = None
            if self.project.includes(path):
                display = display_path(path)
                data = self.documents.get(path)    # an editor's unsaved buffer wins over the disk
                loaded = read_source(path, display) if data is None else (data, decode_source(data, display))
                if not isinstance(loaded, Finding) and isinstance(loaded[1], str):
                    self._context[path] = _Source(display, loaded[1], content_hash(loaded[0]), path)
        return self._context[path]

    def _needs(self, members: Sequence[_Source]) -> dict[Path, set[str] | None]:
        # packing asks for each component's needs and context_of for each pack's, and a pack
        # is usually one component: the same members, the same answer
        key = tuple((m.file, m.digest) for m in members)
        if key not in self._closures:
            self._closures[key] = self.context.closure(
                (m.file, m.text, m.digest, self.settings.project_root(m.file)) for m in members)
        return self._closures[key]

    def context_of(self, members: Sequence[_Source]) -> list[_Source]:
        """The parts of the project files that ``members`` need, within bounds (see project.py)."""
        out = []
        found = self._needs(members)
        for path, names in found.items():
            whole = self._context_source(path)   # read already, or a checked file of another component
            if whole is None:
                continue
            if names is ALL:
                out.append(whole)
                continue
            # The excerpt follows from the file and the names: those make the cache key.
            wanted = ",".join(sorted(names))
            out.append(replace(whole, text=self.context.summary(path).excerpt(names), fallback=whole.text,
                               digest=content_hash(f"{whole.digest}\0{wanted}".encode())))
        return out

    def _packs(self, groups: list[list[_Source]]) -> list[list[_Source]]:
        """Components that need the same project files, packed together up to
        ``PACK_MAX_BYTES`` of checked source: forty models that all import the library's
        base classes analyse those once per pack rather than once each, and packs still
        run in parallel. Deterministic for a given set of files."""
        packs: list[tuple[list[_Source], set[Path]]] = []
        for members in groups:
            needs = set(self._needs(members))
            size = sum(len(m.text) for m in members)
            home = next((p for p in packs if needs and p[1] & needs
                         and sum(len(m.text) for m in p[0]) + size <= PACK_MAX_BYTES), None)
            if home is None:
                packs.append((list(members), needs))
            else:
                home[0].extend(members)
                home[1].update(needs)
        return [members for members, _ in packs]

    def check_group(self, config: Config, files: list[tuple[Path, str, Path]],
                    cache: Cache | None, digests: set[str] | None) -> None:
        report = self.report
        policy = Policy.from_config(config)
        known_facts = dict(cache.facts()) if cache else {}
        if cache:
            self.context.known.update(cache.project_index())
        sources: list[_Source] = []
        notebooks: dict[str, Notebook] = {}
        failures: list[Finding] = []
        for key, display, given in sorted(files, key=lambda f: f[1]):
            loaded = self._load(key, display, given)
            if isinstance(loaded, Notebook):
                notebooks[display] = loaded
                failures.extend(loaded.problems)
                for number, text in loaded.cell_texts().items():
                    report.sources[f"{display}:cell {number}"] = text
                loaded = _Source(display, loaded.text, content_hash(loaded.text.encode()), key)
            elif isinstance(loaded, Finding):
                failures.append(loaded)
                continue
            else:
                report.sources[display] = loaded.text
            sources.append(loaded)
        findings = run_files([], failures, policy)   # selection and per-file ignores for NL900s

        # First pass, per file and parallel: the import facts (components) and the import
        # summary (context); a warm run has both cached by content digest.
        unread = {s.digest: s for s in sources
                  if s.digest not in known_facts or s.digest not in self.context.known}
        for digest, fact, row in _map_files(_first_pass, list(unread.values()), self.options.jobs):
            if digest not in known_facts:
                known_facts[digest] = fact
                if cache:
                    cache.put_facts(digest, fact)
            self.context.known.setdefault(digest, row)
        if digests is not None:
            digests.update(s.digest for s in sources)
        facts = [known_facts[s.digest] for s in sources]
        fact_of = {s.path: f for s, f in zip(sources, facts)}
        engine_fp = engine_fingerprint() if cache else ""
        config_fp = config_fingerprint(config) if cache else ""
        pending: list[tuple[str, list[_Source], bool, list[_Source]]] = []
        for members in self._packs([[sources[i] for i in g] for g in components(facts)]):
            group = [(m, fact_of[m.path]) for m in members]
            context = self.context_of(members)
            report.components.append(Component(tuple(m.path for m in members), config, tuple(context)))
            self.context_paths.update(c.file for c in context)
            relevant = any(fact.relevant for _, fact in group) or any(scan(c.path, c.text).relevant for c in context)
            key = component_key(engine_fp, config_fp, [(m.path, m.digest) for m in members]
                                + [(f"\0context {c.path}", c.digest) for c in context]) if cache else ""
            cached = cache.get(key) if cache else None
            if cached is not None:
                findings.extend(cached)
                report.components_cached += 1
            else:
                pending.append((key, members, relevant, context))
        report.components_analysed += len(pending)
        for key, result in _run_pending(pending, policy, self.options.jobs):
            findings.extend(result)
            if cache:
                cache.put(key, result)
        # `audit` records the noqa it used in the project's cache folder, cache or not
        record = self.options.cache_dir or config.project_cache_dir
        report.findings.extend(locate_all(drop_noqa_used_by_audit(findings, record), notebooks))


def _document_key(name: str) -> Path:
    return resolved(Path(os.path.abspath(name)))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and `taskset`
    narrow), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):   # macOS, Windows
        return os.cpu_count() or 1


def _first_pass(src: _Source) -> tuple[str, FileFacts, list]:
    """What the engine needs of a file before any parsing (see facts.py and project.py):
    (content digest, import facts, import summary row)."""
    summary = ModuleSummary.scan(src.text)
    summary.edges(ALL)     # a checked file's own imports are all followed: find them here
    return src.digest, scan(src.path, src.text), summary.to_row()


def _map_files(function, sources: list[_Source], jobs: int | None) -> list:
    """``function`` over ``sources``, in order; in a process pool when there is enough text."""
    jobs = _capped(jobs)
    if jobs <= 1 or sum(len(s.text) for s in sources) < PARALLEL_MIN_BYTES:
        return [function(s) for s in sources]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=_pool_context()) as pool:
        return list(pool.map(function, sources, chunksize=max(1, len(sources) // (8 * jobs))))


def _capped(jobs: int | None) -> int:
    # More workers than cores only adds forks and memory: --jobs is capped at the cores.
    return min(jobs or available_cores(), available_cores())


def _run_pending(pending, policy: Policy, jobs: int | None):
    jobs = _capped(jobs)

    def size(p) -> int:
        return sum(len(s.text) for s in (*p[1], *p[3]))

    total = sum(size(p) for p in pending)
    if jobs <= 1 or len(pending) <= 1 or total < PARALLEL_MIN_BYTES:
        for key, members, relevant, context in pending:
            yield key, _analyse_component(members, policy, relevant, context)
        return
    # Largest components first, so one big one does not start last and run alone.
    order = sorted(pending, key=lambda p: -size(p))
    with ProcessPoolExecutor(max_workers=min(jobs, len(order)), mp_context=_pool_context()) as pool:
        futures = [(key, pool.submit(_analyse_component, members, policy, relevant, context))
                   for key, members, relevant, context in order]
        for key, fut in futures:
            yield key, fut.result()


def check_text(text: str, path: str, config: Config) -> list[Finding]:
    return check_texts({path: text}, config)


def check_texts(texts: dict[str, str], config: Config, context: Sequence[_Source] = ()) -> list[Finding]:
    """Check source texts together, as one component with its context (the autofix
    re-checks a fixed component with this)."""
    members = [_Source(path, text, "", Path(path)) for path, text in texts.items()]
    return _analyse_component(members, Policy.from_config(config), True, context)
