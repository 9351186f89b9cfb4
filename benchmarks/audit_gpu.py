"""The audit on a GPU: no host sync inside the traced forwards, and its cost against a forward.

    python benchmarks/audit_gpu.py --model gpt2-medium --dtype float32 --batch 8 --length 512
    python benchmarks/audit_gpu.py --model llama-1.1b --dtype bfloat16 --batch 4 --length 1024
    python benchmarks/audit_gpu.py --device cpu --layers 2 --width 128 --length 64   # smoke run

Issue 10's two GPU targets: GPT2-medium (24 layers, d_model 1024, 16 heads) in float32 at
8 x 512 tokens, at most 3x a forward; a 1.1B Llama (TinyLlama's shape: 22 layers, hidden
2048, 32 heads, 4 KV heads, intermediate 5632) in bfloat16 at 4 x 1024 tokens, at most 4x;
0 host syncs in the audit's forwards. Random weights, no download, eval mode. Every forward the audit runs goes through
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
    ap.add_argument("--model", choices=("gpt2-medium", "llama-1.1b"), default="gpt2-medium")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    ap.add_argument("--layers", type=int, help="override the model's depth (smoke runs)")
    ap.add_argument("--width", type=int, help="override the model's width (smoke runs)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import torch

    import normlint
    from normlint.runtime import api

    cuda = args.device.startswith("cuda")
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    if args.model == "gpt2-medium":
        from transformers import GPT2Config, GPT2Model
        width = args.width or 1024
        cfg = GPT2Config(n_layer=args.layers or 24, n_embd=width, n_head=max(1, width // 64),
                         n_positions=max(1024, args.length), vocab_size=50257)
        model, vocab = GPT2Model(cfg), 50257
    else:
        from transformers import LlamaConfig, LlamaModel
        width = args.width or 2048
        cfg = LlamaConfig(num_hidden_layers=args.layers or 22, hidden_size=width,
                          intermediate_size=width * 11 // 4, num_attention_heads=max(1, width // 64),
                          num_key_value_heads=max(1, width // 512), vocab_size=32000,
                          max_position_embeddings=max(2048, args.length))
        model, vocab = LlamaModel(cfg), 32000
    model = model.to(device=args.device, dtype=dtype).eval()
    inputs = {"input_ids": torch.randint(0, vocab, (args.batch, args.length), device=args.device)}

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
    print(f"model: {args.model} ({sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters), "
          f"{args.dtype}, batch {args.batch} x {args.length}")
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
