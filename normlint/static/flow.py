"""Forward dataflow: an SSA-style walk of ``forward`` (inlining the helpers it calls on
``self``, lambdas, and wrapper modules that receive a sublayer as an argument).

Every expression becomes a Value that knows which Values feed it; ancestry is a bitset, so
"is this add a residual (one operand is an ancestor of the other)?" is one AND.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import kinds
from .modules import Kind, ModuleModel
from .names import dotted, param_defaults, walk

if TYPE_CHECKING:
    from .model import Analysis

MAX_INLINE_DEPTH = 4
_META_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad"}
_META_METHODS = {"size", "dim", "numel", "new_zeros", "new_ones", "new_empty", "new_full",
                 "new_tensor", "zeros_like", "ones_like", "get_device", "item", "tolist"}


@dataclass(eq=False, slots=True)
class Value:
    id: int
    op: str          # param const global meta selfattr module_ref elem_ref method_ref lambda call norm
                     # block add binop unary method func getitem attr tuple phi
    inputs: tuple["Value", ...]
    node: ast.AST | None
    path: str
    owner: str                       # class whose source holds node (for messages)
    kind: Kind | None = None         # called submodule (norm, block, ...)
    attr: str | None = None          # "norm1", "sublayer[0].norm", "layers"
    name: str | None = None          # method / function / binop name
    var: str | None = None           # the variable first bound to this value
    conds: tuple = ()                # (condition key, polarity) pairs on the path to this value
    site: tuple = ()                 # inline call-stack (ids of the call nodes)
    stack: Kind | None = None        # block values: the stack they come from
    payload: object = None           # lambdas: (node, frame); refs: extra data
    anc: int = 0                     # bitset of ancestor ids
    closure: int = 0                 # anc plus this value's own bit
    model: ModuleModel | None = None     # whose forward (or helper) holds node
    call_site: ast.AST | None = None     # nn.Sequential elements: the container's call in forward
    route: tuple = ()                # kinds of the modules inlined on the way to this value

    def has_ancestor(self, other: "Value") -> bool:
        return bool(self.anc >> other.id & 1)

    @property
    def first(self) -> "Value | None":
        return self.inputs[0] if self.inputs else None

    def text(self) -> str:
        if self.node is None:
            return self.var or self.op
        try:
            return ast.unparse(self.node)
        except Exception:  # pragma: no cover
            return self.op


@dataclass
class Residual:
    add: Value
    skip: Value
    branch: Value
    scaled: bool                # DeepNorm-style alpha * x on the skip path
    pre: Value | None = None    # a norm on the branch that normalizes the skip stream
    post: Value | None = None   # a norm applied to the sum
    branch_out: Value | None = None   # a norm on the branch output (sandwich / peri)
    skip_alternatives: Value | None = None   # the if/else merge the skip was picked from

    def skips(self) -> list[Value]:
        """The skip value on every path (one, unless it was re-bound in a branch)."""
        return alternatives(self.skip_alternatives) if self.skip_alternatives is not None else [self.skip]


@dataclass(eq=False)
class Loop:
    """One `for` loop of the forward: what it iterates and what its body re-binds."""

    node: ast.For
    ref: Value | None                # the element when the loop runs over a module stack
    first: int                       # value ids created by the body: first..last
    last: int
    entry: dict[str, Value]          # names the body re-binds -> their value on entry
    exit: dict[str, Value]           # -> their value after the loop
    site: tuple = ()

    def holds(self, v: Value) -> bool:
        return self.first <= v.id <= self.last


@dataclass
class Flow:
    owner: str
    values: list[Value] = field(default_factory=list)
    returns: list[Value] = field(default_factory=list)
    residuals: list[Residual] = field(default_factory=list)
    norms: list[Value] = field(default_factory=list)
    blocks: list[Value] = field(default_factory=list)
    params: dict[str, Value] = field(default_factory=dict)
    users: dict[int, list[Value]] = field(default_factory=dict)
    for_stacks: list[tuple[ast.For, Value]] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    # value id -> its rank, where the code unpacks its shape (`b, n, d = x.shape`)
    ranks: dict[int, int] = field(default_factory=dict)
    # value id -> the names its shape is unpacked into, one per axis (`b, n, d = x.shape`)
    axis_names: dict[int, tuple[str, ...]] = field(default_factory=dict)
    truncated: bool = False
    model: ModuleModel | None = None     # the module whose forward (or entry method) this is

    def finish(self) -> None:
        for v in self.values:
            for i in v.inputs:
                self.users.setdefault(i.id, []).append(v)
        returned = {root(v).id for v in self.returns} | {v.id for v in self.returns}
        # skip root id -> id of the last add that uses it as its skip
        last_skip_use: dict[int, int] = {}
        for r in self.residuals:
            key = root(r.skip).id
            last_skip_use[key] = max(last_skip_use.get(key, -1), r.add.id)
        for r in self.residuals:
            _place(self, r)
            r.post = self._post_norm(r, returned, last_skip_use)

    def _post_norm(self, r: Residual, returned: set[int], last_skip_use: dict[int, int]) -> Value | None:
        """A norm applied to the sum whose output becomes the trunk: the next residual's skip
        or the block's output. When the sum itself is the next skip and the norm only feeds
        the branch (LLaMA's post_attention_layernorm), it is the next sublayer's pre-norm."""
        for n in self._carried(r.add, stop_at_norms=True):
            if n.op != "norm":
                continue
            for v in self._carried(n):
                if v.id in returned or last_skip_use.get(v.id, -1) > r.add.id:
                    return n
        return None

    def _carried(self, v: Value, limit: int = 64, stop_at_norms: bool = False) -> list[Value]:
        """v and the values that carry it unchanged (casts, dropout, if/else merges, tuples)."""
        out, seen, todo = [v], {v.id}, [v]
        while todo and limit > 0:
            limit -= 1
            for u in self.uses(todo.pop()):
                if u.id in seen:
                    continue
                if stop_at_norms and u.op == "norm":
                    seen.add(u.id)
                    out.append(u)
                elif u.op in ("phi", "tuple") or is_transparent(u):
                    seen.add(u.id)
                    out.append(u)
                    todo.append(u)
        return out

    def uses(self, v: Value) -> list[Value]:
        return self.users.get(v.id, [])


def alternatives(v: Value, depth: int = 0) -> list[Value]:
    """The values an if/else merge stands for (nested merges flattened)."""
    if v.op != "phi" or depth > 4:
        return [v]
    out: list[Value] = []
    for i in v.inputs:
        out.extend(alternatives(i, depth + 1))
    return out


def walks_back_to(v: Value, target: Value, step, limit: int = 16) -> bool:
    """target is reached from v going backwards through the inputs step(cur) returns (None:
    cur does not pass its input on)."""
    todo, steps = [v], 0
    while todo and steps < limit:
        steps += 1
        cur = todo.pop()
        if cur is target:
            return True
        more = step(cur)
        if more:
            todo.extend(more)
    return False


def exclusive(a: tuple, b: tuple) -> bool:
    """Two branch-condition paths that cannot both hold: `if x` / `else`, `if x` / `if not
    x`, and `if self.mode == "a"` / `if self.mode == "b"` (one attribute, two constants)."""
    pa = dict(a)
    if any(k in pa and pa[k] != pol for k, pol in b):
        return True
    return _values_exclusive(a, b) or _values_exclusive(b, a)


def _values_exclusive(a: tuple, b: tuple) -> bool:
    """`x == "a"` on one path, `x == "b"` or `x in ("b", "c")` (or `x not in ("a", ...)`) on
    the other."""
    equal_a = {k[0]: k[2] for k, pol in a if pol and isinstance(k, tuple) and len(k) == 3 and k[1] == "eqc"}
    if not equal_a:
        return False
    for k, pol in b:
        if not (isinstance(k, tuple) and len(k) == 3 and k[0] in equal_a):
            continue
        value = equal_a[k[0]]
        if k[1] == "eqc" and pol and k[2] != value:
            return True
        if k[1] == "inc" and (value in k[2]) != pol:
            return True
    return False


def is_transparent(v: Value) -> bool:
    """Shape- and meaning-preserving steps: casts, dropout, indexing into a returned tuple."""
    if v.op in ("getitem", "attr", "unary"):
        return True
    if v.op == "method":
        return v.name in kinds.TRANSPARENT_METHODS
    if v.op == "call":
        k = v.kind
        if k is None:
            return False
        if k.category in ("dropout", "identity"):
            return True
        # project classes named for what they are (DropPath, StochasticDepth, MyIdentity)
        return k.category == "project" and ("drop" in k.name.lower() or k.name.endswith("Identity"))
    if v.op == "func":
        return bool(v.name) and v.name.rsplit(".", 1)[-1] in ("dropout", "drop_path", "contiguous")
    if v.op == "binop" and v.name == "Mult":
        return _scale_operand(v) is not None
    return False


_KEEPS_MODULES = re.compile(r"checkpoint|^identity$|^noop$")


def _keeps_modules(fn: Value) -> bool:
    """fn is a function that returns the module it is given, to be run the same way
    (x-clip's `checkpoint_fn = make_checkpointable if can_checkpoint else identity`)."""
    alts = alternatives(fn)
    return all(v.op == "global" and bool(_KEEPS_MODULES.search((v.name or "").rsplit(".", 1)[-1].lower()))
               for v in alts)


def _scale_operand(v: Value) -> Value | None:
    """For a * x where a is a constant or a parameter, the data operand x."""
    if len(v.inputs) != 2:
        return None
    a, b = v.inputs
    if a.op in ("const", "selfattr", "global") and b.op not in ("const", "selfattr", "global"):
        return b
    if b.op in ("const", "selfattr", "global") and a.op not in ("const", "selfattr", "global"):
        return a
    return None


def _interpolates(branch: Value, skip: Value) -> bool:
    """x + rate * (f - x): nGPT-style interpolation, a deliberate residual scaling."""
    todo, steps = [branch], 0
    while todo and steps < 8:
        steps += 1
        cur = todo.pop()
        if cur.op == "binop" and cur.name == "Sub" and any(i is skip for i in cur.inputs):
            return True
        if cur.op == "binop" and cur.name == "Mult" or is_transparent(cur):
            todo.extend(cur.inputs)
    return False


def data_input(v: Value) -> Value | None:
    if v.op == "binop" and v.name == "Mult":
        return _scale_operand(v)
    if v.op == "method":
        return v.inputs[0] if v.inputs else None
    return v.inputs[0] if v.inputs else None


def root(v: Value) -> Value:
    """Strip transparent steps backwards: the value that was really produced."""
    seen = 0
    while is_transparent(v) and seen < 32:
        nxt = data_input(v)
        if nxt is None:
            break
        v = nxt
        seen += 1
    return v


def norm_input(v: Value) -> Value | None:
    return root(v.inputs[0]) if v.inputs else None


def reaches(flow: Flow, start: Value, want, through=is_transparent, limit: int = 64) -> Value | None:
    """The first downstream value satisfying want, moving only through transparent steps."""
    todo = [start]
    seen: set[int] = set()
    while todo and limit > 0:
        limit -= 1
        cur = todo.pop(0)
        for u in flow.uses(cur):
            if u.id in seen:
                continue
            seen.add(u.id)
            if want(u):
                return u
            if through(u) or u.op == "phi":
                todo.append(u)
    return None


def _place(flow: Flow, r: Residual) -> None:
    skip_root = root(r.skip)
    # nearest norms first: the pre-norm of a sublayer sits just before its branch
    for n in reversed(flow.norms):
        if n.id > r.branch.id or n.id < skip_root.id:
            continue
        if n is r.branch or r.branch.has_ancestor(n):
            inp = norm_input(n)
            if inp is not None and (inp is skip_root or inp is r.skip):
                r.pre = n
                break
    b = root(r.branch)
    if b.op == "norm" and (r.pre is None or b is not r.pre):
        r.branch_out = b


# -- the walker ------------------------------------------------------------------------


def _stored_names(body: list[ast.stmt]) -> set[str]:
    """Names a block of statements assigns (for loop-carried values)."""
    out: set[str] = set()
    for stmt in body:
        for n in walk(stmt):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                out.add(n.id)
    return out


@dataclass
class Frame:
    model: ModuleModel
    prefix: str
    env: dict[str, Value]
    conds: tuple
    site: tuple
    depth: int
    returns: list[Value]
    active: frozenset     # functions being inlined (no recursion)
    route: tuple = ()     # kinds of the modules inlined on the way here

    def child(self, model: ModuleModel, prefix: str, env: dict[str, Value], site, key,
              via: Kind | None = None) -> "Frame":
        route = self.route + (via,) if via is not None else self.route
        return Frame(model, prefix, env, self.conds, site, self.depth + 1, [], self.active | {key}, route)


class Walker:
    def __init__(self, analysis: "Analysis", model: ModuleModel, max_values: int = 20000):
        self.a = analysis
        self.flow = Flow(model.cls.name, model=model)
        self.root_model = model
        self.max_values = max_values

    # -- values -------------------------------------------------------------------------

    def new(self, op: str, inputs, node, frame: Frame, **kw) -> Value:
        inputs = tuple(inputs)
        if None in inputs:
            inputs = tuple(i for i in inputs if i is not None)
        if len(self.flow.values) >= self.max_values:
            self.flow.truncated = True
        v = Value(len(self.flow.values), op, inputs, node, frame.model.file.path, frame.model.cls.name,
                  conds=frame.conds, site=frame.site, model=frame.model, route=frame.route, **kw)
        anc = 0
        for i in inputs:
            anc |= i.closure
        v.anc = anc
        v.closure = anc | (1 << v.id)
        self.flow.values.append(v)
        if op == "norm":
            self.flow.norms.append(v)
        elif op == "block":
            self.flow.blocks.append(v)
        return v

    def run(self, fn: ast.FunctionDef | None = None) -> Flow:
        """The dataflow of forward, or of fn (another entry point of the module: a method
        its users call, such as CLIP's encode_text), with its parameters unknown inputs."""
        if fn is None:
            found = self.a.index.find_method(self.root_model.cls, "forward")
            if found is None:
                return self.flow
            fn = found[0]
        frame = Frame(self.root_model, "", {}, (), (), 0, [], frozenset({id(fn)}))
        self._bind_params(fn, frame, None, None, top=True)
        self.block(fn.body, frame)
        self.flow.returns = frame.returns
        self.flow.finish()
        return self.flow

    def _bind_params(self, fn: ast.FunctionDef | ast.Lambda, frame: Frame, args, kwargs, top=False):
        a = fn.args
        params = [p.arg for p in a.posonlyargs + a.args]
        if params and params[0] == "self" and isinstance(fn, ast.FunctionDef):
            params = params[1:]
        args = list(args or [])
        kwargs = dict(kwargs or {})
        defaults = {p.arg: d for p, d in param_defaults(fn)} if not top else {}
        for i, name in enumerate(params):
            if i < len(args):
                frame.env[name] = args[i]
            elif name in kwargs:
                frame.env[name] = kwargs.pop(name)
            elif isinstance(defaults.get(name), ast.Constant):
                # an inlined helper's flag left at its default (maybe_layer_norm(..., before=True))
                frame.env[name] = self.new("const", (), defaults[name], frame, payload=defaults[name].value)
            else:
                frame.env[name] = self.new("param", (), None, frame, var=name)
        for p in a.kwonlyargs:
            d = defaults.get(p.arg)
            frame.env[p.arg] = kwargs.pop(p.arg, None) or (
                self.new("const", (), d, frame, payload=d.value) if isinstance(d, ast.Constant)
                else self.new("param", (), None, frame, var=p.arg))
        for p in (a.vararg, a.kwarg):
            if p is not None:
                frame.env[p.arg] = self.new("param", (), None, frame, var=p.arg)
        if top:
            self.flow.params = {k: v for k, v in frame.env.items() if v.op == "param"}

    # -- statements ---------------------------------------------------------------------

    def block(self, body: list[ast.stmt], frame: Frame) -> bool:
        """Walk statements; True when the block always ends in return/raise."""
        for stmt in body:
            if self.flow.truncated:
                return False
            if self.stmt(stmt, frame):
                return True
        return False

    def stmt(self, s: ast.stmt, frame: Frame) -> bool:
        if isinstance(s, ast.Assign):
            v = self.expr(s.value, frame)
            for t in s.targets:
                self.bind(t, v, frame)
                self._rank_fact(t, s.value, frame)
        elif isinstance(s, ast.AnnAssign):
            if s.value is not None:
                self.bind(s.target, self.expr(s.value, frame), frame)
        elif isinstance(s, ast.AugAssign):
            cur = self.expr(s.target, frame) if not isinstance(s.target, ast.Name) \
                else frame.env.get(s.target.id) or self.new("global", (), s.target, frame)
            rhs = self.expr(s.value, frame)
            v = self._binop(s.op, cur, rhs, s, frame)
            self.bind(s.target, v, frame)
        elif isinstance(s, ast.Expr):
            self.expr(s.value, frame)
        elif isinstance(s, ast.Return):
            if s.value is not None:
                frame.returns.append(self.expr(s.value, frame))
            return True
        elif isinstance(s, ast.Raise):
            return True
        elif isinstance(s, ast.If):
            return self._if(s, frame)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self._for(s, frame)
        elif isinstance(s, ast.While):
            self.expr(s.test, frame)
            self.block(s.body, frame)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                v = self.expr(item.context_expr, frame)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, v, frame)
            return self.block(s.body, frame)
        elif isinstance(s, ast.Try):
            ended = self.block(s.body, frame)
            for h in s.handlers:
                self.block(h.body, frame)
            self.block(s.orelse, frame)
            self.block(s.finalbody, frame)
            return ended and not s.handlers
        return False

    def _rank_fact(self, target: ast.expr, value: ast.expr, frame: Frame) -> None:
        """`b, n, d = x.shape` (or `x.size()`) says x has rank 3."""
        if not isinstance(target, (ast.Tuple, ast.List)) or any(isinstance(e, ast.Starred) for e in target.elts):
            return
        if isinstance(value, ast.Attribute) and value.attr == "shape":
            base = value.value
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "size" \
                and not value.args and not value.keywords:
            base = value.func.value
        else:
            return
        if isinstance(base, ast.Name) and base.id in frame.env:
            vid = frame.env[base.id].id
            self.flow.ranks[vid] = len(target.elts)
            self.flow.axis_names[vid] = tuple(e.id if isinstance(e, ast.Name) else "_" for e in target.elts)

    def _cond_key(self, test: ast.expr) -> tuple[object, bool]:
        """A key under which `if c:` and `if not c:` (or `is None` / `is not None`) meet.

        Names and comparisons of names get a readable key; anything else is keyed by node
        identity, so only the two branches of one `if` are known to exclude each other.
        """
        polarity = True
        while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test = test.operand
            polarity = not polarity
        name = dotted(test)
        if name is not None:
            return name, polarity
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            op = test.ops[0]
            if isinstance(op, (ast.IsNot, ast.NotEq)):
                polarity = not polarity
            left, right = dotted(test.left), test.comparators[0]
            if isinstance(op, (ast.In, ast.NotIn)) and left is not None \
                    and isinstance(right, (ast.List, ast.Tuple, ast.Set)) \
                    and all(isinstance(e, ast.Constant) for e in right.elts):
                if isinstance(op, ast.NotIn):
                    polarity = not polarity
                return (left, "inc", frozenset(repr(e.value) for e in right.elts)), polarity
            rkey = dotted(right) or (repr(right.value) if isinstance(right, ast.Constant) else None)
            if left is not None and rkey is not None:
                kind = "is" if isinstance(op, (ast.Is, ast.IsNot)) else (
                    "eqc" if isinstance(right, ast.Constant) else "eq") \
                    if isinstance(op, (ast.Eq, ast.NotEq)) else type(op).__name__
                return (left, kind, rkey), polarity
        return id(test), polarity

    def _known(self, test: ast.expr, frame: Frame):
        """The truth of a test that constants decide (a helper's flag bound to a literal), or
        None."""
        if isinstance(test, ast.Constant):
            return bool(test.value)
        if isinstance(test, ast.Name):
            v = frame.env.get(test.id)
            if v is not None and v.op == "const" and isinstance(v.payload, (bool, int, type(None))):
                return bool(v.payload)
            return None
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            inner = self._known(test.operand, frame)
            return None if inner is None else not inner
        if isinstance(test, ast.BoolOp):
            vals = [self._known(v, frame) for v in test.values]
            if isinstance(test.op, ast.And):
                return False if False in vals else (True if all(v is True for v in vals) else None)
            return True if True in vals else (False if all(v is False for v in vals) else None)
        if isinstance(test, ast.BinOp) and isinstance(test.op, ast.BitXor):
            a, b = self._known(test.left, frame), self._known(test.right, frame)
            return None if a is None or b is None else a != b
        return None

    def _fold(self, test: ast.expr, frame: Frame) -> tuple[ast.expr, bool]:
        """`after ^ self.normalize_before` with after=False is `self.normalize_before`:
        (the test left, whether its polarity flips)."""
        if isinstance(test, ast.BinOp) and isinstance(test.op, ast.BitXor):
            for known, other in ((test.left, test.right), (test.right, test.left)):
                k = self._known(known, frame)
                if k is not None:
                    inner, flip = self._fold(other, frame)
                    return inner, flip != k
        return test, False

    def _branch_conds(self, test: ast.expr, frame: Frame | None = None) -> tuple[tuple, tuple]:
        if frame is not None:
            test, flip = self._fold(test, frame)
            if flip:
                body, orelse = self._branch_conds(test)
                return orelse, body
        """(conditions that hold in the `if` arm, those that hold in the `else` arm).
        `if a and not b:` gives both facts to its arm; its `else` only knows the whole test
        failed."""
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
            body = tuple(self._cond_key(v) for v in test.values)
            return body, ((id(test), False),)
        key, pol = self._cond_key(test)
        return ((key, pol),), ((key, not pol),)

    def _if(self, s: ast.If, frame: Frame) -> bool:
        self.expr(s.test, frame)
        known = self._known(s.test, frame)
        if known is not None:
            # decided by constants: only one arm runs
            return self.block(s.body if known else s.orelse, frame)
        body_conds, else_conds = self._branch_conds(s.test, frame)
        outer_conds = frame.conds
        before = dict(frame.env)
        frame.conds = outer_conds + body_conds
        body_ends = self.block(s.body, frame)
        body_env = frame.env
        frame.env = dict(before)
        frame.conds = outer_conds + else_conds
        else_ends = self.block(s.orelse, frame)
        else_env = frame.env
        frame.conds = outer_conds
        if body_ends and else_ends:
            frame.env = body_env
            return True
        if body_ends:
            frame.env = else_env
            frame.conds = outer_conds + else_conds
        elif else_ends:
            frame.env = body_env
            frame.conds = outer_conds + body_conds
        else:
            merged = {}
            for name in set(body_env) | set(else_env):
                a, b = body_env.get(name), else_env.get(name)
                if a is b or b is None:
                    merged[name] = a
                elif a is None:
                    merged[name] = b
                else:
                    merged[name] = self.new("phi", (a, b), s, frame, var=name)
            frame.env = merged
        return False

    def _for(self, s: ast.For, frame: Frame) -> None:
        it = self.expr(s.iter, frame)
        elem = self._element(it, s.iter, frame)
        first = len(self.flow.values)
        self.bind(s.target, elem, frame)
        ref = None
        if elem.op == "elem_ref" or (elem.op == "tuple" and any(e.op == "elem_ref" for e in elem.inputs)):
            ref = elem if elem.op == "elem_ref" else next(e for e in elem.inputs if e.op == "elem_ref")
            self.flow.for_stacks.append((s, ref))
        rebound = _stored_names(s.body)
        entry = {n: frame.env[n] for n in rebound if n in frame.env}
        self.block(s.body, frame)
        last = len(self.flow.values) - 1
        exit_ = {n: frame.env[n] for n in rebound if n in frame.env}
        self.flow.loops.append(Loop(s, ref, first, last, entry, exit_, frame.site))
        self.block(s.orelse, frame)

    def _element(self, it: Value, node: ast.expr, frame: Frame) -> Value:
        """What the loop variable is when iterating over it."""
        if it.op == "module_ref" and it.kind is not None and it.kind.category in ("stack", "transformer_stack"):
            return self.new("elem_ref", (), node, frame, kind=it.kind.block, attr=it.attr, stack=it.kind)
        if it.op == "func" and it.name in ("enumerate", "zip", "reversed", "list") and it.inputs:
            elems = [self._element(i, node, frame) for i in it.inputs]
            if it.name == "enumerate":
                return self.new("tuple", (self.new("const", (), None, frame), elems[0]), node, frame)
            if it.name == "zip":
                return self.new("tuple", tuple(elems), node, frame)
            return elems[0]
        if it.op == "getitem" and it.inputs and it.inputs[0].op == "module_ref":
            return self._element(it.inputs[0], node, frame)
        return self.new("getitem", (it,), node, frame)

    def bind(self, target: ast.expr, v: Value, frame: Frame) -> None:
        if isinstance(target, ast.Name):
            frame.env[target.id] = v
            if v.var is None:
                v.var = target.id
        elif isinstance(target, (ast.Tuple, ast.List)):
            elts = target.elts
            if v.op == "tuple" and len(v.inputs) == len(elts) and not any(isinstance(e, ast.Starred) for e in elts):
                for e, sub in zip(elts, v.inputs):
                    self.bind(e, sub, frame)
            elif v.op in ("elem_ref", "module_ref") and v.kind is not None and v.kind.category == "stack" \
                    and len(v.kind.elements) == len(elts) and not any(isinstance(e, ast.Starred) for e in elts):
                # for attn, ff in self.layers: each name is one module of the inner list
                for i, (e, k) in enumerate(zip(elts, v.kind.elements)):
                    self.bind(e, self.new("module_ref", (), e, frame, kind=k, attr=f"{v.attr}[{i}]",
                                          stack=v.stack), frame)
            else:
                for i, e in enumerate(elts):
                    if isinstance(e, ast.Starred):
                        e = e.value
                    self.bind(e, self.new("getitem", (v,), e, frame, name=str(i)), frame)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, v, frame)
        else:
            # self.x = ..., d[k] = ...: evaluate sub-expressions for their calls only
            if isinstance(target, ast.Subscript):
                self.expr(target.value, frame)

    # -- expressions --------------------------------------------------------------------

    def expr(self, e: ast.expr | None, frame: Frame) -> Value:
        if e is None:
            return self.new("const", (), None, frame)
        if self.flow.truncated:
            return self.new("global", (), e, frame)
        if isinstance(e, ast.Name):
            v = frame.env.get(e.id)
            if v is not None:
                return v
            return self.new("global", (), e, frame, name=e.id)
        if isinstance(e, ast.Constant):
            return self.new("const", (), e, frame, payload=e.value)
        if isinstance(e, ast.Attribute):
            return self._attribute(e, frame)
        if isinstance(e, ast.Call):
            return self._call(e, frame)
        if isinstance(e, ast.BinOp):
            return self._binop(e.op, self.expr(e.left, frame), self.expr(e.right, frame), e, frame)
        if isinstance(e, ast.UnaryOp):
            return self.new("unary", (self.expr(e.operand, frame),), e, frame, name=type(e.op).__name__)
        if isinstance(e, ast.Subscript):
            base = self.expr(e.value, frame)
            self.expr(e.slice, frame)
            if base.op == "module_ref" and base.kind is not None and base.kind.category in ("stack", "sequential"):
                k = base.kind
                elem = k.block
                if isinstance(e.slice, ast.Constant) and isinstance(e.slice.value, int) and k.elements \
                        and -len(k.elements) <= e.slice.value < len(k.elements):
                    elem = k.elements[e.slice.value]
                if isinstance(e.slice, ast.Slice):
                    return base
                return self.new("module_ref", (), e, frame, kind=elem,
                                attr=f"{base.attr}[{ast.unparse(e.slice)}]", stack=k)
            if base.op == "meta":
                return base
            return self.new("getitem", (base,), e, frame)
        if isinstance(e, (ast.Tuple, ast.List, ast.Set)):
            return self.new("tuple", tuple(self.expr(x, frame) for x in e.elts), e, frame)
        if isinstance(e, ast.Dict):
            return self.new("tuple", tuple(self.expr(x, frame) for x in e.values), e, frame)
        if isinstance(e, ast.IfExp):
            self.expr(e.test, frame)
            key, pol = self._cond_key(e.test)
            outer = frame.conds
            frame.conds = outer + ((key, pol),)
            a = self.expr(e.body, frame)
            frame.conds = outer + ((key, not pol),)
            b = self.expr(e.orelse, frame)
            frame.conds = outer
            return self.new("phi", (a, b), e, frame)
        if isinstance(e, ast.BoolOp):
            vals = tuple(self.expr(x, frame) for x in e.values)
            return self.new("phi", vals, e, frame)
        if isinstance(e, ast.Compare):
            self.expr(e.left, frame)
            for c in e.comparators:
                self.expr(c, frame)
            return self.new("meta", (), e, frame)
        if isinstance(e, ast.Lambda):
            return self.new("lambda", (), e, frame, payload=(e, frame))
        if isinstance(e, ast.Starred):
            return self.expr(e.value, frame)
        if isinstance(e, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            # comprehension variables shadow the frame's for the element only: save and
            # restore them instead of copying the whole environment
            saved: dict[str, Value | None] = {}
            for gen in e.generators:
                it = self.expr(gen.iter, frame)
                for t in walk(gen.target):
                    if isinstance(t, ast.Name) and t.id not in saved:
                        saved[t.id] = frame.env.get(t.id)
                self.bind(gen.target, self._element(it, gen.iter, frame), frame)
            result = self.new("tuple", (self.expr(e.elt, frame),), e, frame)
            for name, old in saved.items():
                if old is None:
                    frame.env.pop(name, None)
                else:
                    frame.env[name] = old
            return result
        if isinstance(e, ast.JoinedStr):
            return self.new("const", (), e, frame)
        if isinstance(e, ast.NamedExpr):
            v = self.expr(e.value, frame)
            self.bind(e.target, v, frame)
            return v
        return self.new("global", (), e, frame)

    def _binop(self, op: ast.operator, a: Value, b: Value, node, frame: Frame) -> Value:
        if isinstance(op, ast.Add):
            v = self.new("add", (a, b), node, frame, name="Add")
            self._residual(v, a, b)
            return v
        if a.op == "meta" and b.op in ("meta", "const"):
            return a
        return self.new("binop", (a, b), node, frame, name=type(op).__name__)

    def _residual(self, v: Value, a: Value, b: Value) -> None:
        for skip, branch in ((a, b), (b, a)):
            if skip.op in ("const", "global", "meta", "selfattr"):
                continue
            if branch.has_ancestor(skip):
                rb = root(branch)
                if rb.op == "call" and rb.kind is not None and rb.kind.category == "embedding":
                    return  # token + position embeddings: not a sublayer
                self.flow.residuals.append(Residual(v, skip, branch, _interpolates(branch, skip)))
                return
            if skip.op == "binop" and skip.name == "Mult":
                data = _scale_operand(skip) or next((i for i in skip.inputs if branch.has_ancestor(i)), None)
                if data is not None and branch.has_ancestor(data):
                    self.flow.residuals.append(Residual(v, data, branch, True))
                    return
        for skip, branch in ((a, b), (b, a)):
            # the skip differs by path (`if self.shortcut: x = self.shortcut(x)`): the add is
            # a residual when the branch was computed from one of its alternatives
            if skip.op != "phi":
                continue
            for alt in alternatives(skip):
                if alt.op not in ("const", "global", "meta", "selfattr") and branch.has_ancestor(alt):
                    self.flow.residuals.append(Residual(v, alt, branch, False, skip_alternatives=skip))
                    return

    def _attribute(self, e: ast.Attribute, frame: Frame) -> Value:
        if isinstance(e.value, ast.Name) and e.value.id == "self" and "self" not in frame.env:
            sub = frame.model.submodules.get(e.attr)
            if sub is not None:
                return self.new("module_ref", (), e, frame, kind=sub.kind, attr=frame.prefix + e.attr)
            if self.a.index.find_method(frame.model.cls, e.attr) is not None:
                return self.new("method_ref", (), e, frame, name=e.attr, payload=frame.model)
            return self.new("selfattr", (), e, frame, name=e.attr,
                            payload="param" if e.attr in frame.model.param_attrs else None)
        base = self.expr(e.value, frame)
        if e.attr in _META_ATTRS or base.op == "meta":
            return self.new("meta", (), e, frame)
        if base.op in ("module_ref", "elem_ref") and e.attr in ("__call__", "forward"):
            return base
        if base.op == "global" or base.op == "selfattr":
            return self.new("global", (), e, frame, name=dotted(e) or e.attr)
        if base.op == "module_ref" and base.kind is not None and base.kind.category == "project":
            # self.attn.to_q(x): a submodule of a child module, called from here
            child = self.a.builder.model_of(base.kind)
            sub = child.submodules.get(e.attr) if child is not None else None
            if sub is not None and sub.kind.category not in ("unknown", "none"):
                return self.new("module_ref", (), e, frame, kind=sub.kind, attr=f"{base.attr}.{e.attr}")
        if base.op in ("module_ref", "elem_ref"):
            return self.new("selfattr", (), e, frame, name=e.attr)
        return self.new("attr", (base,), e, frame, name=e.attr)

    # -- calls --------------------------------------------------------------------------

    def _args(self, call: ast.Call, frame: Frame) -> tuple[list[Value], dict[str, Value]]:
        args = [self.expr(a, frame) for a in call.args]
        kwargs = {}
        for i, k in enumerate(call.keywords):
            v = self.expr(k.value, frame)
            # f(**inputs): the unpacked mapping feeds the call too (no parameter takes it by name)
            kwargs[k.arg if k.arg is not None else f"**{i}"] = v
        return args, kwargs

    def _call(self, e: ast.Call, frame: Frame) -> Value:
        func = e.func
        imports = frame.model.file.imports
        # torch.* / F.* functions and module-level helpers (not methods on local values)
        if isinstance(func, (ast.Name, ast.Attribute)):
            base = func
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id not in frame.env and base.id != "self":
                qual = imports.qualname(func) or ""
                args, kwargs = self._args(e, frame)
                fnorm = kinds.torch_functional_norm(qual)
                if fnorm is not None and (qual.startswith("torch.nn.functional.") or fnorm != "normalize"):
                    kind = Kind("norm", f"F.{fnorm}", family=kinds.FUNCTIONAL_NORMS[fnorm], call=e)
                    return self.new("norm", tuple(args) + tuple(kwargs.values()), e, frame, kind=kind,
                                    name=fnorm)
                short = qual.rsplit(".", 1)[-1]
                if short in ("tril", "triu", "ones", "zeros", "arange", "full", "empty", "ones_like",
                             "zeros_like", "randn", "rand", "tensor", "as_tensor", "isinstance", "len",
                             "getattr", "hasattr", "range", "print", "int", "float", "bool", "str",
                             "finfo", "is_scripting", "is_tracing", "is_compiling"):
                    return self.new("meta", (), e, frame, name=short)
                if short in ("enumerate", "zip", "reversed", "list", "iter", "tuple", "sorted"):
                    return self.new("func", tuple(args), e, frame, name=short)
                if qual == "map" and len(args) == 2 and _keeps_modules(args[0]) and args[1].op == "tuple" \
                        and args[1].inputs and all(i.op in ("module_ref", "elem_ref") for i in args[1].inputs):
                    # attn, ff = map(checkpoint_fn, (attn, ff)): the same modules, run checkpointed
                    return args[1]
                # checkpoint(layer, x) / checkpoint_seq(self.blocks, x): a call of that module
                if args and args[0].op in ("module_ref", "elem_ref", "method_ref", "lambda"):
                    return self._invoke(args[0], args[1:], kwargs, e, frame)
                wrapper = self._module_wrapper(func, args, kwargs, frame)
                if wrapper is not None:
                    return self._inline_function(wrapper, args, kwargs, e, frame)
                if qual in ("torch.add",) and len(args) >= 2:
                    return self._binop(ast.Add(), args[0], args[1], e, frame)
                if qual in ("torch.mul",) and len(args) >= 2:
                    return self._binop(ast.Mult(), args[0], args[1], e, frame)
                data = tuple(args) + tuple(kwargs.values())
                return self.new("func", data, e, frame, name=qual)
        if isinstance(func, ast.Attribute) and func.attr == "processor" and isinstance(func.value, ast.Name) \
                and func.value.id == "self" and "self" not in frame.env \
                and "processor" not in frame.model.submodules:
            inlined = self._processor_call(e, frame)
            if inlined is not None:
                return inlined
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) \
                and isinstance(func.value.func, ast.Name) and func.value.func.id == "super":
            inlined = self._super_call(func.attr, e, frame)
            if inlined is not None:
                return inlined
        callee = self.expr(func, frame)
        if callee.op == "selfattr" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id == "self":
            # self.model(...) with self.model set where the module model cannot see it (a
            # loader, a setter): a call of a module or callable of unknown kind
            args, kwargs = self._args(e, frame)
            bound = frame.model.attr_exprs.get(func.attr)
            qual = imports.qualname(bound) if isinstance(bound, (ast.Name, ast.Attribute)) else None
            if qual and qual.startswith("torch.") and kinds.torch_functional_norm(qual) is None:
                # self.activation_fn = F.relu: that torch function
                return self.new("func", tuple(args) + tuple(kwargs.values()), e, frame, name=qual)
            return self.new("call", tuple(args) + tuple(kwargs.values()), e, frame, name=func.attr)
        if isinstance(func, ast.Attribute) and callee.op not in ("module_ref", "elem_ref", "method_ref", "lambda"):
            # a method on a value: x.transpose(1, 2), x.float()
            recv = callee.inputs[0] if callee.op == "attr" and callee.inputs else callee
            args, kwargs = self._args(e, frame)
            name = func.attr
            if name in _META_METHODS or recv.op == "meta":
                return self.new("meta", (), e, frame, name=name)
            return self.new("method", (recv,) + tuple(args) + tuple(kwargs.values()), e, frame, name=name)
        args, kwargs = self._args(e, frame)
        return self._invoke(callee, args, kwargs, e, frame)

    def _invoke(self, callee: Value, args: list[Value], kwargs: dict[str, Value], node: ast.Call,
                frame: Frame) -> Value:
        data = tuple(args) + tuple(kwargs.values())
        if callee.op == "lambda":
            lam, lframe = callee.payload
            if frame.depth >= MAX_INLINE_DEPTH or id(lam) in frame.active:
                return self.new("call", data, node, frame)
            inner = lframe.child(lframe.model, lframe.prefix, dict(lframe.env), frame.site + (id(node),), id(lam))
            inner.conds = frame.conds
            self._bind_params(lam, inner, args, kwargs)
            return self.expr(lam.body, inner)
        if callee.op == "method_ref":
            model: ModuleModel = callee.payload
            found = self.a.index.find_method(model.cls, callee.name)
            if found is None or frame.depth >= MAX_INLINE_DEPTH or id(found[0]) in frame.active:
                return self.new("call", data, node, frame, name=callee.name)
            fn = found[0]
            inner = frame.child(model, frame.prefix, {}, frame.site + (id(node),), id(fn))
            self._bind_params(fn, inner, args, kwargs)
            self.block(fn.body, inner)
            return self._result(inner.returns, node, frame)
        if callee.op in ("module_ref", "elem_ref"):
            kind = callee.kind
            attr = callee.attr or ""
            if callee.op == "elem_ref":
                if kind is not None and kind.category == "project" and self._takes_callable(data):
                    return self._inline_module(kind, attr, args, kwargs, node, frame)
                if kind is not None and kind.category == "norm":
                    return self.new("norm", data, node, frame, kind=kind, attr=attr)
                return self.new("block", data, node, frame, kind=kind, attr=attr, stack=callee.stack)
            return self.apply(kind, attr, args, kwargs, node, frame)
        return self.new("call", data + (callee,) if callee.op not in ("global", "selfattr") else data,
                        node, frame, name=callee.name)

    def _module_wrapper(self, func: ast.expr, args, kwargs, frame: Frame) -> ast.FunctionDef | None:
        """A function of the module's own file that is handed a submodule to run
        (x-clip's `model_forward_with_context(fn=self.text_transformer, args=..., freeze=...)`),
        or None."""
        if frame.depth >= MAX_INLINE_DEPTH or not isinstance(func, ast.Name) \
                or not any(v.op in ("module_ref", "elem_ref") for v in (*args, *kwargs.values())):
            return None
        fn = frame.model.file.functions.get(func.id)
        return fn if fn is not None and id(fn) not in frame.active else None

    def _inline_function(self, fn: ast.FunctionDef, args, kwargs, node: ast.Call, frame: Frame) -> Value:
        inner = frame.child(frame.model, frame.prefix, {}, frame.site + (id(node),), id(fn))
        self._bind_params(fn, inner, args, kwargs)
        self.block(fn.body, inner)
        return self._result(inner.returns, node, frame)

    def _super_call(self, name: str, node: ast.Call, frame: Frame) -> Value | None:
        """super().forward(x) (or another method): the base class's method, run inline on
        the same module object; None when no project base defines it (torch's own)."""
        if frame.depth >= MAX_INLINE_DEPTH:
            return None
        for base in self.a.index.mro(frame.model.cls)[1:]:
            fn = base.methods.get(name)
            if fn is None or id(fn) in frame.active:
                continue
            args, kwargs = self._args(node, frame)
            inner = frame.child(frame.model, frame.prefix, {}, frame.site + (id(node),), id(fn))
            self._bind_params(fn, inner, args, kwargs)
            self.block(fn.body, inner)
            return self._result(inner.returns, node, frame)
        return None

    def _processor_call(self, node: ast.Call, frame: Frame) -> Value | None:
        """`self.processor(self, hidden_states, ...)` (diffusers' attention modules): the
        processor class's `__call__` run inline, its `attn` parameter standing for the module.
        Only a processor the module certainly uses (its `_default_processor_cls`, or the one
        class its __init__ builds for `processor`) defined in the module's own file."""
        if frame.depth >= MAX_INLINE_DEPTH or not node.args or not (
                isinstance(node.args[0], ast.Name) and node.args[0].id == "self"):
            return None
        fn = self.a.processor_call(frame.model.cls)
        if fn is None or id(fn) in frame.active:
            return None
        args, kwargs = self._args(node, frame)
        inner = frame.child(frame.model, frame.prefix, {}, frame.site + (id(node),), id(fn))
        self._bind_params(fn, inner, args[1:], kwargs)
        self.block(fn.body, inner)
        return self._result(inner.returns, node, frame)

    @staticmethod
    def _takes_callable(data) -> bool:
        return any(d.op in ("lambda", "module_ref", "method_ref") or (d.op == "selfattr" and d.payload == "param")
                   for d in data)

    def apply(self, kind: Kind | None, attr: str, args: list[Value], kwargs: dict[str, Value], node,
              frame: Frame) -> Value:
        data = tuple(args) + tuple(kwargs.values())
        if kind is None:
            return self.new("call", data, node, frame, attr=attr)
        if kind.category == "norm":
            return self.new("norm", data, node, frame, kind=kind, attr=attr)
        if kind.category == "sequential":
            v = args[0] if args else self.new("const", (), None, frame)
            first = len(self.flow.values)
            for i, el in enumerate(kind.elements):
                v = self.apply(el, f"{attr}[{i}]", [v], {}, el.call or node, frame)
            for u in self.flow.values[first:]:
                u.call_site = u.call_site or node      # the element values' call in forward
            return v
        if kind.category in ("stack", "transformer_stack"):
            v = self.new("block", data, node, frame, kind=kind.block, attr=attr, stack=kind)
            if kind.final_norm is not None:
                v = self.new("norm", (v,), node, frame, kind=kind.final_norm, attr=f"{attr}.norm", stack=kind)
            return v
        if kind.category == "project" and self._takes_callable(data):
            return self._inline_module(kind, attr, args, kwargs, node, frame)
        return self.new("call", data, node, frame, kind=kind, attr=attr)

    def _inline_module(self, kind: Kind, attr: str, args, kwargs, node, frame: Frame) -> Value:
        data = tuple(args) + tuple(kwargs.values())
        cls = kind.cls
        found = self.a.index.find_method(cls, "forward") if cls else None
        if found is None or frame.depth >= MAX_INLINE_DEPTH or id(found[0]) in frame.active:
            return self.new("call", data, node, frame, kind=kind, attr=attr)
        fn = found[0]
        model = self.a.builder.model_of(kind)
        inner = frame.child(model, f"{attr}.", {}, frame.site + (id(node),), id(fn), via=kind)
        self._bind_params(fn, inner, args, kwargs)
        self.block(fn.body, inner)
        return self._result(inner.returns, node, frame)

    def _result(self, returns: list[Value], node, frame: Frame) -> Value:
        if not returns:
            return self.new("const", (), node, frame)
        if len(returns) == 1:
            return returns[0]
        return self.new("phi", tuple(returns), node, frame)
