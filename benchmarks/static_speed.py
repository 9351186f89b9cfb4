"""Static engine speed against ruff (and TorchFix when available), measured in one run.

Corpus: every `models/*/modeling_*.py` of the installed transformers (5.24: 538 files,
~567k lines). Machines are shared and noisy, so each tool runs `--repeat` times,
interleaved, and the report compares medians measured side by side. The package's bytecode
is compiled first (as installing a wheel does), so interpreter start is what users pay.

    .venv/bin/python benchmarks/static_speed.py --repeat 5 [--torchfix /path/to/venv/bin/torchfix]
        [--compare-src /path/to/another/normlint/checkout]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def corpus_dir() -> Path:
    spec = importlib.util.find_spec("transformers")   # locates without importing
    if spec is None or not spec.submodule_search_locations:
        sys.exit("transformers is not installed: pip install transformers==5.24.0")
    return Path(spec.submodule_search_locations[0]) / "models"


def copy_corpus(dest: Path) -> tuple[int, int]:
    """Copy the modeling files into a scratch tree, so caches and configs are ours alone."""
    files = sorted(corpus_dir().glob("*/modeling_*.py"))
    lines = 0
    for f in files:
        target = dest / f.parent.name / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        lines += f.read_text(encoding="utf-8").count("\n")
    return len(files), lines


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[float, int, int]:
    """Wall seconds, exit status and peak RSS (KiB) of the child, via /usr/bin/time when present."""
    gnu_time = shutil.which("time") if os.path.exists("/usr/bin/time") else None
    full = (["/usr/bin/time", "-f", "%M"] + cmd) if gnu_time else cmd
    t0 = time.perf_counter()
    proc = subprocess.run(full, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    peak = -1
    if gnu_time:
        try:
            peak = int(proc.stderr.strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
    return wall, proc.returncode, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--torchfix", help="path to a torchfix executable (its own venv: it pins an older libcst)")
    ap.add_argument("--torchfix-repeat", type=int, default=1)
    ap.add_argument("--json", help="also write the raw numbers here")
    ap.add_argument("--compare-src", help="a checkout of another normlint version (its repository root): "
                    "its cold and single-file runs are timed too, interleaved, with the same interpreter")
    args = ap.parse_args()

    py = sys.executable
    bindir = Path(py).parent
    ruff = shutil.which("ruff", path=str(bindir)) or shutil.which("ruff")
    if ruff is None:
        sys.exit("ruff is not installed: pip install ruff==0.17.5")
    work = Path(tempfile.mkdtemp(prefix="normlint-bench-"))
    corpus = work / "corpus"
    n_files, n_lines = copy_corpus(corpus)
    big = max(corpus.glob("*/modeling_*.py"), key=lambda p: p.stat().st_size)
    single = work / "single"
    single.mkdir()
    one = single / "model.py"
    # about 2,000 lines, as the target says: the head of the largest modeling file, cut at a
    # top-level definition so it still parses
    text_lines = big.read_text(encoding="utf-8").splitlines()
    cut = next(i for i in range(2000, len(text_lines)) if text_lines[i].startswith(("class ", "def ")))
    one.write_text("\n".join(text_lines[:cut]) + "\n", encoding="utf-8")
    cache = work / "cache"
    env = {**os.environ, "NORMLINT_CACHE_DIR": str(cache)}
    # Installing a wheel compiles the package's bytecode; an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 (as on the team's machines) never does, and recompiles its
    # ~20k lines of source on every start (about 0.15 s). Time what users run.
    for tree in [Path(__file__).resolve().parents[1]] + ([Path(args.compare_src)] if args.compare_src else []):
        subprocess.run([py, "-m", "compileall", "-q", str(tree / "normlint")], check=True)

    names = ["ruff_cold", "normlint_cold", "normlint_warm", "normlint_single", "python_startup"]
    other_env = None
    if args.compare_src:
        names += ["compare_cold", "compare_single"]
        other_env = {**env, "PYTHONPATH": str(Path(args.compare_src).resolve())}
    runs: dict[str, list[float]] = {k: [] for k in names}
    peaks: dict[str, list[int]] = {k: [] for k in runs}
    for _ in range(args.repeat):
        for name, cmd, e in [
            ("ruff_cold", [ruff, "check", "--no-cache", "--select", "ALL", "--exit-zero", "-q", "."], None),
            ("normlint_cold", [py, "-m", "normlint", "check", "--no-cache", "--exit-zero", "-q", "."], env),
            ("normlint_warm", [py, "-m", "normlint", "check", "--exit-zero", "-q", "."], env),
            ("normlint_single", [py, "-m", "normlint", "check", "--no-cache", "--exit-zero", "-q", str(one)], env),
            ("python_startup", [py, "-c", "pass"], None),
            ("compare_cold", [py, "-m", "normlint", "check", "--no-cache", "--exit-zero", "-q", "."], other_env),
            ("compare_single", [py, "-m", "normlint", "check", "--no-cache", "--exit-zero", "-q", str(one)],
             other_env),
        ]:
            if name not in runs:
                continue
            if name == "normlint_warm" and not cache.exists():
                subprocess.run([py, "-m", "normlint", "check", "--exit-zero", "-q", "."], cwd=corpus, env=env,
                               capture_output=True)
            wall, _, peak = timed(cmd, corpus, e)
            runs[name].append(wall)
            peaks[name].append(peak)
    if args.torchfix:
        runs["torchfix"] = []
        peaks["torchfix"] = []
        for _ in range(args.torchfix_repeat):
            wall, _, peak = timed([args.torchfix, "--select", "ALL", "."], corpus)
            runs["torchfix"].append(wall)
            peaks["torchfix"].append(peak)

    med = {k: statistics.median(v) for k, v in runs.items() if v}
    ruff_cold = med["ruff_cold"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"corpus: {n_files} files, {n_lines} lines (transformers modeling_*.py); single file: "
          f"{len(one.read_text().splitlines())} lines")
    print(f"{'run':<18}{'median s':>10}{'x ruff cold':>13}{'peak MiB':>10}   all runs")
    for k, v in med.items():
        peak = max(peaks[k]) / 1024 if max(peaks[k]) > 0 else float("nan")
        print(f"{k:<18}{v:>10.2f}{v / ruff_cold:>13.2f}{peak:>10.0f}   {', '.join(f'{x:.2f}' for x in runs[k])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "peaks_kib": peaks, "files": n_files,
                                               "lines": n_lines}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
