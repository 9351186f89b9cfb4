"""names.walk replaces ast.walk on the engine's hot paths: same nodes, same order."""

import ast
from pathlib import Path
import pytest

from normlint.static.names import walk

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# Every field kind that can hold something other than a node, or no node at all.
ODD = '''
def f(a, *, b=1, c, **k):
    global g
    nonlocal_free = {**k, "x": 1}
    match a:
        case Point(x, y=0, z=1):
            pass
        case {"k": v, **rest}:
            pass
    return [i async for i in a] if (x := 1) else lambda q=2: f"{q!r:>{a}}"

class C(Base, metaclass=M):
    def g(self):
        nonlocal_free: int = 3
        del self.x[1:2, ...]
        try:
            pass
        except ValueError as e:
            raise
'''


@pytest.mark.parametrize("source", [ODD, *(p.read_text(encoding="utf-8")
                                          for p in sorted(FIXTURES.rglob("*.py"))[:40])])
def test_walk_yields_what_ast_walk_yields_in_order(source):
    tree = ast.parse(source)
    assert [id(n) for n in walk(tree)] == [id(n) for n in ast.walk(tree)]


def test_walk_of_a_subtree_stays_in_it():
    tree = ast.parse(ODD)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    inside = {id(n) for n in ast.walk(cls)}
    assert {id(n) for n in walk(cls)} == inside
