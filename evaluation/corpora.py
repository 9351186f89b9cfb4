"""Fetch the real-world corpora as source files only (nothing is imported).

    python evaluation/corpora.py DEST

writes DEST/<corpus>/... and DEST/versions.json. The packages come from the package
index as wheels and are unpacked, so torchvision's compiled parts never load and timm's
dependencies never install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# name -> (pip requirement, the package directory inside the wheel)
CORPORA = {
    "transformers": ("transformers==5.24.0", "transformers/models"),
    "timm": ("timm==1.0.31", "timm"),
    "x-transformers": ("x-transformers==2.31.10", "x_transformers"),
    "torchvision": ("torchvision==0.29.1", "torchvision"),
}


def fetch(dest: Path) -> dict[str, str]:
    dest.mkdir(parents=True, exist_ok=True)
    versions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (req, inner) in CORPORA.items():
            target = dest / name
            if target.is_dir() and any(target.rglob("*.py")):
                versions[name] = req.split("==")[1]
                continue
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "--only-binary=:all:", "-d", tmp, req], check=True)
            dist = req.split("==")[0].replace("-", "_")
            wheel = next(Path(tmp).glob(f"{dist}-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    if member.startswith(inner + "/") and member.endswith(".py"):
                        out = target / member[len(inner) + 1:]
                        out.parent.mkdir(parents=True, exist_ok=True)
                        out.write_bytes(zf.read(member))
            versions[name] = req.split("==")[1]
    (dest / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    return versions


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(fetch(Path(sys.argv[1])), indent=2))
