"""Each fixer on small inputs: what it rewrites, and where it must leave the code alone
(display-only). Findings are built by hand where the rule is not on this branch (NL503)."""

from __future__ import annotations

import ast
import textwrap

import pytest

from normlint import fix_source
from normlint.findings import Engine, Finding, Severity
from normlint.fix.attach import attach_fixes
from normlint.fix.catalog import DISPLAY_ONLY, SAFE, UNSAFE
from normlint.positions import apply_edits


def _finding(code: str, text: str, needle: str, occurrence: int = 1) -> Finding:
    """A finding anchored at the n-th occurrence of needle (its full span)."""
    start = -1
    for _ in range(occurrence):
        start = text.index(needle, start + 1)
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1)
    end = start + len(needle)
    end_line = text.count("\n", 0, end) + 1
    end_col = end - (text.rfind("\n", 0, end) + 1)
    return Finding(code=code, name="x", severity=Severity.WARNING, engine=Engine.STATIC, path="m.py",
                   line=line, column=col + 1, end_line=end_line, end_column=end_col + 1, message="m")


def _fix(code: str, text: str, needle: str, **kw):
    [f] = attach_fixes([_finding(code, text, needle, **kw)], {"m.py": text}, strict=True)
    return f.fix


def _fixed(code: str, text: str, needle: str, **kw) -> str:
    fix = _fix(code, text, needle, **kw)
    assert fix.edits, fix
    out = apply_edits(text, fix.edits)
    ast.parse(out)
    return out


BN = textwrap.dedent("""\
    import torch.nn as nn

    MOMENTUM = 0.99


    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a = nn.BatchNorm2d(c, momentum=0.99)
            self.b = nn.BatchNorm2d(c, momentum=MOMENTUM)
            self.c = nn.BatchNorm1d(c, momentum=self.m * 0.5 + 0.4)
            self.d = nn.BatchNorm1d(c, momentum=9e-1)
    """)


@pytest.mark.parametrize("needle,expected", [
    ("0.99)", "momentum=0.01)"),
    ("MOMENTUM)", "momentum=1 - MOMENTUM)"),
    ("self.m * 0.5 + 0.4", "momentum=1 - (self.m * 0.5 + 0.4))"),
    ("9e-1", "momentum=0.1)"),
])
def test_nl503_momentum_complement_at_the_keyword_value(needle, expected):
    needle = needle.rstrip(")")
    fix = _fix("NL503", BN, needle, occurrence=2 if needle in ("0.99", "MOMENTUM") else 1)
    assert fix.applicability == UNSAFE
    out = apply_edits(BN, fix.edits)
    assert expected in out
    assert out.count("\n") == BN.count("\n")


def test_nl503_anchored_at_the_call_finds_the_keyword():
    out = _fixed("NL503", BN, "nn.BatchNorm2d(c, momentum=0.99)")
    assert "nn.BatchNorm2d(c, momentum=0.01)" in out


def test_fixers_leave_what_they_cannot_rewrite_display_only():
    text = textwrap.dedent("""\
        import torch.nn as nn
        EPS = 1e-12


        class N(nn.Module):
            def forward(self, x):
                x = self.norm(x)
                if x.any():
                    x = x * 2
                return x
        """)
    # NL401 on a name bound elsewhere; NL303 whose residual is never added in the block
    assert _fix("NL401", text, "EPS = 1e-12".split(" = ")[0]).applicability == DISPLAY_ONLY
    assert _fix("NL303", text, "self.norm(x)").applicability == DISPLAY_ONLY
    # a rule without a fixer gets its hint
    fix = _fix("NL306", text, "self.norm")
    assert fix.applicability == DISPLAY_ONLY and fix.edits == () and "norm" in fix.message


def test_nl302_without_facts_is_display_only():
    text = "for layer in self.layers:\n    x = layer(x)\n"
    assert _fix("NL302", text, "for layer").applicability == DISPLAY_ONLY


def test_nl303_keeps_the_residual_and_renames_only_reads():
    text = textwrap.dedent("""\
        class B:
            def forward(self, x, h=None):
                x = self.norm(x)  # pre-norm
                y = self.attn(x, key=x, mask=self.x)
                x += self.drop(y) + x.mean()
                return x
        """)
    out = _fixed("NL303", text, "self.norm(x)")
    assert "        h_ = self.norm(x)  # pre-norm" not in out
    assert "x_normed = self.norm(x)  # pre-norm" in out      # `h` is taken: a parameter
    assert "y = self.attn(x_normed, key=x_normed, mask=self.x)" in out
    assert "x += self.drop(y) + x_normed.mean()" in out


def test_nl303_refuses_when_something_in_between_rebinds_the_variable():
    text = textwrap.dedent("""\
        class B:
            def forward(self, x):
                x = self.norm(x)
                for x in range(3):
                    pass
                x = x + self.f(x)
                return x
        """)
    assert _fix("NL303", text, "self.norm(x)").applicability == DISPLAY_ONLY


def test_nl304_registers_the_second_norm_after_the_first():
    text = textwrap.dedent("""\
        import torch.nn as nn


        class B(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.norm = nn.LayerNorm(
                    d,  # the width
                    eps=1e-5,
                )
                self.norm_2 = None

            def forward(self, x):
                x = x + self.f(self.norm(x))
                return x + self.g(self.norm(x))
        """)
    out = _fixed("NL304", text, "self.norm(x)", occurrence=2)
    assert "self.norm_second = nn.LayerNorm(\n            d,  # the width\n            eps=1e-5,\n        )\n" in out
    assert "return x + self.g(self.norm_second(x))" in out
    assert "x = x + self.f(self.norm(x))" in out


def test_nl305_comprehension_with_import_after_docstring_and_comments():
    text = textwrap.dedent('''\
        """Doc."""
        from __future__ import annotations

        # third-party
        import torch.nn as nn


        class E(nn.Module):
            def __init__(self, n, _):
                super().__init__()
                blk = nn.Linear(4, 4)
                self.a = nn.ModuleList(n * [blk])
                self.b = nn.Sequential(*([nn.ReLU()] * (n + 1)))
        ''')
    out = _fixed("NL305", text, "n * [blk]")
    assert out.startswith('"""Doc."""\nfrom __future__ import annotations\n\n# third-party\nimport copy\nimport torch.nn')
    assert "nn.ModuleList([copy.deepcopy(blk) for _ in range(n)])" in out   # the comprehension's own `_`
    out = _fixed("NL305", text, "[nn.ReLU()] * (n + 1)")
    assert "nn.Sequential(*([nn.ReLU() for _ in range(n + 1)]))" in out
    assert "import copy" not in out


def test_nl305_reuses_an_existing_import_and_refuses_a_shadowed_copy():
    text = "from copy import deepcopy\nclass E:\n    def __init__(self, m):\n        self.a = [m] * 3\n"
    assert "[deepcopy(m) for _ in range(3)]" in _fixed("NL305", text, "[m] * 3")
    shadowed = "class E:\n    def __init__(self, m, copy=True):\n        self.a = [m] * 3\n"
    assert _fix("NL305", shadowed, "[m] * 3").applicability == DISPLAY_ONLY


@pytest.mark.parametrize("stat,expected,applicability", [
    ("x.pow(2).mean(-1, keepdim=True)", "x.float().pow(2).mean(-1, keepdim=True).to(x.dtype)", SAFE),
    ("(x * x).mean(-1, keepdim=True)", "(x.float() * x.float()).mean(-1, keepdim=True).to(x.dtype)", SAFE),
    ("torch.mean(torch.square(self.h), -1)", "torch.mean(torch.square(self.h.float()), -1).to(self.h.dtype)", SAFE),
    ("x.var(-1, keepdim=True)", "x.float().var(-1, keepdim=True).to(x.dtype)", SAFE),
    ("((x - m) ** 2).mean(-1)", "((x - m).float() ** 2).mean(-1)", UNSAFE),
])
def test_nl402_upcasts_before_the_square(stat, expected, applicability):
    text = f"def f(x, m):\n    v = {stat} + 1e-6\n"
    fix = _fix("NL402", text, stat)
    assert fix.applicability == applicability
    assert apply_edits(text, fix.edits) == f"def f(x, m):\n    v = {expected} + 1e-6\n"


def test_nl402_casts_back_after_the_root_when_there_is_one():
    text = "def f(self, x):\n    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)\n"
    fix = _fix("NL402", text, "x.pow(2).mean(-1, keepdim=True)")
    assert fix.applicability == SAFE
    assert apply_edits(text, fix.edits).endswith(
        "x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps).to(x.dtype)\n")


def test_nl402_does_not_silence_a_square_computed_elsewhere():
    text = "def f(x):\n    s = x * x\n    return s.mean(-1)\n"
    assert _fix("NL402", text, "s.mean(-1)").applicability == DISPLAY_ONLY


@pytest.mark.parametrize("expr,expected", [
    ("x.std(-1)", "x.std(-1, correction=0)"),
    ("x.var(dim=-1, unbiased=True, keepdim=True)", "x.var(dim=-1, correction=0, keepdim=True)"),
    ("torch.std(x, -1)", "torch.std(x, -1, correction=0)"),
    ("x.std(\n        -1,\n        keepdim=True,\n    )", "x.std(\n        -1,\n        keepdim=True,\n        correction=0,\n    )"),
])
def test_nl403_biased_estimate(expr, expected):
    text = f"def f(x):\n    return {expr}\n"
    assert _fixed("NL403", text, expr) == f"def f(x):\n    return {expected}\n"


def test_nl403_positional_unbiased_is_display_only():
    text = "def f(x):\n    return x.std(-1, True)\n"
    assert _fix("NL403", text, "x.std(-1, True)").applicability == DISPLAY_ONLY


@pytest.mark.parametrize("expr,expected", [
    ("(x - m) / (x.std(-1) + self.eps)", "(x - m) / (x.var(-1) + self.eps).sqrt()"),
    ("(x - m) / (torch.sqrt(v) + 1e-5)", "(x - m) / (v + 1e-5).sqrt()"),
    ("(x - m) / (eps + s)", "(x - m) / (s ** 2 + eps).sqrt()"),
])
def test_nl403_eps_moves_inside_the_root(expr, expected):
    text = f"def f(self, x, m, v, s, eps):\n    return {expr}\n"
    assert _fixed("NL403", text, expr) == f"def f(self, x, m, v, s, eps):\n    return {expected}\n"


@pytest.mark.parametrize("expr,expected", [
    ("x / torch.sqrt(v)", "x / torch.sqrt(v + 1e-6)"),
    ("x * torch.rsqrt(v.mean(-1))", "x * torch.rsqrt(v.mean(-1) + 1e-6)"),
    ("x / v.sqrt()", "x / (v + 1e-6).sqrt()"),
    ("x / x.std(-1)", "x / (x.var(-1) + 1e-6).sqrt()"),
    ("x / (x.norm(dim=-1) * 2)", "x / (x.norm(dim=-1) * 2).clamp_min(1e-6)"),
])
def test_nl404_guards_the_denominator(expr, expected):
    text = f"def f(x, v):\n    return {expr}\n"
    assert _fixed("NL404", text, expr) == f"def f(x, v):\n    return {expected}\n"


def test_nl404_uses_the_class_eps_and_accepts_the_denominator_as_anchor():
    text = textwrap.dedent("""\
        class N:
            def __init__(self, eps=1e-5):
                self.eps = eps

            def forward(self, x, var):
                return x / torch.sqrt(var)
        """)
    out = _fixed("NL404", text, "torch.sqrt(var)")
    assert "return x / torch.sqrt(var + self.eps)" in out


@pytest.mark.parametrize("expr", [
    "x / x.amax(dim=-1, keepdim=True).detach()",    # a row's max can be negative: clamping flips its sign
    "x / x.sum(-1, keepdim=True)",
    "x / scale",
])
def test_nl404_never_clamps_a_denominator_that_can_be_negative(expr):
    fix = _fix("NL404", f"def f(x, scale):\n    return {expr}\n", expr)
    assert fix.applicability == DISPLAY_ONLY and not fix.edits


def test_nl404_clamps_a_name_bound_to_a_norm():
    text = "def f(d):\n    n = torch.norm(d, dim=-1)\n    return d / n\n"
    assert _fixed("NL404", text, "d / n") == "def f(d):\n    n = torch.norm(d, dim=-1)\n    return d / n.clamp_min(1e-6)\n"


def test_nl404_uses_self_eps_only_where_self_is_bound():
    text = textwrap.dedent("""\
        class N:
            def __init__(self, eps=1e-5):
                self.eps = eps

            @staticmethod
            def normalize(x, var):
                return x / torch.sqrt(var)
        """)
    assert "return x / torch.sqrt(var + 1e-6)" in _fixed("NL404", text, "torch.sqrt(var)")


def test_nl401_raises_only_literals_below_the_floor():
    text = "class N:\n    def __init__(self, eps=1e-12, other=1e-8):\n        pass\n"
    assert "eps=1e-6, other=1e-8" in _fixed("NL401", text, "1e-12")


@pytest.mark.parametrize("comment,expected", [
    ("# noqa: NL306", ""),
    ("# noqa: NL306, NL101", "  # noqa: NL101"),
    ("# noqa:NL101,NL306", "  # noqa:NL101"),
    ("# noqa: NL306 - reason", ""),
    ("# type: ignore  # noqa: NL306", "  # type: ignore"),
])
def test_nl901_removes_the_unused_code(comment, expected):
    text = f"x = 1  {comment}\ny = 2\n"
    f = Finding(code="NL901", name="unused-suppression", severity=Severity.WARNING, engine=Engine.STATIC,
                path="m.py", line=1, column=8, message="unused `noqa` directive: no NL306 (unused-norm) on this line",
                fix_facts=(("code", "NL306"),))
    [f] = attach_fixes([f], {"m.py": text}, strict=True)
    assert f.fix.applicability == SAFE
    assert apply_edits(text, f.fix.edits) == f"x = 1{expected}\ny = 2\n"


def test_a_comment_only_noqa_line_disappears():
    text = "x = 1\n# noqa: NL306\ny = 2\n"
    f = Finding(code="NL901", name="unused-suppression", severity=Severity.WARNING, engine=Engine.STATIC,
                path="m.py", line=2, column=1, message="unused `noqa` directive: no NL306 (unused-norm) on this line")
    [f] = attach_fixes([f], {"m.py": text}, strict=True)
    assert apply_edits(text, f.fix.edits) == "x = 1\ny = 2\n"


def test_fix_source_api_safe_by_default():
    from .test_fix_cli import RMSNORM as text   # an RMSNorm with a safe (NL402) and an unsafe (NL401) fix

    safe = fix_source(text)
    assert "torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps).to(x.dtype)" in safe.text
    assert [f.code for f in safe.applied] == ["NL402"]
    assert "x.float().pow(2)" in safe.text and "eps=1e-12" in safe.text
    assert [f.code for f in safe.remaining] == ["NL401"]
    everything = fix_source(text, unsafe_fixes=True)
    assert "eps=1e-6" in everything.text and everything.remaining == []
    assert fix_source(text, unsafe_fixes=True, unfixable=["NL401"]).text == safe.text
    assert fix_source(text, unsafe_fixes=True, fixable=["NL401"]).applied[0].code == "NL401"
    broken = "def f(:\n"
    assert fix_source(broken).text == broken


def test_nl901_reads_directives_as_suppress_does():
    def fixed(comment, code="NL306"):
        text = f"x = 1  {comment}\n"
        f = Finding(code="NL901", name="unused-suppression", severity=Severity.WARNING, engine=Engine.STATIC,
                    path="m.py", line=1, column=8, message=f"unused `noqa` directive: no {code} (x) on this line")
        [f] = attach_fixes([f], {"m.py": text}, strict=True)
        return f.fix if not f.fix.edits else apply_edits(text, f.fix.edits)

    assert fixed("# noqa NL306 NL101") == "x = 1  # noqa NL101\n"          # a list without its colon
    assert fixed("# NOQA : nl306,nl101 because") == "x = 1  # NOQA : NL101 because\n"
    malformed = fixed("# noqa: NL")
    assert malformed.applicability == DISPLAY_ONLY


def test_add_noqa_completes_a_malformed_directive():
    from normlint.fix.add_noqa import add_noqa

    f = Finding("NL402", "n", Severity.WARNING, Engine.STATIC, "m.py", 1, 1, "m")
    assert add_noqa("x = 1  # noqa: - why\n", [f]).text == "x = 1  # noqa: NL402 - why\n"
    assert add_noqa("x = 1  # noqa  (reviewed)\n", [f]).added == 0      # bare: covers it already
