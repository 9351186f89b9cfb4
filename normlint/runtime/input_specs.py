"""``--input`` specs: example inputs described on the command line.

``input_ids=int64[2,16]:0..1000`` is a keyword argument of integers in [0, 1000);
``float32[2,3,224,224]`` a positional standard-normal tensor; ``float32[2,400]:-1..1`` a
uniform one. Every malformed spec is a ``NormlintError`` that starts with ``bad --input``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import NormlintError

_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_SPEC = re.compile(r"^(?:(?P<name>[A-Za-z_]\w*)=)?(?P<dtype>[a-z0-9]+)\[(?P<shape>[\d,]*)\]"
                   rf"(?::(?P<low>{_NUMBER})\.\.(?P<high>{_NUMBER}))?$")
_DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
           "int64": torch.int64, "long": torch.int64, "int32": torch.int32, "int": torch.int32,
           "bool": torch.bool}
_EXAMPLE = "expected e.g. input_ids=int64[2,16]:0..1000 or float32[2,3,224,224]"


@dataclass(frozen=True)
class InputSpec:
    name: str | None
    dtype: torch.dtype
    shape: tuple[int, ...]
    low: float | None
    high: float | None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()

    def build(self, generator: torch.Generator) -> torch.Tensor:
        if self.dtype == torch.bool:
            return torch.randint(0, 2, self.shape, generator=generator).bool()
        if not self.dtype.is_floating_point:
            low = int(self.low) if self.low is not None else 0
            high = int(self.high) if self.high is not None else 2
            return torch.randint(low, high, self.shape, generator=generator, dtype=self.dtype)
        if self.low is not None:
            uniform = torch.rand(self.shape, generator=generator, dtype=torch.float64)
            return (uniform * (self.high - self.low) + self.low).to(self.dtype)
        return torch.randn(self.shape, generator=generator).to(self.dtype)


def parse_input_spec(text: str) -> InputSpec:
    """One ``--input`` value; raises ``NormlintError("bad --input ...")`` naming the problem."""
    match = _SPEC.match(text.replace(" ", ""))
    if match is None:
        raise NormlintError(f"bad --input {text!r}: {_EXAMPLE}")
    dtype = _DTYPES.get(match["dtype"])
    if dtype is None:
        raise NormlintError(f"bad --input {text!r}: unknown dtype {match['dtype']!r}; "
                            f"use one of {', '.join(sorted(_DTYPES))}")
    shape = tuple(int(s) for s in match["shape"].split(",") if s)
    low = float(match["low"]) if match["low"] is not None else None
    high = float(match["high"]) if match["high"] is not None else None
    if low is not None:
        _check_range(text, dtype, low, high)
    return InputSpec(match["name"], dtype, shape, low, high)


def _check_range(text: str, dtype: torch.dtype, low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise NormlintError(f"bad --input {text!r}: the range must be finite")
    if high <= low:
        raise NormlintError(f"bad --input {text!r}: empty range {low:g}..{high:g}")
    if dtype == torch.bool:
        raise NormlintError(f"bad --input {text!r}: a bool input takes no range")
    if dtype.is_floating_point:
        return
    if not (low.is_integer() and high.is_integer()):
        raise NormlintError(f"bad --input {text!r}: an integer input needs integer bounds, "
                            f"got {low:g}..{high:g}")
    info = torch.iinfo(dtype)
    if low < info.min or high - 1 > info.max:
        raise NormlintError(f"bad --input {text!r}: {low:g}..{high:g} does not fit "
                            f"{str(dtype).replace('torch.', '')} ({info.min}..{info.max})")


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def build_inputs(specs: list[InputSpec], seed: int = 0, *, allocate: bool = True) -> Any:
    """A tensor (one positional spec), a tuple (several) or a dict (all named).

    ``allocate=False`` (the meta device) builds the tensors on the meta device, which takes
    no memory at any size; otherwise inputs larger than half of this machine's memory are
    refused before anything is allocated.
    """
    named = [s for s in specs if s.name]
    if named and len(named) != len(specs):
        raise NormlintError("bad --input: specs must be all named (name=...) or all positional")
    if allocate:
        total, memory = sum(s.nbytes for s in specs), _memory_bytes()
        if memory and total > memory // 2:
            raise NormlintError(f"bad --input: the inputs need {total / 2**30:,.1f} GiB, more than "
                                f"half of this machine's memory ({memory / 2**30:,.1f} GiB)")
    generator = torch.Generator().manual_seed(seed)

    def make(spec: InputSpec) -> torch.Tensor:
        if not allocate:
            return torch.zeros(spec.shape, dtype=spec.dtype, device="meta")
        try:
            return spec.build(generator)
        except (RuntimeError, MemoryError) as exc:  # an allocation the machine refused
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NormlintError(f"bad --input {describe_tensor(spec.name, spec)}: {first}") from None

    if named:
        return {s.name: make(s) for s in specs}
    tensors = tuple(make(s) for s in specs)
    return tensors[0] if len(tensors) == 1 else tensors


def describe_tensor(name: str | None, tensor: Any) -> str:
    """``input_ids int64[2,16]`` for a tensor or a spec (what the CLI's header line shows)."""
    dtype = str(tensor.dtype).replace("torch.", "")
    shape = ",".join(str(s) for s in tensor.shape)
    return f"{name + ' ' if name else ''}{dtype}[{shape}]"


def describe_inputs(inputs: Any) -> str:
    """A one-line description of example inputs: names, dtypes and shapes."""
    if isinstance(inputs, torch.Tensor):
        return describe_tensor(None, inputs)
    if isinstance(inputs, dict):
        return ", ".join(describe_tensor(k, v) if isinstance(v, torch.Tensor) else f"{k}={type(v).__name__}"
                         for k, v in inputs.items()) or "no inputs"
    if isinstance(inputs, (tuple, list)):
        return ", ".join(describe_tensor(None, v) if isinstance(v, torch.Tensor) else type(v).__name__
                         for v in inputs) or "no inputs"
    return "no inputs" if inputs is None else type(inputs).__name__
