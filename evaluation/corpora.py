"""Fetch the real-world corpora as source files only (nothing is imported).

    python evaluation/corpora.py DEST

writes DEST/<corpus>/... and DEST/manifest.json (version, wheel sha256, files and lines
checked per corpus). The packages come from the package index as wheels (`pip download
--no-deps --only-binary=:all:`), are checked against the sha256 pinned here, and unpacked:
nothing is installed or imported, so torchvision's compiled parts never load and no
package's dependencies are resolved. A corpus folder that already holds Python files is
kept as it is (DEST may be a shared, read-only copy).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Corpus:
    """One package from the index and which of its files are checked."""

    name: str
    requirement: str          # pip requirement, pinned with ==
    sha256: str               # of the wheel; a changed upload is an error, not a silent drift
    inner: str                # the folder of the wheel that becomes DEST/<name>
    checked: tuple[str, ...]  # globs, relative to DEST/<name>, of the files normlint checks
    community: str            # where the code comes from, for the docs table

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]


ALL = ("**/*.py",)


CORPORA: tuple[Corpus, ...] = (
    # the four corpora the engine was tuned on (issue 4)
    Corpus("transformers", "transformers==5.24.0",
           "ff5ebedf9359f94bb63772b6380eba6e7104d010cbbb2cb82c788817ea7486f6",
           "transformers/models", ("*/modeling_*.py",), "Hugging Face"),
    Corpus("timm", "timm==1.0.31",
           "5bd50f7d0fe6d09bf9285ac2523234a1b7e6bf075c0be3e7aed09139fcb617c7",
           "timm", ("models/**/*.py", "layers/**/*.py"), "Hugging Face (vision)"),
    Corpus("x-transformers", "x-transformers==2.31.10",
           "40099be7b1f3043ffba67381288a35bdd932decf338dc69a01eb8024bea34d24",
           "x_transformers", ("*.py",), "lucidrains"),
    # a platform wheel: its hash depends on the machine, so it is not pinned
    Corpus("torchvision", "torchvision==0.29.1", "", "torchvision",
           ("models/**/*.py", "ops/**/*.py"), "PyTorch"),
    # code the engine was never tuned on (issue 9): the whole package, as a new user would
    # run it (diffusers: its models; its pipelines hold no model code)
    Corpus("ultralytics", "ultralytics==8.4.190",
           "bd309728efa168af64d39040136828edd2dbcb4aeceb4510bdff4f3ca0ea01b8",
           "ultralytics", ALL, "Ultralytics (YOLO detection)"),
    Corpus("monai", "monai==1.6.1",
           "dbd3b1dd309e752e0477ed73fde03b92f80ac74bfb8a8c4260f018b5d6ab2b0b",
           "monai", ALL, "Project MONAI (medical imaging)"),
    Corpus("pyannote.audio", "pyannote.audio==4.0.7",
           "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6",
           "pyannote/audio", ALL, "pyannote (speaker diarization)"),
    Corpus("fair-esm", "fair-esm==2.0.0",
           "7dcb58828a401155d1457d071a03800bd1a50331ddf24ac79ad1dd0f2ea682a2",
           "esm", ALL, "Meta FAIR (protein language models)"),
    Corpus("flair", "flair==0.15.1",
           "3b6b793f2380cd618e988e7b16fbadcec6502aaa8f11a0890390160303aed553",
           "flair", ALL, "flairNLP (sequence labelling)"),
    Corpus("peft", "peft==0.21.2",
           "106ab6077ff72c54d21577f9af5970e34bac7582cb14209f7b2b511e322a4eae",
           "peft", ALL, "Hugging Face PEFT (adapters)"),
    Corpus("segment-anything", "segment-anything==1.0",
           "86f67d417a915823c3302098effe9008b688945772517310956bb49de0e7f02e",
           "segment_anything", ALL, "Meta FAIR (SAM)"),
    Corpus("imagen-pytorch", "imagen-pytorch==2.1.0",
           "e3767c0bf59e54607e73a9cbdad6989f9db4dbef5a05f0e55262cc911fe18475",
           "imagen_pytorch", ALL, "lucidrains (diffusion)"),
    Corpus("dalle2-pytorch", "dalle2-pytorch==1.15.6",
           "d77224994ccc005a7e2170c0d80e54333e3826613bf31f010d9faba6a0cf8594",
           "dalle2_pytorch", ALL, "lucidrains (diffusion)"),
    Corpus("x-clip", "x-clip==0.14.4",
           "2e9842330bc4539916e54a22c1d4352b60b838507e0736e98e4fb74fd9972f7a",
           "x_clip", ALL, "lucidrains (CLIP)"),
    Corpus("diffusers", "diffusers==0.42.1",
           "9154faa704ce00e0b77f568e0d64786064368528aab5fc14eeea92f87d788014",
           "diffusers", ("models/**/*.py",), "Hugging Face (diffusion)"),
    Corpus("speechbrain", "speechbrain==1.1.2",
           "9fea4144c917ea58bcf13f17a1a1759179ed7472a30ec8416e7c7c8cf21d9c9a",
           "speechbrain", ALL, "SpeechBrain (speech toolkit)"),
    Corpus("open_clip", "open-clip-torch==3.3.0",
           "c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce",
           "", ("open_clip/**/*.py", "open_clip_train/**/*.py"), "LAION/mlfoundations (CLIP training)"),
)
BY_NAME = {c.name: c for c in CORPORA}
TUNED_ON = ("transformers", "timm", "x-transformers", "torchvision")


def checked_files(root: Path, corpus: Corpus) -> list[str]:
    """The files of ``corpus`` under ``root`` that are checked, sorted, relative to ``root``."""
    return sorted({str(p.relative_to(root)) for pattern in corpus.checked
                   for p in root.glob(pattern) if p.is_file()})


def _download(corpus: Corpus, tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "-d", str(tmp), corpus.requirement], check=True)
    dist = corpus.requirement.split("==")[0].replace("-", "_").replace(".", "_").lower()
    wheel = next(p for p in tmp.glob("*.whl")
                 if p.name.lower().startswith(f"{dist}-{corpus.version}-"))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if corpus.sha256 and digest != corpus.sha256:
        raise SystemExit(f"{wheel.name}: sha256 {digest} is not the pinned {corpus.sha256}")
    return wheel


def _unpack(wheel: Path, inner: str, target: Path) -> None:
    prefix = inner + "/" if inner else ""
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith(prefix) and member.endswith(".py") and ".dist-info/" not in member:
                out = target / member[len(prefix):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(member))


def fetch(dest: Path, names: list[str] | None = None) -> dict[str, dict]:
    """Fetch the corpora (all, or ``names``) into ``dest``; return the manifest."""
    selected = [BY_NAME[n] for n in names] if names else list(CORPORA)
    manifest: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for corpus in selected:
            target = dest / corpus.name
            if not (target.is_dir() and any(target.rglob("*.py"))):
                dest.mkdir(parents=True, exist_ok=True)
                _unpack(_download(corpus, Path(tmp)), corpus.inner, target)
            files = checked_files(target, corpus)
            lines = sum((target / f).read_bytes().count(b"\n") for f in files)
            manifest[corpus.name] = {"version": corpus.version, "files": len(files), "lines": lines}
    manifest_file = dest / "manifest.json"
    try:
        manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
    except OSError:  # a shared read-only copy: the manifest is returned all the same
        pass
    return manifest


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(json.dumps(fetch(Path(sys.argv[1]), sys.argv[2:] or None), indent=2))
