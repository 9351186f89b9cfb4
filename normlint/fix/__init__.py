"""Autofix: libcst rewrites of what the static engine finds (``normlint check --fix``).

Detection stays on ``ast``; fixes are computed afterwards, only for files that have a
finding whose rule has a fixer, and only from the finding's span, code and ``fix_facts``
(never by re-running the analysis). One module per job:

- ``catalog``: which codes are fixable, how safely, and where their fixer lives (no libcst);
- ``tree``: a file's libcst tree, positions and parents; node replacement -> edits;
- ``fixers/``: one module per family of rules;
- ``attach``: fills ``Finding.fix`` (display-only suggestions for everything else);
- ``text``: line/column arithmetic, minimal edits between two texts, applying edits;
- ``apply`` and ``verify``: bounded passes over a component, each re-parsed and re-checked;
- ``run``: a whole check run; ``write``: atomic writes that keep encoding, BOM, mode;
- ``noqa``: ``--add-noqa``; ``api``: ``normlint.fix_source``.
"""
