"""Module summaries, composed bottom-up: what a module does to its input.

A summary exists for every module-producing thing the module model knows — a project class
(specialised by the module arguments it was built with: ``PreNorm(dim, fn)``), an
``nn.Sequential``/``ModuleList`` literal, what a factory function returns, torch's own
layers. It answers:

- does the module start with a norm (its input is normalized before anything with
  parameters touches it), or end with one (its output is a norm's output);
- how its residual adds are placed: pre-norm (``x + f(norm(x))``), post-norm
  (``norm(x + f(x))``), sandwich/peri, switchable by a flag, mixed, or none;
- whether a residual branch is normalized one level down: a branch that calls a module
  which itself starts with a norm (``x + attn(x)`` where ``Attention.forward`` begins with
  ``self.norm``, or a ``Sequential(LayerNorm, Linear)``) is pre-norm.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .flow import Flow, Residual, exclusive, root, walks_back_to
from .index import ClassInfo
from .modules import Kind, ModuleModel

if TYPE_CHECKING:
    from .model import Analysis

_TRIVIAL = ("dropout", "identity", "act")
# torch layers with parameters that read their input as it is
_RAW_READERS = ("linear", "conv", "attention", "rnn")
# functional layers that read their input as it is
_RAW_FUNCS = ("linear", "conv1d", "conv2d", "conv3d", "bilinear")
# a module of unknown kind named for a positional encoding (relative position bias, rotary)
_POSITIONAL = re.compile(r"pos(itional)?_?(emb|enc|bias)|rel_pos|rotary|rope")
_WALK_BACK = ("method", "getitem", "attr", "phi", "unary")


@dataclass
class BlockSummary:
    """How one module wires its residual adds (computed from its forward dataflow)."""

    placement: str                  # pre / post / sandwich / peri / switchable / mixed / other / none
    ends_with_norm: bool
    stabilized: bool                # DeepNorm-style scaled skip
    flow: Flow | None = None
    starts_with_norm: bool = False


class Summaries:
    def __init__(self, analysis: "Analysis"):
        self.a = analysis
        self._models: dict[int, BlockSummary | None] = {}
        self._starts: dict[int, bool] = {}

    # -- classes ------------------------------------------------------------------------

    def of_model(self, model: ModuleModel) -> BlockSummary | None:
        key = id(model)
        if key in self._models:
            return self._models[key]
        self._models[key] = None
        flow = self.a.flow_of(model)
        if flow is None:
            return None
        for r in flow.residuals:
            if r.pre is None and self.branch_starts_with_norm(flow, r):
                r.pre = r.branch  # the sublayer module normalizes its own input (Conformer conv module)
        placement = placement_of(flow.residuals)
        if placement == "none" and self._chain_of_pre_norm_blocks(flow):
            placement = "pre"
        ends = bool(flow.returns) and all(_returns_norm(v) or self._call_ends_with_norm(_first(v))
                                          for v in flow.returns)
        summary = BlockSummary(placement, ends, any(r.scaled for r in flow.residuals), flow,
                               self._model_starts_with_norm(model))
        self._models[key] = summary
        return summary

    def of_kind(self, kind: Kind | None) -> BlockSummary | None:
        if kind is None:
            return None
        model = self.a.builder.model_of(kind) if kind.category == "project" else None
        return self.of_model(model) if model is not None else None

    def _chain_of_pre_norm_blocks(self, flow: Flow) -> bool:
        """The forward only chains pre-norm residual blocks, each on the previous one's output,
        and returns the last one's (MSA Transformer's axial layer: `x, _ = self.row_attention(x)`,
        ..., `x = self.feed_forward(x)`, each a `NormalizedResidualBlock`): a pre-norm block
        whose residual adds sit one level down."""
        if not flow.params or not flow.returns or flow.truncated:
            return False
        first = next(iter(flow.params.values()))
        calls = [v for v in flow.values if v.op in ("call", "block") and v.kind is not None
                 and v.kind.category not in _TRIVIAL]
        if len(calls) < 2 or any(v.kind.category != "project" for v in calls):
            return False
        prev = first
        for v in calls:
            s = self.of_kind(v.kind)
            if s is None or s.placement != "pre" or not v.inputs or not _comes_from(v.inputs[0], prev):
                return False
            prev = v
        return all(_comes_from(_first(r), prev) for r in flow.returns)

    def _call_ends_with_norm(self, v) -> bool:
        """A returned module call whose module returns a norm output (a wrapper's last step)."""
        if v.op not in ("call", "block") or v.kind is None or v.kind.category != "project":
            return False
        s = self.of_kind(v.kind)
        return bool(s and s.ends_with_norm)

    # -- starts with a norm -------------------------------------------------------------

    def starts_with_norm(self, what: ClassInfo | Kind, depth: int = 0) -> bool:
        if isinstance(what, ClassInfo):
            return self._model_starts_with_norm(self.a.model(what), depth)
        kind = what
        if kind.category == "norm":
            return True
        if kind.category == "sequential":
            for el in kind.elements:
                if el.category in _TRIVIAL:
                    continue
                return depth < 4 and self.starts_with_norm(el, depth + 1)
            return False
        if kind.category == "project" and kind.cls is not None and depth < 4:
            model = self.a.builder.model_of(kind)
            return model is not None and self._model_starts_with_norm(model, depth)
        return False

    def _model_starts_with_norm(self, model: ModuleModel, depth: int = 0) -> bool:
        key = id(model)
        if key in self._starts:
            return self._starts[key]
        self._starts[key] = False
        flow = self.a.flow_of(model)
        result = False
        if flow is not None and flow.params:
            first = next(iter(flow.params.values()))
            for v in flow.values:
                if v.op == "norm" or (v.op in ("call", "block") and v.kind is not None and depth < 4
                                      and v.kind.category in ("project", "sequential")):
                    if not v.inputs or not _comes_from(v.inputs[0], first):
                        continue
                    if v.op == "norm" or self.starts_with_norm(v.kind, depth + 1):
                        result = True
                        break
        self._starts[key] = result
        return result

    def reads_input_raw(self, kind: Kind, depth: int = 0) -> bool:
        """Certainly, on every path, a layer with parameters reads the module's first input
        before any norm touches it (the opposite of starts_with_norm, with certainty): a
        torch Linear/Conv/attention, a Sequential or project module whose first such layer
        does. A norm on the way, a module the model cannot read, or a call of unknown kind
        (an attention processor, a callable attribute) makes it not certain."""
        cat = kind.category
        if cat in _RAW_READERS:
            return True
        if depth > 3 or cat in ("norm", "unknown"):
            return False
        if cat == "sequential":
            first = next((el for el in kind.elements if el.category not in _TRIVIAL), None)
            return first is not None and self.reads_input_raw(first, depth + 1)
        if cat != "project":
            return False
        model = self.a.builder.model_of(kind)
        flow = self.a.flow_of(model) if model is not None else None
        if flow is None or flow.truncated or not flow.params:
            return False
        key = (id(model), "raw")
        if key in self._starts:
            return self._starts[key]
        self._starts[key] = False
        first = next(iter(flow.params.values()))
        todo, seen, found = [first], {first.id}, False
        result = True
        while todo and result:
            cur = todo.pop()
            for u in flow.uses(cur):
                if u.id in seen:
                    continue
                seen.add(u.id)
                if u.op == "norm":
                    result = False
                    break
                if u.op == "func" and (u.name or "").rsplit(".", 1)[-1] in _RAW_FUNCS:
                    found = True         # F.linear(x, self.in_proj_weight): a projection of it
                    continue
                if u.op in ("call", "block"):
                    k = u.kind
                    if k is not None and k.category in _TRIVIAL:
                        todo.append(u)
                        continue
                    if k is None and _POSITIONAL.search((u.attr or u.name or "").lower()):
                        continue         # a positional encoding reads it for a bias, not a norm
                    # as the module's first input, read raw by it; as a side argument (context=)
                    # or by a module of unknown kind, it may be normalized there
                    first_in = bool(u.inputs) and (u.inputs[0] is cur or u.inputs[0].has_ancestor(cur))
                    if k is None or not first_in or not self.reads_input_raw(k, depth + 1):
                        result = False
                        break
                    found = True
                    continue
                if u.op in ("lambda", "method_ref", "elem_ref", "module_ref"):
                    result = False
                    break
                todo.append(u)
        result = result and found
        self._starts[key] = result
        return result

    def branch_starts_with_norm(self, flow: Flow, r: Residual) -> bool:
        """The residual's branch runs the skip through a module that normalizes it first."""
        skip = root(r.skip)
        for u in flow.uses(skip):
            if u.op in ("call", "block") and u.kind is not None and (u is r.branch or r.branch.has_ancestor(u)) \
                    and u.kind.category in ("project", "sequential"):
                if self.starts_with_norm(u.kind):
                    return True
        return False

    # -- stacked elements ---------------------------------------------------------------

    def block_placement(self, kind: Kind | None) -> tuple[str, bool, bool] | None:
        """(placement, ends_with_norm, stabilized) of a stacked element."""
        if kind is None:
            return None
        if kind.category == "transformer_layer":
            if kind.norm_first is None:
                return None
            return ("pre", False, False) if kind.norm_first else ("post", True, False)
        if kind.category == "project" and kind.cls is not None:
            s = self.of_kind(kind)
            if s is None:
                return None
            return s.placement, s.ends_with_norm, s.stabilized
        if kind.category == "sequential" and kind.elements:
            # nn.Sequential(PreNormResidual(dim, attn), PreNormResidual(dim, ff)) as one layer
            placed = [self.block_placement(k) for k in kind.elements if k.category not in _TRIVIAL]
            if not placed or any(p is None for p in placed):
                return None
            kinds_ = {p[0] for p in placed} - {"none"}
            if len(kinds_) != 1:
                return None
            last = placed[-1]
            return kinds_.pop(), last[1], any(p[2] for p in placed)
        return None


def _first(v):
    """A returned tuple stands for its first element (the hidden states); then strip casts."""
    if v.op == "tuple" and v.inputs:
        v = v.inputs[0]
    return root(v)


def _returns_norm(v) -> bool:
    return certain_norm(_first(v))


def certain_norm(v) -> bool:
    """v is a norm's output on every path: a norm submodule that no branch of __init__
    replaces by something else (`self.norm = norm_layer(c) if proj else nn.Identity()`)."""
    if v.op != "norm":
        return False
    if not v.attr or v.model is None or "." in v.attr or "[" in v.attr:
        return True
    sub = v.model.submodules.get(v.attr)
    return sub is None or all(k.category == "norm" for k in sub.alternatives or [sub.kind])


def _comes_from(v, first) -> bool:
    """v is the forward's first input, back through reshapes, casts and if/else merges only."""
    return walks_back_to(v, first, lambda cur: cur.inputs if cur.op in _WALK_BACK else None)


def placement_of(residuals: list[Residual]) -> str:
    """The placement of a set of residual adds (one block's, or one loop body's)."""
    # adds with no norm around them (positional embeddings, adapters) say nothing about placement
    res = [r for r in residuals if r.pre or r.post or r.branch_out]
    pre = [r for r in res if r.pre is not None]
    post = [r for r in res if r.post is not None]
    if not res:
        return "none"
    if all(r.pre is not None and r.branch_out is not None for r in res):
        return "sandwich"
    if all(r.pre is not None and r.post is not None for r in res):
        placement = "peri"
        if all(exclusive(r.pre.conds, r.post.conds) for r in res):
            # `if self.normalize_before:` before the branch, `if not ...:` after the add:
            # one block that a flag switches between pre-norm and post-norm (fairseq)
            placement = "switchable"
        return placement
    if len(pre) == len(res) and not post:
        return "pre"
    last = max(res, key=lambda r: r.add.id)
    if len(pre) == len(res) and post == [last] and len(res) > 1:
        return "pre"          # every sublayer pre-norm, plus a block-final norm (Conformer)
    if any(r.pre is not None and r.post is None for r in res) and \
            any(r.post is not None and r.pre is None for r in res):
        return "mixed"
    if len(post) == len(res) and not pre:
        return "post"
    return "other"
