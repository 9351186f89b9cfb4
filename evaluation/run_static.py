"""Run `normlint check` (default rules) over the real corpora and score it against the triage.

    python evaluation/run_static.py [--corpora DIR] [--out DIR] [--python PY] [NAME ...]
    python evaluation/run_static.py --fresh --corpora DIR --out DIR     # the FRESH set

Fetches the corpora that are missing (evaluation/corpora.py), checks each one in one
process with no cache, and writes to --out (default evaluation/results/):

- `static_findings.csv`: every warning and error (the rows to triage);
- `static_counts.json`: the engine's commit, per corpus its version, files, lines and
  findings per rule and severity;
- `static_precision.json`: precision over the triaged findings, overall and per rule, on
  the corpora the engine was tuned on, on the others, and on the fresh set (`--fresh`:
  the corpora of `corpora.FRESH`, scored on their own so the older figures stay as
  they were).

It prints the precision tables and every finding that `evaluation/triage.csv` does not
judge yet (judge those, then rerun). `--python` picks the interpreter whose `normlint` is
measured, e.g. another worktree's `.venv/bin/python`, so one checkout of this script can
score any branch's engine.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpora import BY_NAME, CORPORA, FRESH, TUNED_ON, checked_files, fetch  # noqa: E402

VISION = {"timm", "torchvision"}
TRIAGE = HERE / "triage.csv"


def engine_info(python: str) -> dict[str, str]:
    """Which normlint ``python`` imports — the checkout its ``normlint.__file__`` lies in,
    not the current directory — so results say which engine they measure: ``path`` (the
    package folder), ``commit`` (the last commit that changed it, ``-dirty`` when its files
    are edited) and ``describe`` (``git describe --always --dirty`` of that checkout)."""
    # Run from a neutral folder, as run_corpus does: `python -c` puts the current directory
    # first on sys.path, so from a repository root it would import that checkout's normlint
    # instead of the one the interpreter has installed.
    with tempfile.TemporaryDirectory() as neutral:
        where = subprocess.run([python, "-c", "import normlint, os; print(os.path.dirname(os.path.abspath(normlint.__file__)))"],
                               capture_output=True, text=True, check=True, cwd=neutral).stdout.strip()
    git = ["git", "-C", where]
    commit = subprocess.run([*git, "log", "-1", "--format=%h", "--", "."], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True, text=True).stdout.strip()
    describe = subprocess.run([*git, "describe", "--always", "--dirty"], capture_output=True,
                              text=True).stdout.strip()
    return {"path": where, "commit": (commit or "unknown") + ("-dirty" if dirty else ""),
            "describe": describe or "unknown"}


# `python -m normlint` from a corpus root would put that root first on sys.path, and a
# corpus module named like a standard one (litgpt's `types.py`) would shadow it: run the
# command line as its console script does, with the corpus out of the import path.
_NORMLINT_MAIN = "import sys; sys.path.pop(0); import runpy; runpy.run_module('normlint', run_name='__main__')"


def run_corpus(python: str, root: Path, name: str) -> list[dict]:
    files = checked_files(root, BY_NAME[name])
    proc = subprocess.run([python, "-c", _NORMLINT_MAIN, "check", "--output-format", "json", "--exit-zero",
                           "--no-cache", *files], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"normlint failed on {name}: {proc.stderr.strip()}")
    findings = json.loads(proc.stdout)
    for f in findings:
        f["corpus"] = name
    return findings


def read_triage(path: Path = TRIAGE) -> dict[tuple[str, str, int, str], dict]:
    with path.open(newline="") as fh:
        return {(r["corpus"], r["path"], int(r["line"]), r["code"]): r for r in csv.DictReader(fh)}


def precision(rows: list[dict]) -> dict:
    """Precision overall and per rule over triaged rows (``verdict`` TP or FP)."""
    def score(rs: list[dict]) -> dict:
        tp = sum(r["verdict"] == "TP" for r in rs)
        return {"tp": tp, "fp": len(rs) - tp, "precision": round(tp / len(rs), 4) if rs else None}

    by_rule: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_rule[r["code"]].append(r)
    return {"overall": score(rows), "per_rule": {c: score(rs) for c, rs in sorted(by_rule.items())}}


def _table(title: str, result: dict) -> str:
    lines = [title, "| rule | TP | FP | precision |", "| --- | --- | --- | --- |"]
    for code, s in [*result["per_rule"].items(), ("all", result["overall"])]:
        p = "—" if s["precision"] is None else f"{s['precision']:.1%}"
        lines.append(f"| {code} | {s['tp']} | {s['fp']} | {p} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="corpora to run (default: all)")
    ap.add_argument("--corpora", default="/tmp/normlint-corpora", help="where the corpora are (or go)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--python", default=sys.executable, help="interpreter whose normlint is measured")
    ap.add_argument("--fresh", action="store_true", help="run the fresh set (corpora.FRESH) instead of CORPORA")
    args = ap.parse_args(argv)
    names = args.names or [c.name for c in (FRESH if args.fresh else CORPORA)]
    corpora = Path(args.corpora)
    manifest = fetch(corpora, names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    engine = engine_info(args.python)

    findings: list[dict] = []
    for name in names:
        findings += run_corpus(args.python, corpora / name, name)
    counts = {name: {**manifest[name], "findings": dict(sorted(
        Counter(f"{f['code']} {f['severity']}" for f in findings if f["corpus"] == name).items()))}
        for name in names}
    (out / "static_counts.json").write_text(json.dumps({"engine": engine["commit"], "describe": engine["describe"],
                                                        "corpora": counts}, indent=2) + "\n")
    reportable = [f for f in findings if f["severity"] in ("warning", "error")]
    with (out / "static_findings.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["corpus", "path", "line", "code", "severity", "message"])
        for f in reportable:
            w.writerow([f["corpus"], f["path"], f["line"], f["code"], f["severity"], f["message"]])

    print(f"engine: normlint at {engine['path']} ({engine['commit']}, checkout {engine['describe']})")
    vision_bad = [f for f in reportable if f["corpus"] in VISION and f["code"][:3] in ("NL1", "NL2")]
    print(f"NL1xx/NL2xx warnings on vision code (timm, torchvision): {len(vision_bad)}")

    triage = read_triage()
    fresh = {c.name for c in FRESH}
    judged = {"tuned_on": [], "new": [], "fresh": []}
    missing = []
    for f in reportable:
        key = (f["corpus"], f["path"], f["line"], f["code"])
        if key in triage:
            group = "tuned_on" if f["corpus"] in TUNED_ON else "fresh" if f["corpus"] in fresh else "new"
            judged[group].append(triage[key])
        else:
            missing.append(f)
    scores = {"engine": engine["commit"], "describe": engine["describe"], "untriaged": len(missing),
              **{group: precision(rows) for group, rows in judged.items()},
              "all": precision(judged["tuned_on"] + judged["new"])}
    (out / "static_precision.json").write_text(json.dumps(scores, indent=2) + "\n")
    if args.fresh:
        print(_table("\nprecision, the fresh corpora:", scores["fresh"]))
    else:
        print(_table("\nprecision, corpora never tuned on:", scores["new"]))
        print(_table("\nprecision, the four corpora tuned on:", scores["tuned_on"]))
    print(f"\ntriaged {len(reportable) - len(missing)}/{len(reportable)} warnings and errors")
    for f in missing:
        print("not triaged:", f["corpus"], f["path"], f["line"], f["code"], f["message"])


if __name__ == "__main__":
    main()
