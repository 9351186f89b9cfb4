"""The audit's cost on tiny models of many architectures: the median audit/forward ratio.

    nice .venv/bin/python benchmarks/audit_tiny.py [--repeat 3] [--only gpt2 llama ...]

Models: the CI sample of ``evaluation/sweep_transformers.py`` (46 transformers architectures
built offline from tiny configs by ``evaluation/tiny_models.py``: 2 layers, width 32, batch
2 x 16 tokens, 2 x 3 x 64 x 64 images or 2 x 4000 audio samples). Per model, plain
forwards (eval, no_grad) and full ``normlint.audit`` calls are interleaved after one
warm-up of each; the ratio is min(audit) / min(forward) in CPU time of this process (one
thread), which a shared machine's load disturbs far less than wall time. Target: median
at most 6x (issue 10).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(model_type: str, repeat: int) -> dict:
    import torch

    import normlint
    from tiny_models import build

    built = build(model_type)
    model, inputs = built.model, built.inputs

    def plain():
        with torch.no_grad():
            model(**inputs)

    normlint.audit(model, inputs)
    forward, audit = [], []
    for _ in range(repeat):
        t0 = time.process_time()
        plain()
        forward.append(time.process_time() - t0)
        t0 = time.process_time()
        normlint.audit(model, inputs)
        audit.append(time.process_time() - t0)
    return {"model": model_type, "config": built.config, "forward_s": min(forward),
            "audit_s": min(audit), "ratio": min(audit) / min(forward)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "evaluation"))
    warnings.filterwarnings("ignore")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    from sweep_transformers import SAMPLE

    rows = []
    for name in args.only or SAMPLE:
        try:
            row = measure(name, args.repeat)
        except Exception as exc:  # noqa: BLE001 - a model that does not build is skipped, said
            print(f"{name:<26} skipped: {type(exc).__name__}: {exc}"[:160], flush=True)
            continue
        rows.append(row)
        print(f"{name:<26} forward {row['forward_s'] * 1e3:8.2f} ms  audit {row['audit_s'] * 1e3:8.1f} ms  "
              f"x{row['ratio']:.1f}", flush=True)
    ratios = sorted(r["ratio"] for r in rows)
    print(f"{len(rows)} models: median x{statistics.median(ratios):.1f}, "
          f"p90 x{ratios[min(len(ratios) - 1, int(0.9 * len(ratios)))]:.1f}, max x{ratios[-1]:.1f} "
          f"(torch {torch.__version__}, transformers {transformers.__version__}, 1 thread, CPU time)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
