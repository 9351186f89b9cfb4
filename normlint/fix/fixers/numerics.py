"""NL401-NL404: the numerics of hand-written norms (eps, precision, the formula)."""

from __future__ import annotations

import libcst as cst

from ...findings import Finding, Fix
from ..catalog import SAFE, UNSAFE
from ..tree import (SourceTree, Replace, append_arg, call_name, dotted, expression, find, keyword_arg, method_call,
                    parenthesize, self_attr, walk)

MIN_EPS = 1e-6
_EPS_TEXT = "1e-6"
_SQUARED_STATS = {"mean", "var"}          # the statistics NL402 upcasts
_EPS_ATTRS = ("eps", "epsilon", "variance_epsilon", "layer_norm_eps")


def _torch_function(call: cst.Call) -> bool:
    """``torch.mean(x, ...)`` rather than ``x.mean(...)``: the reduced value is the first argument."""
    name = dotted(call.func)
    return bool(name) and name.split(".")[0] in ("torch", "th") and name.count(".") == 1


def _reduced(call: cst.Call) -> cst.BaseExpression | None:
    if _torch_function(call):
        return call.args[0].value if call.args and call.args[0].keyword is None else None
    return call.func.value if isinstance(call.func, cst.Attribute) else None


# -- NL401 ------------------------------------------------------------------------------


def raise_eps(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    lit = node if isinstance(node, cst.Float) else find(node, lambda n: isinstance(n, cst.Float))
    if not isinstance(lit, cst.Float) or lit.evaluated_value >= MIN_EPS:
        return None   # a name bound elsewhere: the reader decides where to change it
    return tree.fix(f"Raise eps from {lit.value} to {_EPS_TEXT}",
                    {lit: cst.Float(_EPS_TEXT, lpar=lit.lpar, rpar=lit.rpar)}, UNSAFE)


# -- NL402 ------------------------------------------------------------------------------


def _squared_operands(expr: cst.BaseExpression) -> list[cst.BaseExpression] | None:
    """The operand(s) of the square at the top of expr: x.pow(2), x ** 2, x * x, torch.square(x)."""
    e = expr
    if isinstance(e, cst.BinaryOperation):
        if isinstance(e.operator, cst.Power) and _is_two(e.right):
            return [e.left]
        if isinstance(e.operator, cst.Multiply) and e.left.deep_equals(e.right):
            return [e.left, e.right]
        return None
    if isinstance(e, cst.Call):
        name = call_name(e)
        if name in ("pow", "float_power"):
            if _torch_function(e):
                return [e.args[0].value] if len(e.args) > 1 and _is_two(e.args[1].value) else None
            if isinstance(e.func, cst.Attribute) and e.args and _is_two(e.args[0].value):
                return [e.func.value]
        if name == "square":
            if _torch_function(e):
                return [e.args[0].value] if e.args else None
            if isinstance(e.func, cst.Attribute):
                return [e.func.value]
    return None


def _is_two(e: cst.BaseExpression) -> bool:
    return isinstance(e, (cst.Integer, cst.Float)) and e.evaluated_value == 2


def upcast_statistic(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    call = node if call_name(node) in _SQUARED_STATS else \
        find(node, lambda n: call_name(n) in _SQUARED_STATS and _reduced(n) is not None)
    if not isinstance(call, cst.Call):
        return None
    reduced = _reduced(call)
    if reduced is None:
        return None
    if call_name(call) == "var":
        operands = [reduced]
    else:
        # only a square written inside the statistic is fixed here: upcasting a name bound
        # to an earlier square would silence the rule while x * x still overflows
        operands = _squared_operands(reduced)
        if operands is None:
            return None
    new_call = call.visit(Replace({id(o): method_call(o, "float") for o in operands}))
    base = operands[0]
    name = dotted(base)
    if name is not None and all(o.deep_equals(base) for o in operands):
        # back to the input dtype, so everything downstream is unchanged: after the root when
        # it is in the same expression (rsqrt(mean(x**2)) has x's scale and fits; the mean of
        # squares itself overflows fp16 once the RMS passes 256), else the statistic itself
        dtype = cst.Arg(expression(f"{name}.dtype"))
        root = _enclosing_root(tree, call)
        if root is not None:
            fixed_root = method_call(root.visit(Replace({id(call): new_call})), "to", dtype)
            return tree.fix(f"Compute `{tree.code(call)}` and its root in float32, then cast back to "
                            f"`{name}.dtype`", {root: fixed_root}, SAFE)
        return tree.fix(f"Compute `{tree.code(call)}` in float32 and cast it back to `{name}.dtype`",
                        {call: method_call(new_call, "to", dtype)}, SAFE)
    return tree.fix(f"Compute `{tree.code(call)}` in float32 (the norm's output becomes float32)",
                    {call: new_call}, UNSAFE)


def _enclosing_root(tree: SourceTree, node: cst.CSTNode) -> cst.Call | None:
    """The sqrt/rsqrt call around node within its expression, if any."""
    for a in tree.ancestors(node):
        if isinstance(a, (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.Lambda)):
            return None
        if call_name(a) in ("sqrt", "rsqrt"):
            return a
    return None


# -- NL403 ------------------------------------------------------------------------------


def _std_call(n: cst.CSTNode) -> bool:
    return call_name(n) in ("std", "var") and _reduced(n) is not None


def _is_eps(e: cst.BaseExpression) -> bool:
    if isinstance(e, (cst.Float, cst.Integer)):
        return True
    name = dotted(e) or ""
    return "eps" in name.rsplit(".", 1)[-1].lower()


def _eps_add(node: cst.CSTNode) -> tuple[cst.BinaryOperation, cst.BaseExpression, bool] | None:
    """The ``std + eps`` inside node: (the add, the std side, whether std is on the left)."""
    for n in walk(node):
        if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Add):
            if _is_eps(n.right) and not _is_eps(n.left):
                return n, n.left, True
            if _is_eps(n.left) and not _is_eps(n.right):
                return n, n.right, False
    return None


def _root_of(std: cst.BaseExpression, eps: cst.BaseExpression) -> cst.BaseExpression | None:
    """sqrt(var + eps) for a std-like expression; None when there is no variance to name."""
    if call_name(std) == "std":
        var = std.with_changes(func=std.func.with_changes(attr=cst.Name("var"))) \
            if isinstance(std.func, cst.Attribute) else None
        return None if var is None else _sqrt_of(var, eps)
    if call_name(std) == "sqrt":
        inner = std.args[0].value if _torch_function(std) and std.args else \
            std.func.value if isinstance(std.func, cst.Attribute) and not std.args else None
        if inner is None:
            return None
        return _sqrt_of(inner, eps)
    if isinstance(std, (cst.Name, cst.Attribute)):
        # std was computed elsewhere: std ** 2 is its variance
        return _sqrt_of(cst.BinaryOperation(std, cst.Power(), cst.Integer("2")), eps)
    return None


def _sqrt_of(var: cst.BaseExpression, eps: cst.BaseExpression) -> cst.Call:
    return method_call(cst.BinaryOperation(_operand(var), cst.Add(), eps), "sqrt")


def standard_formula(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    if _std_call(node):
        return _biased(tree, node)
    found = _eps_add(node)
    if found is not None:
        add, std, _ = found
        eps = add.right if std is add.left else add.left
        root = _root_of(std, eps.with_changes(lpar=(), rpar=()) if hasattr(eps, "lpar") else eps)
        if root is None:
            return None
        return tree.fix(f"Add eps to the variance, inside the root: `{tree.module.code_for_node(root)}`",
                        {add: root}, UNSAFE)
    call = find(node, _std_call)
    return _biased(tree, call) if call is not None else None


def _biased(tree: SourceTree, call: cst.Call) -> Fix | None:
    """x.std(dim) -> x.std(dim, correction=0): the biased (N) estimate nn.LayerNorm uses."""
    positional = [a for a in call.args if a.keyword is None and a.star == ""]
    limit = 2 if _torch_function(call) else 1     # (input,) dim: anything after is `unbiased`
    if len(positional) > limit or any(a.star for a in call.args):
        return None
    unbiased = next((a for a in call.args if a.keyword is not None and a.keyword.value == "unbiased"), None)
    correction = keyword_arg("correction", cst.Integer("0"))
    if unbiased is not None:
        new = call.deep_replace(unbiased, correction.with_changes(comma=unbiased.comma))
    elif any(a.keyword is not None and a.keyword.value == "correction" for a in call.args):
        return None
    else:
        new = append_arg(call, correction)
    return tree.fix(f"Use the biased estimate: `{tree.module.code_for_node(new)}`", {call: new}, UNSAFE)


# -- NL404 ------------------------------------------------------------------------------


def _self_bound(tree: SourceTree, node: cst.CSTNode) -> bool:
    """``self`` names the instance here: inside a method (or a function nested in one)
    whose first parameter is ``self``, not a staticmethod's."""
    for fn in tree.ancestors(node):
        if isinstance(fn, cst.FunctionDef) and fn.params.params and fn.params.params[0].name.value == "self":
            return True
    return False


def _class_eps(tree: SourceTree, node: cst.CSTNode) -> cst.BaseExpression:
    cls = tree.enclosing(node, cst.ClassDef)
    if cls is not None and _self_bound(tree, node):
        assigned = {self_attr(t.target) for n in walk(cls) if isinstance(n, cst.Assign) for t in n.targets}
        for attr in _EPS_ATTRS:
            if attr in assigned:
                return expression(f"self.{attr}")
    return cst.Float(_EPS_TEXT)


def _is_div(n: cst.CSTNode | None) -> bool:
    return isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Divide)


def _denominator(tree: SourceTree, node: cst.CSTNode) -> cst.BaseExpression | None:
    """The finding's denominator, whether it anchors the division, the rsqrt, or the
    denominator itself."""
    if _is_div(node):
        return node.right
    parent = tree.parent(node)
    if _is_div(parent) and parent.right is node:
        return node
    if call_name(node) == "rsqrt":
        return node
    if isinstance(parent, cst.Arg) and call_name(tree.parent(parent)) == "rsqrt":
        return tree.parent(parent)
    inner = find(node, lambda n: _is_div(n) or call_name(n) == "rsqrt")
    if inner is not None:
        return inner.right if _is_div(inner) else inner
    return node if isinstance(node, cst.BaseExpression) else None


# Results that are never negative (a norm, an absolute value, a root), and methods that
# keep the sign of what they are called on.
_MAGNITUDES = frozenset({"norm", "vector_norm", "matrix_norm", "abs", "sqrt", "square", "exp", "softplus"})
_SIGN_KEEPING = frozenset({"detach", "float", "double", "half", "bfloat16", "to", "type", "type_as", "clone",
                           "contiguous", "unsqueeze", "squeeze", "view", "reshape", "expand", "expand_as"})


def _even_power(e: cst.BaseExpression) -> bool:
    return isinstance(e, cst.Integer) and int(e.evaluated_value) % 2 == 0


def _non_negative(tree: SourceTree, e: cst.BaseExpression, depth: int = 0) -> bool:
    """Whether ``e`` is a magnitude (clamping it from below keeps its meaning): a norm, an
    absolute value, a root, an even power, their products and sums with non-negative
    numbers, or a local name bound once to one of these."""
    if depth > 8:
        return False
    if isinstance(e, (cst.Integer, cst.Float)):
        return True
    if isinstance(e, cst.BinaryOperation):
        if isinstance(e.operator, cst.Power):
            return _even_power(e.right)
        return isinstance(e.operator, (cst.Multiply, cst.Divide, cst.Add)) and \
            _non_negative(tree, e.left, depth + 1) and _non_negative(tree, e.right, depth + 1)
    if isinstance(e, cst.Call):
        name = call_name(e)
        if name in _MAGNITUDES:
            return True
        if name == "pow":
            return bool(e.args) and _even_power(e.args[-1].value)
        if name in _SIGN_KEEPING and isinstance(e.func, cst.Attribute):
            return _non_negative(tree, e.func.value, depth + 1)
        return False
    if isinstance(e, cst.Name):
        fn = tree.enclosing(e, cst.FunctionDef)
        bound = [n.value for n in walk(fn) if isinstance(n, cst.Assign) and len(n.targets) == 1
                 and isinstance(n.targets[0].target, cst.Name) and n.targets[0].target.value == e.value] \
            if fn is not None else []
        return len(bound) == 1 and _non_negative(tree, bound[0], depth + 1)
    return False


def add_eps(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    denom = _denominator(tree, node)
    if denom is None:
        return None
    eps = _class_eps(tree, node)
    eps_text = tree.module.code_for_node(eps)
    name = call_name(denom)
    if name in ("sqrt", "rsqrt"):
        if _torch_function(denom) and denom.args:
            arg = denom.args[0]
            inner = cst.BinaryOperation(_operand(arg.value), cst.Add(), eps)
            new = denom.deep_replace(arg, arg.with_changes(value=inner))
        elif isinstance(denom.func, cst.Attribute) and not denom.args:
            inner = cst.BinaryOperation(_operand(denom.func.value), cst.Add(), eps)
            new = denom.with_changes(func=denom.func.with_changes(value=parenthesize(inner)))
        else:
            return None
        what = f"add `{eps_text}` inside the root"
    elif name == "std" and isinstance(denom.func, cst.Attribute):
        new = _root_of(denom, eps)
        what = f"take the root of the variance plus `{eps_text}`"
    elif _non_negative(tree, denom):
        # an L2 norm (or a name bound to one): clamp it, as F.normalize does
        new = method_call(denom, "clamp_min", cst.Arg(eps))
        what = f"clamp the denominator to at least `{eps_text}`"
    else:
        return None         # clamping a denominator that can be negative would flip its sign
    return tree.fix(f"Guard the denominator: {what}", {denom: new}, UNSAFE)


_LOOSER_THAN_ADD = (cst.LeftShift, cst.RightShift, cst.BitAnd, cst.BitOr, cst.BitXor)


def _operand(e: cst.BaseExpression) -> cst.BaseExpression:
    """e as the left operand of ``+``: what binds more loosely than ``+`` gets parentheses."""
    if isinstance(e, (cst.Lambda, cst.IfExp, cst.Comparison, cst.BooleanOperation, cst.NamedExpr)):
        return parenthesize(e)
    if isinstance(e, cst.BinaryOperation) and isinstance(e.operator, _LOOSER_THAN_ADD):
        return parenthesize(e)
    return e
