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


CHECKS = [check_weight_decay]
