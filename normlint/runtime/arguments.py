"""What ``audit()`` was given, checked up front: a wrong kind of argument is one
NormlintError that names the argument, never an AttributeError from deep inside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..errors import NormlintError


def describe(value) -> str:
    """``'adam'``, ``5``, ``None``; the type's name for anything larger."""
    if value is None or isinstance(value, (str, int, float, bool)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(value).__name__}"


def strings(value) -> list[str] | None:
    """``value`` as a list of strings, or None when it is not an iterable of strings."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return None
    values = list(value)
    return values if all(isinstance(v, str) for v in values) else None


def code_list(value, argument: str) -> list[str] | None:
    """``select``/``ignore``: None, one code or prefix, or an iterable of them."""
    if value is None:
        return None
    values = [value] if isinstance(value, str) else strings(value)
    if values is None:
        raise NormlintError(f"audit({argument}=...) takes rule codes or prefixes: a string such "
                            f"as 'NL3' or a list of them, got {describe(value)}")
    # As on the command line (`--select ""`): a selection of nothing would silently turn
    # every rule off and pass.
    if any(not v.strip() for v in values) or (argument == "select" and not values):
        raise NormlintError(f"audit({argument}=...) needs rule codes, prefixes or 'ALL', got "
                            f"{describe(value) if isinstance(value, str) else values!r}; "
                            f"{argument}=None means the default")
    return values


def check_optimizer(optimizer) -> None:
    groups = getattr(optimizer, "param_groups", None)
    if optimizer is not None and not (isinstance(groups, list)
                                      and all(isinstance(g, Mapping) for g in groups)):
        raise NormlintError("audit(optimizer=...) takes a torch.optim.Optimizer (anything with "
                            f"param_groups, a list of dicts) or None, got {describe(optimizer)}")


def check_not_torchscript(model: nn.Module) -> None:
    """TorchScript runs a compiled graph: module hooks and __torch_function__ never see
    inside it, so an audit would look clean while having seen nothing."""
    for path, module in model.named_modules():
        if isinstance(module, torch.jit.ScriptModule):
            what = f"submodule {path!r} is" if path else "the model is"
            raise NormlintError(f"cannot audit TorchScript: {what} a {type(module).__name__} "
                                "(torch.jit.script/trace) and hooks cannot see inside it; "
                                "audit the eager nn.Module instead")


def check_inputs_not_empty(inputs) -> None:
    """A batch of 0 samples (or of 0 tokens) runs every norm on no value: nothing would be
    measured and the report would read as clean. Inputs without tensors are left alone."""
    from torch.utils._pytree import tree_leaves

    from .input_specs import describe_inputs

    tensors = [t for t in tree_leaves(inputs) if isinstance(t, torch.Tensor)]
    if tensors and all(t.numel() == 0 for t in tensors):
        raise NormlintError(f"the example inputs are empty ({describe_inputs(inputs)}): a norm "
                            "run on no value measures nothing; give at least one sample")
