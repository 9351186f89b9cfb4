"""What cross-file context costs: checking some files of a large project, with the project
files they import read for context, against the same files checked without it.

The project is a copy of the installed transformers package in a temporary directory with
a ``pyproject.toml`` (so it is a project: its files are context). The baseline checks the
same files where they are installed: under site-packages nothing is project code, so no
context is read. Each run is a fresh ``normlint check`` process; medians of interleaved
repetitions, so both sides see the same machine load.

    .venv/bin/python benchmarks/cross_file.py [--repeat 3] [--models 40]

Prints one row per case: median seconds with and without context, the ratio, how many
context files were read, and whether the findings are identical.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _check(cwd: Path, files: list[str], *extra: str) -> tuple[float, list, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "normlint", "check", *files, "--exit-zero", "-v",
                           "--output-format", "json", *extra], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    findings = sorted((f["path"], f["line"], f["code"]) for f in json.loads(proc.stdout))
    return elapsed, findings, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", type=int, default=40, help="how many modeling files in the middle case")
    args = parser.parse_args()
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("transformers is not installed (it is in the test extra)")
    installed = Path(list(spec.submodule_search_locations)[0])
    models = sorted(p.relative_to(installed / "models").as_posix()
                    for p in (installed / "models").glob("*/modeling_*.py"))
    cases = {
        "one model (llama)": ["llama/modeling_llama.py"],
        f"{args.models} models": models[:args.models],
        f"all {len(models)} models": models,
    }
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "proj"
        shutil.copytree(installed, project / "transformers", ignore=shutil.ignore_patterns("__pycache__"))
        (project / "pyproject.toml").write_text("[tool.normlint]\n")
        inside = project / "transformers" / "models"
        print(f"{'case':<22} {'context':>9} {'without':>9} {'ratio':>6} {'files read':>10}  same findings")
        for name, files in cases.items():
            with_ctx, without = [], []
            for _ in range(args.repeat):
                t1, found_with, log = _check(inside, files, "--no-cache")
                t2, found_without, _ = _check(installed / "models", files, "--no-cache")
                with_ctx.append(t1)
                without.append(t2)
            read = next((line.split("read ")[1].split()[0] for line in log.splitlines() if "read " in line), "?")
            a, b = statistics.median(with_ctx), statistics.median(without)
            print(f"{name:<22} {a:>8.2f}s {b:>8.2f}s {a / b:>6.2f} {read:>10}  {found_with == found_without}")
        warm = [_check(inside, cases["one model (llama)"])[0] for _ in range(args.repeat + 1)][1:]
        print(f"{'one model, warm cache':<22} {statistics.median(warm):>8.2f}s")


if __name__ == "__main__":
    main()
