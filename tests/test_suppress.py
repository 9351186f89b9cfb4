from __future__ import annotations

from normlint.findings import Engine, Finding, Severity
from normlint.suppress import Suppressions


def _f(code, line):
    return Finding(code, "x", Severity.WARNING, Engine.STATIC, "m.py", line, 1, "msg")


SOURCE = """\
a = 1  # noqa: NL101, NL202
b = "# noqa: NL303"
c = 3  # NOQA
d = 4  #noqa:NL304
e = 5  # noqa: E501
"""


def test_line_level_codes():
    sup = Suppressions.parse(SOURCE)
    assert sup.suppresses(_f("NL101", 1)) and sup.suppresses(_f("NL202", 1))
    assert not sup.suppresses(_f("NL303", 1))
    assert not sup.suppresses(_f("NL303", 2)), "a noqa inside a string is not a comment"
    assert sup.suppresses(_f("NL999", 3)), "bare noqa suppresses every code on its line"
    assert sup.suppresses(_f("NL304", 4))
    assert not sup.suppresses(_f("NL101", 5))


def test_file_level():
    assert Suppressions.parse("# normlint: noqa\nx = 1\n").suppresses(_f("NL101", 2))
    sup = Suppressions.parse("x = 1\n# normlint: noqa: NL101\n")
    assert sup.suppresses(_f("NL101", 1)) and not sup.suppresses(_f("NL202", 1))


def test_unused_reports_only_enabled_static_codes():
    sup = Suppressions.parse(SOURCE + "f = 6  # noqa: NL405, NL777\n")
    sup.suppresses(_f("NL101", 1))
    enabled = frozenset({"NL101", "NL202", "NL304", "NL405", "NL901"})
    unused = sup.unused("m.py", enabled)
    got = [(f.line, f.column, f.message) for f in unused]
    assert got == [
        (1, 8, "unused `noqa` directive: no NL202 (norm-over-sequence-axis) on this line"),
        (4, 8, "unused `noqa` directive: no NL304 (norm-instance-reused) on this line"),
        # NL405 is runtime-only: a static run cannot use it, so it is not "unused"
        (6, 8, "`# noqa: NL777` names an unknown normlint code"),
    ]
    assert all(f.code == "NL901" for f in unused)
    assert sup.unused("m.py", enabled - {"NL901"}) == []


def test_unparsable_source_has_no_suppressions():
    sup = Suppressions.parse("x = (  # noqa: NL101\n")
    assert sup.lines == {} and not sup.file_all
