"""Structural audit of a 70B-class Llama on the meta device: no weights, no memory.

    .venv/bin/python benchmarks/audit_meta_70b.py

Builds LlamaModel(80 layers, hidden 8192, 64 heads, 8 KV heads, intermediate 28672) under
`torch.device("meta")`, audits it on meta inputs (numeric checks are skipped there) and
reports wall time, peak RSS and the norms found with their placement (80 x 2 block norms
+ the final norm = 161).
"""

from __future__ import annotations

import resource
import sys
import time
from collections import Counter


def main() -> None:
    t0 = time.perf_counter()
    import torch
    from transformers import LlamaConfig, LlamaModel

    import normlint

    cfg = LlamaConfig(num_hidden_layers=80, hidden_size=8192, intermediate_size=28672,
                      num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
                      max_position_embeddings=8192)
    t_import = time.perf_counter()
    with torch.device("meta"):
        model = LlamaModel(cfg)
        inputs = {"input_ids": torch.zeros(1, 16, dtype=torch.long)}
    t_build = time.perf_counter()
    report = normlint.audit(model, inputs)
    t_audit = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    placements = Counter(n.placement for n in report.norms)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"parameters: {params / 1e9:.1f} B (meta: none allocated)")
    print(f"norms: {len(report.norms)}  placements: {dict(placements)}")
    print(f"findings: {[(f.code, f.module) for f in report.findings]}")
    print(f"time: imports {t_import - t0:.1f} s, build {t_build - t_import:.1f} s, "
          f"audit {t_audit - t_build:.1f} s, total {t_audit - t0:.1f} s")
    print(f"peak RSS: {peak_mib:.0f} MiB")
    ok = len(report.norms) == 161 and t_audit - t0 < 20 and peak_mib < 2048
    print("targets (161 norms, < 20 s, < 2 GiB):", "met" if ok else "NOT met")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
