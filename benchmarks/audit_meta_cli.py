"""`normlint audit DIR --device meta` on a 70B-class Llama config directory, through the CLI.

    .venv/bin/python benchmarks/audit_meta_cli.py [--repeat 3]

Writes a directory holding only the config.json of a Llama with 80 layers, hidden 8192,
64 heads, 8 KV heads, intermediate 28672, vocab 128256 (LlamaForCausalLM, 70.6 B
parameters), then runs the CLI on it in a fresh process, as a user would, and reports the
wall time (imports included) and the process's peak RSS. Nothing is downloaded and no
weight is allocated: the model is built under torch.device("meta") from the config, and
its inputs are derived from the config on the meta device.

Targets (issue #12): at most 10 s and 1 GiB peak RSS, all 161 norms found.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192,
    "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
    "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "torch_dtype": "bfloat16",
    "hidden_act": "silu", "tie_word_embeddings": False,
}


def run_once(directory: str) -> tuple[float, float, dict]:
    """(seconds, peak RSS in MiB, the JSON report) of one CLI run in a fresh process."""
    out = os.path.join(directory, "report.json")
    start = time.perf_counter()
    # A fresh child per run: RUSAGE_CHILDREN's max RSS is the largest child so far, so the
    # run is wrapped in its own Python that reports its child's peak alone.
    wrapper = ("import resource, subprocess, sys; "
               "rc = subprocess.call(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "normlint", "audit", directory,
         "--device", "meta", "--output-format", "json", "-o", out, "--exit-zero"],
        capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"normlint failed: {proc.stderr.strip()}")
    peak_mib = int(proc.stdout.strip().splitlines()[-1]) / 1024
    with open(out, encoding="utf-8") as f:
        findings = json.load(f)
    return seconds, peak_mib, findings


def count_norms(directory: str) -> int:
    proc = subprocess.run([sys.executable, "-m", "normlint", "audit", directory, "--device", "meta",
                           "--exit-zero"], capture_output=True, text=True, check=True)
    return sum(1 for line in proc.stdout.splitlines() if "RMSNorm" in line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
            json.dump(CONFIG, f)
        runs = [run_once(directory) for _ in range(repeat)]
        norms = count_norms(directory)
    seconds = [r[0] for r in runs]
    peaks = [r[1] for r in runs]
    print(f"norms: {norms}  findings: {[f['code'] for f in runs[0][2]]}")
    print(f"wall time (imports included), {repeat} runs: median {statistics.median(seconds):.1f} s, "
          f"max {max(seconds):.1f} s")
    print(f"peak RSS: median {statistics.median(peaks):.0f} MiB, max {max(peaks):.0f} MiB")
    print(f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    ok = norms == 161 and max(seconds) <= 10 and max(peaks) <= 1024
    print("targets (161 norms, <= 10 s, <= 1 GiB):", "met" if ok else "NOT met")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
