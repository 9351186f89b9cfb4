"""`normlint check --fix` against a cold `normlint check`, measured in one run.

Corpus: every `models/*/modeling_*.py` of the installed transformers (the same 538 files as
static_speed.py). Every run is cold (`--no-cache`) and starts from a fresh copy of the
corpus (the copy is not timed), since `--fix` rewrites files. Runs are interleaved and
medians compared; the target is `--fix` <= 2x a cold check.

    .venv/bin/python benchmarks/fix_speed.py --repeat 5 [--baseline /path/to/checkout-of-main]

With `--baseline`, the same cold check also runs from that checkout (PYTHONPATH), to show
what computing fixes adds to a plain check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from static_speed import copy_corpus, timed  # noqa: E402  (a sibling script)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline", help="a checkout of normlint to time a plain cold check from")
    ap.add_argument("--json", help="also write the raw numbers here")
    args = ap.parse_args()

    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="normlint-fixbench-"))
    pristine = work / "pristine"
    n_files, n_lines = copy_corpus(pristine)
    corpus = work / "corpus"
    check = [py, "-m", "normlint", "check", "--no-cache", "--exit-zero", "-q", "."]
    variants = [
        ("check_cold", check, None),
        ("fix_safe", [*check, "--fix"], None),
        ("fix_unsafe", [*check, "--fix", "--unsafe-fixes"], None),
    ]
    if args.baseline:
        variants.append(("check_cold_baseline", check, {**os.environ, "PYTHONPATH": args.baseline}))
    runs: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    changed: dict[str, int] = {}
    for _ in range(args.repeat):
        for name, cmd, env in variants:
            shutil.rmtree(corpus, ignore_errors=True)
            shutil.copytree(pristine, corpus)
            wall, status, _ = timed(cmd, corpus, env)
            if status not in (0, 1):
                sys.exit(f"{name} failed with exit status {status}")
            runs[name].append(wall)
            changed[name] = sum(1 for f in corpus.rglob("*.py")
                                if f.read_bytes() != (pristine / f.relative_to(corpus)).read_bytes())
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"corpus: {n_files} files, {n_lines} lines (transformers modeling_*.py), --repeat {args.repeat}")
    print(f"{'run':<22}{'median s':>10}{'x check':>9}{'files changed':>15}   all runs")
    for k, v in med.items():
        print(f"{k:<22}{v:>10.2f}{v / med['check_cold']:>9.2f}{changed[k]:>15}   "
              f"{', '.join(f'{x:.2f}' for x in runs[k])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "changed": changed, "files": n_files,
                                               "lines": n_lines}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
