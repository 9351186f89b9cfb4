"""Small helpers the rule families share."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable

from ...findings import Severity
from ..context import RuleContext
from ..flow import Value, exclusive, is_transparent, root
from ..modules import Kind


@dataclass
class Reporter:
    """ctx.report with de-duplication: a helper inlined into several forwards is one finding."""

    ctx: RuleContext
    seen: set = field(default_factory=set)

    def __call__(self, code: str, path: str, node: ast.AST, message: str,
                 severity: Severity | None = None, fix_facts: tuple[tuple[str, str], ...] = ()) -> None:
        key = (code, path, getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
        if key in self.seen or not self.ctx.is_enabled(code):
            return
        self.seen.add(key)
        self.ctx.report(code, path, node, message, severity, fix_facts=fix_facts)

    def on(self, *codes: str) -> bool:
        return any(self.ctx.is_enabled(c) for c in codes)


ReportFn = Callable[..., None]


def describe(kind: Kind | None) -> str:
    if kind is None:
        return "module"
    return kind.name or kind.category


def ref(v: Value) -> str:
    """How a message names the callee of a value: `self.norm1`, `F.layer_norm`."""
    if v.attr:
        return f"self.{v.attr}"
    if v.kind is not None and v.kind.name:
        return v.kind.name
    return v.text()


_ACT_FUNCS = {"relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "elu", "mish", "hardswish",
              "softplus", "dropout"}


def producer(v: Value) -> Value:
    """The value behind casts, dropout and activations (shape-preserving steps)."""
    for _ in range(32):
        v = root(v)
        if v.op == "call" and v.kind is not None and v.kind.category == "act" and v.inputs:
            v = v.inputs[0]
        elif v.op == "func" and v.name and v.name.rsplit(".", 1)[-1] in _ACT_FUNCS and v.inputs:
            v = v.inputs[0]
        elif v.op == "method" and v.name in _ACT_FUNCS and v.inputs:
            v = v.inputs[0]
        else:
            return v
    return v


__all__ = ["Reporter", "describe", "ref", "producer", "exclusive", "is_transparent", "root"]
