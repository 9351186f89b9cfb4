"""Audit every architecture in transformers' auto mapping, each built from a tiny config.

    nice .venv/bin/python evaluation/sweep_transformers.py [--only T ...] [--resume] [--timeout 120]

For each model type of ``MODEL_MAPPING_NAMES`` (``evaluation/tiny_models.py`` builds it
offline from a shrunk configuration and derives inputs from its ``forward`` signature), one
forked child process builds the model, times plain forwards, runs ``normlint.audit`` once,
and checks that parameters, buffers, training flags and the RNG state are exactly as
before. The parent kills a child that runs past the timeout (a *timeout*); an exception
out of ``normlint.audit`` is a *crash*; a model that does not build or run a plain forward
is *not built* (the sweep's limit, not the audit's).

Results go to ``evaluation/results/sweep_transformers.jsonl`` (one JSON record per model
type) and the summary to ``evaluation/results/sweep_transformers.md``. Every warning and
error must have a row in ``evaluation/results/sweep_triage.csv`` (verdict ``true positive``
with the reason read from the model's source); ``tests/runtime/test_sweep.py`` checks
that, and runs a fixed sample of the sweep in CI.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "evaluation" / "results" / "sweep_transformers.jsonl"
SUMMARY = ROOT / "evaluation" / "results" / "sweep_transformers.md"
TRIAGE = ROOT / "evaluation" / "results" / "sweep_triage.csv"
AUDIT_TIMEOUT = 120.0      # seconds for the audit alone (the limit)
BUILD_TIMEOUT = 180.0      # seconds for building and the plain forwards

# The CI sample: diverse families (decoders, hybrids, MoE, encoders, encoder-decoders,
# vision CNN/ViT/hierarchical, detection, speech, multimodal towers, time series), each
# fast to build. Every one must build; tests/runtime/test_sweep.py runs them.
SAMPLE = (
    "albert", "bart", "beit", "bert", "bloom", "clip", "convnext", "convnextv2", "deberta-v2",
    "deit", "detr", "dinov2", "distilbert", "falcon", "fastspeech2_conformer", "gemma2",
    "gpt2", "gpt_neox", "gptj", "hiera", "hubert", "jamba", "levit", "llama", "llama4_text",
    "llava", "mamba2", "mistral", "mixtral", "mobilevit", "olmo2", "opt", "patchtst",
    "qwen3", "reformer", "regnet", "resnet", "roberta", "segformer", "swin", "swinv2", "t5",
    "vit", "wav2vec2", "wav2vec2-conformer", "whisper",
)


@dataclass
class SweepRecord:
    model_type: str
    status: str                     # audited | not built | crash | timeout
    config: str = ""                # tiny | shallow | default
    parameters: int = 0
    inputs: list[str] = field(default_factory=list)
    forward_s: float = math.nan
    audit_s: float = math.nan       # a second audit (warm, like the forwards); CPU seconds
    first_audit_s: float = math.nan
    restored: bool | None = None
    norms: int = 0
    findings: list[dict] = field(default_factory=list)   # severity, code, module, path, line, message
    error: str = ""
    normlint: str = ""              # the commit of normlint that produced this row

    @property
    def ratio(self) -> float:
        return self.audit_s / self.forward_s if self.forward_s and self.forward_s > 0 else math.nan

    @property
    def failing(self) -> list[dict]:
        return [f for f in self.findings if f["severity"] in ("warning", "error")]


# ---------------------------------------------------------------------- one model (child)
def _snapshot(model):
    import random

    import numpy
    import torch

    return {
        "params": [(n, p, p.detach().clone()) for n, p in model.named_parameters(remove_duplicate=False)],
        "buffers": [(n, b, b.clone()) for n, b in model.named_buffers(remove_duplicate=False)],
        "flags": [(m, m.training) for m in model.modules()],
        "rng": torch.get_rng_state().clone(),
        "py": random.getstate(), "np": numpy.random.get_state()[1].copy(),
    }


def _restored(model, snap) -> bool:
    import random

    import numpy
    import torch

    def same(a, b):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(torch.nan_to_num(a, 1.0), torch.nan_to_num(b, 1.0))
            and torch.equal(a.isnan(), b.isnan())))

    now_params = list(model.named_parameters(remove_duplicate=False))
    now_buffers = list(model.named_buffers(remove_duplicate=False))
    return (len(now_params) == len(snap["params"])
            and all(n == m and p is q and same(q, saved)
                    for (n, p, saved), (m, q) in zip(snap["params"], now_params))
            and len(now_buffers) == len(snap["buffers"])
            and all(n == m and same(q, saved) for (n, _, saved), (m, q) in zip(snap["buffers"], now_buffers))
            and all(m.training == flag for m, flag in snap["flags"])
            and torch.equal(torch.get_rng_state(), snap["rng"])
            and random.getstate() == snap["py"]
            and numpy.array_equal(numpy.random.get_state()[1], snap["np"]))


def audit_one(model_type: str, report=lambda stage: None) -> SweepRecord:
    """Build, time and audit one model type in this process."""
    import torch

    import normlint
    from tiny_models import BuildError, build, plain_forward_seconds

    record = SweepRecord(model_type, "not built")
    try:
        built = build(model_type)
    except BuildError as exc:
        record.error = str(exc)
        return record
    except Exception as exc:  # noqa: BLE001 - the builder's own limits, recorded
        record.error = f"{type(exc).__name__}: {exc}"[:300]
        return record
    record.config, record.parameters, record.inputs = built.config, built.parameters, sorted(built.inputs)
    record.forward_s = plain_forward_seconds(built.model, built.inputs)
    report("audit")
    snap = _snapshot(built.model)
    t0 = time.process_time()
    try:
        result = normlint.audit(built.model, built.inputs)
    except Exception as exc:  # noqa: BLE001 - a crash is this sweep's finding
        record.status = "crash"
        record.first_audit_s = time.process_time() - t0
        record.error = f"{type(exc).__name__}: {exc}"[:300] + " | " + \
            " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)[-4:])
        record.restored = _restored(built.model, snap)
        return record
    record.first_audit_s = time.process_time() - t0
    record.status = "audited"
    record.restored = _restored(built.model, snap)
    t0 = time.process_time()
    normlint.audit(built.model, built.inputs)
    record.audit_s = time.process_time() - t0
    record.norms = len(result.norms)
    record.findings = [{"severity": f.severity.value, "code": f.code, "module": f.module or "",
                        "path": _short(f.path), "line": f.line, "message": f.message}
                       for f in result.findings]
    del torch
    return record


def _short(path: str) -> str:
    marker = "site-packages/"
    return path.split(marker, 1)[1] if marker in path else path


def _child(model_type: str, conn) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        record = audit_one(model_type, report=lambda stage: conn.send(("stage", stage)))
        conn.send(("record", asdict(record)))
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the parent gets a line
        conn.send(("record", asdict(SweepRecord(model_type, "crash", error=f"{type(exc).__name__}: {exc}"[:300]))))
    finally:
        conn.close()


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux ``/proc``), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_isolated(model_type: str, audit_timeout: float = AUDIT_TIMEOUT,
                 build_timeout: float = BUILD_TIMEOUT) -> SweepRecord:
    """``audit_one`` in a forked child; a child past its time is killed and recorded.

    Time limits count the child's CPU time where the OS says it (a machine shared with
    other work slows the wall clock, not the work), with a wall-clock limit of ten times
    that as the last resort."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(model_type, child), daemon=True)
    proc.start()
    child.close()
    stage, limit, record = "build", build_timeout, None
    started, cpu_start = time.monotonic(), _cpu_seconds(proc.pid) or 0.0
    while record is None:
        if parent.poll(1.0):
            try:
                kind, value = parent.recv()
            except EOFError:
                proc.join(5)
                record = SweepRecord(model_type, "crash", error=f"child exited with {proc.exitcode}")
                break
            if kind == "stage":
                stage, limit = value, audit_timeout
                started, cpu_start = time.monotonic(), _cpu_seconds(proc.pid) or 0.0
            else:
                record = SweepRecord(**value)
            continue
        if not proc.is_alive():
            record = SweepRecord(model_type, "crash", error=f"child exited with {proc.exitcode}")
            break
        cpu = _cpu_seconds(proc.pid)
        spent = cpu - cpu_start if cpu is not None else time.monotonic() - started
        if spent > limit or time.monotonic() - started > 10 * limit:
            proc.kill()
            record = SweepRecord(model_type, "timeout" if stage == "audit" else "not built",
                                 error=f"{stage} ran past its time limit ({limit:.0f} s of CPU time)")
            if stage == "audit":
                record.first_audit_s = spent
    proc.join(5)
    if proc.is_alive():
        proc.kill()
    return record


# ---------------------------------------------------------------------- results
def load_results(path: Path = RESULTS) -> dict[str, SweepRecord]:
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                data = json.loads(line)
                records[data["model_type"]] = SweepRecord(**data)
    return records


def write_results(records: dict[str, SweepRecord], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for name in sorted(records):
            fh.write(json.dumps(asdict(records[name]), sort_keys=True) + "\n")


def load_triage(path: Path = TRIAGE) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(model_type, code, module) -> (verdict, reason)."""
    with path.open(newline="") as fh:
        return {(r["model_type"], r["code"], r["module"]): (r["verdict"], r["reason"])
                for r in csv.DictReader(fh)}


def verdict(triage, model_type: str, code: str, module: str) -> tuple[str, str]:
    """The triage row of a finding: its module's, or the model's row for the rule with
    module ``*`` (one cause reported at several modules: every BatchNorm of a config)."""
    return triage.get((model_type, code, module)) or triage.get((model_type, code, "*")) or ("", "")


def untriaged(records, triage) -> list[tuple[str, str, str]]:
    """Warnings and errors with no ``true positive`` row in the triage file."""
    missing = []
    for record in records:
        for f in record.failing:
            if verdict(triage, record.model_type, f["code"], f["module"])[0] != "true positive":
                missing.append((record.model_type, f["code"], f["module"]))
    return missing


def summary(records: dict[str, SweepRecord], triage, total_types: int | None = None) -> str:
    import torch
    import transformers

    rows = list(records.values())
    by_status = {s: [r for r in rows if r.status == s] for s in ("audited", "crash", "timeout", "not built")}
    audited = by_status["audited"]
    ratios = sorted(r.ratio for r in audited if r.ratio == r.ratio)
    failing = [(r, f) for r in audited for f in r.failing]
    tp = [(r, f) for r, f in failing if verdict(triage, r.model_type, f["code"], f["module"])[0] == "true positive"]
    open_ = [(r, f) for r, f in failing if (r, f) not in tp]
    codes: dict[str, set[str]] = {}
    for r, f in failing:
        codes.setdefault(f["code"], set()).add(r.model_type)
    built = len(rows) - len(by_status["not built"])
    lines = [
        "# The audit on every transformers architecture", "",
        f"transformers {transformers.__version__}, torch {torch.__version__}, CPU, one thread per "
        "model, eval mode. Built offline from tiny configs by `evaluation/tiny_models.py`; "
        "each model in its own process. Reproduce: "
        "`nice .venv/bin/python evaluation/sweep_transformers.py`.", "",
        "| | models |", "| --- | --- |",
        f"| model types in `MODEL_MAPPING_NAMES` | {total_types or len(rows)} |",
        f"| run by this sweep | {len(rows)} |",
        f"| built and ran a plain forward | {built} |",
        f"| audited | {len(audited)} |",
        f"| crashes (an exception out of `normlint.audit`) | {len(by_status['crash'])} |",
        f"| timeouts (audit > {AUDIT_TIMEOUT:.0f} s) | {len(by_status['timeout'])} |",
        f"| state not restored exactly | {sum(1 for r in rows if r.restored is False)} |",
        f"| models with a warning or error | {len({r.model_type for r, _ in failing})} |",
        f"| warnings/errors triaged true positive | {len(tp)} |",
        f"| warnings/errors not triaged | {len(open_)} |",
    ]
    if ratios:
        lines.append(f"| audit / forward: median, p90 | {statistics.median(ratios):.1f}x, "
                     f"{ratios[min(len(ratios) - 1, int(0.9 * len(ratios)))]:.1f}x |")
    lines += ["", "## Warnings and errors by rule", "", "| code | models | examples |", "| --- | --- | --- |"]
    for code in sorted(codes):
        names = sorted(codes[code])
        lines.append(f"| {code} | {len(names)} | {', '.join(names[:6])}{' ...' if len(names) > 6 else ''} |")
    lines += ["", "## Crashes and timeouts", ""]
    for r in by_status["crash"] + by_status["timeout"]:
        lines.append(f"- `{r.model_type}` {r.status}: {r.error}")
    if not by_status["crash"] and not by_status["timeout"]:
        lines.append("None.")
    lines += ["", "## Not built (the sweep's builder, not the audit)", "",
              ", ".join(f"`{r.model_type}`" for r in by_status["not built"]) or "None.", ""]
    return "\n".join(lines)


def _commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


DOC_HEADING = "## Runtime: every transformers architecture"


def doc_section(records: dict[str, SweepRecord], triage, total_types: int | None = None) -> str:
    """The section of docs/evaluation.md that states the sweep's targets, whether each holds,
    and which architectures ran (``total_types``: how many the mapping has)."""
    rows = list(records.values())
    total = total_types or len(rows)
    audited = [r for r in rows if r.status == "audited"]
    built = [r for r in rows if r.status != "not built"]
    ratios = sorted(r.ratio for r in audited if r.ratio == r.ratio)
    failing = [(r, f) for r in audited for f in r.failing]
    codes: dict[str, int] = {}
    for r, f in failing:
        codes[f["code"]] = codes.get(f["code"], 0) + 1
    crashes = [r.model_type for r in rows if r.status == "crash"]
    timeouts = [r.model_type for r in rows if r.status == "timeout"]
    not_restored = [r.model_type for r in built if r.restored is False]
    open_ = untriaged(audited, triage)
    commits = sorted({r.normlint for r in rows if r.normlint})

    def held(ok: bool) -> str:
        return "met" if ok else "**not met**"

    ran = (f"all {total} model types ran" if len(rows) >= total else
           f"**{len(rows)} of {total} model types ran; the other {total - len(rows)} did not run**")
    lines = [
        DOC_HEADING, "",
        f"`evaluation/sweep_transformers.py` builds every model type of transformers' "
        f"`MODEL_MAPPING_NAMES` ({total}) from a tiny configuration, offline "
        "(`evaluation/tiny_models.py`), and audits each in its own process. Full results: "
        "`evaluation/results/sweep_transformers.jsonl` and `.md`; the triage of every warning: "
        "`evaluation/results/sweep_triage.csv`; `tests/runtime/test_sweep.py` checks both and "
        f"runs a fixed sample of {len(SAMPLE)} architectures in CI. In this run {ran}, with "
        f"normlint at commit {', '.join(f'`{c}`' for c in commits) or '(not recorded)'}.", "",
        "| target | result | verdict |", "| --- | --- | --- |",
        f"| every architecture that builds from a tiny config is audited | {len(built)} of {len(rows)} built and ran "
        "a plain forward (the rest need inputs or configurations the generic builder does not make: the "
        f"sweep's limit, not the audit's); {len(audited)} audited | "
        f"{held(len(audited) == len(built))} |",
        f"| 0 crashes | {len(crashes)}{': ' + ', '.join(crashes) if crashes else ''} | {held(not crashes)} |",
        f"| 0 timeouts (audit over {AUDIT_TIMEOUT:.0f} s of CPU) | {len(timeouts)}"
        f"{': ' + ', '.join(timeouts) if timeouts else ''} | {held(not timeouts)} |",
        f"| model restored exactly | {len(built) - len(not_restored)} of {len(built)}"
        f"{' (not: ' + ', '.join(not_restored) + ')' if not_restored else ''} | {held(not not_restored)} |",
        f"| 0 untriaged warnings | {len(failing)} warnings/errors on {len({r.model_type for r, _ in failing})} "
        f"models ({', '.join(f'{c} {n}' for c, n in sorted(codes.items()))}); {len(failing) - len(open_)} "
        f"triaged true positives, {len(open_)} untriaged | {held(not open_)} |",
    ]
    if ratios:
        median = statistics.median(ratios)
        lines.append(f"| audit / forward on these tiny models, median ≤ 6x | {median:.1f}x median, "
                     f"{ratios[min(len(ratios) - 1, int(0.9 * len(ratios)))]:.1f}x p90 (CPU time of the "
                     f"child process, a second audit against a plain forward) | {held(median <= 6)} |")
    lines += ["", "Rerun: `nice .venv/bin/python evaluation/sweep_transformers.py` (about 40 minutes "
              "on 2 shared cores), then `--write-doc`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="model types to run (default: all)")
    ap.add_argument("--sample", action="store_true", help="only the CI sample")
    ap.add_argument("--resume", action="store_true", help="keep the results already in the file")
    ap.add_argument("--timeout", type=float, default=AUDIT_TIMEOUT, help="seconds per audit")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--commit", default=_commit(), help="recorded in each row (default: git HEAD)")
    ap.add_argument("--write-doc", action="store_true",
                    help="only rewrite the summary and docs/evaluation.md's section from the results")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "evaluation"))
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    import normlint.runtime.api  # noqa: F401 - imported once here, not in every child
    # What an audit imports lazily too: a child must run the code of the commit recorded in
    # its row, not whatever the working tree holds when it is forked.
    import normlint.runtime.project  # noqa: F401
    import normlint.static.engine  # noqa: F401
    from normlint.runtime.rules import all_checks
    all_checks()
    from tiny_models import model_types

    if args.write_doc:
        records, triage = load_results(args.results), load_triage()
        SUMMARY.write_text(summary(records, triage, len(model_types())))
        from run_zoo import write_section
        write_section(ROOT / "docs" / "evaluation.md", doc_section(records, triage, len(model_types())),
                      DOC_HEADING)
        return 0
    names = args.only or (list(SAMPLE) if args.sample else model_types())
    records = load_results(args.results) if args.resume else {}
    if not args.resume and args.results.exists() and args.only:
        records = load_results(args.results)   # --only refreshes those rows, keeps the rest
    for name in names:
        if args.resume and name in records:
            continue
        t0 = time.perf_counter()
        record = run_isolated(name, audit_timeout=args.timeout)
        record.normlint = args.commit
        records[name] = record
        write_results(records, args.results)
        codes = ",".join(sorted({f["code"] for f in record.failing}))
        print(f"{name:<36} {record.status:<9} {time.perf_counter() - t0:6.1f}s "
              f"ratio={record.ratio:5.1f} {codes} {record.error[:100]}", flush=True)
    if args.results == RESULTS and not args.only and not args.sample:
        SUMMARY.write_text(summary(records, load_triage() if TRIAGE.exists() else {}, len(model_types())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
