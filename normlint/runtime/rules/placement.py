"""NL3: placement and wiring of norms around residual adds; module reuse and aliasing."""

from __future__ import annotations

import re

from ..analysis import NormInfo
from ..tracer import NORM_NAME, torch_norm_family
from . import RuleContext

_NUMBERED = re.compile(r"^\d+$")
_CHUNK_OPS = frozenset({"getitem", "chunk", "split", "unbind", "narrow", "select", "tensor_split",
                        "split_with_sizes"})


def block_of(path: str) -> str:
    """The repeated block a path belongs to: ``h.0.attn.ln`` -> ``h.0``; else the path."""
    parts = path.split(".") if path else []
    for i, part in enumerate(parts):
        if _NUMBERED.match(part):
            return ".".join(parts[:i + 1])
    return path


def _stack_and_index(path: str) -> tuple[str, int] | None:
    """``encoder.layer.3.output.LayerNorm`` -> ("encoder.layer", 3); None outside a stack."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if _NUMBERED.match(part):
            return ".".join(parts[:i]), int(part)
    return None


def _call_path(ctx: RuleContext, node_idx: int) -> str:
    call = ctx.analysis.trace.nodes[node_idx].call
    return ctx.analysis.trace.calls[call].path if call >= 0 else ""


def _norm_block(ctx: RuleContext, info: NormInfo) -> str:
    if info.first.module is not None:
        return block_of(info.first.module.rpartition(".")[0])
    return block_of(_call_path(ctx, info.first.node))


def check_post_norm_depth(ctx: RuleContext) -> None:
    if not ctx.on("NL301"):
        return
    graph = ctx.analysis.graph
    limit = ctx.option("NL301", "post-norm-max-depth")
    # Depth counts block executions, so a shared layer run 24 times (ALBERT) is 24 deep.
    stacks: dict[str, set[tuple[int, int]]] = {}
    first_norm: dict[str, NormInfo] = {}
    for info in ctx.analysis.norms.values():
        if info.placement != "post" or info.first.module is None:
            continue
        x = graph.norm_input(info.first.node)
        if x in graph.residual_adds and graph.residual_adds[x].scaled:
            continue  # DeepNorm: norm(alpha * x + f(x)) is the sanctioned deep post-norm
        where = _stack_and_index(info.first.module)
        if where is None:
            continue
        stacks.setdefault(where[0], set()).update((where[1], n) for n in range(len(info.events)))
        first_norm.setdefault(where[0], info)
    for stack, blocks in stacks.items():
        if len(blocks) > limit:
            ctx.report("NL301", f"{stack}: {len(blocks)} post-norm residual blocks (more than "
                       f"{limit}) without DeepNorm/Admin residual scaling; post-LN at this depth "
                       "needs warm-up and tends to diverge: use pre-norm with a final norm",
                       norm=first_norm[stack], module=stack)


def check_missing_final_norm(ctx: RuleContext) -> None:
    if not ctx.on("NL302"):
        return
    analysis = ctx.analysis
    pre = [e.node for info in analysis.norms.values() for e, p in zip(info.events, info.placements)
           if p == "pre"]
    reported = set()
    for add in analysis.graph.unnormalized_stream_ends(pre):
        path = _call_path(ctx, add)
        if path in reported:
            continue
        reported.add(path)
        ctx.report("NL302", f"the pre-norm residual stream leaves {path or 'the model'} without a "
                   "final norm: the head sees the un-normalized, growing residual sum; apply a norm "
                   "after the last block", module=path or None)


def check_rebound_residual(ctx: RuleContext) -> None:
    if not ctx.on("NL303"):
        return
    analysis = ctx.analysis
    graph = analysis.graph
    by_node = {e.node: info for info in analysis.norms.values() for e in info.events}
    adds_by_block: dict[str, list[int]] = {}
    for add in graph.residual_adds:
        adds_by_block.setdefault(block_of(_call_path(ctx, add)), []).append(add)
    reported = set()
    for add in graph.residual_adds.values():
        norm = by_node.get(add.skip)
        if norm is None or norm.key in reported:
            continue
        if graph.norm_input(add.skip) in graph.residual_adds:
            continue  # post-norm: the normalized sum legitimately carries the stream on
        if not graph.is_ancestor(add.skip, add.branch, through_norms=False):
            continue  # the branch has its own pre-norm: a normalized stem (CLIP pre_layrnorm)
        block = block_of(_call_path(ctx, add.node))
        last = max(adds_by_block[block])
        followers = [by_node[n] for n in graph.follows(last) if n in by_node]
        if any(_norm_block(ctx, f) == block for f in followers):
            continue  # a norm closes the block: consistent post-norm wiring
        reported.add(norm.key)
        ctx.report("NL303", f"{norm.key}: the residual path carries this norm's output "
                   f"(x = norm(x); x = x + f(x)) in {block or 'the model'}, so the block is not "
                   "pre-norm; keep the residual: x = x + f(norm(x))", norm=norm)


def _chunk_root(ctx: RuleContext, idx: int) -> int:
    graph = ctx.analysis.graph
    while graph.nodes[idx].op in _CHUNK_OPS and graph.data_inputs(idx):
        idx = graph.data_inputs(idx)[0]
    return idx


def check_norm_reused(ctx: RuleContext) -> None:
    if not ctx.on("NL304"):
        return
    graph = ctx.analysis.graph
    for info in ctx.analysis.norms.values():
        if info.first.module is None:
            continue
        per_parent: dict[int, list[int]] = {}
        for event in info.events:
            per_parent.setdefault(event.parent_call, []).append(event.node)
        for calls in per_parent.values():
            if len(calls) < 2:
                continue
            roots = {_chunk_root(ctx, graph.data_inputs(n)[0]) for n in calls if graph.data_inputs(n)}
            if len(roots) == 1 and len(calls) > 1 and all(
                    graph.nodes[graph.data_inputs(n)[0]].op in _CHUNK_OPS for n in calls):
                continue  # one norm over chunks of the same stream
            ctx.report("NL304", f"{info.key}: one {info.first.kind} is called {len(calls)} times "
                       "in the same forward of its parent, so those sublayers share its scale and "
                       "shift; give each sublayer its own norm", norm=info)
            break


def _is_norm_module(module, norm_types: set[type]) -> bool:
    if torch_norm_family(module) or type(module) in norm_types:
        return True
    if type(module).__module__.startswith("torch.nn.utils"):
        return False  # weight/spectral-norm parametrizations normalize weights, not activations
    return next(iter(module.children()), None) is None and bool(NORM_NAME.search(type(module).__name__))


def _norm_types(ctx: RuleContext) -> set[type]:
    return {type(info.module) for info in ctx.analysis.norms.values() if info.module is not None}


def check_aliased_modules(ctx: RuleContext) -> None:
    if not ctx.on("NL305"):
        return
    model = ctx.analysis.model
    norm_types = _norm_types(ctx)
    paths: dict[int, list[str]] = {}
    objects = {}
    for path, module in model.named_modules(remove_duplicate=False):
        paths.setdefault(id(module), []).append(path)
        objects[id(module)] = module
    aliased_paths: set[str] = set()
    for ident, where in paths.items():
        if len(where) < 2:
            continue
        containers: dict[str, int] = {}
        for p in where:
            parent, _, last = p.rpartition(".")
            if _NUMBERED.match(last):
                containers[parent] = containers.get(parent, 0) + 1
        if not any(count > 1 for count in containers.values()):
            continue
        module = objects[ident]
        if not any(_is_norm_module(m, norm_types) for m in module.modules()):
            continue
        if any(p.startswith(a + ".") for p in where for a in aliased_paths):
            continue  # reported at the aliased container entry above it
        aliased_paths.update(where)
        ctx.report("NL305", f"{where[0]}: one {type(module).__name__} instance is repeated at "
                   f"{', '.join(where[:4])}{'...' if len(where) > 4 else ''}, so every layer "
                   "shares its norms and weights; build a fresh module per layer",
                   module=where[0], location=None)


def check_unused_norms(ctx: RuleContext) -> None:
    if not ctx.on("NL306"):
        return
    analysis = ctx.analysis
    norm_types = _norm_types(ctx)
    for path, module in analysis.modules.items():
        if not path or path in analysis.trace.ran_modules or not _is_norm_module(module, norm_types):
            continue
        if any(id(p) in analysis.trace.used_params for p in module.parameters()):
            continue  # its parameters are used by the parent (F.layer_norm(x, ..., self.ln.weight))
        parent = path.rpartition(".")[0]
        ctx.report("NL306", f"{path}: {type(module).__name__} is registered but never ran during "
                   "the audit; call it in forward() or remove it", module=path,
                   location=ctx.user_location(parent))


def check_consecutive_norms(ctx: RuleContext) -> None:
    if not ctx.on("NL307"):
        return
    graph = ctx.analysis.graph
    by_node = {e.node: info for info in ctx.analysis.norms.values() for e in info.events}
    for info in ctx.analysis.norms.values():
        for event in info.events:
            x = graph.norm_input(event.node)
            previous = by_node.get(x) if x is not None else None
            # A pre-norm on an already normalized stream only feeds its branch; the stream
            # itself keeps the first norm's output (Conformer: final_layer_norm, then ffn1's).
            if previous is not None and graph.placement(event.node) != "pre":
                ctx.report("NL307", f"{info.key}: {info.first.kind} is applied directly to the "
                           f"output of {previous.key}; the second norm is redundant", norm=info)
                break


def check_mixed_placement(ctx: RuleContext) -> None:
    """A block where one residual sublayer has a pre-norm and another has none but is
    normalized after its add. A block-closing norm after pre-normed sublayers (Conformer's
    final_layer_norm) and sandwich norms are not mixed placement."""
    if not ctx.on("NL308"):
        return
    graph = ctx.analysis.graph
    blocks: dict[str, list[NormInfo]] = {}
    for info in ctx.analysis.norms.values():
        blocks.setdefault(_norm_block(ctx, info), []).append(info)
    for block, infos in blocks.items():
        pre_normed: set[int] = set()
        for info in infos:
            for event, placement in zip(info.events, info.placements):
                if placement == "pre":
                    pre_normed.update(a for a in graph.skips.get(graph.norm_input(event.node), ())
                                      if graph.is_ancestor(event.node, graph.residual_adds[a].branch))
        if not pre_normed:
            continue
        for info in infos:
            post_adds = [graph.norm_input(e.node) for e, p in zip(info.events, info.placements)
                         if p in ("post", "final")]
            if any(a in graph.residual_adds and a not in pre_normed for a in post_adds):
                ctx.report("NL308", f"{block or 'the model'}: some sublayers are pre-norm but "
                           f"{info.key} post-normalizes a sublayer that has no pre-norm; use one "
                           "placement for every sublayer", norm=info, module=block or None)
                break


CHECKS = [check_post_norm_depth, check_missing_final_norm, check_rebound_residual,
          check_norm_reused, check_aliased_modules, check_unused_norms, check_consecutive_norms,
          check_mixed_placement]
