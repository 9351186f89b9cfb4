"""Property-based: no generated program makes the static engine raise.

hypothesmith generates syntactically valid Python from the grammar; each program goes
through ``check_source`` as it is, and as the body of an ``nn.Module.forward`` next to a
norm (so the module model and the rules have something to chew on). The suite's conftest
makes the analysis strict, so an exception in any rule fails here instead of being
swallowed per class as in a user's run.

Bounded for CI: compiling hypothesmith's grammar costs a few seconds once, each example
~0.1 s; the example counts below keep the module at about ten seconds on a loaded 2-core
machine. Hypothesis' own CI profile (picked up from the CI environment variable) makes
the examples deterministic there.
"""

from __future__ import annotations

import textwrap

import pytest

hypothesis = pytest.importorskip("hypothesis")
hypothesmith = pytest.importorskip("hypothesmith")

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from normlint import Finding, check_source  # noqa: E402
from normlint.suppress import Suppressions  # noqa: E402

pytestmark = pytest.mark.slow

BOUNDED = settings(max_examples=25, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))

MODULE = """\
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)

    def forward(self, x):
{body}
        x = x + self.fc(self.norm(x))
        return self.norm(x)
"""


def _check(source: str) -> list[Finding]:
    findings = check_source(source, select=["ALL"])
    assert all(isinstance(f, Finding) and f.line >= 1 and f.column >= 1 for f in findings)
    return findings


@BOUNDED
@given(hypothesmith.from_grammar())
def test_generated_programs_never_raise(source):
    _check(source)


@BOUNDED
@given(hypothesmith.from_grammar(auto_target=False))
def test_generated_statements_inside_a_module_forward_never_raise(source):
    _check(MODULE.format(body=textwrap.indent(source, " " * 8) or "        pass"))


_CODE_LIKE = st.from_regex(r"\A[A-Za-z]{0,3}[0-9]{0,4}\Z")


@settings(max_examples=200, deadline=None, database=None)
@given(colon=st.sampled_from([":", " :", "\uff1a", ": ", ":\t"]),
       items=st.lists(st.one_of(_CODE_LIKE, st.text(max_size=6)), max_size=4),
       separator=st.sampled_from([",", ", ", " ", ",,", "\uff0c"]))
def test_a_noqa_with_a_colon_is_never_a_blanket_suppression(colon, items, separator):
    comment = f"# noqa{colon}{separator.join(items)}".replace("\n", " ").replace("\r", " ")
    sup = Suppressions.parse(f"x = 1  {comment}\n")
    noqa = sup.lines.get(1)
    assert noqa is None or noqa.codes is not None, comment
    assert not sup.file_all


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=200))
def test_suppressions_parse_any_text(text):
    Suppressions.parse(text)
    Suppressions.parse(f"x = 1  # noqa{text}\n".replace("\r", " "))
