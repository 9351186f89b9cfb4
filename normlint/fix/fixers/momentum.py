"""NL503: a BatchNorm ``momentum`` written in the TensorFlow/Keras convention.

Keras keeps ``running = momentum * running + (1 - momentum) * batch`` (momentum 0.99);
PyTorch keeps ``running = (1 - momentum) * running + momentum * batch`` (default 0.1).
``momentum=m`` becomes ``momentum=1 - m`` (a literal is computed exactly: 0.99 -> 0.01).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import libcst as cst

from ...findings import Finding, Fix
from ..catalog import UNSAFE
from ..tree import SourceTree, find, parenthesize


def _is_momentum(n: cst.CSTNode) -> bool:
    return isinstance(n, cst.Arg) and n.keyword is not None and n.keyword.value == "momentum"


def _complement(value: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(value, (cst.Float, cst.Integer)) and not value.lpar:
        try:
            result = Decimal(1) - Decimal(value.value.replace("_", ""))
        except InvalidOperation:
            result = None
        if result is not None and result.is_finite():
            text = format(result.normalize(), "f")
            if "." not in text and isinstance(value, cst.Float):
                text += ".0"
            return cst.Float(text) if "." in text else cst.Integer(text)
    return cst.BinaryOperation(cst.Integer("1"), cst.Subtract(), parenthesize(value))


def convert_momentum(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    parent = tree.parent(node)
    if _is_momentum(parent) and parent.value is node:
        value = node                       # the anchor: the keyword's value
    else:
        arg = node if _is_momentum(node) else find(node, _is_momentum)
        if arg is None:
            return None
        value = arg.value
    new = _complement(value)
    return tree.fix(f"Use PyTorch's convention: `momentum={tree.module.code_for_node(new)}` "
                    f"(1 - {tree.code(value)})", {value: new}, UNSAFE)
