"""The fix tree finds a node's parent by descending along covering positions (fix/tree.py's
Parents); it must agree with libcst's ParentNodeProvider on every node."""

from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

from normlint.fix.tree import Parents

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SOURCES = sorted(FIXTURES.glob("NL3*/*.py"))[:4]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_parents_agree_with_the_provider(path):
    module = cst.parse_module(path.read_text(encoding="utf-8"))
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    exact = wrapper.resolve(ParentNodeProvider)
    for node in list(positions)[::3]:
        parents = Parents(module, positions)     # fresh: each node found by its own descent
        assert parents.get(node) is exact.get(node), type(node).__name__


def test_a_syntactic_node_is_found_without_the_provider():
    module = cst.parse_module("class A:\n    def f(self, x):\n        return self.norm(x) + x\n")
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    call = next(n for n in positions if isinstance(n, cst.Call))
    parents = Parents(module, positions)
    assert isinstance(parents[call], cst.BinaryOperation)
    assert parents._exact is None          # the descent answered; the whole-tree map was not built
