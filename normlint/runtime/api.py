"""``audit(model, example_inputs)``: run the model under the tracer and apply the runtime rules."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from collections.abc import Mapping
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..errors import AuditError, NormlintError
from ..findings import Finding, sort_findings
from ..registry import RULES, RUNTIME
from ..selection import resolve_selection
from .analysis import Analysis, analyse, resolve_values
from .arguments import (check_inputs_not_empty, check_not_torchscript, check_optimizer, code_list,
                        describe, strings)
from .locate import Place, display_path
from .probes import Probe, ProbeSettings, StatBuffer
from .rules import RuleContext, run_rules
from .state import PreservedState, clone_inputs
from .table import format_norms_table, verdict
from .tracer import ShapeRecorder, Trace, Tracer

CHECK_GROUPS = ("axes", "batch", "padding", "numerics")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Probe values shown in NormRecord.stats, under names that say what they measure.
_STAT_NAMES = {"input_rms": "input_rms", "output_rms": "output_rms",
               "below_eps": "rows_below_eps", "batch": "sub_batch_deviation",
               "fp32_error": "fp32_error", "formula": "formula_deviation"}


@dataclass(frozen=True)
class NormRecord:
    """One normalization observed during the audit (a module or a functional call site)."""

    module: str
    kind: str
    placement: str
    declared_axes: tuple[int, ...] | None
    measured_axes: tuple[int, ...] | None
    feature_axis: int | None
    sequence_axes: tuple[int, ...]
    input_shape: tuple[int, ...]
    calls: int
    dtype: str
    eps: float | None
    stats: dict[str, float]
    verdict: str
    path: str
    line: int


@dataclass
class AuditReport:
    findings: list[Finding]
    norms: list[NormRecord]
    model: str
    numeric: bool = True            # False on the meta device: numeric checks were skipped
    notes: list[str] = field(default_factory=list)
    mode: str = "eval"              # the mode audited in: "eval", "train" or "mixed"

    @property
    def failed(self) -> bool:
        return any(f.severity.fails_run for f in self.findings)

    def format_table(self) -> str:
        return format_norms_table(self.norms)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "mode": self.mode, "numeric": self.numeric,
                "notes": list(self.notes),
                "norms": [asdict(n) for n in self.norms],
                "findings": [f.to_dict() for f in self.findings]}


def audit(model: nn.Module, example_inputs: Any = None, *, optimizer=None,
          select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
          checks: str | Iterable[str] = "all", mode: str | None = None,
          config: str | os.PathLike | bool | None = None) -> AuditReport:
    """Run ``model`` on ``example_inputs`` (a tensor, a tuple of positional arguments or a
    dict of keyword arguments) and report what its normalizations did.

    ``mode``: ``None`` audits the model in the mode it is in (each module's ``training``
    flag as set; ``report.mode`` says which: "eval", "train" or "mixed"); ``"eval"`` or
    ``"train"`` switches the whole model for the audit (``normlint audit`` uses "eval"
    unless ``--train``).

    The project's ``[tool.normlint]`` applies as for ``normlint check``: its selection,
    rule options, ``per-file-ignores``, and ``# noqa`` comments on the lines findings point
    at. ``config``: a config file, ``False`` for none, ``None`` (default) to discover one
    from the folder of the model class's source file (the user's own code), else from the
    working directory (read from disk on every call), or a ``normlint.config.Config``.
    ``select``/``ignore`` apply on top, as on the command line.

    The model comes out exactly as it went in: parameters (values and identity), buffers,
    submodules, training flags, and the Python, NumPy, torch and CUDA RNG states (see
    state.py). Every forward runs on clones of ``example_inputs``: the caller's tensors are
    never written to. Lazy modules are first initialised by one plain forward (eval mode,
    no grad) — the one change the audit leaves, and the one the model's first forward
    would make. A forward that raises is re-raised as ``AuditError`` from the model's own
    exception, after the hooks are removed.

    Raises NormlintError for a TorchScript module (hooks cannot see inside one: audit the
    eager module) and for arguments of the wrong kind, naming the argument.
    """
    from .project import discover_config

    settings = discover_config(model, config)
    enabled = resolve_selection(code_list(select, "select") or settings.select, settings.extend_select,
                                (*settings.ignore, *(code_list(ignore, "ignore") or ())))
    return audit_with(model, example_inputs, optimizer=optimizer, enabled=enabled & RUNTIME_CODES,
                      checks=checks, options=settings.rule_options, config=settings, mode=mode,
                      fallback=_caller_place())


def audit_with(model: nn.Module, example_inputs: Any, *, enabled: frozenset[str], optimizer=None,
               checks: str | Iterable[str] = "all",
               options: dict[str, dict[str, Any]] | None = None, origin=None,
               fallback: Place | None = None, config=None, mode: str | None = None,
               progress: Callable[[str], None] | None = None) -> AuditReport:
    """``audit`` with the enabled codes already resolved and per-rule options (the CLI's
    ``[tool.normlint.rules]`` configuration). ``origin``: the function that built the model
    (a CLI target's factory), where a finding about a module of a model that is itself an
    ``nn.Sequential`` points; ``fallback``: the place for what has no better one;
    ``config``: the project ``Config`` whose ``per-file-ignores`` and ``# noqa`` apply;
    ``progress`` is told each stage's name."""
    if mode not in (None, "eval", "train"):
        raise NormlintError(f"mode must be None, 'eval' or 'train', got {mode!r}")
    stage = progress or (lambda name: None)
    settings = probe_settings(checks)
    enabled = frozenset(enabled) & RUNTIME_CODES
    model = unwrap(model)
    if not isinstance(model, nn.Module):
        raise NormlintError(f"audit() needs a torch.nn.Module, got {type(model).__name__}")
    check_not_torchscript(model)
    check_optimizer(optimizer)
    # A tokenizer's BatchEncoding is a Mapping, not a dict: call the model with its keywords.
    inputs = dict(example_inputs) if isinstance(example_inputs, Mapping) else example_inputs
    check_inputs_not_empty(inputs)
    notes: list[str] = _initialise_lazy_modules(model, inputs)
    numeric = not _on_meta(model, inputs)
    paths = {}
    for path, module in model.named_modules():
        paths.setdefault(id(module), path)
    with PreservedState(model) as state, torch.no_grad():
        if mode is not None:
            model.train(mode == "train")
        flags = {m.training for m in model.modules()}
        audited_mode = "mixed" if len(flags) > 1 else "train" if flags == {True} else "eval"
        stage("forward with probes")
        trace = _traced_forward(model, clone_inputs(inputs), paths, settings if numeric else None,
                                state.guard)
        stage("forward at another length")
        other = _other_length_trace(model, inputs, trace, paths, state.guard)
    stage("analysis")
    notes.extend(trace.notes)
    notes.extend(state.notes)
    if not numeric:
        notes.append("meta device: numeric checks skipped, structural checks only")
    options = options or {}
    try:
        analysis = analyse(model, trace, other, numeric, optimizer=optimizer, notes=notes,
                           sequence_markers=tuple(options.get("NL101", {}).get("sequence-markers", ())),
                           origin=origin, fallback=fallback)
    except Exception as exc:  # noqa: BLE001 - ours, not the model's: one line, not a traceback
        raise AuditError(f"normlint could not analyse the trace of {type(model).__name__} "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
    findings = run_rules(RuleContext(analysis=analysis, enabled=enabled, options=options))
    if config is not None:
        from .project import apply_suppressions
        findings = apply_suppressions(findings, config)
    return AuditReport(findings=sort_findings(findings), norms=norm_records(analysis),
                       model=type(model).__name__, numeric=numeric, notes=analysis.notes,
                       mode=audited_mode)


def _caller_place() -> Place | None:
    """The line that asked for the audit: the first frame outside normlint."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return Place(display_path(frame.f_code.co_filename), frame.f_lineno) if frame is not None else None


# ---------------------------------------------------------------------- options
RUNTIME_CODES = frozenset(r.code for r in RULES if RUNTIME in r.engines)


def _initialise_lazy_modules(model: nn.Module, inputs) -> list[str]:
    """Lazy modules (LazyLinear, LazyBatchNorm) get their parameters from their first call;
    the tracer needs them materialised. One plain forward does that, in eval mode and
    without grad, with buffers, flags and RNG states restored: the only change left is the
    one the model's own first forward would have made."""
    from torch.nn.modules.lazy import LazyModuleMixin

    # named with their class, which the forward replaces (LazyLinear becomes Linear): a
    # bare path such as `0` said nothing
    lazy = [f"{path or 'the model'} ({type(m).__name__})" for path, m in model.named_modules()
            if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params()]
    if not lazy:
        return []
    with PreservedState(model) as state, torch.no_grad():
        model.eval()
        try:
            with state.guard:
                call_model(model, clone_inputs(inputs))
        except Exception as exc:
            raise AuditError(f"{type(model).__name__} forward raised {type(exc).__name__} while "
                             f"initialising its lazy modules {', '.join(lazy)}: {exc}") from exc
    return [f"lazy modules initialised by one plain forward before the audit: {', '.join(lazy)}"]


def probe_settings(checks) -> ProbeSettings:
    if checks == "all":
        return ProbeSettings()
    if checks == "structural":
        return ProbeSettings(axes=False, batch=False, padding=False, numerics=False)
    groups = {checks} if isinstance(checks, str) else strings(checks)
    if groups is None:
        raise NormlintError(f"audit(checks=...) takes 'all', 'structural' or some of "
                            f"{', '.join(CHECK_GROUPS)}, got {describe(checks)}")
    groups = set(groups)
    unknown = groups - set(CHECK_GROUPS)
    if unknown:
        raise NormlintError(f"unknown check group {sorted(unknown)[0]!r}; use 'all', "
                            f"'structural' or some of {', '.join(CHECK_GROUPS)}")
    return ProbeSettings(**{g: g in groups for g in CHECK_GROUPS})


# ---------------------------------------------------------------------- running
def unwrap(model):
    """The module hooks must go on: torch.compile's ``_orig_mod``, DataParallel's ``.module``."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def call_model(model: nn.Module, inputs: Any):
    if inputs is None:
        return model()
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _traced_forward(model, inputs, paths, settings: ProbeSettings | None, guard=None) -> Trace:
    buffer = StatBuffer()
    probe = Probe(settings, buffer) if settings is not None else None
    if probe is not None and guard is not None:
        probe = _Unguarded(probe, guard)
    tracer = Tracer(model, paths, inputs, probe)
    try:
        with tracer, guard or nullcontext():
            call_model(model, inputs)
    except Exception as exc:
        error = AuditError(f"{type(model).__name__} forward raised {type(exc).__name__}: {exc}")
        error.trace = tracer.trace  # the run with another length reads where it failed
        raise error from exc
    resolve_values(tracer.trace, buffer.resolve())
    return tracer.trace


class _Unguarded:
    """The probe with the parameter guard paused while it works (see ParameterGuard.paused):
    its hundreds of re-runs of single norms are most of the torch calls of an audit."""

    def __init__(self, probe: Probe, guard):
        self._probe, self._guard = probe, guard

    def __getattr__(self, name: str):
        attr = getattr(self._probe, name)
        if not callable(attr):
            return attr

        def unguarded(*args, **kwargs):
            with self._guard.paused():
                return attr(*args, **kwargs)
        return unguarded


def _other_length_trace(model: nn.Module, inputs, trace: Trace, paths, guard=None) -> Trace | None:
    """The norms' input shapes in a run with a shorter sequence axis (None: no such run).

    A quarter of the length is tried first (cheap); a run that does not complete there is
    repeated at three quarters, so a model that needs a minimum length, or a norm that only
    fails on very short inputs, is judged as before.
    """
    if not _length_matters(trace, inputs):
        return None
    modules = dict(model.named_modules())
    # Norms found in the op stream (functional calls, hand-written code) need the full tracer.
    light = all(e.module is not None and e.module in modules for e in trace.events)
    result = None
    for shorter in other_length_inputs(inputs):
        try:
            if light:
                recorder = ShapeRecorder({e.module: modules[e.module] for e in trace.events})
                try:
                    with recorder, guard or nullcontext():
                        call_model(model, clone_inputs(shorter))
                except Exception:  # noqa: BLE001 - judged below from where it failed
                    result = recorder.trace if recorder.trace.failed_in is not None else None
                    continue
                return recorder.trace
            return _traced_forward(model, clone_inputs(shorter), paths, None, guard)
        except AuditError as exc:
            # Failing outside any norm only means the inputs have no sequence axis to cut.
            result = exc.trace if exc.trace.failed_in is not None else None  # type: ignore[attr-defined]
    return result


def _flat_tensors(inputs) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    values = inputs.values() if isinstance(inputs, dict) else inputs if isinstance(inputs, (tuple, list)) else ()
    return [v for v in values if isinstance(v, torch.Tensor)]


def _on_meta(model: nn.Module, inputs) -> bool:
    first = [t for t in (next(model.parameters(), None), next(model.buffers(), None)) if t is not None]
    return any(t.is_meta for t in first + _flat_tensors(inputs))


_PER_ROW = frozenset({"layer", "rms", "lp"})


def _length_matters(trace: Trace, inputs) -> bool:
    """Whether the run at another length can tell anything: not when every norm normalizes
    each row over its last axis alone and that axis is not as long as the input sequence
    (then no norm reduces over a sequence axis, fails on a shorter one, or changes with
    padding). It costs a whole forward, and every norm of most LLMs is such a norm."""
    tensors = _flat_tensors(inputs)
    lengths = {t.shape[1] for t in tensors if t.dim() in (2, 3)}
    for event in trace.events:
        ndim = len(event.in_shape)
        if (event.family not in _PER_ROW or event.declared_axes != (ndim - 1,)
                or event.in_shape[-1] in lengths):
            return True
    return False


def other_length_inputs(inputs) -> list:
    """The same inputs with a shorter sequence axis (axis 1): cut to a quarter of the length,
    then to three quarters; empty when there is no such axis.

    The length is taken from the first rank-2 tensor (token ids, masks, raw audio) or, failing
    that, the first rank-3 tensor (N, L, C); every input with that size on axis 1 is cut.
    """
    tensors = _flat_tensors(inputs)
    ranked = [t for t in tensors if t.dim() == 2] or [t for t in tensors if t.dim() == 3]
    if not ranked or ranked[0].shape[1] < 4:
        return []
    length = ranked[0].shape[1]
    keeps = dict.fromkeys((max(2, length // 4), length - max(1, length // 4)))
    return [_cut_inputs(inputs, length, keep) for keep in keeps]


def _cut_inputs(inputs, length: int, keep: int):
    def cut(value):
        if isinstance(value, torch.Tensor) and value.dim() in (2, 3) and value.shape[1] == length:
            return value.narrow(1, 0, keep)
        return value

    if isinstance(inputs, torch.Tensor):
        return cut(inputs)
    if isinstance(inputs, dict):
        return {k: cut(v) for k, v in inputs.items()}
    return type(inputs)(cut(v) for v in inputs)


def norm_records(analysis: Analysis) -> list[NormRecord]:
    records = []
    for info in analysis.norms.values():
        first = info.first
        stats = {_STAT_NAMES[k]: v for k, v in info.probed.values.items() if k in _STAT_NAMES}
        records.append(NormRecord(
            module=info.key, kind=first.kind, placement=info.placement,
            declared_axes=first.declared_axes, measured_axes=info.measured_axes,
            feature_axis=info.feature_axis, sequence_axes=info.sequence_axes,
            input_shape=tuple(first.in_shape), calls=len(info.events),
            dtype=str(first.dtype).replace("torch.", ""), eps=first.eps, stats=stats,
            verdict=verdict(info), path=info.path, line=info.line,
        ))
    return records
