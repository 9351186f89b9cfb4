"""The module model: for each nn.Module class, its submodules (kind, constructor, stacks and
their depth), read from ``__init__`` without running anything."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace

from . import kinds
from .index import ClassInfo, FileInfo, ProjectIndex, int_literal
from .names import param_defaults

NORM_NAME_SUFFIXES = (("RMSNorm", "rms"), ("LayerNorm", "layer"), ("GroupNorm", "group"),
                      ("InstanceNorm", "instance"), ("SyncBatchNorm", "batch"))
_HEAVY = {"linear", "conv", "embedding", "rnn", "attention", "transformer",
          "transformer_stack", "transformer_layer", "project", "stack"}


@dataclass(frozen=True, eq=False)
class Kind:
    """What a submodule (or a factory that builds one) is."""

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
    elements: tuple["Kind", ...] = ()   # nn.Sequential(a, b, c)
    norm_first: bool | None = None   # nn.TransformerEncoderLayer
    final_norm: "Kind | None" = None     # nn.TransformerEncoder(norm=...)
    channels_first: bool = False     # a LayerNorm that normalizes dim 1 on purpose (LayerNorm2d)

    @property
    def is_norm(self) -> bool:
        return self.category == "norm"

    @property
    def is_native_norm(self) -> bool:
        return self.category == "norm" and self.torch_name is not None


UNKNOWN = Kind("unknown")


@dataclass
class Submodule:
    attr: str
    kind: Kind
    value: ast.expr                  # the assigned expression (report here)
    all_values: list[ast.expr] = field(default_factory=list)


@dataclass
class ModuleModel:
    cls: ClassInfo
    submodules: dict[str, Submodule]
    int_attrs: dict[str, int]
    # self.x = x for an __init__ parameter: maybe a module handed in (the Annotated
    # Transformer's self_attn / feed_forward), maybe a number
    param_attrs: frozenset[str] = frozenset()

    def kind_of(self, attr: str) -> Kind | None:
        sub = self.submodules.get(attr)
        return sub.kind if sub else None

    @property
    def file(self) -> FileInfo:
        return self.cls.file


def _says_shared(elt: ast.expr) -> bool:
    """`[shared_head] * n`: the name states that the sharing is the point (DETR box heads)."""
    return isinstance(elt, ast.Name) and any(w in elt.id.lower() for w in ("share", "tied", "tie_"))


def _rank(kind: Kind) -> int:
    order = {"norm": 5, "stack": 4, "transformer_stack": 4, "project": 3, "sequential": 3}
    return order.get(kind.category, 1 if kind.category not in ("unknown", "identity") else 0)


class ModelBuilder:
    """Builds ModuleModels for the project, caching one per class."""

    def __init__(self, index: ProjectIndex, norm_class_family):
        self.index = index
        # callable(ClassInfo) -> (family, channels_first) | None; lives in the analysis
        # object so hand-written norm detection is cached with the rest
        self._norm_class_family = norm_class_family
        self._cache: dict[int, ModuleModel] = {}

    def model(self, cls: ClassInfo) -> ModuleModel:
        key = id(cls)
        if key not in self._cache:
            # placeholder so a class that builds itself recursively does not loop
            self._cache[key] = ModuleModel(cls, {}, {})
            self._cache[key] = _Init(self, cls).build()
        return self._cache[key]

    def class_kind(self, cls: ClassInfo, call: ast.Call | None, factory: bool = False) -> Kind:
        nf = self._norm_class_family(cls)
        if nf is not None:
            family, channels_first = nf
            return Kind("norm", cls.name, family=family, cls=cls, call=call, factory=factory,
                        channels_first=channels_first)
        base = self.torch_base_category(cls)
        if base in ("linear", "conv", "embedding", "rnn", "attention"):
            # class MyConv(nn.Conv2d): what comes out of it is still a conv output
            return Kind(base, cls.name, cls=cls, call=call, factory=factory)
        return Kind("project", cls.name, cls=cls, call=call, factory=factory)

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


class _Init:
    """One walk over __init__ (and the builder methods it calls) of one class."""

    def __init__(self, builder: ModelBuilder, cls: ClassInfo):
        self.b = builder
        self.index = builder.index
        self.cls = cls
        self.file = cls.file
        self.kinds: dict[str, Kind] = {}
        self.ints: dict[str, int] = {}
        self.lists: dict[str, Kind] = {}      # local python lists being filled with modules
        self.subs: dict[str, Submodule] = {}
        self.int_attrs: dict[str, int] = {}
        self.loop_depths: list[int | None] = []
        self.params: set[str] = set()
        self.param_attrs: set[str] = set()

    def build(self) -> ModuleModel:
        init = self.cls.methods.get("__init__")
        if init is not None:
            self._params(init)
            self._walk(init.body)
        for name, fn in self.cls.methods.items():
            if name in ("__init__", "forward") or name.startswith("forward"):
                continue
            self.kinds, self.ints, self.lists = {}, {}, {}
            self._params(fn)
            self._walk(fn.body, only_new=True)
        return ModuleModel(self.cls, self.subs, self.int_attrs, frozenset(self.param_attrs))

    # -- parameters and locals ----------------------------------------------------------

    def _params(self, fn: ast.FunctionDef) -> None:
        for arg, default in param_defaults(fn):
            if arg.arg == "self":
                continue
            self.params.add(arg.arg)
            value = int_literal(default) if default is not None else None
            if isinstance(value, int):
                self.ints[arg.arg] = value
            kind = self.ref_kind(default) if default is not None else None
            if (kind is None or kind.category in ("unknown", "none")) and "norm" in arg.arg.lower() \
                    and not arg.arg.lower().startswith(("num", "n_", "use", "pre", "post", "do_")) \
                    and not (isinstance(default, ast.Constant) and isinstance(default.value, (bool, int, float, str))):
                # a factory parameter such as norm_layer=None: the caller passes a norm class
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
                return self.ref_kind(expr.args[0])
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
            return self.b.class_kind(cls, call)
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
            return self._pick(self.kind(expr.body, depth + 1), self.kind(expr.orelse, depth + 1))
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
            elts = [self.kind(e, depth + 1) for e in expr.elts]
            elts_k = tuple(k or UNKNOWN for k in elts)
            if not any(k is not None for k in elts):
                return None
            first = elts_k[0] if elts_k else UNKNOWN
            return Kind("stack", first.name, block=first, depth=len(elts_k), elements=elts_k, call=None)
        if not isinstance(expr, ast.Call):
            return None
        func = expr.func
        qual = self.file.imports.qualname(func) or ""
        short = qual.rsplit(".", 1)[-1]
        if short == "deepcopy" and expr.args:
            return self.kind(expr.args[0], depth + 1)
        if isinstance(func, ast.Name) and func.id in self.kinds and self.kinds[func.id].factory:
            return replace(self.kinds[func.id], factory=False, call=expr)
        if qual in ("torch.nn.ModuleList", "torch.nn.Sequential"):
            return self._container(expr, qual.endswith("Sequential"), depth)
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
        fn = self.index.resolve_function(func, self.file)
        if fn is not None and len(expr.args) >= 2 and any(
                isinstance(n, ast.Attribute) and n.attr == "deepcopy" or
                isinstance(n, ast.Name) and n.id == "deepcopy" for n in ast.walk(fn[0])):
            # clones(layer, N) / _get_clones(module, N): the Annotated Transformer helper
            block = self.kind(expr.args[0], depth + 1)
            if block is not None:
                return Kind("stack", block.name, block=block, depth=self.int_value(expr.args[1]), call=expr)
        kind = self._class_kind(func, expr)
        if kind is not None:
            return kind
        return None

    def _container(self, call: ast.Call, sequential: bool, depth: int) -> Kind:
        args = call.args
        if len(args) == 1 and isinstance(args[0], ast.Starred):
            inner = self.kind(args[0].value, depth + 1)
            if inner is not None and inner.category == "stack":
                return replace(inner, call=call)
        if len(args) == 1 and not sequential:
            inner = self.kind(args[0], depth + 1)
            if inner is not None and inner.category == "stack":
                return replace(inner, call=call)
            return Kind("stack", "", block=inner, depth=None, call=call)
        elements = tuple(self.kind(a.value if isinstance(a, ast.Starred) else a, depth + 1) or UNKNOWN
                         for a in args)
        if sequential:
            return Kind("sequential", "nn.Sequential", elements=elements, call=call)
        return Kind("stack", "", block=elements[0] if elements else None, depth=len(elements),
                    elements=elements, call=call)

    def _comprehension_stack(self, expr: ast.ListComp | ast.GeneratorExp, depth: int) -> Kind | None:
        gen = expr.generators[0]
        n = self._range_len(gen.iter)
        elt = expr.elt
        aliased = isinstance(elt, ast.Name) and elt.id in self.kinds and not self.kinds[elt.id].factory \
            and not _says_shared(elt)
        # the comprehension variable is not a module; hide it while reading the element
        saved = {t.id: self.kinds.pop(t.id) for t in ast.walk(gen.target)
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

    def int_value(self, expr: ast.expr | None, depth: int = 0):
        if expr is None or depth > 5:
            return None
        lit = int_literal(expr)
        if lit is not None:
            return lit
        if isinstance(expr, ast.Name):
            if expr.id in self.ints:
                return self.ints[expr.id]
            if expr.id in self.cls.constants:
                return int_literal(self.cls.constants[expr.id])
            return self.index.module_constant(expr.id, self.file)
        if isinstance(expr, ast.Attribute):
            if isinstance(expr.value, ast.Name) and expr.value.id == "self":
                if expr.attr in self.int_attrs:
                    return self.int_attrs[expr.attr]
                if expr.attr in self.cls.constants:
                    return int_literal(self.cls.constants[expr.attr])
            value = self.index.config_defaults().get(expr.attr)
            return value if isinstance(value, int) else None
        if isinstance(expr, ast.BinOp):
            a, b = self.int_value(expr.left, depth + 1), self.int_value(expr.right, depth + 1)
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

    def _walk(self, body: list[ast.stmt], only_new: bool = False) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if stmt.value is None:
                    continue
                for t in targets:
                    self._assign(t, stmt.value, only_new)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                self._append(stmt.value)
            elif isinstance(stmt, ast.For):
                self.loop_depths.append(self._range_len(stmt.iter))
                self._walk(stmt.body, only_new)
                self.loop_depths.pop()
                self._walk(stmt.orelse, only_new)
            elif isinstance(stmt, (ast.If, ast.While)):
                self._walk(stmt.body, only_new)
                self._walk(stmt.orelse, only_new)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                self._walk(stmt.body, only_new)
            elif isinstance(stmt, ast.Try):
                self._walk(stmt.body, only_new)
                for h in stmt.handlers:
                    self._walk(h.body, only_new)
                self._walk(stmt.orelse, only_new)
                self._walk(stmt.finalbody, only_new)

    def _assign(self, target: ast.expr, value: ast.expr, only_new: bool) -> None:
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                and target.value.id == "self":
            ival = self.int_value(value)
            if isinstance(ival, int) and not isinstance(ival, bool):
                self.int_attrs.setdefault(target.attr, ival)
            kind = self.kind(value)
            if kind is None:
                if isinstance(value, ast.Name) and value.id in self.kinds and not self.kinds[value.id].factory:
                    kind = self.kinds[value.id]
                else:
                    if isinstance(value, ast.Name) and value.id in self.params:
                        self.param_attrs.add(target.attr)
                    return
            existing = self.subs.get(target.attr)
            if existing is None:
                self.subs[target.attr] = Submodule(target.attr, kind, value, [value])
            elif not only_new:
                existing.all_values.append(value)
                if _rank(kind) > _rank(existing.kind):
                    existing.kind, existing.value = kind, value
        elif isinstance(target, ast.Name):
            if isinstance(value, ast.List) and not value.elts:
                self.lists[target.id] = Kind("stack", "", block=None, depth=0)
                return
            kind = self.kind(value)
            if kind is None:
                kind = self.ref_kind(value)
            if kind is not None:
                self.kinds[target.id] = kind
                self.lists.pop(target.id, None)
            ival = self.int_value(value)
            if isinstance(ival, int):
                self.ints[target.id] = ival

    def _append(self, call: ast.Call) -> None:
        f = call.func
        if not (isinstance(f, ast.Attribute) and f.attr in ("append", "extend") and call.args):
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
            self.lists[holder.id] = replace(cur, block=cur.block or kind,
                                            depth=None if cur.depth is None or depth is None else cur.depth + depth)
        elif isinstance(holder, ast.Attribute) and isinstance(holder.value, ast.Name) \
                and holder.value.id == "self" and holder.attr in self.subs:
            sub = self.subs[holder.attr]
            if sub.kind.category == "stack":
                cur = sub.kind
                sub.kind = replace(cur, block=cur.block if cur.block and cur.block.category != "unknown" else kind,
                                   depth=None if cur.depth is None or depth is None else cur.depth + depth)
