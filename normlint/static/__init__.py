"""The static engine: reads source with CPython's ast, never imports the checked code or torch.

How it understands a model (issue 9), bottom-up:

- ``index.py``: the project index (classes, bases, imports, constants across files).
- ``modules.py``: the module model — what each ``__init__`` builds (kinds, containers,
  stacks and depth; factory functions; wrappers specialised by the module they receive).
- ``flow.py``: the forward dataflow — an SSA-style walk with path conditions, loops and
  early returns, helpers and wrapper modules inlined, residual adds found by ancestry.
- ``summary.py``: module summaries composed from those — placement, starts/ends with a norm.
- ``layouts.py``: abstract axes (batch / sequence / feature) of every value.
- ``handnorm.py``: norms recognised by structure, with their statistics and eps.
- ``ctor.py``: a constructor rewritten in another class's terms (fix facts).
- ``model.py``: one run's analysis state, caching all of the above for the rules.
- ``rules/``: one module per rule family; each rule asks the model, never the syntax.
"""
