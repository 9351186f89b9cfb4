"""Check many small file sets in one interpreter (the mutation benchmark's runner).

    PYTHON evaluation/check_each.py JOBS.json OUT.jsonl

JOBS.json is ``{"extend_select": [...], "jobs": [{"id": ..., "dir": ..., "files": [...]}]}``.
Each job is checked on its own with ``normlint.check_paths`` (one worker, no cache), from
inside its folder, so the paths in the findings are relative to it. OUT.jsonl gets one
line per job: ``{"id": ..., "findings": [[code, severity, path, line], ...]}`` or
``{"id": ..., "error": ...}``. It only uses the public API, so the interpreter given
(any branch's virtual environment) decides which engine is measured.
"""

from __future__ import annotations

import json
import os
import sys


def main(jobs_file: str, out_file: str) -> None:
    from normlint import check_paths

    spec = json.loads(open(jobs_file).read())
    extend = spec.get("extend_select") or None
    with open(out_file, "w") as out:
        for job in spec["jobs"]:
            os.chdir(job["dir"])
            try:
                report = check_paths(job["files"], extend_select=extend, jobs=1)
                rows = [[f.code, f.severity.value, f.path, f.line] for f in report.findings]
                out.write(json.dumps({"id": job["id"], "findings": rows}) + "\n")
            except Exception as exc:  # a crash is a result too: the mutant is reported, not lost
                out.write(json.dumps({"id": job["id"], "error": f"{type(exc).__name__}: {exc}"}) + "\n")
            out.flush()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
