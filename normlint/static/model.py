"""One run's analysis state: the project index plus the cached facts the rules query —
module models (modules.py), forward dataflow (flow.py), module summaries (summary.py),
layouts (layouts.py), norms recognised by structure (handnorm.py), composition and
sequence evidence."""

from __future__ import annotations

import ast
import copy as copy_module
import re
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from . import kinds
from .context import RuleContext
from .flow import Flow, Value, Walker, data_input, is_transparent, root
from .handnorm import HandNorm, analyse as analyse_handnorm
from .index import ClassInfo, FileInfo, ProjectIndex
from .layouts import AxesSolver, Layout, rank
from .modules import Kind, ModelBuilder, ModuleModel
from .names import param_defaults, walk
from .source import ParsedFile
from .summary import BlockSummary, Summaries, certain_norm

SEQUENCE_PARAMS = frozenset({
    "input_ids", "attention_mask", "key_padding_mask", "src_key_padding_mask", "tgt_key_padding_mask",
    "memory_key_padding_mask", "lengths", "seq_len", "seq_lens", "seq_lengths", "input_lengths",
    "src_lengths", "text_lengths", "padding_mask", "src_mask", "tgt_mask", "causal_mask",
    "decoder_input_ids", "token_ids", "tokens",
})
_ROOT_TOKENS = ("sqrt(", "rsqrt(", "** 0.5", "**0.5", "** -0.5", "**-0.5", ".pow(0.5", ".pow(-0.5", " / ")
_STAT_TOKENS = ("mean(", "var(", "std(", "norm(", "rsqrt(", "var_mean(", "std_mean(")
TOKEN_PARAMS = frozenset({"input_ids", "decoder_input_ids", "token_ids", "tokens", "input_features",
                          "input_values"})
VISION_PARAMS = frozenset({"pixel_values", "images", "image", "pixel_values_videos", "pixel_mask"})
_QKV_NAMES = (("to_q", "to_k", "to_v"), ("q_proj", "k_proj", "v_proj"), ("query", "key", "value"))
_SEQUENCE_CATEGORIES = {"rnn", "transformer", "transformer_stack", "transformer_layer"}

__all__ = ["Analysis", "BlockSummary", "Evidence", "walk_kind", "built_kinds", "class_text"]


@dataclass
class Evidence:
    reasons: list[str] = field(default_factory=list)
    # comes from what the model is built of (Embedding, RNN), not only from a signature
    structural: bool = False
    origin: str = ""                # the class the first reason is about
    inherited_from: str = ""        # the model's own reason, when this evidence came from a parent

    def __bool__(self) -> bool:
        return bool(self.reasons)


class Analysis:
    def __init__(self, files: Sequence[ParsedFile], ctx: RuleContext):
        self.ctx = ctx
        self.index = ProjectIndex(files)
        self.builder = ModelBuilder(self.index, self.norm_class)
        self.summaries = Summaries(self)
        self._hand: dict[int, HandNorm | None] = {}
        self._norm_family: dict[int, tuple[str, bool] | None] = {}
        self._flows: dict[int, Flow | None] = {}
        self._solvers: dict[int, AxesSolver] = {}
        self._out_layouts: dict[tuple, Layout | None] = {}
        self._parents: dict[int, list[ClassInfo]] | None = None
        self._own_evidence: dict[int, Evidence] = {}
        self._subtree: dict[int, bool] = {}
        self._context: dict[int, Evidence] = {}
        self._subclasses: dict[int, list[ClassInfo]] | None = None
        self._foreign: dict[tuple[str, str], bool] = {}
        self._attr_loads: dict[int, frozenset[str]] = {}
        self._run_loads: dict[int, frozenset[str]] = {}
        self._callers: dict[int, list[tuple[ClassInfo, Value]]] | None = None
        self._entries: dict[int, Flow] = {}
        self._processors: dict[tuple, ast.FunctionDef | None] = {}
        self._arg_active: set[int] = set()
        self.sequence_params = SEQUENCE_PARAMS | frozenset(ctx.option("NL101", "sequence-markers") or [])

    # -- classes ------------------------------------------------------------------------

    def classes(self) -> Iterator[ClassInfo]:
        for info in self.index.files:
            yield from info.classes.values()

    def is_module_class(self, cls: ClassInfo) -> bool:
        return "forward" in cls.methods or "__init__" in cls.methods

    def model(self, cls: ClassInfo) -> ModuleModel:
        return self.builder.model(cls)

    def hand_norm(self, cls: ClassInfo) -> HandNorm | None:
        """The norm a class's forward computes by hand (by structure), or None."""
        key = id(cls)
        if key not in self._hand:
            self._hand[key] = None
            fn = cls.methods.get("forward")
            text = class_text(cls) if fn is not None else ""
            # every hand-written norm takes a statistic (most classes are ruled out by text)
            # and is a plain nn.Module (a model class that normalizes its embeddings is not)
            plain = any(cls.file.imports.qualname(b) in ("torch.nn.Module", "torch.nn.modules.module.Module")
                        for b in cls.bases)
            if fn is not None and plain and any(tok in text for tok in _STAT_TOKENS):
                init = cls.methods.get("__init__")
                nparams = len(fn.args.posonlyargs + fn.args.args) - 1
                heavy = nparams > 3 or (init is not None and self._has_heavy_submodule(cls, init))
                if not heavy:
                    flow = self.flow(cls)
                    if flow is not None:
                        running = "running_mean" in text or "running_var" in text
                        self._hand[key] = analyse_handnorm(
                            cls.name, flow, running, self._says_channels_first(cls, text), self._eps_terms)
        return self._hand[key]

    def hand_norm_function(self, info: FileInfo, fn: ast.FunctionDef) -> HandNorm | None:
        """The norm a module-level function computes by hand (`def rms_norm(x, weight, eps)`),
        or None. Judged as a parameter-free module whose forward is the function; one with
        many parameters (a whole model step) is not a norm."""
        key = id(fn)
        if key not in self._hand:
            self._hand[key] = None
            # a norm function is short, takes a statistic and rescales by a root or a division
            # (most module-level functions with a mean are losses, masks or attention)
            short = len(fn.args.posonlyargs + fn.args.args) <= 4 and (fn.end_lineno or 0) - fn.lineno <= 40
            text = node_text(info, fn) if short else ""
            if short and any(tok in text for tok in _STAT_TOKENS) and any(tok in text for tok in _ROOT_TOKENS):
                cls = ClassInfo(fn.name, fn, info, (), {"forward": fn}, {})  # type: ignore[arg-type]
                flow = Walker(self, ModuleModel(cls, {}, {})).run(fn)
                self._hand[key] = analyse_handnorm(fn.name, flow, False, False, self._eps_terms)
        return self._hand[key]

    def processor_call(self, cls: ClassInfo) -> ast.FunctionDef | None:
        """The `__call__` of the attention processor a module certainly delegates forward to,
        rewritten so that its module parameter (`attn`) reads as `self` (and the processor's
        own `self` as `_processor`), or None. The processor is the `_default_processor_cls`
        of the class (or a base), else the one processor class __init__ builds; it must live
        in the module's own file (findings inside it then point at the right file)."""
        key = ("processor", id(cls))
        if key in self._processors:
            return self._processors[key]
        self._processors[key] = None
        proc = None
        for c in self.index.mro(cls):
            const = c.constants.get("_default_processor_cls")
            if isinstance(const, (ast.Name, ast.Attribute)):
                proc = self.index.resolve_class(const, c.file)
                break
        init = cls.methods.get("__init__")
        if proc is None and init is not None:
            built = {id(found): found for n in walk(init) if isinstance(n, ast.Call)
                     for found in [self.index.resolve_class(n.func, cls.file)]
                     if found is not None and "__call__" in found.methods and "Processor" in found.name}
            proc = next(iter(built.values())) if len(built) == 1 else None
        fn = proc.methods.get("__call__") if proc is not None and proc.file is cls.file else None
        if fn is None or len(fn.args.args) < 3:
            return None
        own, attn = fn.args.args[0].arg, fn.args.args[1].arg
        copy = _RenameNames({own: "_processor", attn: "self"}).visit(copy_module.deepcopy(fn))
        copy.args.args = copy.args.args[1:]
        self._processors[key] = copy
        return copy

    def _says_channels_first(self, cls: ClassInfo, text: str) -> bool:
        """A channels-first norm says so: data_format, a permute, or a gain shaped (1, C, 1...)."""
        if "channels_first" in text or "data_format" in text:
            return True
        fwd = cls.methods.get("forward")
        if fwd is not None and any(isinstance(n, ast.Attribute) and n.attr == "permute" for n in walk(fwd)):
            return True
        init = cls.methods.get("__init__")
        if init is None:
            return False
        for n in walk(init):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("ones", "zeros") \
                    and len(n.args) >= 3 and isinstance(n.args[0], ast.Constant) and n.args[0].value == 1 \
                    and all(isinstance(a, ast.Constant) and a.value == 1 for a in n.args[2:]):
                return True
        return False

    def _eps_terms(self, term: Value) -> list[tuple[ast.AST, float, str]]:
        """What an eps term stands for: a literal, a module constant, self.eps set in __init__
        (from a literal or a parameter's default)."""
        if term.op == "const" and isinstance(term.payload, float) and term.node is not None:
            return [(term.node, term.payload, term.path)]
        model = term.model
        if model is None:
            return []
        if term.op == "global" and isinstance(term.node, ast.Name):
            value = self.index.module_constant(term.node.id, model.file)
            return [(term.node, value, term.path)] if isinstance(value, float) else []
        if term.op == "selfattr" and term.name:
            expr = model.attr_exprs.get(term.name)
            if isinstance(expr, ast.Constant) and isinstance(expr.value, float):
                return [(expr, expr.value, model.file.path)]
            found = self.index.find_method(model.cls, "__init__")
            if isinstance(expr, ast.Name) and found is not None:
                init, owner = found
                for arg, default in param_defaults(init):
                    if arg.arg == expr.id and isinstance(default, ast.Constant) and isinstance(default.value, float):
                        return [(default, default.value, owner.file.path)]
            value = model.num_attrs.get(term.name)
            if isinstance(value, float) and expr is not None:
                return [(expr, value, model.file.path)]
            if expr is None:
                # a class constant (EPS = 1e-10 in the class body), here or in a base
                for c in self.index.mro(model.cls):
                    const = c.constants.get(term.name)
                    if isinstance(const, ast.Constant) and isinstance(const.value, float):
                        return [(const, const.value, c.file.path)]
        return []

    def _has_heavy_submodule(self, cls: ClassInfo, init: ast.FunctionDef) -> bool:
        """__init__ builds modules other than parameters and norms: not a norm by structure."""
        for node in walk(init):
            if isinstance(node, ast.Call):
                qual = cls.file.imports.qualname(node.func) or ""
                short = qual.rsplit(".", 1)[-1]
                if short in ("Parameter", "Dropout", "Identity") or kinds.torch_norm_class(qual):
                    continue
                cat = kinds.torch_module_category(qual)
                if cat is not None or (short[:1].isupper() and not qual.startswith("torch.")):
                    return True
        return False

    def norm_class(self, cls: ClassInfo) -> tuple[str, bool] | None:
        """(family, channels_first) when a project class is a norm, by base class or structure."""
        key = id(cls)
        if key in self._norm_family:
            return self._norm_family[key]
        self._norm_family[key] = None
        result = None
        for base in cls.bases:
            qual = cls.file.imports.qualname(base)
            norm = kinds.torch_norm_class(qual)
            if norm is not None:
                fwd = cls.methods.get("forward")
                permutes = fwd is not None and any(
                    isinstance(n, ast.Attribute) and n.attr in ("permute", "transpose") or
                    isinstance(n, ast.Name) and n.id in ("rearrange",) for n in walk(fwd))
                result = (kinds.NORM_CLASSES[norm], permutes or cls.name.endswith("2d")
                          or cls.name.endswith("1d") or "ChannelsFirst" in cls.name)
                break
            parent = self.index.resolve_class(base, cls.file)
            if parent is not None and parent is not cls:
                inherited = self.norm_class(parent)
                if inherited is not None:
                    result = inherited
                    break
        if result is None and self.builder.torch_base_category(cls) is None:
            # (a Conv2d subclass that standardizes its weight with F.batch_norm is a conv)
            fwd = cls.methods.get("forward")
            if fwd is not None:
                # (no __init__: a parameter-free norm, its eps maybe a forward parameter)
                fnorms = [kinds.torch_functional_norm(cls.file.imports.qualname(n.func))
                          for n in walk(fwd) if isinstance(n, ast.Call)] \
                    if "_norm(" in class_text(cls) else []
                fnorms = [f for f in fnorms if f and f != "normalize"]
                init = cls.methods.get("__init__")
                if fnorms and not (init is not None and self._has_heavy_submodule(cls, init)):
                    permutes = any(isinstance(n, ast.Attribute) and n.attr in ("permute", "transpose")
                                   for n in walk(fwd))
                    result = (kinds.FUNCTIONAL_NORMS[fnorms[0]], permutes)
                else:
                    hand = self.hand_norm(cls)
                    if hand is not None:
                        result = (hand.family, hand.channels_first)
                    else:
                        result = self._wrapped_norm(cls) or self._modulated_norm(cls)
        self._norm_family[key] = result
        return result

    def _wrapped_norm(self, cls: ClassInfo) -> tuple[str, bool] | None:
        """A toolkit's wrapper whose forward only returns its torch norm applied to the input
        (speechbrain's LayerNorm, `forward: return self.norm(x)`) is that norm."""
        fwd, init = cls.methods.get("forward"), cls.methods.get("__init__")
        if fwd is None or init is None or self._has_heavy_submodule(cls, init):
            return None
        params = [a.arg for a in fwd.args.posonlyargs + fwd.args.args][1:]
        returns = [n for n in walk(fwd) if isinstance(n, ast.Return)]
        if not params or len(fwd.body) > 3 or not returns:
            return None
        attrs = set()
        for r in returns:
            v = r.value
            if not (isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and isinstance(v.func.value, ast.Name)
                    and v.func.value.id == "self" and v.args and isinstance(v.args[0], ast.Name)
                    and v.args[0].id == params[0]):
                return None
            attrs.add(v.func.attr)
        if len(attrs) != 1:
            return None
        kind = self.model(cls).kind_of(attrs.pop())
        if kind is None or not kind.is_native_norm:
            return None
        return kind.family, kind.channels_first

    def _modulated_norm(self, cls: ClassInfo) -> tuple[str, bool] | None:
        """A class whose forward normalizes its first input with one norm and then only casts
        it or scales and shifts it elementwise by other inputs (adaLN's
        `self.norm(x) + shift(emb)`, Mochi's `self.norm(x.float()) * scale`) is that norm:
        no layer with parameters touches the stream, every return is the norm's output.
        One that also returns gates (a tuple) is not."""
        fwd, init = cls.methods.get("forward"), cls.methods.get("__init__")
        if fwd is None or init is None or "norm" not in class_text(cls).lower():
            return None
        plain = any(cls.file.imports.qualname(b) in ("torch.nn.Module", "torch.nn.modules.module.Module")
                    for b in cls.bases)
        flow = self.flow(cls) if plain else None
        if flow is None or flow.truncated or not flow.params or not flow.returns:
            return None
        first = next(iter(flow.params.values()))
        norms = [n for n in flow.norms if n.kind is not None and n.kind.is_norm and n.inputs
                 and root(n.inputs[0]) is first]
        if len(norms) != 1 or len(flow.norms) != 1 or not certain_norm(norms[0]):
            return None          # (`self.bn = nn.BatchNorm1d(c) if ... else GBN(c)`: not certain)
        norm = norms[0]
        for v in flow.values:
            # a layer with parameters on the stream: not a norm (a block that starts with one)
            if v.op in ("call", "block") and (v is not norm) and (v.has_ancestor(first)) \
                    and not is_transparent(v) and not (v.kind is not None and v.kind.category == "act"):
                return None

        def modulation(cur: Value):
            if cur.op == "phi":
                return list(cur.inputs)
            if is_transparent(cur):
                data = data_input(cur)
                return [data] if data is not None else None
            if cur.op == "add" or cur.op == "binop" and cur.name in ("Mult", "Add", "Sub", "Div"):
                keep = [i for i in cur.inputs if i is norm or i.has_ancestor(norm)]
                rest = [i for i in cur.inputs if i not in keep]
                if len(keep) != 1 or any(i is first or i.has_ancestor(first) for i in rest):
                    return None
                return keep
            return None

        for r in flow.returns:
            if r.op == "tuple" or not _only_reaches(r, norm, modulation):
                return None
        return norm.kind.family, norm.kind.channels_first

    # -- dataflow -----------------------------------------------------------------------

    def flow(self, cls: ClassInfo) -> Flow | None:
        return self.flow_of(self.model(cls))

    def flow_of(self, model: ModuleModel) -> Flow | None:
        """The forward dataflow of a (possibly specialised) module model."""
        key = id(model)
        if key not in self._flows:
            self._flows[key] = None
            if self.index.find_method(model.cls, "forward") is not None:
                self._flows[key] = Walker(self, model).run()
        return self._flows[key]

    def entry_methods(self, cls: ClassInfo) -> list[ast.FunctionDef]:
        """Methods other than forward that the module's users call (CLIP's encode_text, a
        vocoder's inference): defined here, and never called on self by the class, its
        bases or subclasses (those run inlined in their caller's flow)."""
        called = self.self_attr_loads(cls)
        return [fn for name, fn in cls.methods.items()
                if name not in called and name != "forward" and (name == "__call__" or not name.startswith("__"))
                and not any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)]

    def entry_flow(self, cls: ClassInfo, fn: ast.FunctionDef) -> Flow:
        """The dataflow of an entry method, its parameters unknown inputs (cached)."""
        key = id(fn)
        if key not in self._entries:
            self._entries[key] = Walker(self, self.model(cls)).run(fn)
        return self._entries[key]

    def layout(self, v: Value, flow: Flow) -> Layout | None:
        """The layout of a value of flow, with the forward's parameters of unknown layout."""
        solver = self._solvers.get(id(flow))
        if solver is None:
            solver = self._solvers[id(flow)] = AxesSolver(self, flow)
        return solver.of(v)

    def output_layout(self, kind: Kind, inp: Layout | None, depth: int = 0, index: int | None = None) -> Layout | None:
        """The layout a project module returns when its first input has layout inp (of the
        index-th element when it returns a tuple)."""
        model = self.builder.model_of(kind)
        if model is None:
            return None
        key = (id(model), inp, index)
        if key in self._out_layouts:
            return self._out_layouts[key]
        self._out_layouts[key] = None
        flow = self.flow_of(model)
        out = None
        if flow is not None and flow.params and flow.returns:
            first = next(iter(flow.params))
            solver = AxesSolver(self, flow, {first: inp}, depth)
            returned = flow.returns
            if index is not None:
                returned = [r.inputs[index] if r.op == "tuple" and len(r.inputs) > index else r for r in returned]
            outs = {solver.of(r) for r in returned}
            outs.discard(None)
            out = outs.pop() if len(outs) == 1 else None
        self._out_layouts[key] = out
        return out

    def input_layout(self, kind: Kind, depth: int = 1) -> Layout | None:
        """The layout a project module's forward needs for its first input, read from its own
        forward alone (`b, n, c = x.shape`, an attention it feeds): (..., L, C) token
        layouts only, the others say nothing a caller's norm could be judged on."""
        model = self.builder.model_of(kind)
        flow = self.flow_of(model) if model is not None else None
        if flow is None or not flow.params:
            return None
        key = ("in", id(model))
        if key not in self._out_layouts:
            self._out_layouts[key] = None
            out = AxesSolver(self, flow, None, depth).of(next(iter(flow.params.values())))
            self._out_layouts[key] = out if out is not None and "S" in out and out[-1] == "F" else None
        return self._out_layouts[key]

    def argument_layout(self, flow: Flow, param: str) -> Layout | None:
        """The layout every caller in the project hands a module's forward parameter, when
        they agree (a block's input laid out by the model that runs it)."""
        model = flow.model
        if model is None or self.flow_of(model) is not flow or id(flow) in self._arg_active:
            return None
        fn = self.index.find_method(model.cls, "forward")
        if fn is None:
            return None
        names = [a.arg for a in fn[0].args.posonlyargs + fn[0].args.args][1:]
        pos = names.index(param) if param in names else None
        self._arg_active.add(id(flow))
        try:
            outs: set = set()
            for parent, call in self.callers(model.cls):
                node = call.node
                if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args):
                    return None
                # the call's inputs are its positional then keyword arguments (a
                # checkpoint(block, x) call's callee is not one of them)
                kws = [k.arg for k in node.keywords]
                npos = len(call.inputs) - len(kws)
                arg = None
                if pos is not None and pos < npos:
                    arg = call.inputs[pos]
                elif param in kws and npos >= 0:
                    arg = call.inputs[npos + kws.index(param)]
                pflow = self.flow(parent)
                layout = self.layout(arg, pflow) if arg is not None and pflow is not None else None
                if layout is None:
                    return None              # a caller the analysis cannot read: unknown
                outs.add(layout)
            ranked = {o for o in outs if rank(o) is not None} or outs
            return ranked.pop() if len(ranked) == 1 else None
        finally:
            self._arg_active.discard(id(flow))

    # -- summaries (summary.py) ---------------------------------------------------------------

    def summary(self, cls: ClassInfo | None) -> BlockSummary | None:
        return None if cls is None else self.summaries.of_model(self.model(cls))

    def kind_summary(self, kind: Kind | None) -> BlockSummary | None:
        return self.summaries.of_kind(kind)

    def starts_with_norm(self, what: ClassInfo | Kind) -> bool:
        """The module normalizes its first input before anything else uses it."""
        return self.summaries.starts_with_norm(what)

    def block_placement(self, kind: Kind | None) -> tuple[str, bool, bool] | None:
        """(placement, ends_with_norm, stabilized) of a stacked element."""
        return self.summaries.block_placement(kind)

    def callers(self, cls: ClassInfo) -> list[tuple[ClassInfo, Value]]:
        """(parent class, call value in the parent's forward) for every call of cls."""
        if self._callers is None:
            self._callers = {}
            for p in self.classes():
                if not self.is_module_class(p) or not self.children(p):
                    continue
                flow = self.flow(p)
                if flow is None:
                    continue
                for v in flow.values:
                    if v.op in ("call", "block", "norm") and v.kind is not None and v.kind.cls is not None \
                            and v.owner == p.name:
                        self._callers.setdefault(id(v.kind.cls), []).append((p, v))
        return self._callers.get(id(cls), [])

    # -- attribute use (NL306) ------------------------------------------------------------

    def self_attr_loads(self, cls: ClassInfo) -> set[str]:
        """Names read as self.X (or named in getattr strings) by cls, its bases and subclasses."""
        out: set[str] = set()
        for c in self.index.mro(cls) + self.subclasses(cls):
            out |= self._own_attr_loads(c)
        return out

    def self_attr_runs(self, cls: ClassInfo) -> set[str]:
        """self_attr_loads without the reads that only touch a module's parameters
        (`self.proj.weight.data` in a fuse/prune helper does not run `self.proj`)."""
        out: set[str] = set()
        for c in self.index.mro(cls) + self.subclasses(cls):
            self._own_attr_loads(c)
            out |= self._run_loads[id(c)]
        return out

    def _own_attr_loads(self, cls: ClassInfo) -> frozenset[str]:
        key = id(cls)
        if key not in self._attr_loads:
            names: set[str] = set()
            param_reads: set[int] = set()
            self_loads: list[ast.Attribute] = []
            for n in walk(cls.node):
                if isinstance(n, ast.Attribute) and n.attr in ("weight", "bias") and isinstance(n.value, ast.Attribute):
                    param_reads.add(id(n.value))
                if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load) \
                        and isinstance(n.value, ast.Name) and n.value.id == "self":
                    self_loads.append(n)
                if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load) \
                        and isinstance(n.value, ast.Name) and n.value.id == "self":
                    names.add(n.attr)
                elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
                    names.add(n.value)
                elif isinstance(n, ast.JoinedStr) and n.values and isinstance(n.values[0], ast.Constant) \
                        and isinstance(n.values[0].value, str) and len(n.values[0].value) >= 2:
                    # getattr(self, f"norm{i}"): every attribute with that prefix may be used
                    names.add(n.values[0].value + "*")
            self._attr_loads[key] = frozenset(names)
            self._run_loads[key] = frozenset(names - {n.attr for n in self_loads if id(n) in param_reads}
                                             | {n.attr for n in self_loads if id(n) not in param_reads})
        return self._attr_loads[key]

    def subclasses(self, cls: ClassInfo) -> list[ClassInfo]:
        if self._subclasses is None:
            self._subclasses = {}
            for c in self.classes():
                for b in c.bases:
                    parent = self.index.resolve_class(b, c.file)
                    if parent is not None and parent is not c:
                        self._subclasses.setdefault(id(parent), []).append(c)
        return self._subclasses.get(id(cls), [])

    def read_from_outside(self, attr: str, cls: ClassInfo) -> bool:
        """Some code reads `.attr` on something other than self (a parent module reaching
        into a child: `self.block.norm`, `layer.ln`). A text search, only in the files that
        name the class (a parent has to build it): it runs only for the rare norm that its
        own class never uses."""
        key = (attr, cls.name)
        if key not in self._foreign:
            pattern = re.compile(r"(?<![\w])(?!self\.)[\w\])]+\." + re.escape(attr) + r"\b")
            self._foreign[key] = any(pattern.search(info.parsed.text) for info in self.index.files
                                     if info is cls.file or cls.name in info.parsed.text)
        return self._foreign[key]

    def norm_attr_names(self, info: FileInfo) -> frozenset[str]:
        """Attribute names of the norm submodules a training script can see: the models in
        its own file and in the project files it imports; the whole project when those
        define none (for no_decay lists)."""
        imported = {part for qual in info.imports.aliases.values() for part in qual.lstrip(".").split(".")}
        near = [f for f in self.index.files if f is info or f.module in imported]
        for files in (near, self.index.files):
            names = {sub.attr for f in files for c in f.classes.values() if self.is_module_class(c)
                     for sub in self.model(c).submodules.values() if sub.kind.is_norm}
            if names:
                return frozenset(names)
        return frozenset()

    # -- composition and sequence evidence ----------------------------------------------

    def children(self, cls: ClassInfo) -> list[ClassInfo]:
        out: list[ClassInfo] = []
        for sub in self.model(cls).submodules.values():
            for k in walk_kind(sub.kind):
                if k.cls is not None and k.cls is not cls:
                    out.append(k.cls)
        return out

    def parents(self, cls: ClassInfo) -> list[ClassInfo]:
        if self._parents is None:
            self._parents = {}
            for c in self.classes():
                if not self.is_module_class(c):
                    continue
                for child in self.children(c):
                    self._parents.setdefault(id(child), []).append(c)
        return self._parents.get(id(cls), [])

    def own_evidence(self, cls: ClassInfo) -> Evidence:
        key = id(cls)
        if key in self._own_evidence:
            return self._own_evidence[key]
        ev = Evidence(origin=cls.name)
        for reason in self._structural_reasons(cls):
            ev.reasons.append(reason)
            ev.structural = True
        fwd = cls.methods.get("forward")
        params = [p.arg for p in fwd.args.args + fwd.args.kwonlyargs] if fwd is not None else []
        # a multimodal model takes input_ids and pixel_values: its signature (and a mask it
        # passes on) says nothing about the vision tower's BatchNorm
        vision = any(p in VISION_PARAMS for p in params) or self._in_vision_only_model(cls)
        if fwd is not None:
            if not vision:
                for p in params:
                    if p in self.sequence_params:
                        ev.reasons.append(f"`{cls.name}.forward` takes `{p}`")
        for fn in cls.methods.values():
            for n in walk(fn):
                if isinstance(n, ast.Call):
                    f = n.func
                    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                    if name in ("tril", "triu") and any(
                            isinstance(a, ast.Call) and getattr(a.func, "attr", getattr(a.func, "id", "")) == "ones"
                            for a in n.args):
                        ev.reasons.append(f"`{cls.name}` builds a causal mask")
                    for k in n.keywords:
                        if k.arg == "is_causal" and isinstance(k.value, ast.Constant) and k.value.value is True:
                            ev.reasons.append(f"`{cls.name}` uses causal attention")
                        elif k.arg == "key_padding_mask" and not vision and not (
                                isinstance(k.value, ast.Constant) and k.value.value is None):
                            # whatever the mask is called, masking padded keys says the
                            # tokens are padded variable-length sequences
                            ev.reasons.append(f"`{cls.name}` masks padded keys (`key_padding_mask=`)")
        self._own_evidence[key] = ev
        return ev

    def _in_vision_only_model(self, cls: ClassInfo, depth: int = 0, seen: set | None = None) -> bool:
        """Some model that composes cls takes images and no tokens (SuperGlue's keypoint
        matcher): an `attention_mask` below it masks keypoints or patches, not text."""
        seen = set() if seen is None else seen
        if depth > 10 or id(cls) in seen:
            return False
        seen.add(id(cls))
        for p in self.parents(cls):
            fwd = p.methods.get("forward")
            params = {a.arg for a in fwd.args.args + fwd.args.kwonlyargs} if fwd is not None else set()
            if params & VISION_PARAMS and not params & TOKEN_PARAMS:
                return True
            if self._in_vision_only_model(p, depth + 1, seen):
                return True
        return False

    def _takes_vision_input(self, cls: ClassInfo) -> bool:
        fwd = cls.methods.get("forward")
        return fwd is not None and any(p.arg in VISION_PARAMS for p in fwd.args.args + fwd.args.kwonlyargs)

    def structural_evidence(self, cls: ClassInfo) -> bool:
        """Sequence modules a class is built from (Embedding, RNN, nn.Transformer*), not
        names in a signature: the only evidence that travels up from a child."""
        return bool(self._structural_reasons(cls))

    def _structural_reasons(self, cls: ClassInfo) -> list[str]:
        out: list[str] = []
        looked_up: set[str] | None = None
        for sub in self.model(cls).submodules.values():
            for k in walk_kind(sub.kind):
                if k.category == "embedding":
                    # a token embedding is looked up; a VQ codebook only lends its .weight
                    if looked_up is None:
                        looked_up = _looked_up_by_ids(cls)
                    if sub.attr in looked_up:
                        out.append(f"`self.{sub.attr}` is an {k.name}")
                        break
                elif k.category in _SEQUENCE_CATEGORIES:
                    out.append(f"`self.{sub.attr}` is an {k.name}")
                    break
        return out

    def evidence_is_lookups_only(self, cls: ClassInfo, depth: int = 0) -> bool:
        """The class's sequence evidence is embedding lookups and nothing else: no RNN or
        nn.Transformer* in what it builds (at any depth of project classes), no
        sequence-like forward parameter, no causal mask. Its lookups then speak only for the
        values they produce (a tabular model embeds categorical columns), not for the other
        inputs beside them."""
        if depth == 0 and len(self.own_evidence(cls).reasons) > len(self._structural_reasons(cls)):
            return False
        for sub in self.model(cls).submodules.values():
            for k in walk_kind(sub.kind):
                if k.category in _SEQUENCE_CATEGORIES:
                    return False
                if k.cls is not None and k.cls is not cls and (
                        depth >= 3 or not self.evidence_is_lookups_only(k.cls, depth + 1)):
                    return False
        return True

    def is_attention(self, cls: ClassInfo) -> bool:
        """A project module that computes attention (softmax over scores, or SDPA)."""
        fwd = cls.methods.get("forward")
        if fwd is None:
            return False
        text = class_text(cls)
        return "scaled_dot_product_attention(" in text or ("softmax(" in text and "@" in text) \
            or ("softmax(" in text and "matmul(" in text)

    def attends(self, cls: ClassInfo) -> bool:
        """A project module that attends over tokens: it computes attention itself, or it
        holds query, key and value projections (diffusers' `Attention` classes, whose
        processor is passed in by their user)."""
        if self.is_attention(cls):
            return True
        subs = self.model(cls).submodules
        return any(all(n in subs and subs[n].kind.category == "linear" for n in names) for names in _QKV_NAMES)

    def output_category(self, cls: ClassInfo) -> str | None:
        """What a project module returns, when its forward ends in a torch module call
        (a padding wrapper around nn.Conv1d returns a conv output)."""
        from .flow import root
        flow = self.flow(cls)
        if flow is None or not flow.returns:
            return None
        cats = set()
        for v in flow.returns:
            r = root(v)
            cats.add(r.kind.category if r.op == "call" and r.kind is not None else None)
        return cats.pop() if len(cats) == 1 else None

    def _subtree_evidence(self, cls: ClassInfo, depth: int = 0) -> bool:
        key = id(cls)
        if key in self._subtree:
            return self._subtree[key]
        self._subtree[key] = False
        found = self.structural_evidence(cls)
        if not found and depth < 12:
            found = any(self._subtree_evidence(c, depth + 1) for c in self.children(cls))
        self._subtree[key] = found
        return found

    def sequence_context(self, cls: ClassInfo) -> Evidence:
        """Evidence that cls runs inside a model of token/time sequences: its own, that of
        the classes it composes, or that of a model that composes it."""
        key = id(cls)
        if key in self._context:
            return self._context[key]
        self._context[key] = Evidence()
        own = self.own_evidence(cls)
        ev = Evidence(list(own.reasons), own.structural, cls.name)
        if not ev and not self._takes_vision_input(cls):
            # a multimodal model composes a text tower; that says nothing about its own
            # projections or its vision tower
            for c in self.children(cls):
                if self._subtree_evidence(c):
                    ev.reasons.append(f"`{cls.name}` composes `{c.name}`, a sequence module")
                    ev.structural = True
                    break
        if not ev:
            for p in self.parents(cls):
                pev = self.sequence_context(p)
                # a signature (attention_mask, input_ids) speaks for the class's direct
                # sublayers; structure (Embedding, RNN) speaks for everything below it
                if pev and (pev.structural or self.own_evidence(p)):
                    # name the model that carries the evidence, not every class in between
                    base = pev.inherited_from or pev.reasons[0]
                    ev.reasons.append(f"`{cls.name}` is part of `{pev.origin}`: {base}")
                    ev.structural, ev.origin, ev.inherited_from = pev.structural, pev.origin, base
                    break
        self._context[key] = ev
        return ev

    def ancestors_named(self, cls: ClassInfo, names: set[str], depth: int = 0) -> bool:
        if cls.name in names:
            return True
        if depth > 8:
            return False
        return any(self.ancestors_named(p, names, depth + 1) for p in self.parents(cls))


def _only_reaches(v: Value, target: Value, step, limit: int = 32) -> bool:
    """Going back from v through step (a value's inputs that carry it, or None where the
    walk must stop), every path ends at target."""
    todo, steps = [v], 0
    while todo:
        steps += 1
        cur = todo.pop()
        if cur is target:
            continue
        more = step(cur) if steps < limit else None
        if not more:
            return False
        todo.extend(more)
    return True


def _looked_up_by_ids(cls: ClassInfo) -> set[str]:
    """The attributes the class calls as ``self.attr(...)`` with an index that is not an
    ``arange``: a table looked up by ``torch.arange(n)`` (learned positions, a tabular model's
    per-feature vectors) is indexed by position, and says nothing of padded, variable-length
    token sequences; an index built elsewhere (a forward input, a computed id) counts."""
    out: set[str] = set()
    for fn in cls.methods.values():
        aranges: set[str] = set()  # locals bound to an arange index, in source order
        for n in sorted((n for n in walk(fn) if isinstance(n, (ast.Assign, ast.Call))),
                        key=lambda n: (n.lineno, n.col_offset)):
            if isinstance(n, ast.Assign):
                names = {t.id for t in n.targets if isinstance(t, ast.Name)}
                if _is_arange_index(n.value, aranges):
                    aranges |= names
                else:
                    aranges -= names
            elif (isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                    and n.func.value.id == "self"
                    and not (n.args and _is_arange_index(n.args[0], aranges))):
                out.add(n.func.attr)
    return out


_INDEX_RESHAPES = frozenset({"expand", "expand_as", "unsqueeze", "view", "reshape", "repeat", "to",
                             "long", "int", "cuda", "flip"})


def _is_arange_index(node: ast.expr, aranges: set[str]) -> bool:
    """``torch.arange(...)``, a local bound to one, or either reshaped or moved
    (``.expand(b, -1)``, ``.unsqueeze(0)``, ``.to(device)``)."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _INDEX_RESHAPES:
        node = node.func.value
    if isinstance(node, ast.Name):
        return node.id in aranges
    return (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "arange")


def walk_kind(kind: Kind | None, depth: int = 0) -> Iterator[Kind]:
    if kind is None or depth > 6:
        return
    yield kind
    for sub in (kind.block, kind.final_norm, *kind.elements, *kind.appended):
        yield from walk_kind(sub, depth + 1)


def built_kinds(model: ModuleModel) -> Iterator[Kind]:
    """Every module object the class's own __init__ (or a builder method) constructs, on any
    path: its submodules and what they contain, including the modules it hands to a
    project class's constructor (`Block(c_in, c_out, downsample=nn.Sequential(conv, bn))`),
    each once."""
    seen: set[int] = set()
    todo: list[tuple[Kind, int]] = [(k, 0) for sub in model.own() for k in (sub.kind, *sub.alternatives)]
    while todo:
        kind, depth = todo.pop()
        if id(kind) in seen or depth > 6:
            continue
        seen.add(id(kind))
        yield kind
        todo.extend((k, depth + 1) for k in (kind.block, kind.final_norm, *kind.elements, *kind.appended)
                    if k is not None)
        todo.extend((k, depth + 1) for _, k in kind.bound if not k.factory)


class _RenameNames(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]):
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in self.names:
            node.id = self.names[node.id]
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        if node.arg in self.names:
            node.arg = self.names[node.arg]
        return node


def class_text(cls: ClassInfo) -> str:
    """The source of the class (for cheap substring checks)."""
    return node_text(cls.file, cls.node)


def node_text(info: FileInfo, node: ast.stmt) -> str:
    """The source lines of a statement (for cheap substring checks; ast.get_source_segment
    splits the whole file on every call)."""
    starts = info.line_starts
    end = node.end_lineno or len(starts) - 1
    return info.parsed.text[starts[node.lineno - 1]:starts[min(end, len(starts) - 1)]]

