"""The mutation benchmark: inject realistic normalization bugs into real files, measure recall.

    python evaluation/mutate.py [--corpora DIR] [--out DIR] [--python PY] [--cap N] [--seed S]

1. Every checked file of the corpora the engine was never tuned on is read (not imported)
   and every site of every mutator (evaluation/mutators.py) is listed.
2. Per mutator and rule, at most --cap sites are drawn with a fixed seed, round-robin over
   the corpora so that no one package fills the sample: the draw is mechanical.
3. Each mutant is checked in the context of its file: the file plus the corpus files it
   imports (its direct imports, as `normlint check` would see their classes). The same
   context unmutated is the mutant's clean run.
4. A mutant is detected when its run has a finding of the expected code that the clean run
   has not (lines are comparable: mutations keep the line count). Warnings and errors
   count, and info for the rules whose severity is info (NL502, NL504). Rules that are off
   by default are selected for the run; rules the engine does not have are misses.
5. The clean run of each mutated file is compared with the same engine's run over the whole
   corpus: a warning there that the full run does not give would be an artefact of the
   context (reported as `clean_check`).

Writes to --out (default evaluation/results/): `mutation_mutants.csv` (every mutant and its
outcome), `mutation_summary.json` (recall per rule, per mutator and overall, clean check)
and `mutation_misses.diff` (the diff of every missed mutant, to triage by kind);
`evaluation/mutation_triage.csv` says which misses are not bugs after all (excluded).
"""

from __future__ import annotations

import argparse
import ast
import csv
import difflib
import json
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mutators  # noqa: E402
from corpora import CORPORA, TUNED_ON, Corpus, checked_files, fetch  # noqa: E402
from run_static import engine_info  # noqa: E402

MUTATION_TRIAGE = HERE / "mutation_triage.csv"
REPORTED = ("warning", "error")


@dataclass
class Drawn:
    id: int
    corpus: str
    path: str
    mutant: mutators.Mutant


# ---------------------------------------------------------------- drawing the sample

def enumerate_sites(root: Path, corpora: list[Corpus]) -> dict[tuple[str, str], list[tuple[str, str, mutators.Mutant]]]:
    """All mutants, grouped by (mutator, rule): (corpus, path, mutant)."""
    sites: dict[tuple[str, str], list] = defaultdict(list)
    for corpus in corpora:
        base = root / corpus.name
        for path in checked_files(base, corpus):
            text = (base / path).read_text(encoding="utf-8", errors="replace")
            try:
                found = mutators.mutants(text)
            except (SyntaxError, ValueError, RecursionError):
                continue
            for m in found:
                sites[(m.mutator, m.rule)].append((corpus.name, path, m))
    return sites


def draw(sites: dict, cap: int, seed: int) -> list[tuple[str, str, mutators.Mutant]]:
    """Per (mutator, rule): shuffle each corpus's sites with the seed, then take them
    round-robin over the corpora (sorted by name) until ``cap``."""
    out = []
    for key in sorted(sites):
        by_corpus: dict[str, list] = defaultdict(list)
        for item in sites[key]:
            by_corpus[item[0]].append(item)
        queues = []
        for name in sorted(by_corpus):
            items = by_corpus[name]
            random.Random(f"{seed}:{key[0]}:{key[1]}:{name}").shuffle(items)
            queues.append(items)
        taken = 0
        while taken < cap and any(queues):
            for q in queues:
                if q and taken < cap:
                    out.append(q.pop(0))
                    taken += 1
    return out


# ---------------------------------------------------------------- context of a file

def package_of(corpus: Corpus) -> list[str]:
    return corpus.inner.split("/") if corpus.inner else []


def imported_files(base: Path, corpus: Corpus, path: str, text: str) -> list[str]:
    """Corpus files that ``path`` imports directly (relative, or absolute within the package)."""
    pkg = package_of(corpus)
    parts = path[:-3].split("/")
    here = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    targets: list[list[str]] = []
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                mod = up + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[:len(pkg)] == pkg and pkg:
                mod = node.module.split(".")[len(pkg):]
            elif node.module and not pkg:
                mod = node.module.split(".")
            else:
                continue
            targets.append(mod)
            targets += [mod + [a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                mod = a.name.split(".")
                if pkg and mod[:len(pkg)] == pkg:
                    targets.append(mod[len(pkg):])
                elif not pkg:
                    targets.append(mod)
    found = []
    for mod in targets:
        for cand in ("/".join(mod) + ".py", "/".join(mod + ["__init__.py"])):
            if cand != path and cand not in found and (base / cand).is_file():
                found.append(cand)
    return found


# ---------------------------------------------------------------- running the engine

def engine_rules(python: str) -> dict[str, dict]:
    out = subprocess.run([python, "-m", "normlint", "rules", "--output-format", "json"],
                         capture_output=True, text=True, check=True).stdout
    return {r["code"]: r for r in json.loads(out)}


def run_jobs(python: str, jobs: list[dict], extend: list[str], work: Path) -> dict[str, dict]:
    spec = work / "jobs.json"
    spec.write_text(json.dumps({"extend_select": extend, "jobs": jobs}))
    out = work / "out.jsonl"
    subprocess.run([python, str(HERE / "check_each.py"), str(spec), str(out)], check=True)
    return {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}


def counted(finding: list, info_rules: set[str]) -> bool:
    code, severity = finding[0], finding[1]
    return severity in REPORTED or code in info_rules


def read_mutation_triage() -> dict[tuple, dict]:
    if not MUTATION_TRIAGE.exists():
        return {}
    with MUTATION_TRIAGE.open(newline="") as fh:
        return {(r["corpus"], r["path"], r["mutator"], r["rule"], int(r["line"])): r for r in csv.DictReader(fh)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default="/tmp/normlint-corpora")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--python", default=sys.executable, help="interpreter whose normlint is measured")
    ap.add_argument("--cap", type=int, default=25, help="mutants per mutator and rule")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--rescore", action="store_true",
                    help="do not run anything: re-apply evaluation/mutation_triage.csv to the results in --out")
    args = ap.parse_args(argv)
    if args.rescore:
        rescore(Path(args.out))
        return
    corpora = [c for c in CORPORA if c.name not in TUNED_ON]
    root = Path(args.corpora)
    fetch(root, [c.name for c in corpora])
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_name = {c.name: c for c in corpora}

    rules = engine_rules(args.python)
    present = [r for r in mutators.RULES if r in rules]
    extend = [r for r in present if not rules[r].get("default", True)]
    info_rules = {r for r in present if rules[r].get("severity") == "info"}
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    engine = engine_info(args.python)

    sites = enumerate_sites(root, corpora)
    sample = draw(sites, args.cap, args.seed)
    drawn = [Drawn(i, c, p, m) for i, (c, p, m) in enumerate(sample)]

    with tempfile.TemporaryDirectory(prefix="normlint-mutants-") as tmp:
        work = Path(tmp)
        jobs: list[dict] = []
        contexts: dict[tuple[str, str], list[str]] = {}
        texts: dict[tuple[str, str], str] = {}
        for d in drawn:
            key = (d.corpus, d.path)
            if key not in contexts:
                base = root / d.corpus
                texts[key] = (base / d.path).read_text(encoding="utf-8", errors="replace")
                contexts[key] = [d.path, *imported_files(base, by_name[d.corpus], d.path, texts[key])]
        runs: dict[tuple, str] = {}                      # (corpus, path, edits) -> job id
        for key, files in contexts.items():
            runs[(*key, None)] = _write_job(work, f"clean-{len(runs)}", root / key[0], files, None, None, jobs)
        for d in drawn:
            k = (d.corpus, d.path, d.mutant.key)
            if k not in runs:
                new = mutators.check(texts[(d.corpus, d.path)], d.mutant)
                runs[k] = _write_job(work, f"mut-{d.id}", root / d.corpus, contexts[(d.corpus, d.path)],
                                     d.path, new, jobs)
        for c in corpora:                                # the engine's own full-corpus run
            jobs.append({"id": f"full-{c.name}", "dir": str(root / c.name),
                         "files": checked_files(root / c.name, c)})
        results = run_jobs(args.python, jobs, extend, work)

        triage = read_mutation_triage()
        rows, diffs = [], []
        for d in drawn:
            m = d.mutant
            clean = results[runs[(d.corpus, d.path, None)]]
            res = results[runs[(d.corpus, d.path, m.key)]]
            row = {"id": d.id, "corpus": d.corpus, "path": d.path, "mutator": m.mutator, "rule": m.rule,
                   "line": m.line, "note": m.note}
            if m.rule not in rules:
                row.update(outcome="missed", where="rule not in engine", found="", collateral="")
            elif "error" in res or "error" in clean:
                row.update(outcome="crash", where=res.get("error") or clean.get("error"), found="", collateral="")
            else:
                new = Counter(map(tuple, res["findings"])) - Counter(map(tuple, clean["findings"]))
                hits = [f for f in new if f[0] == m.rule and counted(list(f), info_rules)]
                where, found = "", ""
                if hits:
                    best = min(hits, key=lambda f: (f[2] != d.path, abs(f[3] - m.line)))
                    found = f"{best[2]}:{best[3]}"
                    where = ("at line" if best[2] == d.path and best[3] == m.line else
                             "in class" if best[2] == d.path and m.scope[0] <= best[3] <= m.scope[1] else
                             "elsewhere")
                collateral = sorted({f[0] for f in new if f[0] != m.rule and f[1] in REPORTED})
                row.update(outcome="detected" if hits else "missed", where=where, found=found,
                           collateral=" ".join(collateral))
            rows.append(_judged(row, triage))
            if row["outcome"] != "detected":
                text = texts[(d.corpus, d.path)]
                new_text = mutators.apply(text, m.edits)
                diff = "".join(difflib.unified_diff(text.splitlines(True), new_text.splitlines(True),
                                                    f"a/{d.corpus}/{d.path}", f"b/{d.corpus}/{d.path}", n=2))
                diffs.append(f"# mutant {d.id}: {m.rule} expected at line {m.line} ({m.mutator}: {m.note})\n"
                             f"{diff}\n")
        clean_check = _clean_check(contexts, runs, results, info_rules)

    summary = _summary(rows, engine["commit"], commit, args, present, clean_check)
    summary["sites"] = {f"{m} ({r})": len(v) for (m, r), v in sorted(sites.items())}
    _write(out_dir, rows, summary, diffs)
    _print(summary)


def _judged(row: dict, triage: dict) -> dict:
    """The row with the triage's verdict on a miss: excluded when the mutant is not a bug."""
    verdict = triage.get((row["corpus"], row["path"], row["mutator"], row["rule"], int(row["line"])), {})
    missed = row["outcome"] != "detected"
    return {**row, "excluded": missed and verdict.get("verdict") == "invalid",
            "kind": verdict.get("kind", "") if missed else "", "reason": verdict.get("reason", "") if missed else ""}


def rescore(out_dir: Path) -> None:
    """Re-apply the triage to a finished run (the verdicts change, the runs do not)."""
    with (out_dir / "mutation_mutants.csv").open(newline="") as fh:
        rows = [_judged({k: v for k, v in r.items() if k not in ("excluded", "kind", "reason")}, read_mutation_triage())
                for r in csv.DictReader(fh)]
    old = json.loads((out_dir / "mutation_summary.json").read_text())
    args = argparse.Namespace(seed=old["seed"], cap=old["cap"])
    summary = _summary(rows, old["engine"], old["evaluation"], args, old["rules_in_engine"], old["clean_check"])
    if "sites" in old:
        summary["sites"] = old["sites"]
    diffs = (out_dir / "mutation_misses.diff").read_text()
    _write(out_dir, rows, summary, [diffs])
    _print(summary)


def _write_job(work: Path, job_id: str, base: Path, files: list[str], mutated: str | None,
               text: str | None, jobs: list[dict]) -> str:
    d = work / job_id
    for f in files:
        target = d / f
        target.parent.mkdir(parents=True, exist_ok=True)
        if f == mutated:
            target.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(base / f, target)
    jobs.append({"id": job_id, "dir": str(d), "files": files})
    return job_id


def _clean_check(contexts, runs, results, info_rules) -> dict:
    """Warnings and errors of each mutated file, unmutated, in its context against the full run."""
    full: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for job_id, res in results.items():
        if job_id.startswith("full-"):
            corpus = job_id[len("full-"):]
            for f in res.get("findings", []):
                if f[1] in REPORTED:
                    full[(corpus, f[2])][(f[0], f[3])] += 1
    new, lost = [], []
    for (corpus, path), _files in contexts.items():
        res = results[runs[(corpus, path, None)]]
        got = Counter((f[0], f[3]) for f in res.get("findings", []) if f[2] == path and f[1] in REPORTED)
        new += [f"{corpus}/{path}:{line} {code}" for code, line in (got - full[(corpus, path)])]
        lost += [f"{corpus}/{path}:{line} {code}" for code, line in (full[(corpus, path)] - got)]
    return {"files": len(contexts), "new_warnings": sorted(new), "warnings_needing_more_context": sorted(lost)}


def _recall(rows: list[dict]) -> dict:
    n = len(rows)
    hit = sum(r["outcome"] == "detected" for r in rows)
    return {"mutants": n, "detected": hit, "recall": round(hit / n, 4) if n else None}


def _summary(rows, engine_commit, eval_commit, args, present, clean_check) -> dict:
    valid = [r for r in rows if not r["excluded"]]
    by_rule: dict[str, list] = defaultdict(list)
    by_mutator: dict[str, list] = defaultdict(list)
    for r in valid:
        by_rule[r["rule"]].append(r)
        by_mutator[f"{r['mutator']} ({r['rule']})"].append(r)
    per_rule = {code: _recall(by_rule.get(code, [])) for code in mutators.RULES}
    rule_recalls = [v["recall"] for v in per_rule.values() if v["recall"] is not None]
    return {
        "engine": engine_commit, "evaluation": eval_commit, "seed": args.seed, "cap": args.cap,
        "rules_in_engine": present, "excluded_as_not_a_bug": len(rows) - len(valid),
        "overall": _recall(valid),
        "macro_recall_over_rules": round(sum(rule_recalls) / len(rule_recalls), 4) if rule_recalls else None,
        "per_rule": per_rule,
        "per_mutator": {k: _recall(v) for k, v in sorted(by_mutator.items())},
        "where_detected": dict(Counter(r["where"] for r in valid if r["outcome"] == "detected")),
        "crashes": sum(r["outcome"] == "crash" for r in rows),
        "clean_check": clean_check,
    }


def _write(out_dir: Path, rows, summary, diffs) -> None:
    fields = ["id", "corpus", "path", "mutator", "rule", "line", "outcome", "where", "found", "collateral",
              "excluded", "kind", "reason", "note"]
    with (out_dir / "mutation_mutants.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
    (out_dir / "mutation_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "mutation_misses.diff").write_text("".join(diffs))


def _print(summary: dict) -> None:
    print(f"engine {summary['engine']}: overall recall {summary['overall']['detected']}/"
          f"{summary['overall']['mutants']} = {summary['overall']['recall']:.1%} "
          f"(macro over rules {summary['macro_recall_over_rules']:.1%}; "
          f"{summary['excluded_as_not_a_bug']} mutants excluded as not a bug)")
    print("| rule | mutants | detected | recall |\n| --- | --- | --- | --- |")
    for code, s in summary["per_rule"].items():
        r = "—" if s["recall"] is None else f"{s['recall']:.0%}"
        print(f"| {code} | {s['mutants']} | {s['detected']} | {r} |")
    cc = summary["clean_check"]
    print(f"clean check: {cc['files']} mutated files unmutated in their context: "
          f"{len(cc['new_warnings'])} new warnings against the full-corpus run, "
          f"{len(cc['warnings_needing_more_context'])} full-run warnings not seen in the context")
    for line in cc["new_warnings"]:
        print("  new:", line)


if __name__ == "__main__":
    main()
