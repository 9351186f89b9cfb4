"""NL3: placement and wiring of norms around residual adds; module reuse and aliasing."""

from __future__ import annotations

import re

from ...findings import Severity
from ..analysis import NormInfo
from ..tracer import NORM_NAME, torch_norm_family
from . import RuleContext, role_name

_NUMBERED = re.compile(r"^\d+$")

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
    """A pre-norm stream that ends un-normalized on the model's output path. When a head (one
    projection, maybe after pooling or slicing: ``lm_head``, a classifier) turns it into the
    model's output, the head sees the growing residual sum: the bug (C5-C8). When the
    stream itself is what the model returns (after a stack of at least two blocks), the
    normalization may be the caller's business (a feature extractor, a vision tower
    feeding a projector or an FPN neck): info. A stream that ends in a sub-tower inside the
    model, and a single residual block audited on its own, are not reported."""
    if not ctx.on("NL302"):
        return
    analysis = ctx.analysis
    graph = analysis.graph
    outputs = set(analysis.trace.outputs)
    if not outputs:
        return
    pre = [e.node for info in analysis.norms.values() for e, p in zip(info.events, info.placements)
           if p == "pre"]
    for add in graph.unnormalized_stream_ends(pre):
        head = graph.head_to_output(add, outputs)
        if head is None or (not head and _stack_depth(ctx, add) < 2):
            continue
        call = graph.nodes[add].call
        block = _stack_call(ctx, call)
        path = analysis.trace.calls[block].path if block >= 0 else ""
        owner = analysis.trace.calls[block].parent if block >= 0 else -1
        where = analysis.trace.calls[owner].path if owner >= 0 else ""
        place = analysis.call_place(block) if block >= 0 else None
        if place is not None and analysis.locator is not None:
            place = analysis.locator.enclosing_loop(place)
        if head:
            message = ("the head sees the un-normalized, growing residual sum; apply a norm after "
                       "the last block")
        else:
            message = ("the model returns the un-normalized, growing residual sum; unless its caller "
                       "normalizes it (a feature extractor's consumer), apply a norm after the last block")
        ctx.report("NL302", f"the pre-norm residual stream leaves {where or 'the model'} (last block "
                   f"{path or 'the model'}) without a final norm: {message}",
                   module=path or None, place=place, severity=None if head else Severity.INFO)
        return


def _stack_call(ctx: RuleContext, call: int) -> int:
    """The child call of the stream's owner that holds ``call``: the block of a stack."""
    chain = ctx.analysis.chain(call)
    calls = ctx.analysis.trace.calls
    for c in chain:
        if _stack_and_index(calls[c].path) is not None:
            return c
    return chain[1] if len(chain) > 1 else -1


def _stack_depth(ctx: RuleContext, add: int) -> int:
    """How many sibling blocks the stream ending at ``add`` passed through."""
    graph, calls = ctx.analysis.graph, ctx.analysis.trace.calls
    blocks, node, seen = set(), add, 0
    while node in graph.residual_adds and seen < 10_000:
        block = _stack_call(ctx, graph.nodes[node].call)
        if block >= 0 and calls[block].parent >= 0:
            blocks.add(block)
        node = graph.residual_adds[node].skip
        seen += 1
    return len(blocks)


def check_rebound_residual(ctx: RuleContext) -> None:
    if not ctx.on("NL303"):
        return
    analysis = ctx.analysis
    graph = analysis.graph
    events = {e.node: (info, e) for info in analysis.norms.values() for e in info.events}
    adds_by_call: dict[int, list[int]] = {}
    for add in graph.residual_adds:
        adds_by_call.setdefault(graph.nodes[add].call, []).append(add)
    reported = set()
    for add in graph.residual_adds.values():
        norm, event = events.get(add.skip, (None, None))
        if norm is None or norm.key in reported or add.weighted:
            continue  # a weighted skip alpha * norm(x) is a deliberate design (MiniMax-01)
        if graph.norm_input(add.skip) in graph.residual_adds:
            continue  # post-norm: the normalized sum legitimately carries the stream on
        call = graph.nodes[add.node].call
        if event.parent_call >= 0 and not analysis.within(call, event.parent_call):
            continue  # the stream starts normalized in an embedding or stage transition (Swin V2)
        if not graph.is_ancestor(add.skip, add.branch, through_norms=False):
            continue  # the branch has its own pre-norm: a normalized stem (CLIP pre_layrnorm)
        last = max(adds_by_call[call])
        if any(n in events and analysis.within(events[n][1].parent_call, call) for n in graph.follows(last)):
            continue  # a norm in the same module closes its stream: consistent post-norm wiring
        if _inside_a_branch(analysis, add):
            continue  # a term of a sublayer's computation (SwiftFormer's q + proj(g * k)), not the stream
        reported.add(norm.key)
        block = analysis.trace.calls[call].path if call >= 0 else ""
        ctx.report("NL303", f"{norm.key}: the residual path carries this norm's output "
                   f"(x = norm(x); x = x + f(x)) in {block or 'the model'}, so the block is not "
                   "pre-norm; keep the residual: x = x + f(norm(x))", norm=norm)


def _inside_a_branch(analysis, inner) -> bool:
    """Whether the add ``inner`` is made inside a submodule whose output is only the branch
    of an enclosing residual add (it feeds that add's branch, not its skip): the sum then is
    part of what the sublayer computes, and the residual stream never carries it."""
    graph = analysis.graph
    call = graph.nodes[inner.node].call
    for outer in graph.residual_adds.values():
        outer_call = graph.nodes[outer.node].call
        if (outer.node > inner.node and outer_call != call and analysis.within(call, outer_call)
                and graph.is_ancestor(inner.node, outer.branch)
                and not graph.is_ancestor(inner.node, outer.skip)):
            return True
    return False


def _parameter_free(module) -> bool:
    """No scale, shift or running statistics to share (an L2 norm, OLMo's LayerNorm)."""
    return module is None or (next(module.parameters(), None) is None
                              and not any(n.startswith("running_") for n, _ in module.named_buffers()))


# Placements in which a norm serves one residual sublayer: sharing one norm between two of
# them shares a sublayer's scale and shift. Taps off the stream (a decoder norm applied to
# every layer's output for intermediate predictions, DETR-style) are "final"/"other".
_SUBLAYER_ROLES = frozenset({"pre", "post", "branch-output"})


def _reuse(ctx: RuleContext, info: NormInfo):
    """How one norm module ran more than once in a forward, if that is sharing.

    The calls of two events diverge below their lowest common module call: the same module
    object called from one line (a loop over depth, ALBERT; a loop over chunks) is fine;
    called from two lines of that forward as the norm of two residual sublayers, or reached
    through two different parent objects, is sharing. Returns (kind, first call, second
    call) with kind "sites" or "parents"."""
    analysis = ctx.analysis
    graph = analysis.graph
    calls = analysis.trace.calls
    roles = sum(p in _SUBLAYER_ROLES for p in info.placements)
    first = analysis.chain(info.events[0].call)
    first_input = graph.norm_input(info.events[0].node)
    for event in info.events[1:]:
        other = analysis.chain(event.call)
        k = 0
        while k < min(len(first), len(other)) and first[k] == other[k]:
            k += 1
        if k >= len(first) or k >= len(other):
            continue
        a, b = calls[first[k]], calls[other[k]]
        if a.module_id != b.module_id:
            return "parents", a, b
        second_input = graph.norm_input(event.node)
        if a.site != b.site and roles >= 2 and first_input is not None and second_input is not None \
                and graph.is_ancestor(first_input, second_input):
            # One stream normalized again further on. Two parallel streams through one layer
            # (Pegasus-X's local and global tokens) share its weights, norm included, by design.
            return "sites", a, b
    return None


def check_norm_reused(ctx: RuleContext) -> None:
    if not ctx.on("NL304"):
        return
    analysis = ctx.analysis
    found: dict[tuple, list] = {}
    for info in analysis.norms.values():
        if info.first.module is None or len(info.events) < 2 or _parameter_free(info.module):
            continue
        reuse = _reuse(ctx, info)
        if reuse is None:
            continue
        found.setdefault((reuse[0], role_name(info.first.module, analysis.modules)), []).append((info, reuse))
    calls = analysis.trace.calls
    for (kind, name), hits in found.items():
        info, (_, a, b) = hits[0]
        layers = f" ({len(hits)} layers: {', '.join(h[0].key for h in hits[:3])}{', ...' if len(hits) > 3 else ''})" \
            if len(hits) > 1 else ""
        if kind == "sites":
            where = calls[a.parent].path if a.parent >= 0 else ""
            via = "" if a.path == info.key else f" through {a.path}"
            ctx.report("NL304", f"{name}: one {info.first.kind} runs at two call sites{via} in one "
                       f"forward of {where or 'the model'}, so those sublayers share its scale and "
                       f"shift; give each sublayer its own norm{layers}", norm=info,
                       place=analysis.call_place(b.id) or info.place())
        else:
            ctx.report("NL304", f"{info.key}: one {info.first.kind} object is reached from two "
                       f"parents ({a.path} and {b.path}) in one forward, so they share its "
                       f"parameters{' and running statistics' if info.first.family == 'batch' else ''};"
                       f" build one per parent{layers}", norm=info, prefer="construction")


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
                   module=where[0])


_NO_FORWARD = ("ModuleList", "ModuleDict", "ParameterList", "ParameterDict")


def _running_parent(ctx: RuleContext, path: str) -> str:
    """The module whose forward would call the one at ``path``: its owner, skipping
    containers that have no forward of their own (``ModuleList``)."""
    modules = ctx.analysis.modules
    parent = path.rpartition(".")[0]
    while parent and type(modules.get(parent)).__name__ in _NO_FORWARD:
        parent = parent.rpartition(".")[0]
    return parent


def _referenced(ctx: RuleContext, path: str) -> bool:
    """Whether the source of the norm's owner (or of a module above it) names the norm's
    attribute outside the line that built it: forward calls it on some branch."""
    modules, locator = ctx.analysis.modules, ctx.analysis.locator
    parts = path.split(".")
    names = [p for p in parts if not p.isdigit()]
    if not names or locator is None:
        return False
    attr = names[-1]
    pattern = re.compile(rf"(\.{re.escape(attr)}\b|['\"]{re.escape(attr)}['\"])")
    assignment = re.compile(r"\s*self\.\w+(\s*,\s*self\.\w+)*\s*[:=]")
    for n in range(len(parts) - 1, -1, -1):
        owner = modules.get(".".join(parts[:n]))
        if owner is None or type(owner).__module__.startswith("torch."):
            continue
        for cls in type(owner).__mro__:
            if cls.__module__.startswith("torch.") or cls is object:
                break
            lines = locator.source_lines(cls)
            # A use: any mention on a line that is not an assignment `self.attr = ...`.
            if any(pattern.search(line) and not assignment.match(line) for line in lines):
                return True
    return False


def check_unused_norms(ctx: RuleContext) -> None:
    """A registered norm that never ran. Not a bug by itself: when its parent never ran, or
    the parent's source calls it on a branch these inputs did not take (cross-attention
    without encoder states, a tap beyond a shallow config), it was *not exercised* (info).
    A norm skipped while its parent ran, and named nowhere in the source that would call
    it, is the bug (C14, C15)."""
    if not ctx.on("NL306"):
        return
    analysis = ctx.analysis
    norm_types = _norm_types(ctx)
    ran = analysis.trace.ran_modules
    for path, module in analysis.modules.items():
        if not path or path in ran or not _is_norm_module(module, norm_types):
            continue
        if any(id(p) in analysis.trace.used_params for p in module.parameters()):
            continue  # its parameters are used by the parent (F.layer_norm(x, ..., self.ln.weight))
        parent = _running_parent(ctx, path)
        place = ctx.module_place(path)
        if parent and parent not in ran:
            ctx.report("NL306", f"{path}: {type(module).__name__} was not exercised by these inputs: "
                       f"its parent {parent} never ran", module=path, place=place,
                       severity=Severity.INFO)
        elif _referenced(ctx, path):
            ctx.report("NL306", f"{path}: {type(module).__name__} was not exercised by these inputs: "
                       f"{parent or 'the model'} ran but took a branch that does not call it",
                       module=path, place=place, severity=Severity.INFO)
        else:
            ctx.report("NL306", f"{path}: {type(module).__name__} is registered but {parent or 'the model'} "
                       "ran without calling it, and no code names it; call it in forward() or remove it",
                       module=path, place=place)


def check_consecutive_norms(ctx: RuleContext) -> None:
    if not ctx.on("NL307"):
        return
    graph = ctx.analysis.graph
    by_node = {e.node: info for info in ctx.analysis.norms.values() for e in info.events}
    for info in ctx.analysis.norms.values():
        for event, placement in zip(info.events, info.placements):
            x = graph.norm_input(event.node)
            first = graph.selected_from(x) if x is not None else None
            previous = by_node.get(first) if first is not None else None
            # A pre-norm on an already normalized stream only feeds its branch; the stream
            # itself keeps the first norm's output (Conformer: final_layer_norm, then ffn1's;
            # a block-attention residual that keeps the normalized embedding among its
            # block states while layer 0's norm feeds the attention).
            # Scaling a normalized embedding to unit length (F.normalize, x / ||x||: the
            # cosine-similarity step of a contrastive head) is not a second standardization.
            if previous is not None and placement != "pre" and not event.unit \
                    and not _also_kept(graph, first, x, event.node):
                ctx.report("NL307", f"{info.key}: {info.first.kind} is applied directly to the "
                           f"output of {previous.key}; the second norm is redundant", norm=info,
                           place=ctx.analysis.event_place(event) or info.place())
                break


def _also_kept(graph, first: int, path_end: int, second: int) -> bool:
    """Whether the first norm's output is used by something besides the second norm (and
    the slicing or casting on the way to it) that also takes what the second norm feeds:
    then the stream keeps it, and the second norm only normalizes a copy for a branch."""
    chain, cur = {path_end}, path_end
    while cur != first:
        data = graph.data_inputs(cur)
        if len(data) != 1:
            break
        cur = data[0]
        chain.add(cur)
    kept = [c for a in graph.fwd_alias(first) for c in graph.consumers[a]
            if c not in chain and graph.nodes[c].kind != "norm"]
    if not kept:
        return False
    # The copy's branch must come back to the kept stream (a residual add, block states
    # stacked for attention); a copy normalized again only for another head (DETR-family
    # per-layer predictions) is still two norms in a row, as the static engine reports.
    after_second, todo = set(), [second]
    while todo and len(after_second) < 50_000:
        for c in graph.consumers[todo.pop()]:
            if c not in after_second:
                after_second.add(c)
                todo.append(c)
    return any(c in after_second for c in kept)


def check_mixed_placement(ctx: RuleContext) -> None:
    """A block where one residual sublayer has a pre-norm and another has none but is
    normalized after its add. A block-closing norm after pre-normed sublayers (Conformer's
    final_layer_norm) and sandwich norms are not mixed placement. Whether an add's branch
    has a pre-norm is judged over the whole model: a stage's first norm closes the previous
    stage's last (pre-normed) add. One finding per block class."""
    if not ctx.on("NL308"):
        return
    graph = ctx.analysis.graph
    pre_normed: set[int] = set()
    blocks: dict[str, list[NormInfo]] = {}
    for info in ctx.analysis.norms.values():
        blocks.setdefault(_norm_block(ctx, info), []).append(info)
        for event, placement in zip(info.events, info.placements):
            if placement == "pre":
                pre_normed.update(graph.pre_normed_adds(event.node))
    found: dict[str, list[tuple[str, NormInfo]]] = {}
    for block, infos in blocks.items():
        if not any("pre" in info.placements for info in infos):
            continue
        for info in infos:
            post_adds = [graph.norm_input(e.node) for e, p in zip(info.events, info.placements)
                         if p in ("post", "final")]
            if any(a in graph.residual_adds and a not in pre_normed for a in post_adds):
                module = ctx.analysis.modules.get(block)
                found.setdefault(type(module).__name__ if module is not None else block, []).append((block, info))
                break
    for hits in found.values():
        block, info = hits[0]
        more = f" (also in {len(hits) - 1} more: {', '.join(b for b, _ in hits[1:4])})" if len(hits) > 1 else ""
        ctx.report("NL308", f"{block or 'the model'}: some sublayers are pre-norm but {info.key} "
                   "post-normalizes a sublayer that has no pre-norm; use one placement for every "
                   f"sublayer{more}", norm=info, module=block or None)


def _branch_normed(graph, add) -> bool:
    """Whether some norm sits on every path from the skip into the branch (a pre-norm,
    a norm inside the sublayer, or a branch-output norm)."""
    if graph.nodes[graph.canon(add.branch)].kind == "norm":
        return True
    return not graph.is_ancestor(add.skip, add.branch, through_norms=False)


def _branch_call(ctx: RuleContext, add, block: int) -> int:
    """The child call of ``block`` that computed the add's branch (``self.attn`` in
    ``x = x + self.attn(x)``), or ``block`` itself."""
    graph = ctx.analysis.graph
    call = graph.nodes[graph.canon(add.branch)].call
    chain = ctx.analysis.chain(call)
    return chain[chain.index(block) + 1] if block in chain and chain.index(block) + 1 < len(chain) else block


def check_sublayer_without_norm(ctx: RuleContext) -> None:
    """NL309: in a block whose other residual sublayers are pre-norm, one sublayer's branch
    has no norm at all (``x = x + attn(x)`` beside ``x = x + ff(norm(x))``): it reads the raw,
    growing residual stream. The sublayers of a block are the residual adds made by one
    module call on one stream (each add's skip is the previous add)."""
    if not ctx.on("NL309"):
        return
    analysis = ctx.analysis
    graph = analysis.graph
    pre_normed: set[int] = set()
    placements: dict[int, str] = {}
    for info in analysis.norms.values():
        for event, placement in zip(info.events, info.placements):
            placements[event.node] = placement
            if placement == "pre":
                pre_normed.update(graph.pre_normed_adds(event.node))
    by_call: dict[int, list[int]] = {}
    for a in sorted(graph.residual_adds):
        by_call.setdefault(graph.nodes[a].call, []).append(a)
    found: dict[str, list[tuple[int, int]]] = {}
    for block, adds in by_call.items():
        stream = [adds[0]] + [b for a, b in zip(adds, adds[1:]) if graph.residual_adds[b].skip == graph.canon(a)]
        if len(stream) < 2 or not any(a in pre_normed for a in stream):
            continue
        for a in stream:
            add = graph.residual_adds[a]
            if a in pre_normed or _branch_normed(graph, add) or graph.nodes[add.skip].kind == "norm":
                continue  # (a normalized skip read by the branch is NL303's business)
            if any(placements.get(n) in ("post", "final") for n in graph.follows(a, hops=2)):
                continue  # normalized after its add: a post-norm sublayer (NL308's business)
            found.setdefault(analysis.trace.calls[block].type_name, []).append((block, a))
            break
    for hits in found.values():
        block, a = hits[0]
        branch = _branch_call(ctx, graph.residual_adds[a], block)
        path = analysis.trace.calls[block].path
        sublayer = analysis.trace.calls[branch].path if branch != block else "a sublayer"
        more = f" (the same in {len(hits) - 1} more blocks)" if len(hits) > 1 else ""
        ctx.report("NL309", f"{path or 'the model'}: the other residual sublayers are pre-norm, but "
                   f"{sublayer} reads the raw residual stream (x = x + f(x), no norm on its branch); "
                   f"give it a pre-norm: x = x + f(norm(x)){more}", module=path or None,
                   place=analysis.call_place(branch) if branch != block else None)


CHECKS = [check_post_norm_depth, check_missing_final_norm, check_rebound_residual,
          check_norm_reused, check_aliased_modules, check_unused_norms, check_consecutive_norms,
          check_mixed_placement, check_sublayer_without_norm]
