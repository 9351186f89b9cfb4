"""What restoring the caller's state costs an audit (normlint/runtime/state.py).

    PYTHONPATH=. .venv/bin/python benchmarks/audit_state_cost.py [--repeat 7] [--threads 2]

Parameters are copied on write: a TorchFunctionMode (ParameterGuard) sees every torch call
of the audit's forwards and copies a parameter only before its first in-place write. Its
cost is one Python call per torch call, so it is measured in a way load cannot distort:
the calls it handles in one audit, times its per-call cost (torch.add on 1-element tensors
with and without it, interleaved), next to one plain forward of the same model measured in
the same loop. Models as in audit_overhead.py (GPT2 and Llama, 6 layers, d_model 256,
batch 8 x 128). Memory: the guard copies nothing unless the forward writes a parameter.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from audit_overhead import MODELS, build


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import normlint
    from normlint.runtime import state

    a, b = torch.ones(1), torch.ones(1)
    calls = 20_000

    def tiny_ops():
        for _ in range(calls):
            torch.add(a, b)

    handled = {"n": 0}
    original = state.ParameterGuard.__torch_function__

    def counting(self, func, types, args=(), kwargs=None):
        handled["n"] += 1
        return original(self, func, types, args, kwargs)

    for name in MODELS:
        model, inputs = build(name)
        guard = state.ParameterGuard(list(model.parameters()))
        plain_ops, guarded_ops, forwards = [], [], []
        for _ in range(args.repeat):
            plain_ops.append(_median_time(tiny_ops, 1))
            with guard:
                guarded_ops.append(_median_time(tiny_ops, 1))
            with torch.no_grad():
                forwards.append(_median_time(lambda: model(**inputs), 1))
        per_call = (statistics.median(guarded_ops) - statistics.median(plain_ops)) / calls
        forward = statistics.median(forwards)
        state.ParameterGuard.__torch_function__ = counting
        handled["n"] = 0
        normlint.audit(model, inputs)
        state.ParameterGuard.__torch_function__ = original
        cost = handled["n"] * per_call
        print(f"{name}: {handled['n']} torch calls through the guard per audit x "
              f"{per_call * 1e6:.2f} us = {cost * 1e3:.1f} ms; plain forward {forward * 1e3:.1f} ms: "
              f"+{cost / forward:.3f} on audit/forward")


if __name__ == "__main__":
    main()
