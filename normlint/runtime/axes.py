"""Which axes a norm reduces over (declared and measured) and which axis carries features.

Declared axes come from the norm's type and arguments. Measured axes come from the
invariance probe (probes.py) over the candidate sets listed here. The feature axis comes
from the dataflow graph: the axis contracted by the next Linear/matmul/conv/attention, or
produced by the previous Linear/Embedding/conv, mapped through transpose, permute and
reshape on the way.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Graph

# Ops that contract (consume) or produce the feature axis, and where it is.
CHANNEL_OPS = frozenset({"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                          "conv_transpose3d"})
_LAST_AXIS_CONSUMERS = frozenset({"linear", "scaled_dot_product_attention",
                                  "multi_head_attention_forward", "lstm", "gru", "rnn_tanh",
                                  "rnn_relu", "bilinear"})
_MATMULS = frozenset({"matmul", "bmm", "mm", "baddbmm"})
FEATURE_PRODUCERS = frozenset({"linear", "embedding", "matmul", "bmm", "mm", "baddbmm",
                               "scaled_dot_product_attention", "multi_head_attention_forward",
                               "lstm", "gru", "rnn_tanh", "rnn_relu", "bilinear"}) | CHANNEL_OPS
SEQUENCE_OPS = frozenset({"embedding", "lstm", "gru", "rnn_tanh", "rnn_relu"})
_SLICES = frozenset({"getitem", "narrow", "slice"})
MAX_HOPS = 12


def declared_module_axes(module, family: str, ndim: int) -> tuple[int, ...] | None:
    if family in ("layer", "rms"):
        shape = getattr(module, "normalized_shape", None)
        k = len(shape) if shape is not None else 1
        return tuple(range(max(ndim - k, 0), ndim))
    if family == "group":
        groups, channels = getattr(module, "num_groups", 1), getattr(module, "num_channels", 0)
        return _group_axes(groups, channels, ndim)
    return _family_axes(family, ndim)


def declared_functional_axes(name: str, args, kwargs) -> tuple[int, ...] | None:
    if not args:
        return None
    x = args[0]
    ndim = x.dim()
    if name in ("layer_norm", "rms_norm"):
        shape = kwargs.get("normalized_shape", args[1] if len(args) > 1 else None)
        k = 1 if isinstance(shape, int) else len(shape or (0,))
        return tuple(range(max(ndim - k, 0), ndim))
    if name == "group_norm":
        groups = kwargs.get("num_groups", args[1] if len(args) > 1 else 1)
        return _group_axes(groups, x.shape[1] if ndim > 1 else 0, ndim)
    if name == "normalize":
        dim = kwargs.get("dim", args[2] if len(args) > 2 else 1)
        return (dim % ndim,)
    return _family_axes(name.split("_")[0], ndim)


def _family_axes(family: str, ndim: int) -> tuple[int, ...] | None:
    if family == "batch":
        return tuple(i for i in range(ndim) if i != 1)
    if family == "instance":
        return tuple(range(2, ndim))
    return None


def _group_axes(groups: int, channels: int, ndim: int) -> tuple[int, ...]:
    # One channel per group: statistics over the spatial/time axes only (InstanceNorm-like).
    return tuple(range(2, ndim)) if groups == channels else tuple(range(1, ndim))


def candidate_axis_sets(shape: tuple[int, ...], limit: int = 15) -> list[tuple[int, ...]]:
    """Axis sets the invariance probe tries, smallest first; axes of size 1 cannot be told apart."""
    axes = [a for a, size in enumerate(shape) if size > 1]
    sets = [s for r in range(1, len(axes) + 1) for s in itertools.combinations(axes, r)]
    return sets[:limit]


def choose_measured_axes(results: list[tuple[tuple[int, ...], float]], tol: float
                         ) -> tuple[int, ...] | None:
    """The smallest axis set whose rescaling left the output unchanged (None: no such set)."""
    best = None
    for axes, deviation in results:
        if deviation == deviation and deviation < tol and (best is None or len(axes) < len(best)):
            best = axes
    return best


# ---------------------------------------------------------------------- feature axis
def map_axes(op: str, info: dict, pos: dict[int, int], in_shape: tuple[int, ...],
             out_shape: tuple[int, ...]) -> dict[int, int]:
    """Follow tracked axes (key -> axis of the input) through one shape op."""
    nd_in, nd_out = len(in_shape), len(out_shape)
    args = [a for a in info.get("axis_args", ()) if isinstance(a, (int, tuple, list))]
    kw = info.get("axis_kwargs", {})
    if op == "transpose":
        dims = args or [kw.get("dim0"), kw.get("dim1")]
        if len(dims) >= 2 and all(isinstance(d, int) for d in dims[:2]):
            a, b = dims[0] % nd_in, dims[1] % nd_in
            return {k: (b if v == a else a if v == b else v) for k, v in pos.items()}
        return {}
    if op in ("t", "T"):
        return {k: nd_in - 1 - v for k, v in pos.items()}
    if op == "mT":
        return {k: (nd_in - 1 if v == nd_in - 2 else nd_in - 2 if v == nd_in - 1 else v)
                for k, v in pos.items()}
    if op == "permute":
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        dims = [d % nd_in for d in (dims or kw.get("dims", ()))]
        return {k: dims.index(v) for k, v in pos.items() if v in dims}
    if op == "movedim" and len(args) >= 2 and all(isinstance(a, int) for a in args[:2]):
        src, dst = args[0] % nd_in, args[1] % nd_in
        order = [d for d in range(nd_in) if d != src]
        order.insert(dst, src)
        return {k: order.index(v) for k, v in pos.items()}
    # view / reshape / flatten / unsqueeze / squeeze: an axis keeps its meaning when every
    # axis before it (prefix) or after it (suffix) is unchanged.
    new = {}
    for k, v in pos.items():
        if tuple(in_shape[:v + 1]) == tuple(out_shape[:v + 1]):
            new[k] = v
        else:
            r = nd_in - v
            if r <= nd_out and tuple(in_shape[v:]) == tuple(out_shape[nd_out - r:]):
                new[k] = nd_out - r
    return new


def _contracted_axis(op: str, position: int, ndim: int) -> int | None:
    if op in CHANNEL_OPS:
        return 1 if position == 0 and ndim >= 2 else None
    if op in _LAST_AXIS_CONSUMERS:
        return ndim - 1 if position <= 2 else None
    if op in _MATMULS or op == "rmatmul":
        if op == "baddbmm":
            position -= 1
        return ndim - 1 if position == 0 else (ndim - 2 if ndim >= 2 else None)
    return None


def feature_axis_downstream(graph: "Graph", idx: int) -> int | None:
    """The norm-output axis that the next contraction consumes (majority of the votes)."""
    nodes = graph.nodes
    frontier = [(idx, {a: a for a in range(len(nodes[idx].shape))})]
    seen = {idx}
    for _ in range(MAX_HOPS):
        votes: list[int] = []
        nxt = []
        for cur, pos in frontier:
            inverse = {v: k for k, v in pos.items()}
            for c in graph.consumers[cur]:
                node = nodes[c]
                axis = _contracted_axis(node.op, node.inputs.index(cur), len(nodes[cur].shape))
                if axis is not None:
                    if axis in inverse:
                        votes.append(inverse[axis])
                    continue
                if c in seen or node.kind == "norm":
                    continue
                seen.add(c)
                if "axis_args" in node.info or node.op in ("t", "T", "mT"):
                    new = map_axes(node.op, node.info, pos, nodes[cur].shape, node.shape)
                    if new:
                        nxt.append((c, new))
                elif node.shape == nodes[cur].shape:
                    nxt.append((c, pos))
        if votes:
            return max(set(votes), key=votes.count)
        if not nxt:
            return None
        frontier = nxt
    return None


def upstream_path(graph: "Graph", idx: int) -> tuple[str | None, int | None]:
    """(producing op, feature axis on the norm's input) from the nearest producer upstream."""
    nodes = graph.nodes
    norm = nodes[idx]
    if not norm.inputs:
        return None, None
    start = norm.inputs[0]
    queue = [(start, ())]
    seen = set()
    while queue:
        cur, path = queue.pop(0)
        if cur in seen or len(path) > MAX_HOPS:
            continue
        seen.add(cur)
        node = nodes[cur]
        if node.op in FEATURE_PRODUCERS:
            out_nd = len(node.shape)
            pos = {0: 1 if node.op in CHANNEL_OPS else out_nd - 1}
            prev = node
            for p in reversed(path):
                step = nodes[p]
                if "axis_args" in step.info or step.op in ("t", "T", "mT"):
                    pos = map_axes(step.op, step.info, pos, prev.shape, step.shape)
                    if not pos:
                        return node.op, None
                prev = step
            return node.op, pos.get(0)
        is_shape_op = "axis_args" in node.info or node.op in ("t", "T", "mT")
        # A norm keeps its input's axes: walk through it to the producer before it. So does a
        # slice that keeps the rank (a causal conv's x[..., :-pad] before its BatchNorm).
        sliced = node.op in _SLICES
        for i in graph.data_inputs(cur):
            if is_shape_op or nodes[i].shape == node.shape or (sliced and len(nodes[i].shape) == len(node.shape)):
                queue.append((i, (cur,) + path))
    return None, None
