"""The module model: for each nn.Module class, the submodules its ``__init__`` builds (kind,
constructor, stacks and their depth), read without running anything.

Kinds compose bottom-up. A project class built with module arguments remembers them
(``PreNorm(dim, Attention(dim))`` is the wrapper *around* an Attention: its model is built
with ``fn`` bound to that Attention), and so does a class handed a norm class
(``Block(d, norm_layer=RMSNorm)``). A factory function (``def FeedForward(d): return
nn.Sequential(nn.LayerNorm(d), ...)``) or a builder method (``self._make_layer(...)``)
builds what its ``return`` builds. Registrations are read the way Python runs them: tuple
assignments register each attribute, a straight-line re-binding replaces the earlier one
(the placeholder ``nn.ModuleList([])`` filled later), alternatives in ``if`` arms keep the
most specific kind, and numbers resolve through locals, parameters' defaults, class and
module constants.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace

from . import kinds
from .index import ClassInfo, FileInfo, ProjectIndex, int_literal
from .names import param_defaults, walk

NORM_NAME_SUFFIXES = (("RMSNorm", "rms"), ("LayerNorm", "layer"), ("GroupNorm", "group"),
                      ("InstanceNorm", "instance"), ("SyncBatchNorm", "batch"))
MAX_FUNCTION_STATEMENTS = 400     # a factory longer than this is not read


@dataclass(frozen=True, eq=False)
class Kind:
    """What a submodule (or a factory that builds one) is.

    Identity matters: one Kind object stands for one module object built by one
    evaluation of a constructor, so two holders of the same Kind hold the same module.
    """

    category: str                    # norm, linear, conv, ..., project, stack, sequential, unknown
    name: str = ""                   # how a message names it: "nn.LayerNorm", "LlamaRMSNorm"
    family: str | None = None        # norms: layer / rms / batch / group / instance / lp / lrn
    torch_name: str | None = None    # "BatchNorm1d" for torch classes
    cls: ClassInfo | None = None     # project class
    call: ast.Call | None = None     # the constructor call
    factory: bool = False            # a class reference (norm_layer=nn.LayerNorm), not an instance
    block: "Kind | None" = None      # stacks: the repeated element
    depth: int | None = None
    aliased: bool = False            # [m] * n: one instance repeated
    elements: tuple["Kind", ...] = ()   # nn.Sequential(a, b, c); ModuleList([a, b])
    # stacks: other kinds appended after the first one (`layers.append(nn.Sequential(conv, norm))`
    # in a loop after a different stem): held by the container too
    appended: tuple["Kind", ...] = ()
    norm_first: bool | None = None   # nn.TransformerEncoderLayer
    final_norm: "Kind | None" = None     # nn.TransformerEncoder(norm=...)
    channels_first: bool = False     # a LayerNorm that normalizes dim 1 on purpose (LayerNorm2d)
    # project classes: module arguments bound to __init__ parameters (PreNorm(dim, fn=...))
    bound: tuple[tuple[str, "Kind"], ...] = ()
    # built by a factory function: (function, the call that ran it, the function's file)
    made_by: tuple[ast.FunctionDef, ast.Call, FileInfo] | None = None

    @property
    def is_norm(self) -> bool:
        return self.category == "norm"

    @property
    def is_native_norm(self) -> bool:
        return self.category == "norm" and self.torch_name is not None

    def keyword(self, *names: str) -> ast.expr | None:
        """The constructor's keyword argument (one of names), if written."""
        if self.call is None:
            return None
        for k in self.call.keywords:
            if k.arg in names:
                return k.value
        return None


UNKNOWN = Kind("unknown")


@dataclass
class Submodule:
    attr: str
    kind: Kind
    value: ast.expr                  # the assigned expression (report here)
    all_values: list[ast.expr] = field(default_factory=list)
    inherited: bool = False          # registered by a base class's __init__ (super().__init__)
    # every kind bound to the attribute on some path (`if apply_norm: self.bn = norm_act_layer(c)
    # else: self.bn = nn.Sequential()`): certainty questions look at all of them
    alternatives: list[Kind] = field(default_factory=list)


@dataclass
class ModuleModel:
    cls: ClassInfo
    submodules: dict[str, Submodule]
    int_attrs: dict[str, int]
    # self.x = x for an __init__ parameter: maybe a module handed in (the Annotated
    # Transformer's self_attn / feed_forward), maybe a number
    param_attrs: frozenset[str] = frozenset()
    bound: tuple[tuple[str, Kind], ...] = ()
    # self.x = <expr>: the last expression assigned (eps, momentum: numbers by value)
    attr_exprs: dict[str, ast.expr] = field(default_factory=dict)
    num_attrs: dict[str, float] = field(default_factory=dict)
    # simple local assignments of __init__ (hidden = config.hidden_size), for rewriting a
    # constructor in the caller's terms
    locals: dict[str, ast.expr] = field(default_factory=dict)
    # self.X = <a call the model cannot read>: maybe a module (maybe a norm); questions that
    # need certainty ("no norm in here") answer "unknown" when one is used
    opaque: frozenset[str] = frozenset()

    def kind_of(self, attr: str) -> Kind | None:
        sub = self.submodules.get(attr)
        return sub.kind if sub else None

    def own(self):
        """Submodules this class's own __init__ registers (not a base class's)."""
        return [s for s in self.submodules.values() if not s.inherited]

    def is_bound(self, kind: Kind) -> bool:
        """The kind came in as a constructor argument: the caller owns that module object."""
        return any(k is kind for _, k in self.bound)

    @property
    def file(self) -> FileInfo:
        return self.cls.file


def _says_shared(elt: ast.expr) -> bool:
    """`[shared_head] * n`: the name states that the sharing is the point (DETR box heads)."""
    return isinstance(elt, ast.Name) and any(w in elt.id.lower() for w in ("share", "tied", "tie_"))


def _names_norm_factory(name: str) -> bool:
    """norm_layer, norm_cls, norm_fn, norm_act_layer: a name that holds a norm class."""
    low = name.lower()
    return low.endswith(("norm_layer", "norm_cls", "norm_fn", "norm_class", "norm_module"))


_BUILTIN_CALLS = frozenset({"dict", "list", "tuple", "set", "int", "float", "str", "bool", "len", "range",
                            "getattr", "max", "min", "sum", "abs", "round", "zip", "enumerate", "sorted",
                            "isinstance", "hasattr", "print", "super", "type", "iter", "next", "any", "all"})


def _more(stack: Kind, kind: Kind) -> tuple[Kind, ...]:
    """The stack's appended kinds plus kind, unless it is the stack's block already."""
    if kind is stack.block or any(k is kind for k in stack.appended):
        return stack.appended
    return stack.appended + (kind,)


def _rank(kind: Kind) -> int:
    if kind.category == "sequential" and not kind.elements or kind.category == "stack" and kind.block is None:
        return 0            # a placeholder (`self.shortcut = nn.Sequential()`) is an identity
    order = {"norm": 5, "stack": 4, "transformer_stack": 4, "project": 3, "sequential": 3}
    return order.get(kind.category, 1 if kind.category not in ("unknown", "identity") else 0)


def _signature(bound: tuple[tuple[str, Kind], ...]) -> tuple:
    """Cache key for a class specialised by its module arguments: the kinds' identities
    (two different module objects give two models: what they hold differs)."""
    return tuple((name, id(k)) for name, k in bound)


class ModelBuilder:
    """Builds ModuleModels for the project, caching one per class and binding."""

    def __init__(self, index: ProjectIndex, norm_class_family):
        self.index = index
        # callable(ClassInfo) -> (family, channels_first) | None; lives in the analysis
        # object so hand-written norm detection is cached with the rest
        self._norm_class_family = norm_class_family
        self._cache: dict[tuple, ModuleModel] = {}
        self._active: set[int] = set()          # factory functions being evaluated
        # keep bound kinds alive: cache keys use their id()
        self._keep: list = []

    def model(self, cls: ClassInfo, bound: tuple[tuple[str, Kind], ...] = ()) -> ModuleModel:
        key = (id(cls), _signature(bound))
        if key not in self._cache:
            # placeholder so a class that builds itself recursively does not loop
            self._cache[key] = ModuleModel(cls, {}, {}, bound=bound)
            self._keep.append(bound)
            self._cache[key] = _Init(self, cls, cls.file, bound=bound).build()
        return self._cache[key]

    def model_of(self, kind: Kind) -> ModuleModel | None:
        """The model of a project-class kind, specialised by the arguments it was built with."""
        if kind.cls is None:
            return None
        return self.model(kind.cls, kind.bound)

    def class_kind(self, cls: ClassInfo, call: ast.Call | None, factory: bool = False,
                   bound: tuple[tuple[str, Kind], ...] = ()) -> Kind:
        nf = self._norm_class_family(cls)
        if nf is not None:
            family, channels_first = nf
            return Kind("norm", cls.name, family=family, cls=cls, call=call, factory=factory,
                        channels_first=channels_first)
        base = self.torch_base_category(cls)
        if base in ("linear", "conv", "embedding", "rnn", "attention"):
            # class MyConv(nn.Conv2d): what comes out of it is still a conv output
            return Kind(base, cls.name, cls=cls, call=call, factory=factory)
        return Kind("project", cls.name, cls=cls, call=call, factory=factory, bound=bound)

    def torch_base_category(self, cls: ClassInfo, depth: int = 0) -> str | None:
        if depth > 6:
            return None
        for base in cls.bases:
            cat = kinds.torch_module_category(cls.file.imports.qualname(base))
            if cat is not None:
                return cat
            parent = self.index.resolve_class(base, cls.file)
            if parent is not None and parent is not cls:
                cat = self.torch_base_category(parent, depth + 1)
                if cat is not None:
                    return cat
        return None

    def function_kind(self, fn: ast.FunctionDef, file: FileInfo, cls: ClassInfo | None, call: ast.Call,
                      caller: "_Init") -> Kind | None:
        """What a factory function or builder method returns when called with call's
        arguments (evaluated in the caller's scope)."""
        if id(fn) in self._active or len(self._active) > 3 or len(fn.body) > MAX_FUNCTION_STATEMENTS:
            return None
        self._active.add(id(fn))
        try:
            ev = _Init(self, cls, file, returns=[])
            ev._params(fn)
            params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
            if cls is not None and params and params[0] == "self":
                params = params[1:]
            actual = list(zip(params, call.args)) + [(k.arg, k.value) for k in call.keywords if k.arg]
            for name, arg in actual:
                if isinstance(arg, ast.Starred):
                    break
                k = caller.kind(arg)
                if k is None:
                    k = caller.ref_kind(arg)
                if k is not None:
                    ev.kinds[name] = k
                n = caller.number(arg)
                if n is not None:
                    ev.ints[name] = n
            if cls is not None:
                ev.int_attrs = dict(caller.int_attrs)
            ev._walk(fn.body)
            found = [k for k in ev.returns if k is not None]
        finally:
            self._active.discard(id(fn))
        if not found:
            return None
        if ev.unknown_return:
            # a path returns what the model cannot read (monai's `get_norm_layer`: Identity
            # for "", else a norm class looked up by name): unknown, as an unreadable arm of
            # an IfExp, so the Identity is not taken for certain (a norm still outranks it)
            found.append(UNKNOWN)
        out = found[0]
        for k in found[1:]:
            out = _Init._pick(out, k)
        if out is None or out.factory:
            return None
        return replace(out, made_by=(fn, call, file)) if out.made_by is None else out


class _Init:
    """One walk over __init__ (and the builder methods it calls) of one class, or over one
    factory function's body."""

    def __init__(self, builder: ModelBuilder, cls: ClassInfo | None, file: FileInfo,
                 bound: tuple[tuple[str, Kind], ...] = (), returns: list | None = None):
        self.b = builder
        self.index = builder.index
        self.cls = cls
        self.file = file
        self.bound = bound
        self.kinds: dict[str, Kind] = {}
        self.ints: dict[str, float] = {}      # numbers bound to local names
        self.lists: dict[str, Kind] = {}      # local python lists being filled with modules
        self.subs: dict[str, Submodule] = {}
        self.int_attrs: dict[str, int] = {}
        self.num_attrs: dict[str, float] = {}
        self.attr_exprs: dict[str, ast.expr] = {}
        self.local_exprs: dict[str, ast.expr] = {}
        self.loop_depths: list[int | None] = []
        self.params: set[str] = set()
        self.param_attrs: set[str] = set()
        self.returns = returns                # factory functions: kinds of `return` values
        self.unknown_return = False           # ... and one of them is a module it cannot read
        self.inherited = False
        self.super_depth = 0
        self.owner = cls                      # the class whose __init__ is being read
        self.assigned: set[str] = set()       # every self.X the __init__ assigns
        self.opaque: set[str] = set()         # self.X = <a call the model cannot read>

    def build(self) -> ModuleModel:
        assert self.cls is not None
        found = self.index.find_method(self.cls, "__init__")
        if found is not None:
            init, owner = found
            self.inherited = owner is not self.cls
            self.owner = owner
            self._params(init)
            for name, kind in self.bound:
                self.kinds[name] = kind
            self._walk(init.body)
            self.inherited = False
        seen: set[str] = set()
        for c in self.index.mro(self.cls):
            # a base's (a mixin's) method registers modules too: diffusers' fuse_projections()
            for name, fn in c.methods.items():
                if name in seen or name in ("__init__", "forward") or name.startswith("forward"):
                    continue
                seen.add(name)
                self.kinds, self.ints, self.lists = {}, {}, {}
                self.file, self.owner = c.file, c
                self._params(fn)
                self._walk(fn.body, only_new=True)
        self.file, self.owner = self.cls.file, self.cls
        return ModuleModel(self.cls, self.subs, self.int_attrs, frozenset(self.param_attrs),
                           self.bound, self.attr_exprs, self.num_attrs, self.local_exprs,
                           frozenset(self.opaque - set(self.subs)))

    # -- parameters and locals ----------------------------------------------------------

    def _params(self, fn: ast.FunctionDef) -> None:
        for arg, default in param_defaults(fn):
            if arg.arg == "self":
                continue
            self.params.add(arg.arg)
            value = self.number(default) if default is not None else None
            if value is not None:
                self.ints[arg.arg] = value
            kind = self.ref_kind(default) if default is not None else None
            if (kind is None or kind.category in ("unknown", "none")) and "norm" in arg.arg.lower() \
                    and not arg.arg.lower().startswith(("num", "n_", "use", "pre", "post", "do_")) \
                    and (not (isinstance(default, ast.Constant) and isinstance(default.value, (bool, int, float, str)))
                         or _names_norm_factory(arg.arg) and isinstance(default, ast.Constant)
                         and isinstance(default.value, str)):
                # a factory parameter such as norm_layer=None (or timm's norm_layer='layernorm'):
                # the caller passes a norm class
                kind = Kind("norm", arg.arg, factory=True)
            if kind is not None:
                self.kinds[arg.arg] = kind

    def ref_kind(self, expr: ast.expr | None) -> Kind | None:
        """Kind of a class reference used as a factory (nn.LayerNorm, partial(nn.LayerNorm, ...))."""
        if expr is None:
            return None
        if isinstance(expr, ast.Call):
            qual = self.file.imports.qualname(expr.func) or ""
            if qual.endswith("partial") and expr.args:
                inner = self.ref_kind(expr.args[0])
                # the partial's keywords are the constructor's (momentum=, eps=)
                return replace(inner, call=expr) if inner is not None and inner.call is None else inner
            return None
        if isinstance(expr, ast.Name) and expr.id in self.kinds:
            return self.kinds[expr.id]
        if isinstance(expr, (ast.Name, ast.Attribute)):
            kind = self._class_kind(expr, None)
            if kind is not None:
                return replace(kind, factory=True)
        if isinstance(expr, ast.BoolOp):
            for v in expr.values:
                k = self.ref_kind(v)
                if k is not None and k.category != "unknown":
                    return k
        if isinstance(expr, ast.IfExp):
            return self._pick(self.ref_kind(expr.body), self.ref_kind(expr.orelse))
        return None

    def _class_kind(self, func: ast.expr, call: ast.Call | None) -> Kind | None:
        """Kind of the class that func names, for a constructor call (or None if not a class)."""
        qual = self.file.imports.qualname(func)
        norm = kinds.torch_norm_class(qual)
        if norm is not None:
            return Kind("norm", f"nn.{norm}", family=kinds.NORM_CLASSES[norm], torch_name=norm, call=call)
        cat = kinds.torch_module_category(qual)
        if cat is not None:
            return Kind(cat, f"nn.{qual.rsplit('.', 1)[1]}", torch_name=qual.rsplit(".", 1)[1], call=call)
        cls = self.index.resolve_class(func, self.file)
        if cls is not None:
            bound = self._bind_module_args(cls, call) if call is not None else ()
            return self.b.class_kind(cls, call, bound=bound)
        if qual and not qual.startswith("torch.") and isinstance(func, (ast.Name, ast.Attribute)):
            short = qual.rsplit(".", 1)[-1]
            for suffix, family in NORM_NAME_SUFFIXES + (("BatchNorm1d", "batch"), ("BatchNorm2d", "batch"),
                                                        ("BatchNorm3d", "batch"), ("BatchNorm", "batch")):
                if short.endswith(suffix) or short.endswith(suffix + "2d") or short.endswith(suffix + "1d"):
                    return Kind("norm", short, family=family, call=call,
                                channels_first=short.endswith("2d") or "ChannelsFirst" in short
                                or "channels_first" in short)
            if short[:1].isupper():
                return Kind("unknown", short, call=call)
        return None

    def _bind_module_args(self, cls: ClassInfo, call: ast.Call) -> tuple[tuple[str, Kind], ...]:
        """Constructor arguments that are modules or module classes, by __init__ parameter."""
        if not call.args and not call.keywords:
            return ()
        found = self.index.find_method(cls, "__init__")
        if found is None:
            return ()
        init = found[0]
        params = [a.arg for a in init.args.posonlyargs + init.args.args][1:]
        kwonly = {a.arg for a in init.args.kwonlyargs}
        actual: list[tuple[str, ast.expr]] = []
        for p, a in zip(params, call.args):
            if isinstance(a, ast.Starred):
                break
            actual.append((p, a))
        actual += [(k.arg, k.value) for k in call.keywords if k.arg in params or k.arg in kwonly]
        out = []
        for name, arg in actual:
            if isinstance(arg, ast.Constant):
                continue
            k = self.kind(arg)
            if k is None and isinstance(arg, (ast.Name, ast.Attribute, ast.Call)):
                k = self.ref_kind(arg)
            if k is not None and k.category != "unknown" and not (k.factory and k.name == name):
                out.append((name, k))
        return tuple(out)

    @staticmethod
    def _pick(a: Kind | None, b: Kind | None) -> Kind | None:
        if a is None:
            return b
        if b is None:
            return a
        if _rank(a) == _rank(b) and a.category != b.category:
            # `partial(nn.Conv2d, kernel_size=1) if use_conv else nn.Linear`: either one
            return Kind("unknown", a.name, factory=a.factory and b.factory)
        return a if _rank(a) >= _rank(b) else b

    # -- expressions --------------------------------------------------------------------

    def kind(self, expr: ast.expr | None, depth: int = 0) -> Kind | None:
        """Kind of the module an expression builds, or None when it builds no module."""
        if expr is None or depth > 6:
            return None
        if isinstance(expr, ast.Name):
            if expr.id in self.lists:
                return self.lists[expr.id]
            k = self.kinds.get(expr.id)
            return k if k is None or not k.factory else None
        if isinstance(expr, ast.IfExp):
            # `ACT2FN[name] if name else nn.Identity()`: an arm this model cannot read is an
            # unknown module, not "no module" (else the Identity would be taken for certain)
            arms = [self.kind(e, depth + 1) for e in (expr.body, expr.orelse)]
            if any(k is not None for k in arms):
                arms = [UNKNOWN if k is None and not (isinstance(e, ast.Constant) and e.value is None) else k
                        for k, e in zip(arms, (expr.body, expr.orelse))]
            return self._pick(arms[0], arms[1])
        if isinstance(expr, ast.BoolOp):
            for v in expr.values:
                k = self.kind(v, depth + 1)
                if k is not None:
                    return k
            return None
        if isinstance(expr, (ast.ListComp, ast.GeneratorExp)):
            return self._comprehension_stack(expr, depth)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mult):
            return self._multiplied_list(expr, depth)
        if isinstance(expr, (ast.List, ast.Tuple)):
            elts = [self.kind(e.value if isinstance(e, ast.Starred) else e, depth + 1) for e in expr.elts]
            if not any(k is not None for k in elts):
                return None
            if any(isinstance(e, ast.Starred) for e in expr.elts):
                first = next(k for k in elts if k is not None)
                block = first.block if first.category == "stack" and first.block is not None else first
                return Kind("stack", block.name, block=block, depth=None)
            elts_k = tuple(k or UNKNOWN for k in elts)
            first = elts_k[0] if elts_k else UNKNOWN
            return Kind("stack", first.name, block=first, depth=len(elts_k), elements=elts_k, call=None)
        if not isinstance(expr, ast.Call):
            return None
        func = expr.func
        qual = self.file.imports.qualname(func) or ""
        short = qual.rsplit(".", 1)[-1]
        if short == "deepcopy" and expr.args:
            inner = self.kind(expr.args[0], depth + 1)
            # a copy is another module object
            return replace(inner) if inner is not None else None
        if isinstance(func, ast.Name) and func.id in self.kinds and self.kinds[func.id].factory:
            return replace(self.kinds[func.id], factory=False, call=expr)
        if isinstance(func, ast.Call) and isinstance(func.func, (ast.Name, ast.Attribute)):
            # partial(nn.LayerNorm, eps=1e-6)(d)
            ref = self.ref_kind(func)
            if ref is not None:
                return replace(ref, factory=False, call=expr)
        if qual in ("torch.nn.ModuleList", "torch.nn.Sequential"):
            return self._container(expr, qual.endswith("Sequential"), depth)
        if qual == "torch.nn.ModuleDict":
            return self._module_dict(expr, depth)
        if qual in ("torch.nn.TransformerEncoder", "torch.nn.TransformerDecoder"):
            layer = self.kind(expr.args[0], depth + 1) if expr.args else None
            kw = {k.arg: k.value for k in expr.keywords}
            if layer is None and "encoder_layer" in kw:
                layer = self.kind(kw["encoder_layer"], depth + 1)
            if layer is None and "decoder_layer" in kw:
                layer = self.kind(kw["decoder_layer"], depth + 1)
            n_node = expr.args[1] if len(expr.args) > 1 else kw.get("num_layers")
            norm_node = expr.args[2] if len(expr.args) > 2 else kw.get("norm")
            norm = self.kind(norm_node, depth + 1) if norm_node is not None and not (
                isinstance(norm_node, ast.Constant) and norm_node.value is None) else None
            return Kind("transformer_stack", f"nn.{short}", torch_name=short, call=expr, block=layer,
                        depth=self.int_value(n_node), final_norm=norm)
        if qual == "torch.nn.Transformer":
            # its own encoder/decoder stacks: 6 post-norm layers each unless told otherwise
            kw = {k.arg: k.value for k in expr.keywords}
            nf = kw.get("norm_first")
            norm_first = False if nf is None else (nf.value if isinstance(nf, ast.Constant) else None)
            depths = [6 if kw.get(key) is None else self.int_value(kw[key])
                      for key in ("num_encoder_layers", "num_decoder_layers")]
            depth = None if None in depths else max(depths)
            layer = Kind("transformer_layer", "nn.TransformerEncoderLayer", torch_name="TransformerEncoderLayer",
                         norm_first=norm_first)
            return Kind("transformer", "nn.Transformer", torch_name="Transformer", call=expr, block=layer,
                        depth=depth)
        if qual in ("torch.nn.TransformerEncoderLayer", "torch.nn.TransformerDecoderLayer"):
            kw = {k.arg: k.value for k in expr.keywords}
            nf = kw.get("norm_first")
            norm_first = False if nf is None else (nf.value if isinstance(nf, ast.Constant) else None)
            return Kind("transformer_layer", f"nn.{short}", torch_name=short, call=expr,
                        norm_first=norm_first)
        method = self._method_factory(func)
        if method is not None:
            return self.b.function_kind(method, self.file, self.cls, expr, self)
        fn = self.index.resolve_function(func, self.file)
        if fn is not None:
            if len(expr.args) >= 2 and any(
                    isinstance(n, ast.Attribute) and n.attr == "deepcopy" or
                    isinstance(n, ast.Name) and n.id == "deepcopy" for n in walk(fn[0])):
                # clones(layer, N) / _get_clones(module, N): the Annotated Transformer helper
                block = self.kind(expr.args[0], depth + 1)
                if block is not None:
                    return Kind("stack", block.name, block=replace(block), depth=self.int_value(expr.args[1]),
                                call=expr)
            return self.b.function_kind(fn[0], fn[1], None, expr, self)
        return self._class_kind(func, expr)

    def _method_factory(self, func: ast.expr) -> ast.FunctionDef | None:
        """self._make_layer(...): a builder method of this class (or a base)."""
        if self.cls is None or not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                                    and func.value.id == "self"):
            return None
        found = self.index.find_method(self.cls, func.attr)
        if found is None or func.attr in ("__init__", "forward"):
            return None
        return found[0]

    def _container(self, call: ast.Call, sequential: bool, depth: int) -> Kind:
        args = call.args
        if len(args) == 1 and isinstance(args[0], ast.Starred):
            inner = self.kind(args[0].value, depth + 1)
            if inner is not None and inner.category == "stack":
                return replace(inner, call=call)
            if inner is not None and inner.category == "sequential":
                return replace(inner, call=call)
        if len(args) == 1 and not sequential:
            inner = self.kind(args[0], depth + 1)
            if inner is not None and inner.category == "stack":
                return replace(inner, call=call)
            return Kind("stack", "", block=inner, depth=None, call=call)
        if len(args) == 1 and sequential and isinstance(args[0], ast.Call):
            # nn.Sequential(OrderedDict([...]))
            inner = args[0]
            if (self.file.imports.qualname(inner.func) or "").endswith("OrderedDict") and inner.args \
                    and isinstance(inner.args[0], (ast.List, ast.Tuple)):
                pairs = [e.elts[1] for e in inner.args[0].elts if isinstance(e, ast.Tuple) and len(e.elts) == 2]
                elements = tuple(self.kind(v, depth + 1) or UNKNOWN for v in pairs)
                return Kind("sequential", "nn.Sequential", elements=elements, call=call)
        elements = tuple(self.kind(a.value if isinstance(a, ast.Starred) else a, depth + 1) or UNKNOWN
                         for a in args)
        if sequential:
            return Kind("sequential", "nn.Sequential", elements=elements, call=call)
        return Kind("stack", "", block=elements[0] if elements else None, depth=len(elements),
                    elements=elements, call=call)

    def _module_dict(self, call: ast.Call, depth: int) -> Kind:
        values: list[ast.expr] = []
        if call.args and isinstance(call.args[0], ast.Dict):
            values = [v for v in call.args[0].values if v is not None]
        values += [k.value for k in call.keywords if k.arg]
        elements = tuple(self.kind(v, depth + 1) or UNKNOWN for v in values)
        return Kind("moduledict", "nn.ModuleDict", elements=elements, call=call)

    def _comprehension_stack(self, expr: ast.ListComp | ast.GeneratorExp, depth: int) -> Kind | None:
        gen = expr.generators[0]
        n = self._range_len(gen.iter)
        elt = expr.elt
        aliased = isinstance(elt, ast.Name) and elt.id in self.kinds and not self.kinds[elt.id].factory \
            and not _says_shared(elt)
        # the comprehension variable is not a module; hide it while reading the element
        saved = {t.id: self.kinds.pop(t.id) for t in walk(gen.target)
                 if isinstance(t, ast.Name) and t.id in self.kinds}
        block = self.kind(elt, depth + 1)
        self.kinds.update(saved)
        if block is None:
            return None
        return Kind("stack", block.name, block=block, depth=n, aliased=aliased, call=None)

    def _multiplied_list(self, expr: ast.BinOp, depth: int) -> Kind | None:
        for lst, count in ((expr.left, expr.right), (expr.right, expr.left)):
            if isinstance(lst, ast.List) and len(lst.elts) == 1:
                elt = lst.elts[0]
                block = self.kind(elt, depth + 1)
                if block is not None:
                    return Kind("stack", block.name, block=block, depth=self.int_value(count),
                                aliased=not _says_shared(elt), call=None)
        return None

    def _range_len(self, it: ast.expr) -> int | None:
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            vals = [self.int_value(a) for a in it.args]
            if any(v is None for v in vals):
                return None
            if len(vals) == 1:
                return max(0, vals[0])
            if len(vals) >= 2:
                step = vals[2] if len(vals) > 2 else 1
                if step:
                    return max(0, -(-(vals[1] - vals[0]) // step))
        if isinstance(it, (ast.List, ast.Tuple)):
            return len(it.elts)
        return None

    def int_value(self, expr: ast.expr | None):
        value = self.number(expr)
        return value if isinstance(value, int) else None

    def number(self, expr: ast.expr | None, depth: int = 0):
        """The int or float an expression stands for in this scope, or None."""
        if expr is None or depth > 5:
            return None
        lit = int_literal(expr)
        if lit is not None:
            return lit
        if isinstance(expr, ast.Name):
            if expr.id in self.ints:
                return self.ints[expr.id]
            if self.cls is not None and expr.id in self.cls.constants:
                return int_literal(self.cls.constants[expr.id])
            return self.index.module_constant(expr.id, self.file)
        if isinstance(expr, ast.Attribute):
            if isinstance(expr.value, ast.Name) and expr.value.id == "self":
                if expr.attr in self.num_attrs:
                    return self.num_attrs[expr.attr]
                if expr.attr in self.int_attrs:
                    return self.int_attrs[expr.attr]
                if self.cls is not None and expr.attr in self.cls.constants:
                    return int_literal(self.cls.constants[expr.attr])
            value = self.index.config_defaults().get(expr.attr)
            return value if isinstance(value, int) else None
        if isinstance(expr, ast.BinOp):
            a, b = self.number(expr.left, depth + 1), self.number(expr.right, depth + 1)
            if isinstance(a, int) and isinstance(b, int):
                if isinstance(expr.op, ast.Add):
                    return a + b
                if isinstance(expr.op, ast.Sub):
                    return a - b
                if isinstance(expr.op, ast.Mult):
                    return a * b
                if isinstance(expr.op, ast.FloorDiv) and b:
                    return a // b
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in ("len", "sum") \
                and expr.args and isinstance(expr.args[0], (ast.List, ast.Tuple)):
            vals = [self.int_value(e) for e in expr.args[0].elts]
            if expr.func.id == "len":
                return len(vals)
            if all(isinstance(v, int) for v in vals):
                return sum(vals)
        return None

    # -- statements ---------------------------------------------------------------------

    def _walk(self, body: list[ast.stmt], only_new: bool = False, alt: bool = False) -> None:
        """alt: the statements are one alternative among others (an if arm, a loop body, a
        try block), so an attribute they re-bind competes with the earlier binding instead
        of replacing it."""
        for stmt in body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if stmt.value is None:
                    continue
                for t in targets:
                    self._assign(t, stmt.value, only_new, alt)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                self._append(stmt.value)
                self._super_init(stmt.value, only_new)
            elif isinstance(stmt, ast.Return):
                if self.returns is not None and stmt.value is not None:
                    k = self.kind(stmt.value)
                    self.returns.append(k)
                    if k is None and not (isinstance(stmt.value, ast.Constant) and stmt.value.value is None):
                        self.unknown_return = True
            elif isinstance(stmt, ast.For):
                self.loop_depths.append(self._range_len(stmt.iter))
                self._walk(stmt.body, only_new, True)
                self.loop_depths.pop()
                self._walk(stmt.orelse, only_new, True)
            elif isinstance(stmt, (ast.If, ast.While)):
                self._walk(stmt.body, only_new, True)
                self._walk(stmt.orelse, only_new, True)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                self._walk(stmt.body, only_new, alt)
            elif isinstance(stmt, ast.Try):
                self._walk(stmt.body, only_new, True)
                for h in stmt.handlers:
                    self._walk(h.body, only_new, True)
                self._walk(stmt.orelse, only_new, True)
                self._walk(stmt.finalbody, only_new, alt)

    def _super_init(self, call: ast.Call, only_new: bool) -> None:
        """super().__init__(...) / Base.__init__(self, ...): the base class registers
        submodules too (the subclass's forward uses them)."""
        f = call.func
        if self.cls is None or only_new or self.super_depth > 3 or not (
                isinstance(f, ast.Attribute) and f.attr == "__init__"):
            return
        args = list(call.args)
        if isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Name) and f.value.func.id == "super":
            start = 1
        elif isinstance(f.value, (ast.Name, ast.Attribute)) and args and isinstance(args[0], ast.Name) \
                and args[0].id == "self":
            start, args = 1, args[1:]
        else:
            return
        mro = self.index.mro(self.cls)
        if self.owner in mro:
            start = mro.index(self.owner) + 1
        base = None
        for c in mro[start:]:
            if "__init__" in c.methods:
                base = c
                break
        if base is None:
            return
        init = base.methods["__init__"]
        params = [a.arg for a in init.args.posonlyargs + init.args.args][1:]
        actual = list(zip(params, args)) + [(k.arg, k.value) for k in call.keywords if k.arg]
        bound_kinds: dict[str, Kind] = {}
        bound_nums: dict[str, float] = {}
        for name, arg in actual:       # evaluated in the subclass's scope
            if isinstance(arg, ast.Starred):
                break
            k = self.kind(arg) or (self.ref_kind(arg) if isinstance(arg, (ast.Name, ast.Attribute)) else None)
            if k is not None:
                bound_kinds[name] = k
            n = self.number(arg)
            if n is not None:
                bound_nums[name] = n
        saved = (self.kinds, self.ints, self.lists, self.inherited)
        self.kinds, self.ints, self.lists = {}, {}, {}
        self._params(init)
        self.kinds.update(bound_kinds)
        self.ints.update(bound_nums)
        self.inherited = True
        self.super_depth += 1
        file, owner = self.file, self.owner
        self.file, self.owner = base.file, base
        try:
            self._walk(init.body)
        finally:
            self.file, self.owner = file, owner
            self.super_depth -= 1
            self.kinds, self.ints, self.lists, self.inherited = saved

    def _assign(self, target: ast.expr, value: ast.expr, only_new: bool, alt: bool) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            # self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) \
                    and not any(isinstance(e, ast.Starred) for e in target.elts + value.elts):
                for t, v in zip(target.elts, value.elts):
                    self._assign(t, v, only_new, alt)
            return
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                and target.value.id == "self":
            num = self.number(value)
            if num is not None and not isinstance(num, bool):
                if isinstance(num, int):
                    self.int_attrs.setdefault(target.attr, num)
                self.num_attrs[target.attr] = num
            if not self.inherited or target.attr not in self.attr_exprs:
                self.attr_exprs[target.attr] = value
            if only_new and target.attr in self.assigned:
                return             # a helper method re-binding what __init__ built (prune/reset)
            if not only_new:
                self.assigned.add(target.attr)
            kind = self.kind(value)
            if kind is None:
                if isinstance(value, ast.Name) and value.id in self.kinds and not self.kinds[value.id].factory:
                    kind = self.kinds[value.id]
                else:
                    if isinstance(value, ast.Name) and value.id in self.params:
                        self.param_attrs.add(target.attr)
                    if isinstance(value, ast.Call) and self._opaque_call(value):
                        self.opaque.add(target.attr)
                        if target.attr in self.subs:
                            self.subs[target.attr].alternatives.append(UNKNOWN)
                    return
            existing = self.subs.get(target.attr)
            if existing is None:
                self.subs[target.attr] = Submodule(target.attr, kind, value, [value], self.inherited,
                                                   [kind, UNKNOWN] if target.attr in self.opaque else [kind])
            elif not only_new:
                existing.all_values.append(value)
                existing.alternatives.append(kind)
                if (not alt and not self.inherited) or _rank(kind) > _rank(existing.kind):
                    # a straight-line re-binding replaces the earlier module (the last wins)
                    existing.kind, existing.value = kind, value
                    existing.inherited = self.inherited
        elif isinstance(target, ast.Name):
            if isinstance(value, ast.List) and not value.elts:
                self.lists[target.id] = Kind("stack", "", block=None, depth=0)
                return
            if isinstance(value, (ast.Name, ast.Attribute, ast.Constant, ast.BinOp, ast.Call, ast.Subscript)):
                self.local_exprs[target.id] = value
            kind = self.kind(value)
            if kind is None:
                kind = self.ref_kind(value)
            if kind is None and _names_norm_factory(target.id) and isinstance(value, ast.Call) \
                    and self._opaque_call(value):
                # norm_layer = get_norm_layer(cfg.norm_layer): a resolver hands back a norm class
                kind = Kind("norm", target.id, factory=True)
            if kind is not None:
                self.kinds[target.id] = kind
                self.lists.pop(target.id, None)
            num = self.number(value)
            if num is not None:
                self.ints[target.id] = num

    def _opaque_call(self, call: ast.Call) -> bool:
        """A call that may build a module the model cannot read (not a torch function, not a
        builtin, not a parameter or buffer)."""
        qual = self.file.imports.qualname(call.func) or ""
        short = qual.rsplit(".", 1)[-1]
        if qual.startswith("torch.") or short in _BUILTIN_CALLS or short in ("Parameter", "Buffer"):
            return False
        return not (isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Constant))

    def _append(self, call: ast.Call) -> None:
        f = call.func
        if not (isinstance(f, ast.Attribute) and f.attr in ("append", "extend", "add_module") and call.args):
            return
        if f.attr == "add_module":
            # self.add_module("norm1", nn.LayerNorm(d))
            if len(call.args) >= 2 and isinstance(call.args[0], ast.Constant) \
                    and isinstance(call.args[0].value, str) and isinstance(f.value, ast.Name) \
                    and f.value.id == "self":
                target = ast.Attribute(value=ast.Name(id="self", ctx=ast.Load()), attr=call.args[0].value,
                                       ctx=ast.Store())
                self._assign(target, call.args[1], False, True)
            return
        kind = self.kind(call.args[0])
        if kind is None:
            return
        if f.attr == "extend" and kind.category == "stack":
            kind = kind.block or UNKNOWN
        depth = 1
        for d in self.loop_depths:
            depth = None if d is None or depth is None else depth * d
        holder = f.value
        if isinstance(holder, ast.Name) and holder.id in self.lists:
            cur = self.lists[holder.id]
            self.lists[holder.id] = replace(cur, block=cur.block or kind, appended=_more(cur, kind),
                                            depth=None if cur.depth is None or depth is None else cur.depth + depth)
        elif isinstance(holder, ast.Attribute) and isinstance(holder.value, ast.Name) \
                and holder.value.id == "self" and holder.attr in self.subs:
            sub = self.subs[holder.attr]
            if sub.kind.category == "stack":
                cur = sub.kind
                sub.kind = replace(cur, block=cur.block if cur.block and cur.block.category != "unknown" else kind,
                                   appended=_more(cur, kind),
                                   depth=None if cur.depth is None or depth is None else cur.depth + depth)
