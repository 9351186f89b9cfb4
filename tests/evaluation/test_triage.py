"""The committed evaluation data is well-formed and the scoring arithmetic is right."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "evaluation"))

from corpora import CORPORA, FRESH, TUNED_ON  # noqa: E402
from run_static import TRIAGE, precision, read_triage  # noqa: E402

RESULTS = REPO / "evaluation" / "results"


def test_every_triage_row_has_a_verdict_a_reason_and_fps_a_kind():
    with TRIAGE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = {c.name for c in (*CORPORA, *FRESH)}
    assert rows
    for r in rows:
        assert r["corpus"] in names, r
        assert r["verdict"] in ("TP", "FP"), r
        assert r["reason"].strip(), r
        assert int(r["line"]) > 0 and r["code"].startswith("NL")
        if r["verdict"] == "FP" and r["corpus"] not in TUNED_ON:
            assert r["case"].endswith(".py"), f"false positive without the case that stands for its kind: {r}"
    keys = [(r["corpus"], r["path"], r["line"], r["code"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_committed_findings_are_all_triaged():
    triage = read_triage()
    with (RESULTS / "static_findings.csv").open(newline="") as fh:
        found = [(r["corpus"], r["path"], int(r["line"]), r["code"]) for r in csv.DictReader(fh)]
    assert found and all(k in triage for k in found)


def test_precision_overall_and_per_rule():
    rows = [{"code": "NL302", "verdict": "TP"}, {"code": "NL302", "verdict": "FP"},
            {"code": "NL404", "verdict": "FP"}, {"code": "NL401", "verdict": "TP"}]
    p = precision(rows)
    assert p["overall"] == {"tp": 2, "fp": 2, "precision": 0.5}
    assert p["per_rule"]["NL302"]["precision"] == 0.5
    assert p["per_rule"]["NL404"] == {"tp": 0, "fp": 1, "precision": 0.0}
    assert precision([])["overall"]["precision"] is None


def test_committed_precision_matches_the_triage():
    committed = json.loads((RESULTS / "static_precision.json").read_text())
    triage = read_triage()
    with (RESULTS / "static_findings.csv").open(newline="") as fh:
        judged = [triage[(r["corpus"], r["path"], int(r["line"]), r["code"])] for r in csv.DictReader(fh)
                  if r["corpus"] not in TUNED_ON]
    assert committed["new"] == precision(judged)


@pytest.mark.parametrize("run", ["fresh-before", "fresh-after"])
def test_fresh_corpora_results_are_triaged_and_scored(run):
    """The fresh corpora's runs (before any fix, and after) are judged row by row, and their
    committed precision is the triage's."""
    triage = read_triage()
    fresh = {c.name for c in FRESH}
    with (RESULTS / run / "static_findings.csv").open(newline="") as fh:
        found = [(r["corpus"], r["path"], int(r["line"]), r["code"]) for r in csv.DictReader(fh)]
    assert found and {k[0] for k in found} <= fresh
    assert all(k in triage for k in found)
    committed = json.loads((RESULTS / run / "static_precision.json").read_text())
    assert committed["fresh"] == precision([triage[k] for k in found])
    assert not {c.name for c in CORPORA} & fresh
