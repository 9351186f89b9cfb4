"""``normlint server``: the static checks in an editor, over the Language Server Protocol.

Built on pygls (the ``lsp`` extra: ``pip install 'normlint[lsp]'``); nothing here is
imported by ``normlint check``.
"""
