"""NL302 (a pre-norm stack without a final norm) and NL305 (one module repeated: ``[m] * n``)."""

from __future__ import annotations

import libcst as cst

from ...findings import Edit, Finding, Fix
from ..catalog import UNSAFE
from ..tree import (SourceTree, append_arg, assignment_to_self, dotted, expression, find, fresh_name,
                    identifiers, keyword_arg, method, names_in, self_assignment)

# -- NL302 ------------------------------------------------------------------------------


def final_norm(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    """Needs the analysis' facts: the norm's constructor (kind and width, as the file spells
    them), the stream variable and the stack attribute. Without them: display-only."""
    facts = dict(finding.fix_facts)
    ctor_text = facts.get("norm_ctor")
    if not ctor_text:
        return None
    try:
        ctor = expression(ctor_text)
    except cst.ParserSyntaxError:
        return None
    stack_attr = facts.get("stack_attr")
    call = node if isinstance(node, cst.Call) else None
    if call is not None and (stack_attr is None or dotted(call.func) != f"self.{stack_attr}"):
        # nn.TransformerEncoder(layer, n) without norm=: pass the final norm to the constructor
        if any(a.keyword is not None and a.keyword.value == "norm" for a in call.args):
            return None
        new = append_arg(call, keyword_arg("norm", ctor))
        if not any(a.keyword is not None and a.keyword.value == "enable_nested_tensor" for a in call.args):
            # norm_first layers never use nested tensors; saying so silences PyTorch's warning
            new = append_arg(new, keyword_arg("enable_nested_tensor", cst.Name("False")))
        return tree.fix(f"Pass `norm={ctor_text}` to the stack's constructor", {call: new}, UNSAFE)
    stream = facts.get("stream")
    if not stack_attr or (call is None and not stream):
        return None
    cls = tree.enclosing(node, cst.ClassDef)
    init = method(cls, "__init__") if cls is not None else None
    registered = assignment_to_self(tree, init, stack_attr) if init is not None else []
    if len(registered) != 1:
        return None
    attr = fresh_name(names_in(cls), "norm", "final_norm", "norm_f")
    replacements: dict = {registered[0]: cst.FlattenSentinel([registered[0], self_assignment(attr, ctor)])}
    if call is not None:       # x = self.layers(x) -> x = self.norm(self.layers(x))
        replacements[call] = cst.Call(func=expression(f"self.{attr}"), args=[cst.Arg(call)])
    else:
        loop = node if isinstance(node, cst.For) else find(node, lambda n: isinstance(n, cst.For))
        if loop is None or not isinstance(tree.parent(loop), cst.IndentedBlock):
            return None
        apply = cst.parse_statement(f"{stream} = self.{attr}({stream})\n")
        replacements[loop] = cst.FlattenSentinel([loop, apply])
    return tree.fix(f"Register `self.{attr} = {ctor_text}` and apply it after the last block of "
                    f"`self.{stack_attr}`", replacements, UNSAFE)


# -- NL305 ------------------------------------------------------------------------------


def _repeated(n: cst.CSTNode) -> tuple[cst.List, cst.BaseExpression] | None:
    """``[m] * n`` / ``n * [m]`` -> (the list, the count)."""
    if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Multiply):
        if isinstance(n.left, cst.List):
            return n.left, n.right
        if isinstance(n.right, cst.List):
            return n.right, n.left
    return None


def _deepcopy_name(tree: SourceTree) -> tuple[str, Edit | None] | None:
    """How to spell deepcopy here, and the import to add (None: already imported). None when
    the name ``copy`` means something else in this file."""
    outline = tree.outline
    if outline is None:
        return None
    if outline.imported("copy"):
        return "copy.deepcopy", None
    if outline.imported("copy", "deepcopy"):
        return "deepcopy", None
    if "copy" in outline.identifiers:
        return None
    return "copy.deepcopy", outline.add_import("import copy")


def fresh_instances(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    binop = node if _repeated(node) else find(node, lambda n: _repeated(n) is not None)
    if binop is None:
        return None
    lst, count = _repeated(binop)
    if len(lst.elements) != 1 or not isinstance(lst.elements[0], cst.Element):
        return None
    element = lst.elements[0].value
    loop_var = fresh_name(identifiers(element) | identifiers(count), "_", "_i")
    extra: tuple = ()
    if isinstance(element, cst.Call):
        item = element       # the constructor runs once per repetition
        how = f"call `{tree.code(element)}` once per layer"
    else:
        spelled = _deepcopy_name(tree)
        if spelled is None:
            return None
        name, import_edit = spelled
        item = cst.Call(func=expression(name), args=[cst.Arg(element)])
        how = f"copy `{tree.code(element)}` once per layer (`{name}`)"
        extra = (import_edit,) if import_edit is not None else ()
    comp = cst.ListComp(
        elt=item,
        for_in=cst.CompFor(target=cst.Name(loop_var),
                           iter=cst.Call(func=cst.Name("range"), args=[cst.Arg(count.with_changes(lpar=(), rpar=()))
                                                                       if hasattr(count, "lpar") else cst.Arg(count)])),
        lpar=binop.lpar, rpar=binop.rpar)
    return tree.fix(f"Build a fresh module per layer: {how}", {binop: comp}, UNSAFE, extra)
