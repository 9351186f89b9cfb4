"""Realistic normalization bugs, injected into real model code as source edits.

Each mutator reads one file (``ast`` positions, no import of the code) and yields a
``Mutant`` for every site where its bug can be written: the edits that write it and the
rule that should report it, at which line, within which class. Edits keep the file's line
count (a removed statement leaves an empty line, a shortened multi-line expression keeps
its newlines inside parentheses), so a finding at line N of the mutant is comparable with
line N of the original.

The sites are chosen by shape alone, as a developer's edit would land: a final norm after
a loop over blocks, ``h = self.norm(x)`` before a residual add, a list comprehension of
modules, a hand-written norm's eps. What a mutator cannot know (that the blocks really
are pre-norm, that a tensor really is (B, T, C)) is judged when a miss is triaged.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator


@dataclass(frozen=True)
class Edit:
    """Replace source between two ``ast`` positions (1-based lines, UTF-8 byte columns)."""

    line: int
    col: int
    end_line: int
    end_col: int
    text: str


@dataclass(frozen=True)
class Mutant:
    mutator: str
    rule: str                  # the code that should report the bug
    line: int                  # where that rule anchors its finding (or the edited line)
    scope: tuple[int, int]     # lines of the enclosing class (or function): the bug's home
    edits: tuple[Edit, ...]
    note: str                  # what was changed, for the miss list

    @property
    def key(self) -> tuple:
        """Mutants with equal keys are the same edited file (one run serves both)."""
        return self.edits


class Source:
    """A file's text, tree and byte offsets (ast columns are UTF-8 byte offsets)."""

    def __init__(self, text: str):
        self.text = text
        self.tree = ast.parse(text)
        self.raw = text.encode("utf-8")
        self.starts = [0]
        for i, b in enumerate(self.raw):
            if b == 10:
                self.starts.append(i + 1)
        self.views: list | None = None            # ClassView list, built on first use
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def seg(self, node: ast.AST) -> str:
        return self.raw[self.offset(node.lineno, node.col_offset):
                        self.offset(node.end_lineno, node.end_col_offset)].decode("utf-8")

    def enclosing(self, node: ast.AST, kind=ast.ClassDef) -> ast.AST | None:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, kind):
                return node
        return None


def apply(text: str, edits: Iterable[Edit]) -> str:
    """The text with ``edits`` applied (they must not overlap)."""
    raw = text.encode("utf-8")
    starts = [0] + [i + 1 for i, b in enumerate(raw) if b == 10]
    spans = sorted(((starts[e.line - 1] + e.col, starts[e.end_line - 1] + e.end_col, e.text) for e in edits),
                   reverse=True)
    last = len(raw)
    for start, end, new in spans:
        if end > last:
            raise ValueError("overlapping edits")
        raw = raw[:start] + new.encode("utf-8") + raw[end:]
        last = start
    return raw.decode("utf-8")


# ---------------------------------------------------------------- edit helpers

def replace(src: Source, node: ast.AST, text: str) -> Edit:
    """Replace an expression; fewer lines than the original are padded inside parentheses."""
    missing = src.seg(node).count("\n") - text.count("\n")
    if missing < 0:
        raise ValueError("replacement has more lines than the original")
    if missing:
        text = "(" + text + "\n" * missing + ")"
    return Edit(node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, text)


def delete_statement(src: Source, stmt: ast.stmt, siblings: list[ast.stmt]) -> Edit | None:
    """Remove a statement, leaving its lines empty (``pass`` when it was alone)."""
    if any(s is not stmt and not (s.end_lineno < stmt.lineno or s.lineno > stmt.end_lineno)
           for s in siblings):
        return None  # another statement shares its lines (a; b)
    newlines = stmt.end_lineno - stmt.lineno
    text = ("pass" if len(siblings) == 1 else "") + "\n" * newlines
    return Edit(stmt.lineno, stmt.col_offset, stmt.end_lineno, stmt.end_col_offset, text)


def with_replaced(src: Source, node: ast.AST, inner: ast.AST, text: str) -> str:
    """The source of ``node`` with its sub-node ``inner`` replaced by ``text``."""
    base = src.offset(node.lineno, node.col_offset)
    a = src.offset(inner.lineno, inner.col_offset) - base
    b = src.offset(inner.end_lineno, inner.end_col_offset) - base
    raw = src.seg(node).encode("utf-8")
    return (raw[:a] + text.encode("utf-8") + raw[b:]).decode("utf-8")


def atom(src: Source, node: ast.AST) -> str:
    """Source text of ``node``, parenthesised unless it is a name, attribute, call or subscript."""
    text = src.seg(node)
    if isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)):
        return text
    return f"({text})"


# ---------------------------------------------------------------- recognisers

def callee(call: ast.Call) -> str:
    """``nn.LayerNorm`` -> ``LayerNorm``; ``norm_layer`` -> ``norm_layer``; else ''."""
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


NOT_NORMS = ("normal", "weight_norm", "spectral_norm", "clip_grad_norm")


def is_norm_ctor(call: ast.AST) -> bool:
    """A norm layer's constructor by name (``nn.LayerNorm``, ``RMSNorm``, ``norm_layer``); not
    a reparametrization such as ``weight_norm(conv)``."""
    if not isinstance(call, ast.Call):
        return False
    name = callee(call).lower()
    return "norm" in name and not any(n in name for n in NOT_NORMS)


LAYERS = re.compile(r"Linear|Conv|Attention|Embedding")
BATCHNORM = re.compile(r"^(Sync)?BatchNorm([123]d)?$")
CONV = re.compile(r"^Conv(Transpose)?[123]d$")
SEQ_PARAMS = {"input_ids", "attention_mask", "key_padding_mask", "src_key_padding_mask", "lengths"}
REDUCTIONS = {"mean", "var", "std"}
FUNCTIONAL = {"F", "functional", "nn.functional", "torch.nn.functional"}


def self_attr(node: ast.AST) -> str | None:
    """``self.name`` -> ``name``."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def self_call(node: ast.AST) -> str | None:
    """``self.name(...)`` -> ``name``."""
    return self_attr(node.func) if isinstance(node, ast.Call) else None


def ctor_of(value: ast.AST) -> ast.Call | None:
    """The constructor call of an attribute value (``a if c else nn.Identity()`` -> ``a``)."""
    if isinstance(value, ast.IfExp):
        value = value.body
    return value if isinstance(value, ast.Call) else None


@dataclass
class ClassView:
    node: ast.ClassDef
    attrs: dict[str, list[ast.Assign]] = field(default_factory=dict)   # self.x = ... statements
    methods: dict[str, ast.FunctionDef] = field(default_factory=dict)
    _norms: dict | None = None
    _handwritten: bool | None = None

    @property
    def scope(self) -> tuple[int, int]:
        return (self.node.lineno, self.node.end_lineno)

    @property
    def forward(self) -> ast.FunctionDef | None:
        return self.methods.get("forward")

    def ctor(self, name: str) -> ast.Call | None:
        assigns = self.attrs.get(name, [])
        return ctor_of(assigns[0].value) if len(assigns) == 1 else None

    def plain_norms(self) -> dict[str, ast.Call]:
        """Norms built unconditionally (``self.n = nn.LayerNorm(d)``, not ``... if c else Identity()``)."""
        return {n: c for n, c in self.norms().items() if self.attrs[n][0].value is c}

    def norms(self) -> dict[str, ast.Call]:
        if self._norms is None:
            self._norms = {n: c for n in self.attrs if (c := self.ctor(n)) is not None and is_norm_ctor(c)}
        return self._norms

    @property
    def handwritten_norm(self) -> bool:
        """A norm module written by hand: its forward reduces and divides by a root, it holds
        no layers of its own (an attention that rescales inside is not a norm) and it does
        not standardize a weight."""
        if self._handwritten is None:
            fwd = self.forward
            self._handwritten = (
                fwd is not None and is_handwritten_norm(fwd)
                and not self.attrs_where(lambda c: bool(LAYERS.search(callee(c))))
                and not any("weight" in ast.unparse(r) for r in reductions(fwd))
                and not any(isinstance(b, ast.Attribute) and b.attr in ("Conv1d", "Conv2d", "Conv3d", "Linear")
                            for b in self.node.bases))
        return self._handwritten

    def attrs_where(self, test: Callable[[ast.Call], bool]) -> set[str]:
        return {n for n in self.attrs if (c := self.ctor(n)) is not None and test(c)}


def classes(src: Source) -> list[ClassView]:
    """The classes of the file with their ``self.x = ...`` attributes and methods (computed once)."""
    if src.views is None:
        src.views = []
        for node in ast.walk(src.tree):
            if not isinstance(node, ast.ClassDef):
                continue
            view = ClassView(node)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    view.methods[item.name] = item
                    for stmt in ast.walk(item):
                        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                            name = self_attr(stmt.targets[0])
                            if name:
                                view.attrs.setdefault(name, []).append(stmt)
            src.views.append(view)
    return src.views


def statement_lists(fn: ast.AST) -> Iterator[list[ast.stmt]]:
    """Every block of statements inside ``fn`` (bodies of if/for/with/try too)."""
    for node in ast.walk(fn):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield block


def calls_in(node: ast.AST) -> Iterator[ast.Call]:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            yield n


def names_in(node: ast.AST, name: str, ctx=None) -> list[ast.Name]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Name) and n.id == name
            and (ctx is None or isinstance(n.ctx, ctx))]


def first_arg_name(call: ast.Call) -> str | None:
    return call.args[0].id if call.args and isinstance(call.args[0], ast.Name) else None


def is_handwritten_norm(fn: ast.FunctionDef) -> bool:
    """A forward that reduces its input (mean/var/std) and divides by a root of it."""
    names = {c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "")
             for c in calls_in(fn)}
    root = bool(names & {"sqrt", "rsqrt"}) or any(
        isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) and isinstance(n.right, (ast.Constant, ast.UnaryOp))
        and "0.5" in ast.unparse(n.right) for n in ast.walk(fn))
    return bool(names & REDUCTIONS) and root


def is_eps_like(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, float):
        return 0 < node.value <= 1e-2
    text = ast.unparse(node).lower()
    return "eps" in text


def dims_minus_one(call: ast.Call) -> ast.AST | None:
    """The ``-1`` node of a reduction's dim (positional or ``dim=``), else None."""
    cands = [k.value for k in call.keywords if k.arg == "dim"]
    if not cands and call.args:
        # x.mean(-1) has the dim first; torch.mean(x, -1) second
        is_method = isinstance(call.func, ast.Attribute) and not (
            isinstance(call.func.value, ast.Name) and call.func.value.id == "torch")
        idx = 0 if is_method else 1
        if len(call.args) > idx:
            cands = [call.args[idx]]
    for c in cands:
        if isinstance(c, ast.UnaryOp) and isinstance(c.op, ast.USub) and isinstance(c.operand, ast.Constant) \
                and c.operand.value == 1:
            return c
    return None


def reductions(fn: ast.AST) -> list[ast.Call]:
    out = []
    for c in calls_in(fn):
        name = c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "")
        if name in REDUCTIONS:
            out.append(c)
    return out


def has_sequence_evidence(src: Source) -> bool:
    """The file runs token sequences: a forward takes a padding mask / ids / lengths, or an RNN."""
    return bool(sequence_classes(src))


def _own_evidence(cls: ClassView) -> bool:
    fwd = cls.forward
    if fwd is not None and {a.arg for a in fwd.args.args + fwd.args.kwonlyargs} & SEQ_PARAMS:
        return True
    return bool(cls.attrs_where(lambda c: callee(c) in {"LSTM", "GRU", "RNN"}))


def sequence_classes(src: Source) -> set[str]:
    """Classes of the file that run in a sequence model (NL101's evidence): their own forward
    takes a padding mask, ids or lengths (or they hold an RNN), or a class of the file that
    builds them (transitively) does."""
    views = {c.node.name: c for c in classes(src)}
    builds = {name: {callee(c) for m in v.methods.values() for c in calls_in(m)} & set(views)
              for name, v in views.items()}
    found = {name for name, v in views.items() if _own_evidence(v)}
    todo = list(found)
    while todo:
        for child in builds.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def module_name(src: Source) -> str:
    """How the file spells torch.nn (``nn`` when imported so)."""
    for node in ast.walk(src.tree):
        if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "nn" and not a.asname
                                                                             for a in node.names):
            return "nn"
        if isinstance(node, ast.Import) and any(a.name == "torch.nn" and a.asname == "nn" for a in node.names):
            return "nn"
    return "torch.nn"


# ---------------------------------------------------------------- the mutators

def _final_norm_sites(src: Source) -> Iterator[tuple[ClassView, ast.For, ast.Call]]:
    """(class, loop over self.<blocks>, the norm call on the loop's output right after it)."""
    for cls in classes(src):
        norms = cls.norms()
        for fn in cls.methods.values():
            for block in statement_lists(fn):
                for i, loop in enumerate(block):
                    if not (isinstance(loop, ast.For) and _loop_stack(loop.iter)):
                        continue
                    targets = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
                    if not any(isinstance(c.func, ast.Name) and c.func.id in targets for c in calls_in(loop)):
                        continue                    # not a loop that runs blocks
                    carried = {n.id for s in loop.body for n in ast.walk(s)
                               if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
                    in_loop = {self_call(c) for c in calls_in(loop)}
                    call = _next_norm_call(block[i + 1:], norms, carried, in_loop)
                    if call is not None:
                        yield cls, loop, call


def _next_norm_call(stmts, norms, carried, exclude) -> ast.Call | None:
    """The first norm call on the stack's output, if nothing else (another loop, a mid block,
    a final attention added to the stream) processes that output before it."""
    module_outputs: set[str] = set()
    for stmt in stmts:
        for call in calls_in(stmt):
            name = self_call(call)
            if name in norms and name not in exclude and first_arg_name(call) in carried:
                return call
        if isinstance(stmt, (ast.For, ast.While)):
            return None
        stored = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        loaded = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        through_module = any(self_call(c) for c in calls_in(stmt)) or bool(loaded & module_outputs)
        if stored & carried and through_module:
            return None
        if through_module:
            module_outputs |= stored
    return None


def drop_final_norm(src: Source) -> Iterator[Mutant]:
    """NL302: the final norm after a loop over the blocks is dropped."""
    for cls, loop, call in _final_norm_sites(src):
        var = first_arg_name(call)
        edit = _remove_call(src, call, var)
        if edit:
            yield Mutant("drop_final_norm", "NL302", loop.lineno, cls.scope, (edit,),
                         f"dropped self.{self_call(call)}({var}) after the loop over {ast.unparse(loop.iter)}")


def _loop_stack(it: ast.AST) -> bool:
    if self_attr(it):
        return True
    return (isinstance(it, ast.Call) and callee(it) == "enumerate" and len(it.args) == 1
            and self_attr(it.args[0]) is not None)


def _remove_call(src: Source, call: ast.Call, var: str) -> Edit | None:
    """``v = self.norm(v)`` is deleted; elsewhere the call becomes its argument."""
    stmt = src.parents[call]
    if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == var):
        siblings = next(b for b in statement_lists(src.parents[stmt]) if stmt in b)
        return delete_statement(src, stmt, siblings)
    return replace(src, call, var)


def rebind_residual(src: Source) -> Iterator[Mutant]:
    """NL303: ``h = self.norm(x)`` before the residual add becomes ``x = self.norm(x)``."""
    for cls in classes(src):
        norms = cls.norms()
        fn = cls.forward
        if fn is None:
            continue
        for block in statement_lists(fn):
            for i, stmt in enumerate(block):
                if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        and isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Call)
                        and self_call(stmt.value) in norms):
                    continue
                h, x = stmt.targets[0].id, first_arg_name(stmt.value)
                if x is None or x == h:
                    continue
                k = _residual_add(block, i, x, h)
                if k is None:
                    continue
                edits = [replace(src, stmt.targets[0], x)]
                for s in block[i + 1:k + 1]:
                    edits += [replace(src, n, x) for n in names_in(s, h, ast.Load)]
                yield Mutant("rebind_residual", "NL303", stmt.lineno, cls.scope, tuple(edits),
                             f"{h} = self.{self_call(stmt.value)}({x}) rebound as {x} = ...")


def _residual_add(block, i, x, h):
    """Index of the first later statement that adds ``x`` (the residual), provided ``h`` is read
    before or in it and not after it, and neither is re-bound on the way."""
    for k in range(i + 1, len(block)):
        s = block[k]
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add)
               and any(isinstance(o, ast.Name) and o.id == x for o in (n.left, n.right)) for n in ast.walk(s)):
            if not any(names_in(b, h, ast.Load) for b in block[i + 1:k + 1]):
                return None
            for later in block[k + 1:]:
                if names_in(later, h, ast.Load):
                    return None
                if names_in(later, h, ast.Store):
                    break
            return k
        if names_in(s, x, ast.Store) or names_in(s, h, ast.Store):
            return None
    return None


def alias_modulelist(src: Source) -> Iterator[Mutant]:
    """NL305: ``[Block(d) for _ in range(n)]`` becomes ``[Block(d)] * n``."""
    for node in ast.walk(src.tree):
        if not (isinstance(node, ast.ListComp) and len(node.generators) == 1):
            continue
        gen = node.generators[0]
        if gen.ifs or not isinstance(gen.target, ast.Name) or not isinstance(node.elt, ast.Call):
            continue
        if not (isinstance(gen.iter, ast.Call) and callee(gen.iter) == "range" and len(gen.iter.args) == 1):
            continue
        if names_in(node.elt, gen.target.id) or not _module_holder(src, node) or not _may_hold_norm(src, node.elt):
            continue
        elt, n = src.seg(node.elt), src.seg(gen.iter.args[0])
        pad = src.seg(node).count("\n") - elt.count("\n") - n.count("\n")
        text = f"[{elt}] * ({n}" + "\n" * pad + ")"
        cls = src.enclosing(node)
        yield Mutant("alias_modulelist", "NL305", node.lineno,
                     (cls.lineno, cls.end_lineno) if cls else (node.lineno, node.end_lineno),
                     (Edit(node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, text),),
                     f"[{callee(node.elt)}(...) for _ in range({n})] -> [...] * {n}")


def _may_hold_norm(src: Source, ctor: ast.Call) -> bool:
    """A norm, a class of this file that registers one, or a class defined in another file;
    not a torch layer without norm (nn.Linear) nor a factory method (self.make())."""
    name = callee(ctor)
    if is_norm_ctor(ctor):
        return True
    if not name[:1].isupper() or self_attr(ctor.func) is not None:
        return False
    if isinstance(ctor.func, ast.Attribute) and ast.unparse(ctor.func.value) in ("nn", "torch.nn"):
        return False
    local = {c.node.name: c for c in classes(src)}
    return bool(local[name].norms()) if name in local else True


def _module_holder(src: Source, node: ast.AST) -> bool:
    parent = src.parents.get(node)
    if isinstance(parent, ast.Starred):
        parent = src.parents.get(parent)
    if isinstance(parent, ast.Call) and callee(parent) in {"ModuleList", "Sequential"}:
        return True
    return isinstance(parent, ast.Assign) and self_attr(parent.targets[0]) is not None and \
        isinstance(node.elt, ast.Call) and callee(node.elt)[:1].isupper()


def _twins(cls: ClassView) -> dict[str, list[str]]:
    """Unconditionally built norms grouped by constructor text (same class, same width)."""
    out: dict[str, list[str]] = {}
    for name, ctor in cls.plain_norms().items():
        out.setdefault(ast.unparse(ctor), []).append(name)
    return out


def reuse_norm(src: Source) -> Iterator[Mutant]:
    """NL304: the second sublayer calls the first sublayer's norm (copy-paste)."""
    for cls in classes(src):
        fn = cls.forward
        if fn is None:
            continue
        norms = cls.plain_norms()
        same = _twins(cls)
        first_call: dict[str, ast.Call] = {}
        for stmt in fn.body:                   # straight-line code only: no branch makes them exclusive
            if isinstance(stmt, (ast.If, ast.For, ast.While, ast.Try, ast.With)):
                continue
            for call in calls_in(stmt):
                name = self_call(call)
                if name in norms and name not in first_call:
                    first_call[name] = call
        order = sorted(first_call, key=lambda n: (first_call[n].lineno, first_call[n].col_offset))
        for j, b in enumerate(order):
            twins = [a for a in order[:j] if a in same.get(ast.unparse(norms[b]), [])]
            if not twins:
                continue
            a = twins[-1]
            call = first_call[b]
            yield Mutant("reuse_norm", "NL304", call.lineno, cls.scope,
                         (replace(src, call.func, f"self.{a}"),),
                         f"self.{b}(...) -> self.{a}(...) (already called at line {first_call[a].lineno})")


def drop_norm_call(src: Source) -> Iterator[Mutant]:
    """NL306: the only call of a norm (a QK-norm, a sublayer norm) is forgotten."""
    final = {(cls.scope, self_call(call)) for cls, _, call in _final_norm_sites(src)}
    for cls in classes(src):
        for name, ctor in cls.norms().items():
            if len(re.findall(rf"\b{re.escape(name)}\b", src.text)) != 2 or (cls.scope, name) in final:
                continue
            calls = [c for m in cls.methods.values() for c in calls_in(m) if self_call(c) == name]
            if len(calls) != 1 or not calls[0].args:
                continue
            call = calls[0]
            var = first_arg_name(call)
            if var is not None:
                edit = _remove_call(src, call, var)
            else:
                edit = replace(src, call, atom(src, call.args[0]))
            if edit:
                yield Mutant("drop_norm_call", "NL306", cls.attrs[name][0].lineno, cls.scope, (edit,),
                             f"the call self.{name}(...) at line {call.lineno} removed")


def ln_to_bn1d(src: Source) -> Iterator[Mutant]:
    """NL201 (and NL101 in a sequence model): a block's LayerNorm swapped for BatchNorm1d."""
    nn = module_name(src)
    seq = sequence_classes(src)
    for cls in classes(src):
        if cls.attrs_where(lambda c: bool(CONV.match(callee(c)))):
            continue
        if not cls.attrs_where(lambda c: bool(re.search(r"attention|attn", callee(c), re.I))):
            continue
        fwd = cls.forward
        called = {self_call(c) for c in calls_in(fwd)} if fwd else set()
        for name, ctor in cls.norms().items():
            if callee(ctor) != "LayerNorm" or name not in called or not ctor.args:
                continue
            if isinstance(ctor.args[0], (ast.List, ast.Tuple)):
                continue
            edit = replace(src, ctor, f"{nn}.BatchNorm1d({src.seg(ctor.args[0])})")
            note = f"self.{name} = LayerNorm(...) -> BatchNorm1d in a block with attention"
            yield Mutant("ln_to_bn1d", "NL201", ctor.lineno, cls.scope, (edit,), note)
            if cls.node.name in seq:
                yield Mutant("ln_to_bn1d", "NL101", ctor.lineno, cls.scope, (edit,), note)


def _conv_fed_norms(src: Source) -> Iterator[tuple[ast.Call, ast.Call, tuple[int, int]]]:
    """(conv constructor, norm constructor, scope) where the norm reads the conv's output."""
    for cls in classes(src):
        convs = {n: c for n in cls.attrs if (c := cls.ctor(n)) is not None and CONV.match(callee(c))}
        norms = cls.norms()
        fwd = cls.forward
        if fwd is None:
            continue
        for block in statement_lists(fwd):
            for i, stmt in enumerate(block):
                for call in calls_in(stmt):
                    n = self_call(call)
                    if n not in norms or not call.args:
                        continue
                    arg = call.args[0]
                    conv = self_call(arg) if isinstance(arg, ast.Call) else None
                    if conv is None and isinstance(arg, ast.Name) and i > 0:
                        prev = block[i - 1]
                        if (isinstance(prev, ast.Assign) and len(prev.targets) == 1
                                and isinstance(prev.targets[0], ast.Name) and prev.targets[0].id == arg.id
                                and isinstance(prev.value, ast.Call)):
                            conv = self_call(prev.value)
                    if conv in convs:
                        yield convs[conv], norms[n], cls.scope
    for node in ast.walk(src.tree):               # nn.Sequential(Conv2d(...), BatchNorm2d(c), ...)
        if isinstance(node, ast.Call) and callee(node) == "Sequential":
            for a, b in zip(node.args, node.args[1:]):
                if isinstance(a, ast.Call) and isinstance(b, ast.Call) and CONV.match(callee(a)) and is_norm_ctor(b):
                    cls = src.enclosing(node)
                    yield a, b, (cls.lineno, cls.end_lineno) if cls else (node.lineno, node.end_lineno)


def bn_to_ln_on_conv(src: Source) -> Iterator[Mutant]:
    """NL204: a conv's BatchNorm/GroupNorm swapped for LayerNorm(C) on the channels-first output."""
    nn = module_name(src)
    seen = set()
    for _conv, norm, scope in _conv_fed_norms(src):
        name = callee(norm)
        channels = None
        if BATCHNORM.match(name) and norm.args:
            channels = norm.args[0]
        elif name == "GroupNorm":
            channels = norm.args[1] if len(norm.args) > 1 else next(
                (k.value for k in norm.keywords if k.arg == "num_channels"), None)
        if channels is None or id(norm) in seen:
            continue
        seen.add(id(norm))
        yield Mutant("bn_to_ln_on_conv", "NL204", norm.lineno, scope,
                     (replace(src, norm, f"{nn}.LayerNorm({src.seg(channels)})"),),
                     f"{name}(...) after a conv -> LayerNorm({src.seg(channels)})")


def conv_bias_before_bn(src: Source) -> Iterator[Mutant]:
    """NL504: the conv in front of a BatchNorm gets ``bias=True``."""
    seen = set()
    for conv, norm, scope in _conv_fed_norms(src):
        if not BATCHNORM.match(callee(norm)) or id(conv) in seen:
            continue
        kw = next((k for k in conv.keywords if k.arg == "bias"), None)
        if kw is None or not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
            continue
        seen.add(id(conv))
        yield Mutant("conv_bias_before_bn", "NL504", conv.lineno, scope, (replace(src, kw.value, "True"),),
                     f"{callee(conv)}(..., bias=False) -> bias=True before {callee(norm)}")


def tf_momentum(src: Source) -> Iterator[Mutant]:
    """NL503: a BatchNorm's momentum written in the TensorFlow (decay) convention."""
    for node in ast.walk(src.tree):
        if not (isinstance(node, ast.Call) and BATCHNORM.match(callee(node)) and (node.args or node.keywords)):
            continue
        if any(k.arg is None for k in node.keywords):
            continue
        kw = next((k for k in node.keywords if k.arg == "momentum"), None)
        cls = src.enclosing(node)
        scope = (cls.lineno, cls.end_lineno) if cls else (node.lineno, node.end_lineno)
        if kw is None:
            last = max([*node.args, *(k.value for k in node.keywords)],
                       key=lambda n: (n.end_lineno, n.end_col_offset))
            edit = Edit(last.end_lineno, last.end_col_offset, last.end_lineno, last.end_col_offset,
                        ", momentum=0.9")
            yield Mutant("tf_momentum", "NL503", last.end_lineno, scope, (edit,),
                         f"{callee(node)}(...) given momentum=0.9")
        elif isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, float) and kw.value.value < 0.5:
            new = f"{1 - kw.value.value:.6g}"
            yield Mutant("tf_momentum", "NL503", kw.value.lineno, scope, (replace(src, kw.value, new),),
                         f"{callee(node)}(momentum={kw.value.value}) -> momentum={new}")


def _norm_forwards(src: Source) -> list[tuple[ClassView, ast.FunctionDef]]:
    return [(cls, cls.forward) for cls in classes(src) if cls.handwritten_norm]


def eps_1e12(src: Source) -> Iterator[Mutant]:
    """NL401: a hand-written norm's eps lowered to 1e-12 (the BERT/TF value)."""
    for cls, fwd in _norm_forwards(src):
        if _upcasts(fwd):
            continue                        # statistics in float32 keep a 1e-12 eps: not a bug
        if "eps" not in ast.unparse(fwd).lower() and not any(
                isinstance(n, ast.Constant) and isinstance(n.value, float) and is_eps_like(n) for n in ast.walk(fwd)):
            continue
        init = cls.methods.get("__init__")
        consts = []
        if init is not None:
            a = init.args
            for arg, default in zip(a.args[len(a.args) - len(a.defaults):], a.defaults):
                if "eps" in arg.arg.lower() and isinstance(default, ast.Constant) and isinstance(default.value, float):
                    consts.append(default)
        if not consts:
            consts = [n.right for n in ast.walk(fwd) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add)
                      and isinstance(n.right, ast.Constant) and isinstance(n.right.value, float)
                      and 6e-8 < n.right.value <= 1e-2]
        for c in consts[:1]:
            if c.value <= 6e-8:
                continue
            yield Mutant("eps_1e12", "NL401", c.lineno, cls.scope, (replace(src, c, "1e-12"),),
                         f"{cls.node.name}: eps {c.value} -> 1e-12")


UPCASTS = {"float", "to", "type"}


def _upcast_calls(fwd: ast.FunctionDef) -> list[ast.Call]:
    out = []
    for call in calls_in(fwd):
        f = call.func
        if not isinstance(f, ast.Attribute) or f.attr not in UPCASTS:
            continue
        args = [*call.args, *(k.value for k in call.keywords if k.arg == "dtype")]
        if (f.attr == "float" and not call.args) or any(
                ast.unparse(a) in {"torch.float32", "torch.float"} for a in args):
            out.append(call)
    return out


def _upcasts(fwd: ast.FunctionDef) -> bool:
    return bool(_upcast_calls(fwd))


def drop_upcast(src: Source) -> Iterator[Mutant]:
    """NL402: the float32 upcast before a hand-written norm's statistics is removed."""
    for cls, fwd in _norm_forwards(src):
        text = ast.unparse(fwd)
        if not re.search(r"pow\(2|\*\* ?2|var\(|square\(", text):
            continue
        edits = [replace(src, call, atom(src, call.func.value)) for call in _upcast_calls(fwd)]
        nested = {e for e in edits for o in edits if o is not e and (o.line, o.col) <= (e.line, e.col)
                  and (e.end_line, e.end_col) <= (o.end_line, o.end_col)}
        edits = [e for e in edits if e not in nested]
        if edits:
            yield Mutant("drop_upcast", "NL402", edits[0].line, cls.scope, tuple(edits),
                         f"{cls.node.name}: {len(edits)} float32 upcast(s) removed")


def _is_layernorm_like(fwd: ast.FunctionDef) -> bool:
    """Subtracts a mean (LayerNorm), as opposed to an RMSNorm."""
    means = {t.id for s in ast.walk(fwd) if isinstance(s, ast.Assign) for t in s.targets
             if isinstance(t, ast.Name) and isinstance(s.value, ast.Call)
             and any(c in reductions(s.value) and (getattr(c.func, "attr", "") or getattr(c.func, "id", "")) == "mean"
                     for c in [s.value])}
    for n in ast.walk(fwd):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Sub):
            r = n.right
            if isinstance(r, ast.Name) and r.id in means:
                return True
            if isinstance(r, ast.Call) and (getattr(r.func, "attr", "") or getattr(r.func, "id", "")) == "mean":
                return True
    return False


def unbiased_var(src: Source) -> Iterator[Mutant]:
    """NL403: ``var(..., unbiased=False)`` loses its keyword (the default is unbiased)."""
    for cls, fwd in _norm_forwards(src):
        for call in reductions(fwd):
            for i, kw in enumerate(call.keywords):
                biased = (kw.arg == "unbiased" and isinstance(kw.value, ast.Constant) and kw.value.value is False) or \
                         (kw.arg == "correction" and isinstance(kw.value, ast.Constant) and kw.value.value == 0)
                if not biased:
                    continue
                before = [*call.args, *call.keywords[:i]]
                if not before:
                    continue
                prev = max(before, key=lambda n: (n.end_lineno, n.end_col_offset))
                edit = Edit(prev.end_lineno, prev.end_col_offset, kw.end_lineno, kw.end_col_offset,
                            "\n" * (kw.end_lineno - prev.end_lineno))
                yield Mutant("unbiased_var", "NL403", call.lineno, cls.scope, (edit,),
                             f"{cls.node.name}: {kw.arg}={ast.unparse(kw.value)} removed from {ast.unparse(call.func)}")


def _roots(fwd: ast.AST) -> Iterator[tuple[ast.AST, ast.BinOp, str]]:
    """(root expression, its ``a + eps`` argument, 'sqrt'|'rsqrt'|'pow')."""
    for n in ast.walk(fwd):
        arg, kind = None, ""
        if isinstance(n, ast.Call):
            name = getattr(n.func, "attr", "") or getattr(n.func, "id", "")
            if name in ("sqrt", "rsqrt"):
                kind = name
                if isinstance(n.func, ast.Attribute) and not (isinstance(n.func.value, ast.Name)
                                                              and n.func.value.id == "torch"):
                    arg = n.func.value          # (var + eps).sqrt()
                elif n.args:
                    arg = n.args[0]             # torch.sqrt(var + eps)
        elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) and "0.5" in ast.unparse(n.right):
            arg, kind = n.left, "pow"
        if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add) and is_eps_like(arg.right):
            yield n, arg, kind


def eps_outside_sqrt(src: Source) -> Iterator[Mutant]:
    """NL403: ``sqrt(var + eps)`` becomes ``sqrt(var) + eps`` (eps added to the std)."""
    for cls, fwd in _norm_forwards(src):
        if not _is_layernorm_like(fwd):
            continue
        for root, add, kind in _roots(fwd):
            if kind != "sqrt":
                continue
            inner = with_replaced(src, root, add, src.seg(add.left) if isinstance(add.left, (ast.Name, ast.Attribute, ast.Call))
                                  else f"({src.seg(add.left)})")
            yield Mutant("eps_outside_sqrt", "NL403", root.lineno, cls.scope,
                         (replace(src, root, f"({inner} + {src.seg(add.right)})"),),
                         f"{cls.node.name}: sqrt(var + eps) -> sqrt(var) + eps")


def drop_eps(src: Source) -> Iterator[Mutant]:
    """NL404: the eps inside a hand-written norm's root is removed."""
    for cls, fwd in _norm_forwards(src):
        for root, add, kind in _roots(fwd):
            yield Mutant("drop_eps", "NL404", root.lineno, cls.scope, (replace(src, add, atom(src, add.left)),),
                         f"{cls.node.name}: {kind}({ast.unparse(add)}) -> {kind}({ast.unparse(add.left)})")


def normalize_by_hand(src: Source) -> Iterator[Mutant]:
    """NL404: ``F.normalize(x, dim=-1)`` written out as ``x / x.norm(dim=-1, keepdim=True)``."""
    for node in ast.walk(src.tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "normalize"
                and ast.unparse(node.func.value) in FUNCTIONAL and node.args and isinstance(node.args[0], ast.Name)):
            continue
        kws = {k.arg: k.value for k in node.keywords}
        if set(kws) - {"dim", "p"} or len(node.args) > 1:
            continue
        if "p" in kws and ast.unparse(kws["p"]) != "2":
            continue
        dim = ast.unparse(kws["dim"]) if "dim" in kws else "1"
        x = node.args[0].id
        cls = src.enclosing(node)
        if cls is None:
            continue
        yield Mutant("normalize_by_hand", "NL404", node.lineno, (cls.lineno, cls.end_lineno),
                     (replace(src, node, f"({x} / {x}.norm(dim={dim}, keepdim=True))"),),
                     f"F.normalize({x}, dim={dim}) written out without eps")


def _minus_one_reductions(src: Source) -> Iterator[tuple[ClassView, list[ast.AST]]]:
    for cls, fwd in _norm_forwards(src):
        reds = reductions(fwd)
        dims = [dims_minus_one(c) for c in reds]
        if reds and all(d is not None for d in dims):
            yield cls, dims


def reduce_seq_axis(src: Source) -> Iterator[Mutant]:
    """NL202: a token norm's reductions over the feature axis (-1) moved to axis 1 (time)."""
    if not has_sequence_evidence(src):
        return
    for cls, dims in _minus_one_reductions(src):
        yield Mutant("reduce_seq_axis", "NL202", dims[0].lineno, cls.scope,
                     tuple(replace(src, d, "1") for d in dims), f"{cls.node.name}: reductions dim=-1 -> dim=1")


def reduce_batch_axis(src: Source) -> Iterator[Mutant]:
    """NL203: a hand-written norm's reductions moved to axis 0 (the batch)."""
    for cls, dims in _minus_one_reductions(src):
        yield Mutant("reduce_batch_axis", "NL203", dims[0].lineno, cls.scope,
                     tuple(replace(src, d, "0") for d in dims), f"{cls.node.name}: reductions dim=-1 -> dim=0")


def deepen_post_norm(src: Source) -> Iterator[Mutant]:
    """NL301: a stack of default (post-norm) TransformerEncoderLayers made 24 deep."""
    layers: dict[str, ast.Call] = {}
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                callee(node.value) in ("TransformerEncoderLayer", "TransformerDecoderLayer"):
            for t in node.targets:
                key = t.id if isinstance(t, ast.Name) else self_attr(t)
                if key:
                    layers[key] = node.value
    for node in ast.walk(src.tree):
        if not (isinstance(node, ast.Call) and callee(node) in ("TransformerEncoder", "TransformerDecoder")
                and node.args):
            continue
        layer = node.args[0]
        ctor = layer if isinstance(layer, ast.Call) else layers.get(getattr(layer, "id", None) or self_attr(layer))
        if ctor is None or any(k.arg == "norm_first" and ast.unparse(k.value) != "False" for k in ctor.keywords):
            continue
        depth = next((k.value for k in node.keywords if k.arg == "num_layers"),
                     node.args[1] if len(node.args) > 1 else None)
        if depth is None:
            continue
        cls = src.enclosing(node)
        yield Mutant("deepen_post_norm", "NL301", node.lineno,
                     (cls.lineno, cls.end_lineno) if cls else (node.lineno, node.end_lineno),
                     (replace(src, depth, "24"),), f"post-norm {callee(node)} num_layers {ast.unparse(depth)} -> 24")


@dataclass
class Sublayer:
    """One pre-norm residual sublayer in a forward: ``x = x + f(self.norm(x))``, inline or in two
    statements (``h = self.norm(x)`` then ``x = x + f(h)``)."""

    add: ast.Assign
    call: ast.Call          # the norm call
    norm_stmt: ast.Assign | None
    x: str


def _sublayers(fwd: ast.FunctionDef, norms: dict) -> list[Sublayer]:
    out = []
    body = fwd.body
    for i, stmt in enumerate(body):
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.BinOp) and isinstance(stmt.value.op, ast.Add)):
            continue
        x = stmt.targets[0].id
        v = stmt.value
        sides = [(v.left, v.right), (v.right, v.left)]
        branch = next((b for r, b in sides if isinstance(r, ast.Name) and r.id == x), None)
        if branch is None:
            continue
        inline = [c for c in calls_in(branch) if self_call(c) in norms and len(c.args) == 1
                  and first_arg_name(c) == x and not c.keywords]
        if len(inline) == 1:
            out.append(Sublayer(stmt, inline[0], None, x))
            continue
        for j in range(i - 1, -1, -1):        # h = self.norm(x) earlier, h read only in this add
            prev = body[j]
            if names_in(prev, x, ast.Store):
                break
            if (isinstance(prev, ast.Assign) and len(prev.targets) == 1 and isinstance(prev.targets[0], ast.Name)
                    and isinstance(prev.value, ast.Call) and self_call(prev.value) in norms
                    and len(prev.value.args) == 1 and not prev.value.keywords and first_arg_name(prev.value) == x):
                h = prev.targets[0].id
                reads = [s for s in body if names_in(s, h, ast.Load)]
                if reads == [stmt] and names_in(branch, h, ast.Load):
                    out.append(Sublayer(stmt, prev.value, prev, x))
                break
    return out


def _sublayer_sites(src: Source) -> Iterator[tuple[ClassView, list[Sublayer]]]:
    for cls in classes(src):
        if cls.forward is None:
            continue
        subs = _sublayers(cls.forward, cls.norms())
        by_x: dict[str, list[Sublayer]] = {}
        for s in subs:
            by_x.setdefault(s.x, []).append(s)
        for group in by_x.values():
            if len(group) >= 2:
                yield cls, group


def one_sublayer_post_norm(src: Source) -> Iterator[Mutant]:
    """NL308: the last pre-norm sublayer of a block rewritten post-norm (a half-done migration)."""
    for cls, group in _sublayer_sites(src):
        s = group[-1]
        norm = self_call(s.call)
        edits = []
        if s.norm_stmt is None:
            value = with_replaced(src, s.add.value, s.call, s.x)
        else:
            edits.append(replace(src, s.call, s.x))
            value = src.seg(s.add.value)
        edits.append(replace(src, s.add.value, f"self.{norm}({value})"))
        yield Mutant("one_sublayer_post_norm", "NL308", s.add.lineno, cls.scope, tuple(edits),
                     f"{cls.node.name}: sublayer at line {s.add.lineno} made post-norm with self.{norm}")


def drop_sublayer_norm(src: Source) -> Iterator[Mutant]:
    """NL309: one sublayer of a pre-norm block loses its norm (reads the raw residual stream)."""
    for cls, group in _sublayer_sites(src):
        s = group[0]
        yield Mutant("drop_sublayer_norm", "NL309", s.add.lineno, cls.scope, (replace(src, s.call, s.x),),
                     f"{cls.node.name}: self.{self_call(s.call)}({s.x}) removed from the sublayer at line {s.add.lineno}")


def norm_twice(src: Source) -> Iterator[Mutant]:
    """NL307: a norm applied to the output of its twin (``self.norm2(self.norm1(x))``)."""
    for cls in classes(src):
        fwd = cls.forward
        if fwd is None:
            continue
        norms = cls.plain_norms()
        by_ctor = _twins(cls)
        for call in calls_in(fwd):
            a = self_call(call)
            if a not in norms or len(call.args) != 1 or call.keywords:
                continue
            twins = [b for b in by_ctor[ast.unparse(norms[a])] if b != a]
            if not twins or (isinstance(call.args[0], ast.Call) and self_call(call.args[0]) in norms):
                continue
            arg = call.args[0]
            yield Mutant("norm_twice", "NL307", call.lineno, cls.scope,
                         (replace(src, arg, f"self.{twins[0]}({src.seg(arg)})"),),
                         f"self.{a}({ast.unparse(arg)}) -> self.{a}(self.{twins[0]}(...))")
            break


def decay_all_params(src: Source) -> Iterator[Mutant]:
    """NL501: Adam over ``model.parameters()`` switched to AdamW (default weight decay 0.01),
    or weight_decay=0 raised, with no parameter groups."""
    for node in ast.walk(src.tree):
        if not (isinstance(node, ast.Call) and callee(node) in {"Adam", "AdamW", "SGD"} and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Call) and callee(first) == "parameters"):
            continue
        kw = next((k for k in node.keywords if k.arg == "weight_decay"), None)
        scope_node = src.enclosing(node, (ast.FunctionDef, ast.ClassDef)) or node
        scope = (scope_node.lineno, scope_node.end_lineno)
        if callee(node) == "Adam" and kw is None:
            f = node.func
            edit = (Edit(f.end_lineno, f.end_col_offset - 4, f.end_lineno, f.end_col_offset, "AdamW"))
            yield Mutant("decay_all_params", "NL501", node.lineno, scope, (edit,), "Adam(model.parameters()) -> AdamW")
        elif kw is not None and isinstance(kw.value, ast.Constant) and kw.value.value == 0:
            yield Mutant("decay_all_params", "NL501", node.lineno, scope, (replace(src, kw.value, "0.05"),),
                         f"{callee(node)}(model.parameters(), weight_decay=0) -> 0.05")


def disable_affine(src: Source) -> Iterator[Mutant]:
    """NL502: a LayerNorm/GroupNorm/BatchNorm constructed without its learnable affine."""
    for node in ast.walk(src.tree):
        if not isinstance(node, ast.Call):
            continue
        name = callee(node)
        if not (isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) in ("nn", "torch.nn")):
            continue
        if name == "LayerNorm":
            kwname = "elementwise_affine"
        elif name == "GroupNorm" or BATCHNORM.match(name):
            kwname = "affine"
        else:
            continue
        if not node.args or any(k.arg in (kwname, None) for k in node.keywords):
            continue
        last = max([*node.args, *(k.value for k in node.keywords)], key=lambda n: (n.end_lineno, n.end_col_offset))
        cls = src.enclosing(node)
        if cls is None:
            continue
        yield Mutant("disable_affine", "NL502", node.lineno, (cls.lineno, cls.end_lineno),
                     (Edit(last.end_lineno, last.end_col_offset, last.end_lineno, last.end_col_offset,
                           f", {kwname}=False"),), f"{name}(...) given {kwname}=False")


MUTATORS: tuple[Callable[[Source], Iterator[Mutant]], ...] = (
    ln_to_bn1d, reduce_seq_axis, reduce_batch_axis, bn_to_ln_on_conv, deepen_post_norm, drop_final_norm,
    rebind_residual, reuse_norm, alias_modulelist, drop_norm_call, norm_twice, one_sublayer_post_norm,
    drop_sublayer_norm, eps_1e12, drop_upcast, unbiased_var, eps_outside_sqrt, drop_eps, normalize_by_hand,
    decay_all_params, disable_affine, tf_momentum, conv_bias_before_bn,
)
RULES = ("NL101", "NL201", "NL202", "NL203", "NL204", "NL301", "NL302", "NL303", "NL304", "NL305", "NL306",
         "NL307", "NL308", "NL309", "NL401", "NL402", "NL403", "NL404", "NL501", "NL502", "NL503", "NL504")


def mutants(text: str) -> list[Mutant]:
    """Every mutant of one file's source (``check`` before using one)."""
    src = Source(text)
    return [m for mutator in MUTATORS for m in mutator(src)]


def check(text: str, mutant: Mutant) -> str:
    """The mutated text; raises when it does not parse or its line count changed."""
    new = apply(text, mutant.edits)
    if new.count("\n") != text.count("\n"):
        raise ValueError(f"{mutant.mutator} changed the line count: {mutant.note}")
    ast.parse(new)
    return new
