"""From traced forwards to per-norm facts the rules ask about."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .axes import (SEQUENCE_OPS, choose_measured_axes, feature_axis_downstream,
                   upstream_path)
from .graph import Graph
from .locate import Locator, Place, class_place, display_path, is_user_class
from .probes import tolerance
from .tracer import NormEvent, Trace, call_within

# forward() parameter names that mark a model fed with token or time sequences.
SEQUENCE_INPUT_NAMES = frozenset({
    "input_ids", "attention_mask", "key_padding_mask", "src_key_padding_mask", "lengths",
    "seq_len", "decoder_input_ids", "input_values", "token_type_ids", "position_ids",
})


@dataclass
class NormInfo:
    """Everything observed about one norm (a module, or a functional/inline call site)."""

    key: str
    events: list[NormEvent]
    placement: str
    placements: tuple[str, ...]
    feature_axis: int | None
    producer: str | None              # nearest feature-producing op upstream
    measured_axes: tuple[int, ...] | None
    sequence_axes: tuple[int, ...]    # input axes whose size followed the input length
    failed_other_length: bool         # the run with another length failed inside this norm
    module: nn.Module | None
    call_place: Place | None          # the user line that called it (first call)
    locator: Locator | None = None

    def place(self, prefer: str = "call") -> Place | None:
        """``call``: where forward called the norm (wiring rules); ``construction``: where it
        was built (choice, configuration); ``implementation``: the line that normalizes
        (formula, precision of a hand-written norm). Each falls back on the others.
        Source is only read here, for norms that get a finding."""
        getters = {"call": lambda: self.call_place, "construction": self.built_place,
                   "implementation": self.impl_place}
        order = {"call": ("call", "construction", "implementation"),
                 "construction": ("construction", "implementation", "call"),
                 "implementation": ("implementation", "construction", "call")}[prefer]
        return next((p for p in (getters[k]() for k in order) if p is not None), None)

    def built_place(self) -> Place | None:
        """Where the module was built (None: a functional or inline norm)."""
        first = self.first
        return self.locator.construction(first.module) if first.module and self.locator else None

    def impl_place(self) -> Place | None:
        """Inside a hand-written norm: the line that normalizes."""
        first = self.first
        if first.impl_site:
            return _site_place(first.impl_site)
        if first.handwritten and first.module is None:
            return _site_place(first.site)
        if self.module is not None and first.handwritten and is_user_class(self.module):
            return class_place(self.module)
        return None

    @property
    def path(self) -> str:
        place = self.place()
        return place.path if place else "<unknown>"

    @property
    def line(self) -> int:
        place = self.place()
        return place.line if place else 1

    @property
    def first(self) -> NormEvent:
        return self.events[0]

    @property
    def probed(self) -> NormEvent:
        return next((e for e in self.events if e.probed), self.events[0])

    @property
    def reduced_axes(self) -> tuple[int, ...] | None:
        """Declared axes are exact (torch kernel semantics, or the reductions seen in the op
        stream); the invariance probe decides only for norms whose forward is opaque."""
        declared = self.first.declared_axes
        return declared if declared is not None else self.measured_axes

    def value(self, name: str) -> float | None:
        return self.probed.values.get(name)


@dataclass
class Analysis:
    model: nn.Module
    trace: Trace
    graph: Graph
    norms: dict[str, NormInfo]
    sequence_model: bool
    numeric: bool
    modules: dict[str, nn.Module]
    optimizer: Any = None
    notes: list[str] = field(default_factory=list)
    locator: Locator | None = None
    fallback: Place | None = None     # where the audit was asked for: the last resort

    def chain(self, call: int) -> list[int]:
        """Module calls from the root call down to ``call``."""
        calls, out = self.trace.calls, []
        while call >= 0:
            out.append(call)
            call = calls[call].parent
        return out[::-1]

    def within(self, call: int, outer: int) -> bool:
        """Whether module call ``call`` ran inside (or is) module call ``outer``."""
        return call_within(self.trace.calls, call, outer)

    def event_place(self, event: NormEvent) -> Place | None:
        """The user line of this one execution of a norm."""
        return _site_place(event.site) if event.call < 0 else self.call_place(event.call)

    def call_place(self, call: int) -> Place | None:
        site = self.trace.calls[call].site if call >= 0 else None
        return _site_place(site)


def location_of_class(obj: Any) -> tuple[str, int]:
    place = class_place(obj)
    return (place.path, place.line) if place else ("<unknown>", 1)


def _site_place(site) -> Place | None:
    return Place(display_path(site[0]), site[1]) if site is not None else None


def measured_axes(event: NormEvent) -> tuple[int, ...] | None:
    if event.values.get("input_nonzero") == 0.0:
        return None  # an all-zero input is invariant to every rescaling
    results = [(axes, event.values.get(f"axes{i}", float("nan")))
               for i, (axes, _) in enumerate(event.axis_probes)]
    return choose_measured_axes(results, tolerance(event.dtype))


def resolve_values(trace: Trace, values: list[float]) -> None:
    for event in trace.events:
        event.values = found = {name: values[i] for name, i in event.probes.items()}
        for name in ("input", "output"):
            if f"{name}_sum" in found:   # a float32 sum is finite iff every element is
                found[f"{name}_finite"] = float(math.isfinite(found.pop(f"{name}_sum")))
        for name in ("input", "output", "reference"):
            if f"{name}_ms" in found:
                square = found.pop(f"{name}_ms")
                found[f"{name}_rms"] = math.sqrt(square) if square >= 0 else math.nan
        reference = event.values.get("reference_rms")
        axes = event.declared_axes or ()
        if reference and event.family in ("layer", "rms") and axes == tuple(
                range(len(event.in_shape) - len(axes), len(event.in_shape))):
            # NL407: the output's RMS against the input normalized without a gain.
            event.values["gain_ratio"] = event.values["output_rms"] / reference
        for i, (_, index) in enumerate(event.axis_probes):
            event.values[f"axes{i}"] = values[index]
        for axis, index in event.prefix_probes.items():
            event.values[f"prefix{axis}"] = values[index]


def _sequence_axes(trace: Trace, other: Trace | None) -> dict[str, tuple[int, ...]]:
    if other is None:
        return {}
    seen: dict[str, int] = {}
    other_shapes: dict[tuple[str, int], tuple[int, ...]] = {}
    for event in other.events:
        n = seen.get(event.key, 0)
        seen[event.key] = n + 1
        other_shapes[(event.key, n)] = event.in_shape
    seen.clear()
    result: dict[str, set[int]] = {}
    for event in trace.events:
        n = seen.get(event.key, 0)
        seen[event.key] = n + 1
        shape = other_shapes.get((event.key, n))
        if shape is not None and len(shape) == len(event.in_shape):
            changed = {a for a, (s, t) in enumerate(zip(event.in_shape, shape)) if s != t}
            result.setdefault(event.key, set()).update(changed)
    return {k: tuple(sorted(v)) for k, v in result.items()}


def analyse(model: nn.Module, trace: Trace, other: Trace | None, numeric: bool,
            optimizer=None, notes: list[str] | None = None,
            sequence_markers: tuple[str, ...] = (), origin=None,
            fallback: Place | None = None) -> Analysis:
    graph = Graph(trace)
    modules = dict(model.named_modules())
    locator = Locator(modules, origin)
    if fallback is None and origin is not None:
        fallback = locator.function_place(origin)
    seq_axes = _sequence_axes(trace, other)
    grouped: dict[str, list[NormEvent]] = {}
    for event in trace.events:
        grouped.setdefault(event.key, []).append(event)
    norms: dict[str, NormInfo] = {}
    for key, events in grouped.items():
        first = events[0]
        placements = tuple(graph.placement(e.node) for e in events)
        producer, up_axis = upstream_path(graph, first.node)
        feature = feature_axis_downstream(graph, first.node)
        reduced = first.declared_axes or () if first.family in ("layer", "rms", "lp") else ()
        if feature is None or (up_axis is not None and up_axis in reduced and feature not in reduced):
            # The norm agrees with the op that produced its input and the next contraction is
            # over another axis: a token-mixing MLP (MLP-Mixer) after the norm, not a mistake.
            feature = up_axis
        probed = next((e for e in events if e.probed), first)
        module = modules.get(first.module) if first.module is not None else None
        norms[key] = NormInfo(
            key=key, events=events, placement=max(set(placements), key=placements.count),
            placements=placements, feature_axis=feature, producer=producer,
            measured_axes=measured_axes(probed) if probed.axis_probes else None,
            sequence_axes=seq_axes.get(key, ()),
            # On a rank-2 (N, C) input the cut axis was the features, not a sequence.
            failed_other_length=(other is not None and other.failed_in == key
                                 and len(first.in_shape) >= 3),
            module=module, call_place=_site_place(first.site), locator=locator,
        )
    input_names = set(trace.input_names)
    sequence_model = (
        any(n.op in SEQUENCE_OPS for n in trace.nodes)
        or bool(input_names & (SEQUENCE_INPUT_NAMES | set(sequence_markers)))
        or any(info.sequence_axes or info.failed_other_length for info in norms.values())
    )
    return Analysis(model=model, trace=trace, graph=graph, norms=norms,
                    sequence_model=sequence_model, numeric=numeric, modules=modules,
                    optimizer=optimizer, notes=list(notes or ()), locator=locator,
                    fallback=fallback)
