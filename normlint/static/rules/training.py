"""NL5: training setup (weight decay on norm gains, affine-free norms)."""

from __future__ import annotations

import ast

from ..index import ClassInfo, FileInfo
from ..model import Analysis, walk_kind
from ..flow import reaches, is_transparent
from .common import Reporter

_OPTIMIZERS = {"AdamW": 0.01, "Adam": 0.0, "SGD": 0.0, "RMSprop": 0.0, "Adagrad": 0.0, "Adamax": 0.0,
               "NAdam": 0.0, "RAdam": 0.0, "Adadelta": 0.0, "Lion": 0.0, "LAMB": 0.0, "Lamb": 0.0}


def check_class(a: Analysis, cls: ClassInfo, report: Reporter) -> None:
    if not report.on("NL502"):
        return
    flow = a.flow(cls)
    for sub in a.model(cls).submodules.values():
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
    if not report.on("NL501"):
        return
    text = info.parsed.text
    if ".parameters()" not in text and "decay" not in text:
        return  # neither an optimizer over all parameters nor a no_decay list: skip the walk
    for node in ast.walk(info.parsed.tree):
        if isinstance(node, ast.Call):
            _optimizer(info, node, report)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and "decay" in node.targets[0].id.lower() and isinstance(node.value, (ast.List, ast.Tuple, ast.Set)):
            _no_decay(a, info, node, report)


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


def _no_decay(a: Analysis, info: FileInfo, node: ast.Assign, report: Reporter) -> None:
    entries = [e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    if not entries or len(entries) != len(node.value.elts):
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
