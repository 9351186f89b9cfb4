"""NL5: the training setup around the norms (optimizer parameter groups)."""

from __future__ import annotations

from ..tracer import torch_norm_family
from . import RuleContext


def check_weight_decay(ctx: RuleContext) -> None:
    optimizer = ctx.analysis.optimizer
    if not ctx.on("NL501") or optimizer is None:
        return
    norm_modules = {info.first.module for info in ctx.analysis.norms.values() if info.first.module}
    owners = {}
    for path, module in ctx.analysis.modules.items():
        if path in norm_modules or torch_norm_family(module):
            for name, param in module.named_parameters(recurse=False):
                owners.setdefault(id(param), f"{path}.{name}" if path else name)
    for index, group in enumerate(optimizer.param_groups):
        decay = group.get("weight_decay", 0) or 0
        hit = [owners[id(p)] for p in group["params"] if id(p) in owners]
        if decay > 0 and hit:
            first_module = hit[0].rpartition(".")[0]
            ctx.report("NL501", f"optimizer param group {index} applies weight_decay={decay:g} to "
                       f"{len(hit)} normalization parameters (e.g. {hit[0]}); put them in a group "
                       "with weight_decay=0.0", module=first_module or None)


def check_momentum_convention(ctx: RuleContext) -> None:
    """NL503: PyTorch updates ``running = (1 - m) * running + m * batch``; Keras/TensorFlow's
    momentum is the decay, so a copied 0.9/0.99 makes the running statistics follow the last
    batch. Read from every BatchNorm module of the model, as configured."""
    if not ctx.on("NL503"):
        return
    for path, module in ctx.analysis.modules.items():
        if torch_norm_family(module) != "batch":
            continue
        momentum = getattr(module, "momentum", None)
        if isinstance(momentum, (int, float)) and momentum >= 0.5:
            eps = getattr(module, "eps", None)
            copied = " (and eps=1e-3, TensorFlow's default, came with it)" if eps == 1e-3 else ""
            ctx.report("NL503", f"{path}: {type(module).__name__}(momentum={momentum:g}) keeps only "
                       f"{1 - momentum:.0%} of its running statistics per batch: a TensorFlow decay "
                       f"used as PyTorch's update rate{copied}; use momentum={max(1 - momentum, 0.001):g}",
                       module=path)


_BIASED_PRODUCERS = frozenset({"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                               "conv_transpose2d", "conv_transpose3d"})


def check_bias_before_batchnorm(ctx: RuleContext) -> None:
    """NL504: the batch mean subtracts a per-channel bias exactly, so a Linear/Conv bias that
    feeds straight into a BatchNorm over the same channels is a wasted parameter."""
    if not ctx.on("NL504"):
        return
    analysis = ctx.analysis
    graph, calls = analysis.graph, analysis.trace.calls
    for info in analysis.norms.values():
        if info.first.family != "batch" or info.first.module is None:
            continue
        x = graph.norm_input(info.first.node)
        node = graph.nodes[x] if x is not None else None
        if node is None or node.op not in _BIASED_PRODUCERS or node.call < 0:
            continue
        params = [i for i in node.inputs if graph.nodes[i].kind == "param"]
        if node.op == "linear" and len(info.first.in_shape) != 2:
            continue  # (N, L, C) through a transpose: not "straight into" the same channels
        if len(params) < 2:
            continue  # no bias
        producer = calls[node.call].path
        ctx.report("NL504", f"{producer}: its bias feeds straight into {info.key} "
                   f"({info.first.kind}), whose batch mean cancels it; build it with bias=False",
                   module=producer, place=ctx.module_place(producer))


CHECKS = [check_weight_decay, check_momentum_convention, check_bias_before_batchnorm]
