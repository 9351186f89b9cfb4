"""Cost of a full `normlint.audit` against one plain forward, measured in one process.

    .venv/bin/python benchmarks/audit_overhead.py [--repeat 7] [--threads 2]

Models (transformers, tiny configs built in memory, no downloads): GPT2 and Llama with
6 layers, d_model 256, batch 8 x 128 tokens, CPU, eval mode under no_grad. Plain forwards
and audits are interleaved so that load on this shared machine hits both alike; the
report gives medians and their ratio. Peak memory is measured in fresh subprocesses (one
plain forward, one audit) as the growth of the resident set over the model's own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODELS = ("gpt2", "llama", "llama500")


def build(name: str):
    import torch
    torch.manual_seed(0)
    if name == "gpt2":
        from transformers import GPT2Config, GPT2Model
        cfg = GPT2Config(n_layer=6, n_embd=256, n_head=8, n_positions=256, vocab_size=1000,
                         bos_token_id=0, eos_token_id=0)
        model = GPT2Model(cfg)
    elif name == "llama":
        from transformers import LlamaConfig, LlamaModel
        cfg = LlamaConfig(num_hidden_layers=6, hidden_size=256, intermediate_size=688,
                          num_attention_heads=8, num_key_value_heads=8, vocab_size=1000,
                          max_position_embeddings=256)
        model = LlamaModel(cfg)
    elif name == "llama500":
        # 250 layers of 2 RMSNorms plus the final one: 501 norms (issue 14's scale target).
        from transformers import LlamaConfig, LlamaModel
        cfg = LlamaConfig(num_hidden_layers=250, hidden_size=128, intermediate_size=256,
                          num_attention_heads=4, num_key_value_heads=4, vocab_size=1000,
                          max_position_embeddings=256)
        model = LlamaModel(cfg).eval()
        return model, {"input_ids": torch.randint(0, 1000, (4, 96))}
    else:
        raise ValueError(name)
    model.eval()
    inputs = {"input_ids": torch.randint(0, 1000, (8, 128))}
    return model, inputs


def time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def overhead(name: str, repeat: int) -> dict:
    import torch
    import normlint

    model, inputs = build(name)

    def plain():
        with torch.no_grad():
            model(**inputs)

    def audited():
        normlint.audit(model, inputs)

    plain(); audited()   # warm-up: allocator, lazy inits, first-call paths
    fwd, aud, fwd_cpu, aud_cpu = [], [], [], []
    for _ in range(repeat):
        c0 = time.process_time()
        fwd.append(time_once(plain))
        c1 = time.process_time()
        aud.append(time_once(audited))
        c2 = time.process_time()
        fwd_cpu.append(c1 - c0)
        aud_cpu.append(c2 - c1)
    f, a = statistics.median(fwd), statistics.median(aud)
    # CPU time of this process (all its threads): what load from other work on a shared
    # machine disturbs least.
    fc, ac = statistics.median(fwd_cpu), statistics.median(aud_cpu)
    return {"model": name, "forward_s": f, "audit_s": a, "ratio": a / f,
            "forward_cpu_s": fc, "audit_cpu_s": ac, "cpu_ratio": ac / fc,
            "forward_runs": fwd, "audit_runs": aud}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _peak_child(name: str, mode: str) -> None:
    """Child process: print the peak RSS growth (KiB) of one forward or one audit.

    The model is built and run once first (allocator warm, lazy inits done); then the
    kernel's high-water mark is reset (/proc/self/clear_refs, Linux) and the growth of the
    peak over the resident set before the measured call is what that call needed.
    """
    import torch
    import normlint

    model, inputs = build(name)
    with torch.no_grad():
        model(**inputs)
    if mode == "audit":
        normlint.audit(model, inputs)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = _status_kib("VmRSS")
    if mode == "forward":
        with torch.no_grad():
            model(**inputs)
    else:
        normlint.audit(model, inputs)
    print(_status_kib("VmHWM") - base)


def peak_memory(name: str, threads: int) -> dict:
    # glibc keeps freed heap memory resident, so without this the growth of the peak over
    # the resident set depends on what earlier calls left in its free lists (it varied from
    # 0 to 52 MiB for the same GPT2 forward). With a fixed mmap threshold every tensor
    # buffer is its own mapping, returned on free: the resident set tracks live memory.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = {}
    for mode in ("forward", "audit"):
        proc = subprocess.run([sys.executable, __file__, "--peak-child", name, mode,
                               "--threads", str(threads)],
                              capture_output=True, text=True, check=True, env=env)
        out[mode] = int(proc.stdout.strip().splitlines()[-1])
    return {"forward_kib": out["forward"], "audit_kib": out["audit"],
            "ratio": out["audit"] / max(out["forward"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--peak-child", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    if args.peak_child:
        _peak_child(*args.peak_child)
        return
    results = []
    for name in args.models:
        row = overhead(name, args.repeat)
        row["memory"] = peak_memory(name, args.threads)
        results.append(row)
        print(f"{name:<8} forward {row['forward_s'] * 1e3:8.1f} ms   audit {row['audit_s'] * 1e3:8.1f} ms   "
              f"time x{row['ratio']:.2f} (CPU time x{row['cpu_ratio']:.2f})   peak RSS growth: forward {row['memory']['forward_kib'] / 1024:.0f} MiB, "
              f"audit {row['memory']['audit_kib'] / 1024:.0f} MiB (x{row['memory']['ratio']:.2f})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
