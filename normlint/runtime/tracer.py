"""Record one forward pass as a small dataflow graph.

Per-model forward pre/post hooks give module scope and turn each norm module into one
node; one TorchFunctionMode records torch-level calls (functional norms, adds, views,
linear/matmul/conv, the reductions of hand-written norms). Tensors map to nodes through a
WeakIdKeyDictionary, so the trace never keeps an activation alive.

Global module hooks are not used on purpose: they would also fire for other models that
run in the same process (a teacher model, a user's own hooks) while the audit is active.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..static.kinds import FUNCTIONAL_NORMS, NORM_CLASSES
from .axes import declared_functional_axes, declared_module_axes

# Python operators and their in-place forms, mapped to the plain op name.
_OP_ALIASES = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add_",
    "__sub__": "sub", "__rsub__": "rsub", "__isub__": "sub_",
    "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul_",
    "__truediv__": "div", "__rtruediv__": "rdiv", "__itruediv__": "div_",
    "__matmul__": "matmul", "__rmatmul__": "rmatmul", "__pow__": "pow", "__rpow__": "rpow",
    "__getitem__": "getitem", "__neg__": "neg", "true_divide": "div", "multiply": "mul",
    "linalg_vector_norm": "vector_norm", "dropout1d": "dropout", "dropout2d": "dropout",
    "feature_dropout": "dropout", "alpha_dropout": "dropout", "swapaxes": "transpose",
    "swapdims": "transpose",
}
# Calls that only read metadata: recording them would only cost time.
_METADATA_OPS = frozenset({
    "shape", "dtype", "device", "size", "dim", "ndim", "ndimension", "numel", "requires_grad",
    "is_floating_point", "is_complex", "data_ptr", "__len__", "__bool__", "item", "stride",
    "is_contiguous", "element_size", "_is_view", "__get__", "is_meta", "is_cuda", "layout",
    "__format__", "__repr__", "tolist", "__hash__", "__eq__", "__ne__", "storage_offset",
    "get_device", "grad_fn", "grad", "names", "is_sparse", "__index__", "__int__", "__float__",
    "is_nested", "untyped_storage", "is_leaf", "nelement", "_version",
})
REDUCTIONS = frozenset({"mean", "var", "std", "norm", "vector_norm", "var_mean", "std_mean", "nanmean",
                        "sum"})
# Ops through which a statistic stays a statistic of the same source (eps, sqrt, casts).
_STAT_THROUGH = frozenset({
    "add", "sub", "mul", "div", "rdiv", "rsqrt", "sqrt", "reciprocal", "pow", "clamp",
    "clamp_min", "clamp_max", "to", "float", "double", "half", "bfloat16", "type_as",
    "expand_as", "expand", "contiguous", "maximum",
})
# Elementwise ops through which a value stays "the same data" for norm recognition when
# every other operand is a constant (casts, squaring for x.pow(2).mean(), affine scaling).
_ROOT_THROUGH = frozenset({
    "to", "float", "half", "bfloat16", "double", "type", "type_as", "contiguous", "clone",
    "pow", "square", "abs", "neg", "mul", "div", "add", "sub", "dropout", "data",
})
_ARITHMETIC = frozenset({"add", "sub", "rsub", "mul", "div", "rdiv", "pow"})
_MUL_DIV = frozenset({"mul", "div"})
_SPLITS = frozenset({"chunk", "split", "unbind", "split_with_sizes", "tensor_split", "unsafe_split"})
AXIS_OPS = frozenset({
    "transpose", "permute", "movedim", "t", "T", "mT", "view", "reshape", "flatten",
    "unflatten", "unsqueeze", "squeeze", "view_as", "reshape_as",
})
LOW_PRECISION = (torch.float16, torch.bfloat16)
NORM_NAME = re.compile(r"norm", re.I)

_TORCH_DIR = os.path.dirname(torch.__file__)
_NORMLINT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def op_name(func: Callable) -> str:
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__":  # property access on a tensor: Tensor.T, Tensor.mT, Tensor.data
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return _OP_ALIASES.get(name, name)


def _torch_norm_base(module: nn.Module) -> type | None:
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch.nn") and cls.__name__ in NORM_CLASSES:
            return cls
    return None


def torch_norm_family(module: nn.Module) -> str | None:
    """The family of a torch.nn norm class, also for subclasses (CLIP's fp32 LayerNorm)."""
    base = _torch_norm_base(module)
    return NORM_CLASSES[base.__name__] if base is not None else None


def overrides_forward(module: nn.Module) -> bool:
    """A subclass with its own forward (ConvNeXt's channels-first LayerNorm permutes inside)."""
    base = _torch_norm_base(module)
    return base is not None and type(module).forward is not base.forward


def call_site(_verdicts: dict = {}) -> tuple[str, int] | None:  # noqa: B006 - a memo
    """The first frame outside torch and normlint: where user code called the norm.

    ``__call__`` frames are skipped too: wrappers such as transformers'
    ``GradientCheckpointingLayer.__call__`` sit between a module call and the line that
    made it. Whether a frame is skipped depends only on its code object: memoized (this
    runs for every module call)."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        verdict = _verdicts.get(code)
        if verdict is None:
            verdict = _frame_verdict(code)
            if len(_verdicts) < 65536:
                _verdicts[code] = verdict
        if verdict == "user":
            return code.co_filename, frame.f_lineno
        if verdict == "stop":
            return None   # above this frame is the audit's caller, not the model's code
        frame = frame.f_back
    return None


def _frame_verdict(code) -> str:
    filename = code.co_filename
    if filename.startswith(_NORMLINT_DIR):
        return "stop" if code.co_name == "call_model" else "skip"
    if filename.startswith(_TORCH_DIR) or filename.startswith("<") or code.co_name == "__call__":
        return "skip"
    return "user"


@dataclass(slots=True)
class Node:
    idx: int
    op: str
    kind: str                      # input | param | buffer | const | op | norm
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: torch.dtype | None
    call: int                      # innermost module call active when recorded (-1: none)
    const: bool = False            # computed from parameters, buffers and constants only
    root: int = -1                 # the value this one is a cast/scaled/centred image of
    hidden: bool = False           # inside a module that was collapsed into one norm node
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Stat:
    """A value that is a keepdim reduction of ``src`` over ``dims`` (plus eps, sqrt, casts)."""

    src: int
    dims: tuple[int, ...]
    low_precision: bool
    eps: float | None = None
    unit: bool = False          # a sum of squares or a vector norm: x / ||x|| (an L2 norm)


@dataclass(slots=True)
class ModuleCall:
    id: int
    path: str
    type_name: str
    parent: int
    start: int
    family: str | None = None      # torch.nn norm family: the call is one atomic norm node
    leaf: bool = False
    inputs: tuple[int, ...] = ()
    module_id: int = 0             # id() of the module object (one object may have many calls)
    site: tuple[str, int] | None = None   # the user line that made this call


def call_within(calls: list[ModuleCall], call: int, outer: int) -> bool:
    """Whether module call ``call`` ran inside (or is) module call ``outer``."""
    while call >= 0:
        if call == outer:
            return True
        call = calls[call].parent
    return False


@dataclass
class NormEvent:
    """One execution of a normalization (module call or functional/inline call site)."""

    node: int
    key: str                        # module path, or "scope@file:line" for call sites
    module: str | None              # module path when a module did the normalization
    kind: str                       # class name, "F.layer_norm" or "inline"
    family: str                     # layer | rms | batch | group | instance | lp | lrn
    in_shape: tuple[int, ...]
    dtype: torch.dtype
    declared_axes: tuple[int, ...] | None
    eps: float | None
    training: bool
    parent_call: int
    site: tuple[str, int] | None
    low_precision_stats: bool = False   # a reduction inside ran in fp16/bf16
    handwritten: bool = False           # recognised from reductions, not a torch kernel
    call: int = -1                      # the ModuleCall of a module norm (-1: functional/inline)
    impl_site: tuple[str, int] | None = None   # inside a hand-written norm: its normalizing line
    extra_tensors: bool = False         # called with more tensors than x (a gate, a mask)
    unit: bool = False                  # scales to unit L2 norm (F.normalize, x / ||x||), no gain
    probed: bool = False
    probes: dict[str, int] = field(default_factory=dict)   # name -> StatBuffer index
    axis_probes: list[tuple[tuple[int, ...], int]] = field(default_factory=list)
    prefix_probes: dict[int, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class Trace:
    nodes: list[Node]
    calls: list[ModuleCall]
    events: list[NormEvent]
    ran_modules: set[str]
    used_params: set[int]
    input_names: tuple[str, ...]
    failed_in: str | None = None    # key of the norm that was running when forward raised
    notes: list[str] = field(default_factory=list)
    outputs: tuple[int, ...] = ()   # nodes of the audited model's own (first) return value


class TensorMap:
    """Tensor -> node index, by identity, without keeping the tensor alive.

    Each entry holds a weak reference: a tensor that died leaves a dead entry that no
    lookup matches (a new tensor that reuses its id is not the same object), so no
    callback is needed. Cheaper per lookup than ``WeakIdKeyDictionary``, which builds a
    reference object for every ``get`` (paid on every recorded op's inputs).
    """

    __slots__ = ("_entries",)

    def __init__(self):
        self._entries: dict[int, tuple[weakref.ref, int]] = {}

    def get(self, tensor: torch.Tensor) -> int | None:
        entry = self._entries.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1]
        return None

    def set(self, tensor: torch.Tensor, idx: int) -> None:
        self._entries[id(tensor)] = (weakref.ref(tensor), idx)


class Tracer(TorchFunctionMode):
    """``with Tracer(model, paths) as tr: model(x)`` then ``tr.trace``.

    ``probe`` (see probes.py) receives every norm execution while its input and output
    are alive; without it the trace is structural only.
    """

    def __init__(self, model: nn.Module, paths: dict[int, str], inputs: Any = None,
                 probe=None):
        super().__init__()
        self._model = model
        self._paths = paths
        self._probe = probe
        self._t2n = TensorMap()
        # One walk over the modules (``buffers()``/``parameters()``/``modules()`` each walk
        # the whole tree again: on a small model those walks cost more than its forward).
        self._modules = list(model.modules())
        self._buffer_ids = {id(b) for m in self._modules for b in m._buffers.values() if b is not None}
        self._param_ids = {id(p) for m in self._modules for p in m._parameters.values() if p is not None}
        self._input_ids = {id(t) for t in tensors_in(inputs)}
        self._stack: list[ModuleCall] = []
        self._atomic = 0
        self._busy = False
        self._broken = False
        self._names: dict = {}
        self._families: dict = {}
        self._shared_constant = -1
        self._handles: list = []
        self._sites: dict[str, tuple[str, int] | None] = {}
        self._probed: set[str] = set()
        self.trace = Trace(nodes=[], calls=[], events=[], ran_modules=set(), used_params=set(),
                           input_names=tuple(inputs) if isinstance(inputs, dict) else ())

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self):
        # The trace allocates a node per op; the cyclic garbage collector would re-scan all
        # of them at every generation-2 collection (a third of a deep model's trace time).
        # Nothing in a trace is cyclic: collection resumes, as it was, on exit.
        self._gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for module in self._modules:
                self._handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
                self._handles.append(module.register_forward_hook(
                    self._post, with_kwargs=True, always_call=True))
            return super().__enter__()
        except BaseException:
            self._remove_hooks()
            if self._gc_was_enabled:
                gc.enable()
            raise

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._remove_hooks()
            if self._gc_was_enabled:
                gc.enable()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def suspended(self):
        """Run our own tensor code (probes) without recording or re-entering hooks."""
        return _Suspended(self)

    # ------------------------------------------------------------------ nodes
    def _new(self, op: str, kind: str, inputs: tuple[int, ...], ref: torch.Tensor | None,
             const: bool = False) -> Node:
        nodes = self.trace.nodes
        node = Node(idx=len(nodes), op=op, kind=kind, inputs=inputs,
                    shape=tuple(ref.shape) if ref is not None else (),
                    dtype=ref.dtype if ref is not None else None,
                    call=self._stack[-1].id if self._stack else -1, const=const)
        node.root = node.idx
        nodes.append(node)
        return node

    def _constant(self) -> int:
        if self._shared_constant < 0:
            self._shared_constant = self._new("constant", "const", (), None, const=True).idx
        return self._shared_constant

    def _node_of(self, tensor: torch.Tensor) -> int:
        idx = self._t2n.get(tensor)
        if idx is None:
            if id(tensor) in self._param_ids or type(tensor) is nn.Parameter:
                kind = "param"
                self.trace.used_params.add(id(tensor))
            elif id(tensor) in self._buffer_ids:
                kind = "buffer"
            elif id(tensor) in self._input_ids:
                kind = "input"
            else:
                kind = "const"  # made before the trace (cached rotary tables) or outside it
            idx = self._new(kind, kind, (), tensor, const=kind != "input").idx
            self._t2n.set(tensor, idx)
        elif id(tensor) in self._param_ids:
            self.trace.used_params.add(id(tensor))
        return idx

    def _bind(self, out: Any, idx: int) -> None:
        for tensor in tensors_in(out):
            self._t2n.set(tensor, idx)

    # ------------------------------------------------------------------ hooks
    def _stop(self, exc: BaseException, where: str) -> None:
        """Our own recording failed on something it does not understand: stop recording
        (the user's forward goes on untouched) and say so; the audit reports what it saw."""
        if not self._broken:
            self._broken = True
            self.trace.notes.append(f"recording stopped at {where} ({type(exc).__name__}: "
                                    f"{' '.join(str(exc).split())[:200]}); findings may be incomplete")

    def _pre(self, module, args, kwargs):
        if self._busy or self._broken:
            return
        try:
            self._enter(module, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - never break the user's forward
            self._stop(exc, f"the call of {type(module).__name__}")

    def _enter(self, module, args, kwargs):
        path = self._paths.get(id(module), type(module).__name__)
        self.trace.ran_modules.add(path)
        kind = type(module)
        family = self._families.get(kind, False)
        if family is False:
            family = self._families[kind] = torch_norm_family(module)
        leaf = not module._modules
        call = ModuleCall(id=len(self.trace.calls), path=path, type_name=kind.__name__,
                          parent=self._stack[-1].id if self._stack else -1,
                          start=len(self.trace.nodes), family=family, leaf=leaf,
                          module_id=id(module), site=call_site() if self._atomic == 0 else None)
        if self._atomic == 0 and (leaf or family):
            # What a leaf (a norm candidate) was called with, before its own ops could
            # rebind it; a container's inputs are only needed for an opaque output (_post).
            tensors = tensors_in(args)
            if kwargs:
                tensors_in(kwargs, tensors)
            call.inputs = tuple(self._node_of(t) for t in tensors)
        if family:
            self._atomic += 1
        self.trace.calls.append(call)
        self._stack.append(call)

    def _post(self, module, args, kwargs, out):
        if self._busy or self._broken:
            return
        try:
            self._leave(module, args, kwargs, out)
        except Exception as exc:  # noqa: BLE001 - never break the user's forward
            self._stop(exc, f"the end of {type(module).__name__}")

    def _leave(self, module, args, kwargs, out):
        call = self._stack.pop()
        failing = out is None and sys.exc_info()[0] is not None
        if call.family:
            self._atomic -= 1
        if failing:
            if call.family and self.trace.failed_in is None:
                self.trace.failed_in = call.path
            return
        if self._atomic:
            return
        if call.family:
            self._module_norm(module, call, args, kwargs, out, family=call.family)
        elif call.leaf and (inner := self._inner_norm(call)) is not None:
            self._collapse(module, call, inner, args, kwargs, out)
        else:
            self._bind_opaque(module, call, args, kwargs, out)
        if call.parent == -1:
            first = _first_output(out)
            found = self._t2n.get(first) if first is not None else None
            self.trace.outputs = (found,) if found is not None else ()

    def _bind_opaque(self, module, call: ModuleCall, args, kwargs, out) -> None:
        """Outputs the op stream never produced came from code that bypasses
        __torch_function__ (fused CUDA extensions: apex, flash-attn). Link them to the
        module's inputs so the dataflow stays connected; a leaf module named like a norm
        that maps x to the same shape is treated as an opaque norm, measured by the probe."""
        unseen = [t for t in tensors_in(out) if self._t2n.get(t) is None]
        if not unseen:
            return
        if not call.inputs and not call.leaf:
            call.inputs = tuple(self._node_of(t) for t in tensors_in((args, kwargs)))
        if not call.inputs:
            return
        x = _first_tensor((args, kwargs))
        if (call.leaf and NORM_NAME.search(call.type_name) and x is not None
                and tuple(unseen[0].shape) == tuple(x.shape)):
            family = "rms" if "rms" in call.type_name.lower() else "layer"
            self._module_norm(module, call, args, kwargs, out, family=family, opaque=True)
            return
        node = self._new(f"module:{call.type_name}", "op", call.inputs, unseen[0],
                         const=all(self.trace.nodes[i].const for i in call.inputs))
        for tensor in unseen:
            self._t2n.set(tensor, node.idx)

    def _module_norm(self, module, call: ModuleCall, args, kwargs, out, family: str,
                     inner: NormEvent | None = None, opaque: bool = False) -> None:
        x = _first_tensor((args, kwargs))
        y = _first_tensor(out)
        if x is None or y is None:
            return
        parent = self._stack[-1].id if self._stack else -1
        data_inputs = call.inputs[:1] if call.inputs else ()
        node = self._new(call.type_name, "norm", data_inputs, y)
        if call.path not in self._sites:
            self._sites[call.path] = call_site()
        eps = _module_eps(module)
        tensors = tensors_in((args, kwargs))
        event = NormEvent(
            node=node.idx, key=call.path, module=call.path, kind=call.type_name, family=family,
            in_shape=tuple(x.shape), dtype=x.dtype,
            declared_axes=(inner.declared_axes if inner else None if opaque or overrides_forward(module)
                           else declared_module_axes(module, family, x.dim())),
            eps=inner.eps if inner and inner.eps is not None else eps,
            training=module.training, parent_call=parent, site=self._sites[call.path],
            low_precision_stats=inner.low_precision_stats if inner else False,
            handwritten=inner.handwritten if inner else False, call=call.id,
            impl_site=inner.site if inner else None, extra_tensors=len(tensors) > 1,
        )
        node.info["event"] = len(self.trace.events)
        self.trace.events.append(event)
        self._bind(out, node.idx)
        if self._probe is not None:
            rerunnable = bool(args) and args[0] is x and not kwargs
            self._run_probe(event, _module_rerun(module, args[1:]) if rerunnable else None, x, y, module)

    def _inner_norm(self, call: ModuleCall) -> NormEvent | None:
        """The one norm recorded inside a leaf module, if it normalizes the module's input."""
        nodes = self.trace.nodes
        roots = {nodes[i].root for i in call.inputs} | set(call.inputs)
        found = [n for n in nodes[call.start:] if n.kind == "norm" and not n.hidden]
        if len(found) != 1 or not found[0].inputs or nodes[found[0].inputs[0]].root not in roots:
            return None
        return self.trace.events[found[0].info["event"]]

    def _collapse(self, module, call: ModuleCall, inner: NormEvent, args, kwargs, out) -> None:
        nodes = self.trace.nodes
        for node in nodes[call.start:]:
            node.hidden = True
        # The inner event is the last one recorded; the module's own event takes its index.
        assert self.trace.events[-1] is inner
        self.trace.events.pop()
        self._module_norm(module, call, args, kwargs, out, family=inner.family, inner=inner)

    def _run_probe(self, event: NormEvent, rerun, x, y, module=None) -> None:
        if x.is_meta:
            return
        # Finiteness on every call; the re-running probes once per norm, since shared layers
        # (ALBERT) may run the same norm many times.
        event.probed = rerun is not None and event.key not in self._probed
        if event.probed:
            self._probed.add(event.key)
        with self.suspended():
            try:
                self._probe.observe(event, x, y)
                if event.probed:
                    self._probe.run(event, rerun, x, y, module)
            except Exception as exc:  # noqa: BLE001 - a probe must never break the user's forward
                self.trace.notes.append(f"{event.key}: numeric probes skipped ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------ op recording
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._busy or self._atomic or self._broken:
            return func(*args, **kwargs)
        name = self._names.get(func)
        if name is None:
            name = op_name(func)
            if getattr(func, "__name__", None) != "__get__":   # property getters: new each time
                self._names[func] = name
        if name in _METADATA_OPS:
            return func(*args, **kwargs)
        try:
            out = func(*args, **kwargs)
        except BaseException:
            if name in FUNCTIONAL_NORMS and self.trace.failed_in is None:
                self.trace.failed_in = self._site_key(name)
            raise
        try:
            self._record(func, name, args, kwargs, out)
        except Exception as exc:  # noqa: BLE001 - never break the user's forward
            self._stop(exc, name)
        return out

    def _site_key(self, label: str) -> str:
        site = call_site()
        scope = self._stack[-1].path if self._stack else ""
        where = f"{os.path.basename(site[0])}:{site[1]}" if site else label
        return f"{scope}@{where}" if scope else where

    def _record(self, func, name: str, args, kwargs, out) -> None:
        if isinstance(out, torch.Tensor):
            outs = [out]
        else:
            outs = tensors_in(out)
            if not outs:
                return
        tin = tensors_in(args)
        if kwargs:
            tensors_in(kwargs, tin)
        inplace = name[-1] == "_" and name[0] != "_"
        base = name[:-1] if inplace else name
        if not inplace and _all_passed_through(outs, tin):
            return  # identity: eval-mode dropout, .to() to the same dtype, .contiguous()
        t2n, nodes = self._t2n, self.trace.nodes
        in_ids = []
        const = True
        for t in tin:
            idx = t2n.get(t)
            if idx is None:
                idx = self._node_of(t)
            in_ids.append(idx)
            if const and not nodes[idx].const:
                const = False
        if const and base not in FUNCTIONAL_NORMS:
            # Computed from parameters, buffers and constants only (masks, rotary tables):
            # no node of its own, bound to the one shared constant node (so that a module's
            # output is not taken for one of an extension that bypasses the op stream).
            for tensor in outs:
                t2n.set(tensor, self._constant())
            return
        if base in _SPLITS and len(outs) > 1:
            # One node per piece: the pieces of one tensor are separate values downstream
            # (two streams through one layer), not one.
            for piece in outs[1:]:
                t2n.set(piece, self._new(base, "op", tuple(in_ids), piece, const=const).idx)
            outs = outs[:1]
        node = self._new(base, "op", tuple(in_ids), outs[0], const=const)
        idx = node.idx
        for tensor in outs:
            t2n.set(tensor, idx)
        data = [i for i in in_ids if not nodes[i].const]
        scalars = ()
        if base in _ARITHMETIC:
            scalars = tuple(a for a in args[1:] if isinstance(a, (int, float)) and not isinstance(a, bool))
            if scalars:
                node.info["scalars"] = scalars
        if base in FUNCTIONAL_NORMS and tin:
            self._functional_norm(node, func, base, args, kwargs, tin[0], outs[0])
        elif base in REDUCTIONS:
            self._reduction(node, tin[0], outs, args, kwargs)
        elif base in AXIS_OPS:
            node.info["axis_args"] = tuple(a for a in args[1:] if not isinstance(a, torch.Tensor))
            node.info["axis_kwargs"] = {k: v for k, v in kwargs.items() if isinstance(v, (int, tuple, list))}
            node.info["in_shape"] = tuple(tin[0].shape)
        if node.kind == "op":
            if base in _MUL_DIV and len(data) == 2 and self._handwritten_norm(node, data, outs[0]):
                return
            self._propagate(node, base, data, scalars)

    def _functional_norm(self, node: Node, func, name: str, args, kwargs, x, y) -> None:
        node.kind = "norm"
        key = self._site_key("F." + name)
        eps = _functional_eps(name, args, kwargs)
        event = NormEvent(
            node=node.idx, key=key, module=None, kind="F." + name, family=FUNCTIONAL_NORMS[name],
            in_shape=tuple(x.shape), dtype=x.dtype,
            declared_axes=declared_functional_axes(name, args, kwargs),
            eps=eps, training=bool(kwargs.get("training", args[5] if name == "batch_norm" and len(args) > 5 else False)),
            parent_call=self._stack[-1].id if self._stack else -1, site=call_site(),
            unit=name == "normalize",
        )
        node.info["event"] = len(self.trace.events)
        self.trace.events.append(event)
        if self._probe is not None:
            def rerun(inp):  # cloned tensors: a train-mode F.batch_norm updates its stats
                rest = [a.clone() if isinstance(a, torch.Tensor) else a for a in args[1:]]
                return func(inp, *rest, **kwargs)
            self._run_probe(event, rerun if args and args[0] is x else None, x, y)

    def _reduction(self, node: Node, x: torch.Tensor, outs: list[torch.Tensor], args, kwargs) -> None:
        # keepdim is read from the shapes, which also covers positional and dim=None forms.
        out = outs[0]
        if x.dim() == 0:
            return
        if node.op == "sum" and not self._squared(node.inputs[0]):
            return  # a sum is a norm statistic only of squares (an L2 norm); p / p.sum() renormalizes
        src = self.trace.nodes[node.inputs[0]].root
        low = x.dtype in LOW_PRECISION and kwargs.get("dtype") not in (torch.float32, torch.float64)
        unit = node.op in ("sum", "norm", "vector_norm")
        if out.dim() == x.dim():
            dims = tuple(i for i in range(x.dim()) if out.shape[i] == 1 and x.shape[i] != 1)
            if dims:
                node.info["stat"] = Stat(src=src, dims=dims, low_precision=low, unit=unit)
            return
        # x.mean(-1) without keepdim: a statistic once a view puts the reduced axes back
        # as size 1 (x.mean(-1)[..., None], .unsqueeze(-1), .view(B, T, 1)).
        dims = _reduced_dims(args, kwargs, x.dim())
        if dims and out.dim() == x.dim() - len(dims):
            keep = tuple(1 if i in dims else size for i, size in enumerate(x.shape))
            node.info["flat_stat"] = (Stat(src=src, dims=dims, low_precision=low, unit=unit), keep)

    def _squared(self, idx: int) -> bool:
        """``x * x``, ``x ** 2`` or ``x.square()`` (maybe cast): what a sum must add up to be
        the statistic of an L2 norm."""
        node = self.trace.nodes[idx]
        if node.op in ("pow", "square") and node.info.get("scalars", (2,))[:1] == (2,):
            return True
        return node.op == "mul" and len(node.inputs) == 2 and node.inputs[0] == node.inputs[1]

    def _propagate(self, node: Node, base: str, data: list[int], scalars: tuple) -> None:
        nodes = self.trace.nodes
        if len(data) == 1 and "flat_stat" in nodes[data[0]].info:
            stat, keep = nodes[data[0]].info["flat_stat"]
            if node.shape == keep:
                node.info["stat"] = stat
                return
            if base in _STAT_THROUGH and node.shape == nodes[data[0]].shape:
                node.info["flat_stat"] = (stat, keep)   # sqrt, + eps before the view
                return
        stats = [nodes[i].info["stat"] for i in data if "stat" in nodes[i].info]
        if base in _STAT_THROUGH and stats and len(stats) == len(data) \
                and len({s.src for s in stats}) == 1:
            first = stats[0]
            eps = first.eps
            if base in ("add", "clamp", "clamp_min", "maximum") and scalars:
                eps = float(scalars[0])
            node.info["stat"] = Stat(first.src, first.dims, any(s.low_precision for s in stats), eps,
                                     unit=first.unit and base not in ("mul", "div"))
            return
        if base == "mul" and len(data) == 2 and data[0] == data[1]:
            node.root = nodes[data[0]].root         # x * x: a square of x, as x.pow(2)
            return
        if len(data) == 1 and base in _ROOT_THROUGH and node.shape == nodes[data[0]].shape:
            node.root = nodes[data[0]].root
            if "centred" in nodes[data[0]].info:  # a_2 * (x - mean) / (std + eps)
                node.info["centred"] = nodes[data[0]].info["centred"]
        elif len(data) == 2 and base in ("sub", "add"):  # centring: x - x.mean(-1, keepdim=True)
            for a, b in ((data[0], data[1]), (data[1], data[0])):
                stat = nodes[b].info.get("stat")
                if stat is not None and stat.src == nodes[a].root and node.shape == nodes[a].shape:
                    node.root = nodes[a].root
                    node.info["centred"] = stat
                    return

    def _handwritten_norm(self, node: Node, data: list[int], out: torch.Tensor) -> bool:
        """x * rsqrt(mean(x^2) + eps), (x - mean) / sqrt(var + eps), x / x.norm(...)."""
        nodes = self.trace.nodes
        for a, b in ((data[0], data[1]), (data[1], data[0])):
            stat = nodes[b].info.get("stat")
            if stat is None or nodes[a].root != stat.src or node.shape != nodes[a].shape:
                continue
            if node.op == "div" and b != data[1]:
                continue  # stat / x is not a normalization
            src = nodes[stat.src]
            centred = nodes[a].info.get("centred")
            eps = stat.eps if stat.eps is not None else (centred.eps if centred else None)
            node.kind = "norm"
            node.inputs = (stat.src,)
            node.info.pop("stat", None)
            event = NormEvent(
                node=node.idx, key=self._site_key("inline"), module=None, kind="inline",
                family="layer" if centred else "rms", in_shape=src.shape, dtype=src.dtype,
                declared_axes=stat.dims, eps=eps, training=False,
                parent_call=self._stack[-1].id if self._stack else -1, site=call_site(),
                low_precision_stats=stat.low_precision or bool(centred and centred.low_precision),
                handwritten=True, unit=stat.unit and not centred,
            )
            node.info["event"] = len(self.trace.events)
            self.trace.events.append(event)
            return True
        return False


@dataclass(frozen=True, slots=True)
class ShapeEvent:
    """One call of a norm module in a shape-only run: what ``_sequence_axes`` compares."""

    key: str
    in_shape: tuple[int, ...]


class ShapeRecorder:
    """The input shape of every call of some norm modules, and the one that was running when
    the forward raised; no TorchFunctionMode, no graph.

    The run at another length only asks how each norm's input shape changed and which norm
    failed. When every norm of the full trace is a module, hooks on those modules alone
    answer that without paying per-op Python recording for a second forward.
    """

    def __init__(self, modules: dict[str, nn.Module]):
        self._modules = modules
        self._handles: list = []
        self.trace = Trace(nodes=[], calls=[], events=[], ran_modules=set(), used_params=set(),
                           input_names=())

    def __enter__(self):
        try:
            for path, module in self._modules.items():
                self._handles.append(module.register_forward_hook(
                    lambda m, args, kwargs, out, path=path: self._post(m, path, args, kwargs, out),
                    with_kwargs=True, always_call=True))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return False

    def _post(self, module: nn.Module, path: str, args, kwargs, out) -> None:
        if out is None and sys.exc_info()[0] is not None:
            # As in the full trace, only a torch.nn norm that raised is "the norm that failed".
            if self.trace.failed_in is None and torch_norm_family(module) is not None:
                self.trace.failed_in = path
            return
        x = _first_tensor((args, kwargs))
        if x is not None and _first_tensor(out) is not None:
            self.trace.events.append(ShapeEvent(path, tuple(x.shape)))  # type: ignore[arg-type]


class _Suspended:
    """Probes run with torch-function dispatch off: no mode, not even its fast path, stands
    between them and the kernels (they are most of an audit's ops on a small model)."""

    def __init__(self, tracer: Tracer):
        self._tracer = tracer
        self._disabled = None

    def __enter__(self):
        self._tracer._busy = True
        self._disabled = torch._C.DisableTorchFunction()
        self._disabled.__enter__()

    def __exit__(self, *exc):
        try:
            self._disabled.__exit__(*exc)
        finally:
            self._tracer._busy = False


def _reduced_dims(args, kwargs, ndim: int) -> tuple[int, ...]:
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if isinstance(dim, int):
        dim = (dim,)
    if not isinstance(dim, (tuple, list)) or not all(isinstance(d, int) for d in dim):
        return ()
    return tuple(sorted({d % ndim for d in dim}))


def _first_output(out) -> torch.Tensor | None:
    """The model's main result: the tensor itself, the first element of a tuple, the first
    value of a dict or ``ModelOutput`` (``last_hidden_state``, ``logits``)."""
    while not isinstance(out, torch.Tensor):
        if isinstance(out, (tuple, list)) and out:
            out = out[0]
        elif hasattr(out, "values") and callable(out.values):
            values = [v for v in out.values() if v is not None]
            if not values:
                return None
            out = values[0]
        else:
            return None
    return out


def _all_passed_through(outs: list, tin: list) -> bool:
    for o in outs:
        for t in tin:
            if o is t:
                break
        else:
            return False
    return True


def tensors_in(obj, out: list | None = None) -> list[torch.Tensor]:
    """The tensors in nested tuples, lists and dicts (``ModelOutput`` too), in order: what
    ``tree_flatten`` gives for a call's arguments, without its per-leaf cost (it is paid on
    every recorded op)."""
    if out is None:
        out = []
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            if isinstance(item, torch.Tensor):
                out.append(item)
            elif isinstance(item, (tuple, list, dict)):
                tensors_in(item, out)
    elif isinstance(obj, dict):
        for item in obj.values():
            if isinstance(item, torch.Tensor):
                out.append(item)
            elif isinstance(item, (tuple, list, dict)):
                tensors_in(item, out)
    return out


def _first_tensor(obj) -> torch.Tensor | None:
    found = tensors_in(obj)
    return found[0] if found else None


def _module_eps(module: nn.Module) -> float | None:
    for name in ("eps", "variance_epsilon", "epsilon", "layer_norm_eps"):
        value = getattr(module, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _functional_eps(name: str, args, kwargs) -> float | None:
    # Positions of eps in the torch.nn.functional signatures.
    position = {"layer_norm": 4, "rms_norm": 3, "group_norm": 4, "batch_norm": 7,
                "instance_norm": 7, "normalize": 3}.get(name)
    if "eps" in kwargs:
        return float(kwargs["eps"]) if kwargs["eps"] is not None else None
    if position is not None and len(args) > position and isinstance(args[position], (int, float)):
        return float(args[position])
    defaults = {"layer_norm": 1e-5, "group_norm": 1e-5, "batch_norm": 1e-5,
                "instance_norm": 1e-5, "normalize": 1e-12}
    return defaults.get(name)


def _module_rerun(module: nn.Module, rest_args: tuple):
    """Call the norm's own forward on a new input without changing its buffers.

    ``forward`` is called directly so neither our hooks nor the user's fire; running stats
    that a train-mode BatchNorm updates in place are copied back afterwards.
    """
    def rerun(inp):
        saved = [(b, b.clone()) for b in module.buffers(recurse=False)]
        try:
            return module.forward(inp, *rest_args)
        finally:
            for buf, value in saved:
                buf.copy_(value)
    return rerun
