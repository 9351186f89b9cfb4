"""One run's analysis state: the project index plus cached per-class summaries that the
rules query (module model, hand-written norm structure, forward dataflow, block placement,
composition and sequence evidence)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from . import kinds
from .context import RuleContext
from .flow import Flow, Walker, exclusive, root
from .handnorm import HandNorm, analyse as analyse_handnorm
from .index import ClassInfo, FileInfo, ProjectIndex
from .modules import Kind, ModelBuilder, ModuleModel
from .source import ParsedFile

SEQUENCE_PARAMS = frozenset({
    "input_ids", "attention_mask", "key_padding_mask", "src_key_padding_mask", "tgt_key_padding_mask",
    "memory_key_padding_mask", "lengths", "seq_len", "seq_lens", "seq_lengths", "input_lengths",
    "src_lengths", "text_lengths", "padding_mask", "src_mask", "tgt_mask", "causal_mask",
    "decoder_input_ids", "token_ids", "tokens",
})
_STAT_TOKENS = ("mean(", "var(", "std(", "norm(", "rsqrt(", "var_mean(", "std_mean(")
TOKEN_PARAMS = frozenset({"input_ids", "decoder_input_ids", "token_ids", "tokens", "input_features",
                          "input_values"})
VISION_PARAMS = frozenset({"pixel_values", "images", "image", "pixel_values_videos", "pixel_mask"})
_SEQUENCE_CATEGORIES = {"rnn", "transformer", "transformer_stack", "transformer_layer"}


@dataclass
class BlockSummary:
    """How one class wires its residual adds (computed from its forward dataflow)."""

    placement: str                  # pre / post / sandwich / peri / mixed / none
    ends_with_norm: bool
    stabilized: bool                # DeepNorm-style scaled skip
    flow: Flow | None = None


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
        self._hand: dict[int, HandNorm | None] = {}
        self._norm_family: dict[int, tuple[str, bool] | None] = {}
        self._flows: dict[int, Flow | None] = {}
        self._summaries: dict[int, BlockSummary | None] = {}
        self._parents: dict[int, list[ClassInfo]] | None = None
        self._own_evidence: dict[int, Evidence] = {}
        self._subtree: dict[int, bool] = {}
        self._context: dict[int, Evidence] = {}
        self._subclasses: dict[int, list[ClassInfo]] | None = None
        self._foreign: dict[tuple[str, str], bool] = {}
        self._attr_loads: dict[int, frozenset[str]] = {}
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
                    # forward plus the helpers it calls on self (Gemma's `self._norm(x.float())`)
                    called = {n.func.attr for n in ast.walk(fn) if isinstance(n, ast.Call)
                              and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                              and n.func.value.id == "self"}
                    helpers = [m for name, m in cls.methods.items() if name in called and m is not fn]
                    body = ast.Module(body=[fn, *helpers], type_ignores=[]) if helpers else fn
                    self._hand[key] = analyse_handnorm(
                        cls.name, body, cls.file.imports.qualname, init, lambda s: s in text)
        return self._hand[key]

    def _has_heavy_submodule(self, cls: ClassInfo, init: ast.FunctionDef) -> bool:
        """__init__ builds modules other than parameters and norms: not a norm by structure."""
        for node in ast.walk(init):
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
                    isinstance(n, ast.Name) and n.id in ("rearrange",) for n in ast.walk(fwd))
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
            if fwd is not None and "__init__" in cls.methods:
                fnorms = [kinds.torch_functional_norm(cls.file.imports.qualname(n.func))
                          for n in ast.walk(fwd) if isinstance(n, ast.Call)] \
                    if "_norm(" in class_text(cls) else []
                fnorms = [f for f in fnorms if f and f != "normalize"]
                hand = self.hand_norm(cls)
                if fnorms and not self._has_heavy_submodule(cls, cls.methods["__init__"]):
                    permutes = any(isinstance(n, ast.Attribute) and n.attr in ("permute", "transpose")
                                   for n in ast.walk(fwd))
                    result = (kinds.FUNCTIONAL_NORMS[fnorms[0]], permutes)
                elif hand is not None:
                    result = (hand.family, hand.channels_first)
        self._norm_family[key] = result
        return result

    # -- dataflow -----------------------------------------------------------------------

    def flow(self, cls: ClassInfo) -> Flow | None:
        key = id(cls)
        if key not in self._flows:
            self._flows[key] = None
            if self.index.find_method(cls, "forward") is not None:
                self._flows[key] = Walker(self, self.model(cls)).run()
        return self._flows[key]

    def summary(self, cls: ClassInfo | None) -> BlockSummary | None:
        if cls is None:
            return None
        key = id(cls)
        if key in self._summaries:
            return self._summaries[key]
        self._summaries[key] = None
        flow = self.flow(cls)
        if flow is None:
            return None
        for r in flow.residuals:
            if r.pre is None and self._branch_starts_with_norm(flow, r):
                r.pre = r.branch  # the sublayer module normalizes its own input (Conformer conv module)
        # adds with no norm around them (positional embeddings, adapters) say nothing
        # about placement
        res = [r for r in flow.residuals if r.pre or r.post or r.branch_out]
        pre = [r for r in res if r.pre is not None]
        post = [r for r in res if r.post is not None]
        if not res:
            placement = "none"
        elif all(r.pre is not None and r.branch_out is not None for r in res):
            placement = "sandwich"
        elif all(r.pre is not None and r.post is not None for r in res):
            placement = "peri"
        elif len(pre) == len(res) and not post:
            placement = "pre"
        elif len(post) == len(res) and not pre:
            placement = "post"
        elif any(r.pre is not None and r.post is None for r in res) and \
                any(r.post is not None and r.pre is None for r in res):
            placement = "mixed"
        else:
            placement = "other"
        if placement == "peri" and all(exclusive(r.pre.conds, r.post.conds) for r in res):
            # `if self.normalize_before:` before the branch, `if not ...:` after the add:
            # one block that a flag switches between pre-norm and post-norm (fairseq)
            placement = "switchable"
        ends = any(root(v).op == "norm" for v in flow.returns)
        summary = BlockSummary(placement, ends, any(r.scaled for r in flow.residuals), flow)
        self._summaries[key] = summary
        return summary

    def _branch_starts_with_norm(self, flow: Flow, r) -> bool:
        skip = root(r.skip)
        for u in flow.uses(skip):
            if u.op == "call" and u.kind is not None and u.kind.cls is not None \
                    and (u is r.branch or r.branch.has_ancestor(u)):
                if self.starts_with_norm(u.kind.cls):
                    return True
        return False

    def starts_with_norm(self, cls: ClassInfo) -> bool:
        """The class's forward normalizes its first input before anything else uses it."""
        flow = self.flow(cls)
        if flow is None or not flow.params:
            return False
        first = next(iter(flow.params.values()))
        for n in flow.norms:
            # back from the norm's input through reshapes, casts and if/else merges only
            todo, steps = list(n.inputs[:1]), 0
            while todo and steps < 16:
                steps += 1
                cur = todo.pop()
                if cur is first:
                    return True
                if cur.op in ("method", "getitem", "attr", "phi", "unary"):
                    todo.extend(cur.inputs)
        return False

    def block_placement(self, kind: Kind | None) -> tuple[str, bool, bool] | None:
        """(placement, ends_with_norm, stabilized) of a stacked element."""
        if kind is None:
            return None
        if kind.category == "transformer_layer":
            if kind.norm_first is None:
                return None
            return ("pre", False, False) if kind.norm_first else ("post", True, False)
        if kind.category == "project" and kind.cls is not None:
            s = self.summary(kind.cls)
            if s is None:
                return None
            return s.placement, s.ends_with_norm, s.stabilized
        if kind.category == "sequential" and kind.elements:
            # nn.Sequential(PreNormResidual(dim, attn), PreNormResidual(dim, ff)) as one layer
            placed = [self.block_placement(k) for k in kind.elements if k.category not in
                      ("dropout", "identity", "act")]
            if not placed or any(p is None for p in placed):
                return None
            kinds_ = {p[0] for p in placed} - {"none"}
            if len(kinds_) != 1:
                return None
            last = placed[-1]
            return kinds_.pop(), last[1], any(p[2] for p in placed)
        return None

    # -- attribute use (NL306) ------------------------------------------------------------

    def self_attr_loads(self, cls: ClassInfo) -> set[str]:
        """Names read as self.X (or named in getattr strings) by cls, its bases and subclasses."""
        out: set[str] = set()
        for c in self.index.mro(cls) + self.subclasses(cls):
            out |= self._own_attr_loads(c)
        return out

    def _own_attr_loads(self, cls: ClassInfo) -> frozenset[str]:
        key = id(cls)
        if key not in self._attr_loads:
            names: set[str] = set()
            for n in ast.walk(cls.node):
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
        if fwd is not None:
            params = [p.arg for p in fwd.args.args + fwd.args.kwonlyargs]
            # a multimodal model takes input_ids and pixel_values: its signature says nothing
            # about the vision tower's BatchNorm
            if not any(p in VISION_PARAMS for p in params) and not self._in_vision_only_model(cls):
                for p in params:
                    if p in self.sequence_params:
                        ev.reasons.append(f"`{cls.name}.forward` takes `{p}`")
        for fn in cls.methods.values():
            for n in ast.walk(fn):
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
        called: set[str] | None = None
        for sub in self.model(cls).submodules.values():
            for k in walk_kind(sub.kind):
                if k.category == "embedding":
                    # a token embedding is looked up; a VQ codebook only lends its .weight
                    if called is None:
                        called = {n.func.attr for fn in cls.methods.values() for n in ast.walk(fn)
                                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                                  and isinstance(n.func.value, ast.Name) and n.func.value.id == "self"}
                    if sub.attr in called:
                        out.append(f"`self.{sub.attr}` is an {k.name}")
                        break
                elif k.category in _SEQUENCE_CATEGORIES:
                    out.append(f"`self.{sub.attr}` is an {k.name}")
                    break
        return out

    def is_attention(self, cls: ClassInfo) -> bool:
        """A project module that computes attention (softmax over scores, or SDPA)."""
        fwd = cls.methods.get("forward")
        if fwd is None:
            return False
        text = class_text(cls)
        return "scaled_dot_product_attention(" in text or ("softmax(" in text and "@" in text) \
            or ("softmax(" in text and "matmul(" in text)

    def output_category(self, cls: ClassInfo) -> str | None:
        """What a project module returns, when its forward ends in a torch module call
        (a padding wrapper around nn.Conv1d returns a conv output)."""
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


def walk_kind(kind: Kind | None, depth: int = 0) -> Iterator[Kind]:
    if kind is None or depth > 6:
        return
    yield kind
    for sub in (kind.block, kind.final_norm, *kind.elements):
        yield from walk_kind(sub, depth + 1)


def class_text(cls: ClassInfo) -> str:
    """The source of the class (for cheap substring checks)."""
    starts = cls.file.line_starts
    end = cls.node.end_lineno or len(starts) - 1
    return cls.file.parsed.text[starts[cls.node.lineno - 1]:starts[min(end, len(starts) - 1)]]

