"""Run `normlint check` over the real corpora and score it against the committed triage.

    python evaluation/run_static.py [--corpora DIR] [--out evaluation/results]

Writes `static_findings.csv` (every warning and error, the rows to triage) and
`static_counts.json` (per corpus and rule), and, when `evaluation/triage.csv` exists,
prints precision over the triaged warnings and lists findings not triaged yet.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpora import fetch  # noqa: E402

# which files of each corpus are model code
PATTERNS = {
    "transformers": ["*/modeling_*.py"],
    "timm": ["models/**/*.py", "layers/**/*.py"],
    "x-transformers": ["*.py"],
    "torchvision": ["models/**/*.py", "ops/**/*.py"],
}
VISION = {"timm", "torchvision"}


def run_corpus(root: Path, name: str) -> list[dict]:
    files = sorted({str(p.relative_to(root)) for pat in PATTERNS[name] for p in root.glob(pat)})
    proc = subprocess.run([sys.executable, "-m", "normlint", "check", "--output-format", "json",
                           "--exit-zero", *files], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"normlint failed on {name}: {proc.stderr.strip()}")
    findings = json.loads(proc.stdout)
    for f in findings:
        f["corpus"] = name
    return findings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default="/tmp/normlint-corpora")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    corpora = Path(args.corpora)
    versions = fetch(corpora)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    all_findings: list[dict] = []
    for name in PATTERNS:
        all_findings += run_corpus(corpora / name, name)
    counts = {name: dict(sorted(Counter(f"{f['code']} {f['severity']}" for f in all_findings
                                        if f["corpus"] == name).items())) for name in PATTERNS}
    (out / "static_counts.json").write_text(json.dumps({"versions": versions, "counts": counts}, indent=2) + "\n")
    reportable = [f for f in all_findings if f["severity"] in ("warning", "error")]
    with (out / "static_findings.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["corpus", "path", "line", "code", "severity", "message"])
        for f in reportable:
            w.writerow([f["corpus"], f["path"], f["line"], f["code"], f["severity"], f["message"]])

    print(json.dumps(counts, indent=2))
    vision_bad = [f for f in reportable if f["corpus"] in VISION and f["code"][:3] in ("NL1", "NL2")]
    print(f"NL1xx/NL2xx warnings on vision code: {len(vision_bad)}")

    triage_file = HERE / "triage.csv"
    if triage_file.exists():
        with triage_file.open() as fh:
            triage = {(r["corpus"], r["path"], int(r["line"]), r["code"]): r for r in csv.DictReader(fh)}
        keys = [(f["corpus"], f["path"], f["line"], f["code"]) for f in reportable]
        judged = [triage[k] for k in keys if k in triage]
        missing = [k for k in keys if k not in triage]
        tp = sum(1 for r in judged if r["verdict"] == "TP")
        print(f"triaged {len(judged)}/{len(keys)}; true positives {tp}; "
              f"precision {tp / len(judged):.1%}" if judged else "nothing triaged yet")
        for k in missing:
            print("not triaged:", *k)


if __name__ == "__main__":
    main()
