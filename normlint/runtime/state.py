"""What an audit leaves exactly as it found it, and how it puts it back.

The audit runs the user's forward several times (the traced run, a run at another sequence
length, the probes' re-runs of single norms). Whatever those runs change is undone:

- every module's parameters, buffers and submodules, by identity (a forward that
  reassigns ``self.scale = nn.Parameter(...)`` gets its old object back) and by value;
- each parameter's storage, ``requires_grad`` and ``.grad``; buffers by value;
- every module's ``training`` flag;
- the Python ``random``, NumPy global and torch CPU RNG states, and every CUDA device's
  when CUDA is in use.

Buffers are small (BatchNorm statistics) and change inside torch's kernels, so they are
cloned up front. Parameters are most of a model's memory and almost never written by a
forward, so they are copied on write: ``ParameterGuard`` sees every torch call and saves
a parameter just before the first in-place write to its storage (``p.mul_``, ``p[i] =``,
``p.data.copy_``, ``p.data = ...``, ``out=p``, ``torch.nn.init``), so the common audit
copies nothing. It is paused while the probes re-run single norms (``paused``). A write
it cannot see (a C++ extension writing through a raw pointer, a write made only in a
probe's re-run) still shows in the parameter's version counter; that parameter is named
in a note.
"""

from __future__ import annotations

import random
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

# Python's in-place operators; every other in-place torch function ends in "_" (mul_,
# copy_, normal_, _foreach_add_, aten's "mul_.Tensor"), or writes to ``out=``.
_INPLACE_DUNDERS = frozenset({
    "__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__",
    "__ifloordiv__", "__imod__", "__ipow__", "__iand__", "__ior__", "__ixor__",
    "__ilshift__", "__irshift__", "__imatmul__",
})
# How torch.nn.init and functional in-place calls pass the tensor they write to.
_TARGET_KWARGS = ("tensor", "input", "self")


# In-place by name, but they only change metadata (restored separately) or nothing at all.
_METADATA_ONLY = frozenset({"requires_grad_", "share_memory_", "detach_", "rename_"})


def _writes_in_place(func) -> bool:
    name = (getattr(func, "__name__", "") or "").split(".")[0]
    if name == "__set__":   # a property setter: only `t.data = ...` replaces values
        return getattr(getattr(func, "__self__", None), "__name__", "") == "data"
    if name in _METADATA_ONLY:
        return False
    return name in _INPLACE_DUNDERS or (name.endswith("_") and not name.endswith("__"))


def _storage_key(t: torch.Tensor) -> tuple | None:
    if is_lazy(t) or t.is_meta or t.numel() == 0:
        return None
    try:
        return t.device, t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):   # sparse, nested, subclasses
        return None


class ParameterGuard(TorchFunctionMode):
    """Copy-on-write for parameters: a copy of each parameter taken just before its first
    in-place write (see the module docstring). ``saved`` maps ``id(p)`` to (p, copy)."""

    def __init__(self, parameters: list[nn.Parameter]):
        super().__init__()
        self._by_storage: dict[tuple, list[nn.Parameter]] = {}
        for p in parameters:
            key = _storage_key(p)
            if key is not None:
                self._by_storage.setdefault(key, []).append(p)
        self._inplace: dict[Any, bool] = {}
        self.saved: dict[int, tuple[nn.Parameter, torch.Tensor]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._by_storage:
            inplace = self._inplace.get(func)
            if inplace is None:
                inplace = self._inplace[func] = _writes_in_place(func)
            if inplace:
                self._save_targets(args[0] if args else None)
                for name in _TARGET_KWARGS:
                    self._save_targets(kwargs.get(name))
            if "out" in kwargs:
                self._save_targets(kwargs["out"])
        return func(*args, **kwargs)

    @contextmanager
    def paused(self):
        """Run code that writes no parameter without paying a Python call per torch call:
        the probes, which re-run single norms hundreds of times. A norm whose forward
        writes its parameters did so in the forward itself, where they were saved; a write
        made only in a re-run still shows in the version counter (see the module docstring).
        Only possible while this guard is the innermost mode; otherwise nothing changes."""
        if torch.overrides._get_current_function_mode() is not self:
            yield
            return
        with torch.overrides._pop_mode_temporarily():
            yield

    def _save_targets(self, target) -> None:
        if isinstance(target, torch.Tensor):
            key = _storage_key(target)
            for p in self._by_storage.get(key, ()) if key is not None else ():
                if id(p) not in self.saved:
                    self.saved[id(p)] = (p, p.detach().clone())
        elif isinstance(target, (list, tuple)):
            for item in target:
                self._save_targets(item)


@dataclass
class _ParameterState:
    param: nn.Parameter
    alias: torch.Tensor | None      # shares the original storage: put back if it was replaced
    requires_grad: bool
    grad: torch.Tensor | None
    version: int


@dataclass
class _ModuleState:
    module: nn.Module
    training: bool
    parameters: dict
    buffers: dict
    modules: dict
    non_persistent: set


@dataclass
class _RngState:
    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    cuda: list[tuple[int, torch.Tensor]] = field(default_factory=list)

    @classmethod
    def capture(cls) -> "_RngState":
        numpy = sys.modules.get("numpy")   # never imported on the audit's account
        cuda = []
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = [(i, torch.cuda.get_rng_state(i)) for i in range(torch.cuda.device_count())]
        return cls(python=random.getstate(),
                   numpy=numpy.random.get_state() if numpy is not None else None,
                   torch_cpu=torch.get_rng_state(), cuda=cuda)

    def restore(self) -> None:
        random.setstate(self.python)
        if self.numpy is not None:
            sys.modules["numpy"].random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        for index, state in self.cuda:
            torch.cuda.set_rng_state(state, index)


@contextmanager
def seeded_rngs(seed: int = 0):
    """Python's ``random``, NumPy's global and torch's RNGs (CUDA's when in use) seeded with
    ``seed`` inside, and put back as they were afterwards: what runs inside (random
    weights, a factory's drawn inputs, dropout in train mode) is the same on every run."""
    saved = _RngState.capture()
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
    torch.manual_seed(seed)   # every device's generator, CUDA's included
    try:
        yield
    finally:
        saved.restore()


class PreservedState:
    """``with PreservedState(model) as state: ... with state.guard: model(x)`` — the model
    and the global RNGs come out exactly as they went in (see the module docstring).

    ``guard`` (the copy-on-write ParameterGuard) is entered around each forward only, so
    the audit's own work between forwards pays nothing for it. ``notes`` says what could
    not be restored."""

    def __init__(self, model: nn.Module):
        self._model = model
        self.notes: list[str] = []

    def __enter__(self) -> "PreservedState":
        self._rng = _RngState.capture()
        self._modules = [_ModuleState(m, m.training, dict(m._parameters), dict(m._buffers),
                                      dict(m._modules), set(m._non_persistent_buffers_set))
                         for m in self._model.modules()]
        self._names = {id(p): name for name, p in self._model.named_parameters(remove_duplicate=True)}
        params = [p for p in self._model.parameters() if not is_lazy(p)]
        self._params = [_ParameterState(p, None if p.is_meta else p.detach(), p.requires_grad,
                                        p.grad, p._version) for p in params]
        self._buffers = [(b, b.clone()) for b in self._model.buffers()
                         if not b.is_meta and not is_lazy(b)]
        self.guard = ParameterGuard(params)
        return self

    def __exit__(self, *exc) -> bool:
        try:
            with torch.no_grad():
                self._restore_modules()
                self._restore_parameters()
                for buffer, saved in self._buffers:
                    _put_back(buffer, saved)
        finally:
            self._rng.restore()
        return False

    def _restore_modules(self) -> None:
        for state in self._modules:
            m = state.module
            for live, saved in ((m._parameters, state.parameters), (m._buffers, state.buffers),
                                (m._modules, state.modules)):
                if len(live) != len(saved) or any(live.get(k) is not v for k, v in saved.items()):
                    live.clear()
                    live.update(saved)
            if m._non_persistent_buffers_set != state.non_persistent:
                m._non_persistent_buffers_set = set(state.non_persistent)
            m.training = state.training

    def _restore_parameters(self) -> None:
        changed_unseen = []
        for state in self._params:
            p = state.param
            saved = self.guard.saved.get(id(p))
            if state.alias is not None and not _same_tensor_data(p, state.alias):
                p.data = state.alias
            if saved is not None:
                _put_back(p, saved[1])
            elif p._version != state.version and state.alias is not None:
                changed_unseen.append(self._names.get(id(p), "?"))
            if p.requires_grad != state.requires_grad:
                p.requires_grad_(state.requires_grad)
            if p.grad is not state.grad:
                p.grad = state.grad
        if changed_unseen:
            self.notes.append("the forward changed parameters in place where normlint could not "
                              f"see it (not restored): {', '.join(sorted(changed_unseen))}")


def _same_tensor_data(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        return (a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.dtype == b.dtype
                and a.stride() == b.stride())
    except (RuntimeError, NotImplementedError):   # no strides or pointer: sparse, nested
        return a.shape == b.shape and a.dtype == b.dtype


def _put_back(tensor: torch.Tensor, saved: torch.Tensor) -> None:
    if tensor.shape == saved.shape and tensor.dtype == saved.dtype and tensor.device == saved.device:
        tensor.copy_(saved)
    else:
        tensor.data = saved


def clone_inputs(inputs: Any) -> Any:
    """The inputs with every tensor cloned, so that a forward writing to its inputs in place
    (``x.mul_(2)``) never reaches the caller's tensors: each audit run gets fresh clones."""
    def clone(value):
        if not isinstance(value, torch.Tensor):
            return value
        copy = value.detach().clone()
        if value.requires_grad and copy.is_floating_point():
            copy.requires_grad_(True)
        return copy

    return tree_map(clone, inputs)
