"""The audit on a GPU: no host sync inside the traced forwards, and its cost against a forward.

    python benchmarks/audit_gpu.py [--device cuda] [--layers 24] [--width 1024] [--repeat 5]

Builds a GPT2-medium-sized model (24 layers, d_model 1024, 16 heads; random weights, no
download), batch 8 x 512 tokens, eval mode. Every forward the audit runs goes through
``normlint.runtime.api.call_model``; the script wraps it in
``torch.cuda.set_sync_debug_mode`` so that a host sync there (an ``.item()``, a
``.tolist()``, a data-dependent shape in a probe) is counted, and compares the count with
that of a plain forward (the model's own syncs, if any, are not the audit's). Then it
times plain forwards and audits, interleaved, with ``torch.cuda.synchronize`` around each,
and prints medians and their ratio. ``--device cpu`` runs a small smoke version.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import torch
    from transformers import GPT2Config, GPT2Model

    import normlint
    from normlint.runtime import api

    cuda = args.device.startswith("cuda")
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=args.width // 64,
                     n_positions=max(1024, args.length), vocab_size=50257)
    model = GPT2Model(cfg).to(args.device).eval()
    inputs = {"input_ids": torch.randint(0, 50257, (args.batch, args.length), device=args.device)}

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def plain():
        with torch.no_grad():
            model(**inputs)

    # Count host syncs inside every forward the audit runs (and in one plain forward).
    counts = {"forward": 0}
    original = api.call_model

    def counted(label, fn):
        if not cuda:
            return fn()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                result = fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts[label] = counts.get(label, 0) + sum("synchroniz" in str(w.message) for w in caught)
        return result

    counted("forward", plain)
    api.call_model = lambda m, x: counted("audit forwards", lambda: original(m, x))
    try:
        report = normlint.audit(model, inputs)
    finally:
        api.call_model = original
    sync()
    print(f"device: {torch.cuda.get_device_name() if cuda else args.device}; torch {torch.__version__}")
    print(f"model: GPT2 {args.layers} layers, d_model {args.width}, batch {args.batch} x {args.length}")
    print(f"norms: {len(report.norms)}, findings: {[f.code for f in report.findings]}")
    print(f"host syncs: plain forward {counts['forward']}, audit forwards "
          f"{counts.get('audit forwards', 0)} (sync debug mode 'warn')")

    plain(); normlint.audit(model, inputs); sync()     # warm-up
    fwd, aud = [], []
    for _ in range(args.repeat):
        sync(); t0 = time.perf_counter(); plain(); sync(); fwd.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); normlint.audit(model, inputs); sync(); aud.append(time.perf_counter() - t0)
    f, a = statistics.median(fwd), statistics.median(aud)
    print(f"forward {f * 1e3:.1f} ms, audit {a * 1e3:.1f} ms, ratio x{a / f:.2f} "
          f"(medians of {args.repeat}, interleaved)")
    if cuda:
        print(f"peak GPU memory of the audit run: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
