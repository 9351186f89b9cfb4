"""``normlint audit TARGET``: import the factory, build the model and its example inputs.

TARGET is ``path/to/file.py:callable`` or ``package.module:callable``; the callable returns a
module, or ``(module, example_inputs)``. ``--input`` specs build inputs for a model returned
alone: ``input_ids=int64[2,16]:0..1000`` (keyword) or ``float32[2,3,224,224]`` (positional).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import NormlintError

_SPEC = re.compile(r"^(?:(?P<name>[A-Za-z_]\w*)=)?(?P<dtype>[a-z0-9]+)\[(?P<shape>[\d,\s]*)\]"
                   r"(?::(?P<low>-?[\d.eE+-]+)\.\.(?P<high>-?[\d.eE+-]+))?$")
_DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
           "int64": torch.int64, "long": torch.int64, "int32": torch.int32, "int": torch.int32,
           "bool": torch.bool}


@dataclass(frozen=True)
class InputSpec:
    name: str | None
    dtype: torch.dtype
    shape: tuple[int, ...]
    low: float | None
    high: float | None

    def build(self, generator: torch.Generator) -> torch.Tensor:
        if self.dtype == torch.bool:
            return torch.randint(0, 2, self.shape, generator=generator).bool()
        if not self.dtype.is_floating_point:
            low = int(self.low) if self.low is not None else 0
            high = int(self.high) if self.high is not None else 2
            return torch.randint(low, high, self.shape, generator=generator, dtype=self.dtype)
        if self.low is not None:
            return torch.rand(self.shape, generator=generator) * (self.high - self.low) + self.low
        return torch.randn(self.shape, generator=generator)


def parse_input_spec(text: str) -> InputSpec:
    match = _SPEC.match(text.replace(" ", ""))
    if match is None:
        raise NormlintError(f"bad --input {text!r}; expected e.g. input_ids=int64[2,16]:0..1000 "
                            "or float32[2,3,224,224]")
    dtype = _DTYPES.get(match["dtype"])
    if dtype is None:
        raise NormlintError(f"unknown dtype {match['dtype']!r} in --input {text!r}; "
                            f"use one of {', '.join(sorted(_DTYPES))}")
    shape = tuple(int(s) for s in match["shape"].split(",") if s)
    low = float(match["low"]) if match["low"] is not None else None
    high = float(match["high"]) if match["high"] is not None else None
    if low is not None and high <= low:
        raise NormlintError(f"empty range {low:g}..{high:g} in --input {text!r}")
    return InputSpec(match["name"], dtype, shape, low, high)


def build_inputs(specs: list[InputSpec], seed: int = 0) -> Any:
    """A tensor (one positional spec), a tuple (several) or a dict (all named)."""
    generator = torch.Generator().manual_seed(seed)
    named = [s for s in specs if s.name]
    if named and len(named) != len(specs):
        raise NormlintError("--input specs must be all named (name=...) or all positional")
    if named:
        return {s.name: s.build(generator) for s in specs}
    tensors = tuple(s.build(generator) for s in specs)
    return tensors[0] if len(tensors) == 1 else tensors


def _import_file(path: str):
    if not os.path.isfile(path):
        raise NormlintError(f"target file not found: {path}")
    name = "_normlint_target_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the target's sibling modules import as they do for its author
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def load_target(target: str) -> tuple[nn.Module, Any]:
    """(model, example inputs or None) from ``file.py:factory`` or ``pkg.mod:factory``."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise NormlintError(f"bad target {target!r}; expected path/to/file.py:callable or "
                            "package.module:callable")
    try:
        if where.endswith(".py") or os.sep in where or "/" in where:
            module = _import_file(where)
        else:
            module = importlib.import_module(where)
    except NormlintError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import: one line
        raise NormlintError(f"cannot import {where}: {type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise NormlintError(f"{where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        return obj, None
    if not callable(obj):
        raise NormlintError(f"{target} is neither a module nor a callable")
    try:
        made = obj()
    except Exception as exc:  # noqa: BLE001
        raise NormlintError(f"{target} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(made, nn.Module):
        return made, None
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], nn.Module):
        return made
    raise NormlintError(f"{target} returned {type(made).__name__}; expected a torch.nn.Module "
                        "or (module, example_inputs)")


def to_device_dtype(model: nn.Module, inputs: Any, dtype: torch.dtype | None, device: str | None):
    """Move the model and its inputs; only floating-point inputs change dtype."""
    def move(value):
        if isinstance(value, torch.Tensor):
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            return value.to(device) if device else value
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(move(v) for v in value)
        return value

    try:
        if dtype is not None:
            model = model.to(dtype)
        if device:
            model = model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise NormlintError(f"cannot move the model to {device or dtype}: {exc}") from exc
    return model, move(inputs)
