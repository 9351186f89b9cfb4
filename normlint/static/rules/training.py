"""NL5: training setup (weight decay on norm gains, affine-free norms, BatchNorm momentum in
the Keras convention, a bias that BatchNorm cancels)."""

from __future__ import annotations

import ast
import re

from .. import kinds
from ...findings import Severity
from ..flow import is_transparent, reaches
from ..index import ClassInfo, FileInfo
from ..model import Analysis, built_kinds, class_text, walk_kind
from ..modules import Kind
from ..names import param_defaults, walk
from .common import Reporter

_OPTIMIZERS = {"AdamW": 0.01, "Adam": 0.0, "SGD": 0.0, "RMSprop": 0.0, "Adagrad": 0.0, "Adamax": 0.0,
               "NAdam": 0.0, "RAdam": 0.0, "Adadelta": 0.0, "Lion": 0.0, "LAMB": 0.0, "Lamb": 0.0}


def check_class(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    if report.on("NL504"):
        check_bias_before_batchnorm(a, cls, report)
    if not report.on("NL502"):
        return
    flow = a.flow(cls)
    for sub in a.model(cls).own():
        for k in walk_kind(sub.kind):
            if not k.is_native_norm or k.call is None:
                continue
            off = next((kw for kw in k.call.keywords if kw.arg in ("elementwise_affine", "affine")
                        and isinstance(kw.value, ast.Constant) and kw.value.value is False), None)
            if off is None:
                continue
            if flow is not None and any(
                    reaches(flow, v, lambda u: u.op in ("binop", "add") and u.name in ("Mult", "Add")
                            and not is_transparent(u), limit=16)
                    for v in flow.norms if v.attr == sub.attr):
                continue  # followed by its own affine (adaLN modulation: norm(x) * (1 + scale) + shift)
            report("NL502", cls.file.path, k.call,
                   f"`{cls.name}.{sub.attr}` is {k.name}({off.arg}=False) and nothing rescales its output: "
                   f"the layer cannot restore scale and shift; keep `{off.arg}=True` unless a non-parametric "
                   "norm is intended")
            break


def check_file(a: Analysis, info: FileInfo, report: Reporter) -> None:
    if report.on("NL503"):
        check_momentum(a, info, report)
    if report.on("NL504") and "Sequential" in info.parsed.text and "BatchNorm" in info.parsed.text:
        _sequential_bias_before_batchnorm(info, report)
    if not report.on("NL501"):
        return
    text = info.parsed.text
    # The walk costs a visit of every node of the file: skip it unless an optimizer is named
    # (an alias still names it in its import) or a no-decay list could be assigned.
    if not any(name in text for name in _OPTIMIZERS) and not _may_name_no_decay(text):
        return
    for node in walk(info.parsed.tree):
        if isinstance(node, ast.Call):
            _optimizer(info, node, report)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and _NO_DECAY_NAME.search(node.targets[0].id.lower()) \
                and isinstance(node.value, (ast.List, ast.Tuple, ast.Set)):
            _no_decay(a, info, node, report)


def _may_name_no_decay(text: str) -> bool:
    # every spelling _NO_DECAY_NAME matches contains one of these; searching the regex
    # itself (an alternation) tries every position of the file
    low = text.lower()
    return ("decay" in low or "nowd" in low) and _NO_DECAY_NAME.search(low) is not None


def _optimizer(info: FileInfo, call: ast.Call, report: Reporter) -> None:
    qual = info.imports.qualname(call.func) or ""
    short = qual.rsplit(".", 1)[-1]
    if short not in _OPTIMIZERS or not (qual.startswith("torch.optim") or qual == short or "optim" in qual):
        return
    params = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "params"), None)
    if not (isinstance(params, ast.Call) and isinstance(params.func, ast.Attribute)
            and params.func.attr == "parameters"):
        return
    wd_node = next((k.value for k in call.keywords if k.arg == "weight_decay"), None)
    if wd_node is None:
        wd = _OPTIMIZERS[short]
        where = f"{short}'s default weight_decay={wd}"
    elif isinstance(wd_node, ast.Constant) and isinstance(wd_node.value, (int, float)):
        wd = wd_node.value
        where = f"weight_decay={wd}"
    else:
        return
    if wd <= 0:
        return
    report("NL501", info.path, call,
           f"`{short}({ast.unparse(params)}, ...)` applies {where} to every parameter, norm gains and biases "
           "included: they are pulled towards 0; put norm and bias parameters in a group with "
           "`weight_decay=0.0`")


# a list that names what is excluded from weight decay (no_decay, skip_decay, nowd,
# decay_exclude), not any list whose name mentions decay (`_DECAY_FNS`: schedule names)
_NO_DECAY_NAME = re.compile(r"(no|skip|skips|exclude[sd]?|without|non|nowd)_?(weight_?)?decay"
                            r"|decay_?(exclude[sd]?|skip|skips|blacklist|ignore[sd]?)|nowd")
# a parameter name or a fragment of one: dotted identifiers ('bias', 'LayerNorm.weight')
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\.?")


def _no_decay(a: Analysis, info: FileInfo, node: ast.Assign, report: Reporter) -> None:
    entries = [e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    if not entries or len(entries) != len(node.value.elts) or not all(_PARAM_NAME.fullmatch(e) for e in entries):
        return
    names = a.norm_attr_names(info)
    if not names:
        return
    params = [f"{n}.weight" for n in sorted(names)]
    if any(e in p for e in entries for p in params):
        return
    report("NL501", info.path, node.value,
           f"`{node.targets[0].id}` = {ast.unparse(node.value)} matches none of the model's norm parameters "
           f"({', '.join(params[:4])}): they get weight decay; name them (or group parameters by module "
           "type: nn.LayerNorm/RMSNorm -> no decay)")


# -- NL503 ------------------------------------------------------------------------------

_KERAS_EPS = 1e-3


def check_momentum(a: Analysis, info: FileInfo, report: Reporter) -> None:
    """BatchNorm(momentum=0.99): TensorFlow/Keras' decay where PyTorch wants the new batch's weight."""
    if "momentum" not in info.parsed.text:
        return
    scopes = _Scopes(a, info)
    for call in scopes.calls():
        target = _batchnorm_ctor(a, info, call)
        if target is None:
            continue
        name, ctor = target
        mom = next((k.value for k in ctor.keywords if k.arg == "momentum"), None)
        if mom is None and name == "F.batch_norm" and len(ctor.args) > 6:
            mom = ctor.args[6]
        if mom is None:
            continue
        value = scopes.number(mom, call)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.5 <= value <= 1.0:
            continue
        where = "" if isinstance(mom, ast.Constant) else f" (`{ast.unparse(mom)}` = {value:g})"
        report("NL503", info.path, mom,
               f"`{name}(..., momentum={ast.unparse(mom)})`{where} uses the TensorFlow/Keras convention: in "
               f"PyTorch the running statistic is `(1 - m) * running + m * batch`, so m={value:g} makes the "
               f"running mean and variance follow the last batch; use momentum={1 - value:.2g}")
        eps = next((k.value for k in ctor.keywords if k.arg == "eps"), None)
        if eps is not None and scopes.number(eps, call) == _KERAS_EPS:
            report("NL503", info.path, eps,
                   f"`{name}(..., eps={ast.unparse(eps)})` next to a Keras-style momentum: 1e-3 is Keras' default "
                   "eps (PyTorch's is 1e-5); keep it only if the weights were trained with it",
                   Severity.INFO)


def _batchnorm_ctor(a: Analysis, info: FileInfo, call: ast.Call) -> tuple[str, ast.Call] | None:
    """(how to name it, the call holding the keywords) for a BatchNorm constructor, a
    partial of one, or F.batch_norm."""
    qual = info.imports.qualname(call.func) or ""
    if qual.endswith("partial") and call.args:
        inner = _batchnorm_ctor(a, info, ast.Call(func=call.args[0], args=[], keywords=[]))
        return (inner[0], call) if inner is not None else None
    norm = kinds.torch_norm_class(qual)
    if norm is not None:
        return (f"nn.{norm}", call) if kinds.NORM_CLASSES[norm] == "batch" else None
    if kinds.torch_functional_norm(qual) == "batch_norm" and qual.startswith("torch.nn.functional."):
        return "F.batch_norm", call
    cls = a.index.resolve_class(call.func, info) if isinstance(call.func, (ast.Name, ast.Attribute)) else None
    if cls is not None and a.builder.torch_base_category(cls) is None:
        nf = a.norm_class(cls)
        torch_base = any(kinds.torch_norm_class(c.file.imports.qualname(b)) for c in a.index.mro(cls)
                         for b in c.bases)
        if nf is not None and nf[0] == "batch" and torch_base:
            return cls.name, call
    return None


class _Scopes:
    """Numbers a name stands for where a call is written: the enclosing function's
    parameters' defaults and local constants, then class and module constants."""

    def __init__(self, a: Analysis, info: FileInfo):
        self.a = a
        self.info = info
        self.parent: dict[int, ast.AST] = {}
        self._calls: list[ast.Call] = []
        for node in walk(info.parsed.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
                if isinstance(child, ast.Call):
                    self._calls.append(child)

    def calls(self) -> list[ast.Call]:
        return self._calls

    def _enclosing(self, node: ast.AST, types) -> ast.AST | None:
        cur = self.parent.get(id(node))
        while cur is not None and not isinstance(cur, types):
            cur = self.parent.get(id(cur))
        return cur

    def number(self, expr: ast.expr, at: ast.AST, depth: int = 0):
        if isinstance(expr, ast.Constant):
            return expr.value if isinstance(expr.value, (int, float)) and not isinstance(expr.value, bool) else None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Sub) and depth < 3:
            left, right = self.number(expr.left, at, depth + 1), self.number(expr.right, at, depth + 1)
            return left - right if left is not None and right is not None else None
        if not isinstance(expr, ast.Name) or depth > 3:
            return None
        fn = self._enclosing(at, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if fn is not None and not isinstance(fn, ast.Lambda):
            values = [n.value for n in walk(fn) if isinstance(n, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == expr.id for t in n.targets)]
            if values:
                found = {self.number(v, v, depth + 1) for v in values}
                return found.pop() if len(found) == 1 else None
            for arg, default in param_defaults(fn):
                if arg.arg == expr.id:
                    return self.number(default, fn, depth + 1) if default is not None else None
        cls = self._enclosing(at, ast.ClassDef)
        if cls is not None:
            info_cls = self.info.classes.get(cls.name)
            if info_cls is not None and expr.id in info_cls.constants:
                return self.number(info_cls.constants[expr.id], cls, depth + 1)
        value = self.a.index.module_constant(expr.id, self.info)
        return value if isinstance(value, (int, float)) else None


# -- NL504 ------------------------------------------------------------------------------

_BIAS_POSITION = {"Linear": 2, "Conv1d": 7, "Conv2d": 7, "Conv3d": 7}


def _has_bias(k) -> bool:
    """The torch Linear/Conv certainly has a bias (bias=True, or not passed: the default)."""
    if k.call is None or k.torch_name is None or k.category not in ("linear", "conv"):
        return False
    kw = k.keyword("bias")
    if kw is None and (k.torch_name.startswith("ConvTranspose") or k.torch_name.startswith("Lazy")):
        return False       # positions differ: only an explicit bias=True is certain
    if kw is None:
        pos = _BIAS_POSITION.get(k.torch_name)
        if pos is not None and len(k.call.args) > pos:
            kw = k.call.args[pos]
    if kw is None:
        return not any(kw.arg is None for kw in k.call.keywords)   # **kwargs may pass bias=False
    return isinstance(kw, ast.Constant) and kw.value is True


def _is_batchnorm(k) -> bool:
    return k is not None and k.is_native_norm and k.family == "batch"


def _torch_layer(info: FileInfo, node: ast.expr):
    """The Kind of a torch layer constructed in place (nn.Conv2d(...)), else None."""
    if not isinstance(node, ast.Call):
        return None
    qual = info.imports.qualname(node.func) or ""
    short = qual.rsplit(".", 1)[-1]
    if kinds.torch_norm_class(qual):
        return Kind("norm", f"nn.{short}", family=kinds.NORM_CLASSES[short], torch_name=short, call=node)
    cat = kinds.torch_module_category(qual)
    return Kind(cat, f"nn.{short}", torch_name=short, call=node) if cat else None


def _sequential_bias_before_batchnorm(info: FileInfo, report: Reporter) -> None:
    """nn.Sequential(..., Conv2d(bias=True), BatchNorm2d, ...) built anywhere in a class of
    the file, whatever it is assigned to (another model's attribute, a local): torch layers
    only."""
    for node in (n for cls in info.classes.values() for n in walk(cls.node)):
        if not (isinstance(node, ast.Call) and info.imports.qualname(node.func) == "torch.nn.Sequential"):
            continue
        elements = [_torch_layer(info, e) for e in node.args]
        for prev, cur in zip(elements, elements[1:]):
            if prev is not None and _is_batchnorm(cur) and _has_bias(prev):
                report("NL504", info.path, prev.call,
                       f"nn.Sequential feeds {prev.name}(...) with its bias straight into {cur.name}: the batch "
                       "mean subtracts the bias again, so it is a wasted parameter; pass `bias=False`")


def check_bias_before_batchnorm(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    pairs = []
    for k in built_kinds(a.model(cls)):
        if k.category == "sequential":
            for prev, cur in zip(k.elements, k.elements[1:]):
                if _is_batchnorm(cur) and _has_bias(prev):
                    pairs.append((prev, cur))
    flow = a.flow(cls) if "BatchNorm" in class_text(cls) or "batch_norm" in class_text(cls) else None
    for v in (flow.norms if flow is not None else []):
        if not _is_batchnorm(v.kind) or not v.inputs or v.owner != cls.name:
            continue
        p = v.inputs[0]
        if p.op == "call" and p.kind is not None and _has_bias(p.kind):
            pairs.append((p.kind, v.kind))
    for layer, bn in pairs:
        report("NL504", cls.file.path, layer.call,
               f"`{cls.name}` feeds {layer.name}(...) with its bias straight into {bn.name}: the batch mean "
               "subtracts the bias again, so it is a wasted parameter; pass `bias=False`")
