"""The mutation benchmark's own machinery: every mutator writes parseable code that differs
from the original only at its site, the sample is drawn mechanically, contexts resolve."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "evaluation"))

import mutators  # noqa: E402
from corpora import Corpus  # noqa: E402
from mutate import draw, imported_files  # noqa: E402

FIXTURE = (Path(__file__).parent / "mutation_fixture.py").read_text()
ALL = mutators.mutants(FIXTURE)


def _changed_lines(a: str, b: str) -> set[int]:
    return {i for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), 1) if x != y}


@pytest.mark.parametrize("mutator", mutators.MUTATORS, ids=lambda m: m.__name__)
def test_each_mutator_finds_a_site_in_the_fixture(mutator):
    assert [m for m in ALL if m.mutator == mutator.__name__]


def test_every_static_rule_is_injected():
    assert {m.rule for m in ALL} == set(mutators.RULES)


@pytest.mark.parametrize("mutant", ALL, ids=lambda m: f"{m.mutator}-{m.rule}-{m.line}")
def test_mutant_parses_keeps_lines_and_changes_only_its_site(mutant):
    new = mutators.check(FIXTURE, mutant)
    assert new != FIXTURE
    assert new.count("\n") == FIXTURE.count("\n")
    ast.parse(new)
    allowed = {line for e in mutant.edits for line in range(e.line, e.end_line + 1)}
    assert _changed_lines(FIXTURE, new) <= allowed
    assert mutant.scope[0] <= mutant.line <= mutant.scope[1]


def _one(name: str, note: str = "") -> tuple[mutators.Mutant, list[str]]:
    m = next(m for m in ALL if m.mutator == name and m.note.startswith(note))
    return m, mutators.apply(FIXTURE, m.edits).splitlines()


def _line(text: str) -> int:
    return next(i for i, s in enumerate(FIXTURE.splitlines(), 1) if text in s)


def test_drop_final_norm_anchors_at_the_loop_and_empties_the_norm_line():
    m, lines = _one("drop_final_norm")
    assert m.rule == "NL302" and m.line == _line("for layer in self.layers:")
    assert lines[_line("x = self.norm(x)") - 1].strip() == ""


def test_rebind_residual_renames_the_normalized_value_up_to_the_add():
    m, lines = _one("rebind_residual")
    assert m.line == _line("h = self.norm1(x)")
    assert lines[m.line - 1].strip() == "x = self.norm1(x)"
    assert lines[m.line].strip() == "x = x + self.attn(x, attention_mask)"


def test_alias_modulelist_repeats_one_instance():
    m, lines = _one("alias_modulelist")
    assert lines[m.line - 1].strip() == "[Block(d)] * (depth)"
    ast.parse("\n".join(lines))


def test_reuse_norm_calls_the_first_norm_at_the_second_site():
    m, lines = _one("reuse_norm")
    assert "self.ff(self.norm1(x))" in lines[m.line - 1]


def test_ln_to_bn1d_expects_nl101_only_with_sequence_evidence():
    codes = {m.rule for m in ALL if m.mutator == "ln_to_bn1d"}
    assert codes == {"NL101", "NL201"}          # the fixture's forwards take attention_mask
    without = FIXTURE.replace("attention_mask", "extra")
    assert {m.rule for m in mutators.mutants(without) if m.mutator == "ln_to_bn1d"} == {"NL201"}


def test_momentum_and_affine_and_bias_edits():
    _, lines = _one("tf_momentum")
    assert "nn.BatchNorm2d(c, momentum=0.9)" in "\n".join(lines)
    _, lines = _one("conv_bias_before_bn")
    assert "bias=True" in lines[_line("self.conv = nn.Conv2d") - 1]
    assert any("elementwise_affine=False" in s for s in _one("disable_affine")[1])


def test_numerics_edits():
    assert "1e-12" in _one("eps_1e12")[1][_line("def __init__(self, d, eps=1e-5)") - 1]   # RMSNorm upcasts: skipped
    lines = _one("drop_upcast")[1]
    assert lines[_line("x = x.float()") - 1].strip() == "x = x"
    assert "unbiased" not in _one("unbiased_var")[1][_line("var = x.var(") - 1]
    assert "(torch.sqrt(var) + self.eps)" in _one("eps_outside_sqrt")[1][_line("torch.sqrt(var + self.eps)") - 1]
    dropped = {tuple(_one("drop_eps")[1])}
    assert any("torch.rsqrt(ms)" in s for s in next(iter(dropped)))
    assert "(k / k.norm(dim=-1, keepdim=True))" in _one("normalize_by_hand")[1][_line("F.normalize") - 1]


def test_axis_edits_move_every_reduction():
    for name, dim in (("reduce_seq_axis", "1"), ("reduce_batch_axis", "0")):
        m, lines = _one(name, "LayerNorm:")
        assert lines[_line("mean = x.mean(-1") - 1].strip() == f"mean = x.mean({dim}, keepdim=True)"
        assert f"x.var({dim}," in lines[_line("var = x.var(") - 1]


def test_block_placement_edits():
    m, lines = _one("one_sublayer_post_norm")
    assert lines[m.line - 1].strip() == "x = self.norm2(x + self.ff(x))"
    m, lines = _one("drop_sublayer_norm")
    assert lines[_line("h = self.norm1(x)") - 1].strip() == "h = x"
    m, lines = _one("norm_twice")
    assert "self.norm1(self.norm2(x))" in lines[m.line - 1]
    m, lines = _one("deepen_post_norm")
    assert "num_layers=24" in lines[m.line - 1]
    m, lines = _one("decay_all_params")
    assert "torch.optim.AdamW(model.parameters()" in lines[m.line - 1]


def test_drop_norm_call_leaves_the_registration_unused():
    m, lines = _one("drop_norm_call")
    assert m.line == _line("self.q_norm = RMSNorm(d)")
    assert lines[_line("q = self.q_norm(q)") - 1].strip() == ""


def test_overlapping_edits_are_refused():
    e = mutators.Edit(1, 0, 1, 5, "x")
    with pytest.raises(ValueError):
        mutators.apply("abcdef\n", [e, mutators.Edit(1, 3, 1, 6, "y")])


def test_draw_is_seeded_capped_and_round_robin():
    sites = {("m", "NL1"): [(c, f"{c}{i}.py", None) for c in "ab" for i in range(5)] + [("c", "c0.py", None)]}
    first = draw(sites, cap=3, seed=1)
    assert first == draw(sites, cap=3, seed=1)
    assert [s[0] for s in first] == ["a", "b", "c"]
    assert len(draw(sites, cap=100, seed=1)) == 11
    assert draw(sites, cap=11, seed=1) != draw(sites, cap=11, seed=2)


def test_context_is_the_files_a_file_imports(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    (tmp_path / "models" / "blocks.py").write_text("")
    (tmp_path / "layers.py").write_text("")
    (tmp_path / "utils.py").write_text("")
    text = "from .blocks import Block\nfrom ..layers import Norm\nfrom pkg.utils import x\nimport os\n"
    corpus = Corpus("pkg", "pkg==1", "", "pkg", ("**/*.py",), "test")
    assert imported_files(tmp_path, corpus, "models/model.py", text) == ["models/blocks.py", "layers.py", "utils.py"]


def test_triage_excludes_only_misses_judged_invalid():
    from mutate import _judged

    key = ("c", "p.py", "m", "NL302", 10)
    triage = {key: {"verdict": "invalid", "kind": "", "reason": "not a bug"}}
    row = {"corpus": "c", "path": "p.py", "mutator": "m", "rule": "NL302", "line": "10"}
    assert _judged({**row, "outcome": "missed"}, triage)["excluded"] is True
    assert _judged({**row, "outcome": "detected"}, triage)["excluded"] is False
    kept = _judged({**row, "outcome": "missed"}, {key: {"verdict": "miss", "kind": "case.py", "reason": "r"}})
    assert (kept["excluded"], kept["kind"]) == (False, "case.py")


def test_check_each_runs_clean_and_mutant_jobs_with_the_public_api(tmp_path):
    """The runner the benchmark uses, end to end on the fixture: the aliasing mutant gets an
    NL305 that its clean run has not."""
    import json
    import subprocess

    m = next(m for m in ALL if m.mutator == "alias_modulelist")
    jobs = []
    for name, text in (("clean", FIXTURE), ("mutant", mutators.check(FIXTURE, m))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.py").write_text(text)
        jobs.append({"id": name, "dir": str(tmp_path / name), "files": ["model.py"]})
    spec, out = tmp_path / "jobs.json", tmp_path / "out.jsonl"
    spec.write_text(json.dumps({"extend_select": [], "jobs": jobs}))
    subprocess.run([sys.executable, str(REPO / "evaluation" / "check_each.py"), str(spec), str(out)], check=True)
    res = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    new = {tuple(f) for f in res["mutant"]["findings"]} - {tuple(f) for f in res["clean"]["findings"]}
    # the benchmark counts a new finding anywhere in the class (anchors differ by a line or two)
    assert any(code == "NL305" and m.scope[0] <= line <= m.scope[1] for code, _, _, line in new)
