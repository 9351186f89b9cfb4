"""Residual adds and norm placement, read from a Trace's dataflow graph.

A residual add is an add whose one operand is an ancestor of the other (``x + f(x)``).
From where norms sit relative to those adds follow pre-norm (``x + f(norm(x))``),
post-norm (``norm(x + f(x))`` feeding the next residual), final norm (closing a pre-norm
stream), branch-output norms (sandwich/peri-LN: ``x + norm(f(x))``), and the pre-norm
streams that end without any norm.
"""

from __future__ import annotations

from dataclasses import dataclass

from .axes import FEATURE_PRODUCERS, upstream_path
from .tracer import Node, Trace, call_within

# Elementwise ops with one data operand that keep a value on "the same stream" (affine
# scale/shift with parameters or scalars, casts, dropout).
_THROUGH = frozenset({"mul", "add", "sub", "div", "to", "float", "half", "bfloat16", "double",
                      "type_as", "dropout", "contiguous", "clone", "data", "mul_", "add_"})
# Ops that only move, slice or pool data: a norm reached through them still "follows" an add
# (Swin's patch merging concatenates slices of the stream; BEiT normalizes the mean-pooled
# tokens).
_SHAPE_ONLY = frozenset({"view", "reshape", "contiguous", "dropout", "to", "getitem", "float",
                         "type_as", "clone", "flatten", "unflatten", "transpose", "permute",
                         "squeeze", "unsqueeze", "half", "bfloat16", "cat", "stack", "roll",
                         "pad", "narrow", "split", "chunk", "unbind", "select", "expand",
                         "repeat", "index_select", "mean", "amax", "max", "adaptive_avg_pool1d",
                         "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d"})
_ADDS = frozenset({"add", "add_"})
# Ops that pick or rearrange values without computing new ones.
_SELECTIONS = frozenset({"getitem", "select", "narrow", "view", "reshape", "transpose", "permute",
                         "squeeze", "unsqueeze", "flatten", "unflatten", "contiguous", "clone",
                         "view_as", "reshape_as", "movedim"})
# Reshapes keep a value on its stream (OPT flattens the stream around its FFN).
_RESHAPES = frozenset({"view", "reshape", "flatten", "unflatten", "view_as", "reshape_as"})
# Ops that mix features: a residual branch has one (RoPE's x*cos + rot(x)*sin has none).
_MIXING = FEATURE_PRODUCERS | {"einsum", "addmm"}
_ACTIVATIONS = frozenset({"gelu", "relu", "tanh", "silu", "sigmoid", "softmax", "log_softmax",
                          "elu", "leaky_relu", "hardtanh", "mish", "softplus"})

@dataclass(frozen=True)
class ResidualAdd:
    node: int
    skip: int          # canonical skip operand (the earlier value of the stream)
    branch: int        # the operand computed from the skip
    scaled: bool       # the skip was multiplied by a constant first (DeepNorm alpha)
    weighted: bool = False   # ...by any constant factor, 1 or a learned one (a deliberate mix)


class Graph:
    def __init__(self, trace: Trace, max_visits: int = 50_000):
        self.trace = trace
        self.nodes: list[Node] = trace.nodes
        self._max_visits = max_visits
        self.consumers: list[list[int]] = [[] for _ in self.nodes]
        for node in self.nodes:
            if node.hidden:
                continue
            for i in node.inputs:
                self.consumers[i].append(node.idx)
        self.residual_adds: dict[int, ResidualAdd] = {}
        self.skips: dict[int, list[int]] = {}
        self.branches: dict[int, list[int]] = {}
        self._find_residual_adds()

    # -------------------------------------------------------------- basic walks
    def data_inputs(self, idx: int) -> list[int]:
        return [i for i in self.nodes[idx].inputs if not self.nodes[i].const]

    def _through(self, idx: int) -> bool:
        node = self.nodes[idx]
        if node.kind != "op" or node.hidden:
            return False
        data = self.data_inputs(idx)
        if len(data) != 1:
            return False
        if node.op in _RESHAPES:
            return True
        return node.op in _THROUGH and node.shape == self.nodes[data[0]].shape

    def selected_from(self, idx: int) -> int:
        """Walk back through ops that only select, move or cast values (a CLS slice, a
        reshape): a norm of ``ln(x)[:, 0]`` still normalizes a norm's output."""
        while True:
            idx = self.canon(idx)
            node = self.nodes[idx]
            data = self.data_inputs(idx)
            if node.kind != "op" or node.hidden or node.op not in _SELECTIONS or len(data) != 1:
                return idx
            idx = data[0]

    def canon(self, idx: int) -> int:
        return self.canon_scaled(idx)[0]

    def canon_scaled(self, idx: int) -> tuple[int, bool]:
        """Walk back through scale/shift/cast/dropout; report a constant rescaling on the way."""
        idx, scaled, _ = self.canon_weighted(idx)
        return idx, scaled

    def canon_weighted(self, idx: int) -> tuple[int, bool, bool]:
        """``canon`` and whether the value was rescaled on the way: by a constant other than
        1 (``scaled``: DeepNorm's alpha), or by any constant factor, a Python number or a
        parameter (``weighted``: a residual mix the design spells out, ``alpha * x + ...``
        with alpha configured to 1, or a learned lambda)."""
        scaled = weighted = False
        while self._through(idx):
            node = self.nodes[idx]
            if node.op in ("mul", "div", "mul_"):
                factors = node.info.get("scalars", ())
                scaled = scaled or any(f != 1 for f in factors)
                weighted = weighted or bool(factors) or len(node.inputs) > len(self.data_inputs(idx))
            idx = self.data_inputs(idx)[0]
        return idx, scaled, weighted

    def fwd_alias(self, idx: int) -> list[int]:
        """``idx`` and every node reached from it through scale/shift/cast/dropout ops."""
        out, stack = [], [idx]
        while stack:
            cur = stack.pop()
            out.append(cur)
            stack.extend(c for c in self.consumers[cur] if self._through(c))
        return out

    def is_ancestor(self, a: int, b: int, through_norms: bool = True) -> bool:
        """Whether ``a`` feeds ``b``; with ``through_norms=False`` only along paths that do
        not pass through another norm node."""
        if a == b:
            return True
        stack, seen = [b], set()
        while stack and len(seen) < self._max_visits:
            cur = stack.pop()
            for i in self.nodes[cur].inputs:
                if i == a:
                    return True
                if i > a and i not in seen:  # ancestors always have smaller indices
                    seen.add(i)
                    if through_norms or self.nodes[i].kind != "norm":
                        stack.append(i)
        return False

    def _find_residual_adds(self) -> None:
        for node in self.nodes:
            if node.op not in _ADDS or node.kind != "op" or node.hidden:
                continue
            data = self.data_inputs(node.idx)
            if len(data) != 2 or data[0] == data[1]:
                continue
            a, b = data
            # Compare through constant scaling: DeepNorm's alpha * x + f(x) is residual too.
            # A parallel block (Cohere: x + attn(n) + mlp(n)) adds its second branch to the
            # first residual sum: the same stream, so the same skip.
            for skip, branch in ((a, b), (b, a)):
                stream = self.canon(skip)
                if not self.is_ancestor(stream, branch):
                    first = self.residual_adds.get(stream)
                    if first is None or not self.is_ancestor(first.skip, branch):
                        continue
                    stream = first.skip
                if self._mixes(stream, branch):
                    break
            else:
                projected = self._projection_shortcut(a, b)
                if projected is None:
                    continue
                stream, skip, branch = projected
            _, scaled, weighted = self.canon_weighted(skip)
            self.residual_adds[node.idx] = ResidualAdd(node.idx, stream, branch, scaled, weighted)
            self.skips.setdefault(stream, []).append(node.idx)
            self.branches.setdefault(self.canon(branch), []).append(node.idx)

    def _projection_shortcut(self, a: int, b: int) -> tuple[int, int, int] | None:
        """``proj(x) + f(x)``: a residual block whose skip is a single projection (conv or
        linear, maybe followed by a norm) of the block input ``x`` (ResNet's downsampling
        blocks, U-Net blocks that change width). Returns (stream, skip, branch).

        The block input must not be a norm output: ``q_proj(h) + lora(h)`` on a normalized
        ``h`` is one layer, not a residual block."""
        for skip, branch in ((a, b), (b, a)):
            source = self._projected_from(skip)
            if (source is None or self.nodes[source].kind == "norm"
                    or self._projected_from(branch) == source
                    or not self.is_ancestor(source, branch) or not self._mixes(source, branch)):
                continue
            return source, skip, branch
        return None

    def _projected_from(self, idx: int) -> int | None:
        """``x`` when ``idx`` is ``proj(x)`` or ``norm(proj(x))`` (one feature-mixing op)."""
        idx = self.canon(idx)
        if self.nodes[idx].kind == "norm":
            inner = self.norm_input(idx)
            if inner is None:
                return None
            idx = inner
        node = self.nodes[idx]
        data = self.data_inputs(idx)
        # An embedding lookup of token ids is no projection of a stream (RoBERTa's word and
        # position embeddings both come from input_ids).
        if node.kind != "op" or node.op not in _MIXING or node.op == "embedding" or len(data) != 1:
            return None
        source = self.canon(data[0])
        dtype = self.nodes[source].dtype
        return source if dtype is not None and dtype.is_floating_point else None

    def _mixes(self, skip: int, branch: int) -> bool:
        """Whether some feature-mixing op lies between ``skip`` and ``branch``."""
        stack, seen = [branch], set()
        while stack and len(seen) < self._max_visits:
            cur = stack.pop()
            node = self.nodes[cur]
            if node.op in _MIXING or node.kind == "norm":
                return True
            for i in self.data_inputs(cur):
                if i > skip and i not in seen:
                    seen.add(i)
                    stack.append(i)
        return False

    # -------------------------------------------------------------- placement
    def norm_input(self, norm: int) -> int | None:
        data = self.data_inputs(norm)
        return self.canon(data[0]) if data else None

    def placement(self, norm: int) -> str:
        x = self.norm_input(norm)
        if x is not None:
            if any(self.is_ancestor(norm, self.residual_adds[a].branch) for a in self.skips.get(x, ())):
                return "pre"                      # y = x + f(norm(x))
            if x in self.residual_adds:           # norm(x + f(x))
                if norm in self.skips or self._is_post(self.residual_adds[x].skip):
                    return "post"                 # the normalized stream is the next skip
                if self._feeds_branch(norm):
                    return "pre"                  # feeds another stream's branch (reversible
                                                  # layers) or a stage transition's projection
                return "final"                    # closes an un-normalized (pre-norm) stream
            if self._pooled_stream(x):
                return "final"                    # norm(pool(x + f(x))), norm(cat(slices))
        if norm in self.branches:
            return "branch-output"                # x + norm(f(x)): sandwich / peri-LN
        if upstream_path(self, norm)[0] == "embedding":
            return "embedding"
        return "other"

    def _within(self, call: int, outer: int) -> bool:
        return call_within(self.trace.calls, call, outer)

    def _feeds_branch(self, norm: int) -> bool:
        return bool(self._branches_fed(norm))

    def _branches_fed(self, norm: int, lookahead: int = 2) -> list[int]:
        """The next residual adds, made by the module that called the norm (or a module
        above), whose branch the norm's output feeds: a two-stream (reversible) layer adds
        ``f(norm(y1))`` to the *other* stream; a stage transition (Hiera) adds
        ``attn(norm(x))`` to ``proj(norm(x))``. A final norm feeds no later add of its caller."""
        parent = self.nodes[norm].call
        later = [a for a in sorted(self.residual_adds) if a > norm
                 and self._within(parent, self.nodes[a].call)][:lookahead]
        return [a for a in later if self.residual_adds[a].skip != norm
                and self.is_ancestor(norm, self.residual_adds[a].branch, through_norms=False)]

    def pre_normed_adds(self, norm: int) -> list[int]:
        """The residual adds whose branch this (pre-)norm normalizes the input of."""
        x = self.norm_input(norm)
        direct = [a for a in self.skips.get(x, ()) if self.is_ancestor(norm, self.residual_adds[a].branch)]
        return direct or self._branches_fed(norm)

    def _is_post(self, skip: int) -> bool:
        """The skip is the output of a norm that itself closed a residual add (the previous
        post-norm sublayer). A stem or embedding norm as the skip says nothing: the stream
        of a one-block stage after it is not thereby post-norm (ConvNeXt, depth 1)."""
        return self.nodes[skip].kind == "norm" and self.norm_input(skip) in self.residual_adds

    def _pooled_stream(self, idx: int, hops: int = 8) -> bool:
        """Whether ``idx`` is a residual stream seen through ops that only pool, slice,
        concatenate or reshape it (Swin's patch merging, ConvNeXt/BEiT mean pooling)."""
        frontier, seen = [idx], set()
        for _ in range(hops):
            nxt = []
            for cur in frontier:
                if cur in self.residual_adds:
                    return True
                node = self.nodes[cur]
                if node.kind == "op" and not node.hidden and (node.op in _SHAPE_ONLY or self._through(cur)):
                    nxt.extend(i for i in self.data_inputs(cur) if i not in seen)
                    seen.update(nxt)
            frontier = nxt
        return False

    def follows(self, idx: int, hops: int = 6) -> list[int]:
        """Norm nodes reached from ``idx`` through ops that only move or rescale data."""
        found, frontier, seen = [], self.fwd_alias(idx), set()
        for _ in range(hops):
            nxt = []
            for cur in frontier:
                for c in self.consumers[cur]:
                    if c in seen:
                        continue
                    seen.add(c)
                    node = self.nodes[c]
                    if node.kind == "norm":
                        found.append(c)
                    elif node.op in _SHAPE_ONLY or self._through(c):
                        nxt.append(c)
            frontier = nxt
        return found

    def head_to_output(self, idx: int, outputs: set[int], max_nodes: int = 64) -> bool | None:
        """How ``idx`` reaches the model's return value: ``False`` as the value itself (through
        ops that only move, cast or pool it), ``True`` through one head (a projection, maybe
        with an activation: a pooler, a classifier, ``lm_head``), ``None`` not at all, or only
        through more (a projector into another stack, another residual add, a norm)."""
        frontier, seen = [(idx, 0)], {idx}
        while frontier and len(seen) < max_nodes:
            cur, mixes = frontier.pop(0)
            if cur in outputs:
                return mixes > 0
            for c in self.consumers[cur]:
                node = self.nodes[c]
                if c in seen or node.kind != "op" or c in self.residual_adds:
                    continue
                data = self.data_inputs(c)
                if node.op in _MIXING:
                    if mixes or len(data) != 1:
                        continue
                    nxt = 1
                elif node.op in _SHAPE_ONLY or self._through(c) or (
                        len(data) == 1 and node.op in _ACTIVATIONS):
                    nxt = mixes
                else:
                    continue
                seen.add(c)
                frontier.append((c, nxt))
        return None

    def unnormalized_stream_ends(self, pre_norms: list[int]) -> list[int]:
        """Last residual adds of pre-norm streams that no norm follows (NL302)."""
        pre_skips = {self.norm_input(n) for n in pre_norms}
        ends = []
        for add in self.residual_adds.values():
            if add.skip not in pre_skips:
                continue
            aliases = self.fwd_alias(add.node)
            if any(o in self.skips for o in aliases):
                continue                          # the stream goes on into another block
            if any(c in self.residual_adds for o in aliases for c in self.consumers[o]):
                continue                          # a parallel block adds its next branch
            if not self.follows(add.node):
                ends.append(add.node)
        return ends
