"""NL304: one norm module called at two sites of a forward.

    self.norm = nn.LayerNorm(d)             self.norm = nn.LayerNorm(d)
                                     ->     self.norm_2 = nn.LayerNorm(d)
    ...                                     ...
    x = x + self.ff(self.norm(x))           x = x + self.ff(self.norm_2(x))

The second norm is built by the same constructor call, registered right after the first
(same scope, so the same names are in reach). New parameters: checkpoints saved before the
fix do not have them, hence unsafe. When the analysis says the class registers a norm of the
same kind that it never uses (fix fact ``meant``), that norm is called at the second site
instead; when the reuse comes from one block object shared by two parents (``object:
shared``) or a fix would leave a mixed pre/post block (``mechanical: no``), there is no
mechanical fix.
"""

from __future__ import annotations

import libcst as cst

from ...findings import Finding, Fix
from ..catalog import UNSAFE
from ..tree import (SourceTree, assigned_value, assignment_to_self, find, fresh_name, method, names_in,
                    self_assignment, self_attr)


def second_norm(tree: SourceTree, finding: Finding, node: cst.CSTNode) -> Fix | None:
    facts = dict(finding.fix_facts)
    if facts.get("object") == "shared" or facts.get("mechanical") == "no":
        # one block object held by two parents (another holder would share it too), or a
        # reuse whose fix the analysis knows would leave a mixed pre/post block
        return None
    call = node if isinstance(node, cst.Call) and self_attr(node.func) else \
        find(node, lambda n: isinstance(n, cst.Call) and self_attr(n.func) is not None)
    if call is None:
        return None
    attr = self_attr(call.func)
    meant = facts.get("meant")
    if meant:
        # the class registers a norm of the same kind that it never calls: the one meant here
        return tree.fix(f"Call `self.{meant}` here (registered, never used) instead of `self.{attr}`",
                        {call.func.attr: cst.Name(meant)}, UNSAFE)
    cls = tree.enclosing(call, cst.ClassDef)
    init = method(cls, "__init__") if cls is not None else None
    registered = assignment_to_self(tree, init, attr) if init is not None else []
    if len(registered) != 1:
        return None     # inherited, or assigned in several places: the reader picks
    new = fresh_name(names_in(cls), f"{attr}_2", f"{attr}_second")
    ctor = assigned_value(registered[0])
    replacements = {
        registered[0]: cst.FlattenSentinel([registered[0], self_assignment(new, ctor)]),
        call.func.attr: cst.Name(new),
    }
    return tree.fix(f"Register `self.{new}` (built like `self.{attr}`) and call it at this site",
                    replacements, UNSAFE)
