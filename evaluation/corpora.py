"""Fetch the real-world corpora as source files only (nothing is imported).

    python evaluation/corpora.py DEST [NAME ...]
    python evaluation/corpora.py --fresh DEST

writes DEST/<corpus>/... and DEST/manifest.json (version, files and lines checked per
corpus). The packages come from the package index as wheels (`pip download --no-deps
--only-binary=:all:`; a package published only as an sdist is fetched as that archive), are
checked against the sha256 pinned here, and unpacked: nothing is installed or imported, so
torchvision's compiled parts never load and no package's dependencies are resolved. A
corpus folder that already holds Python files is kept as it is (DEST may be a shared,
read-only copy).

Two sets: `CORPORA`, the 17 of issues 4 and 9 (their figures stay reproducible as they
are), and `FRESH`, 8 packages picked after the engine's issue-9 tuning and measured once
before any fix (`--fresh`; keep them in their own DEST, e.g. /work/corpora-fresh).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
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
    sdist: bool = False       # only an sdist is on the index: sha256 of the .tar.gz

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

# Picked on 2026-12-01 from communities none of the corpora above comes from, and measured
# with the engine as it was before anyone looked at them (docs/evaluation.md, "Precision on
# fresh corpora"). Checked whole, as a new user runs `normlint check .`.
FRESH: tuple[Corpus, ...] = (
    Corpus("torchtune", "torchtune==0.6.1",
           "bcbc4ee9774b5c5829a5ff13df851e0b0e32416c018af8db53faa3472ac256e7",
           "torchtune", ALL, "PyTorch (LLM fine-tuning)"),
    Corpus("litgpt", "litgpt==0.5.13",
           "da044b76c52cd44fc0564f6177ed6cf186dde24f711ce8e71e1fd9e9da5f02b2",
           "litgpt", ALL, "Lightning AI (LLM recipes)"),
    Corpus("olmo-core", "ai2-olmo-core==3.0.0",
           "9006e75b51c05ef8d701826f5f45980672ebade86f8050e185ae26b4626b4ad5",
           "olmo_core", ALL, "AI2 (LLM pre-training)"),
    Corpus("esm3", "esm==3.2.1.post1",
           "94aa1cfc9876124ade08d951da7252f03b8a26fd7ac87d05e52d36c2e94865ec",
           "esm", ALL, "EvolutionaryScale (ESM3/ESM C protein models)"),
    Corpus("k-diffusion", "k-diffusion==0.1.1.post1",
           "b4bdcc74e35dd66df5d25433ea76b19edeaeaf2aad05ed97438be447cf4f5ee1",
           "k_diffusion", ALL, "Katherine Crowson (diffusion)"),
    Corpus("audiocraft", "audiocraft==1.3.0",
           "d82ade3eb4f934ee1adb438ae687a2bf59d33ca4a20039beab072548c038ac80",
           "audiocraft-1.3.0/audiocraft", ALL, "Meta FAIR (MusicGen/EnCodec audio)", sdist=True),
    Corpus("torchgeo", "torchgeo==0.8.1",
           "3119f455bff1920c3fe7b83aa4382d93298ee0cea706e954234b8efd2719ec5f",
           "torchgeo", ALL, "Microsoft/TorchGeo (remote sensing)"),
    Corpus("pytorch-tabular", "pytorch-tabular==1.2.0",
           "0a59f8a2304856b3d1e905f7b66153ebc65df1a6a017f2c8a13a29f62dc95b26",
           "pytorch_tabular", ALL, "pytorch-tabular (tabular deep learning)"),
)
BY_NAME = {c.name: c for c in (*CORPORA, *FRESH)}
TUNED_ON = ("transformers", "timm", "x-transformers", "torchvision")


def checked_files(root: Path, corpus: Corpus) -> list[str]:
    """The files of ``corpus`` under ``root`` that are checked, sorted, relative to ``root``."""
    return sorted({str(p.relative_to(root)) for pattern in corpus.checked
                   for p in root.glob(pattern) if p.is_file()})


def _download(corpus: Corpus, tmp: Path) -> Path:
    kind, suffix = ("--no-binary=:all:", ".tar.gz") if corpus.sdist else ("--only-binary=:all:", ".whl")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", kind,
                    "-d", str(tmp), corpus.requirement], check=True)
    dist = corpus.requirement.split("==")[0].replace("-", "_").replace(".", "_").lower()
    archive = next(p for p in tmp.glob("*" + suffix)
                   if p.name.lower().replace("-", "_").startswith(f"{dist}_{corpus.version}"))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if corpus.sha256 and digest != corpus.sha256:
        raise SystemExit(f"{archive.name}: sha256 {digest} is not the pinned {corpus.sha256}")
    return archive


def _members(archive: Path):
    """(name, bytes reader) of every file in a wheel or an sdist."""
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    yield m.name, lambda m=m: tf.extractfile(m).read()
    else:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                yield name, lambda name=name: zf.read(name)


def _unpack(archive: Path, inner: str, target: Path) -> None:
    prefix = inner + "/" if inner else ""
    for member, read in _members(archive):
        if member.startswith(prefix) and member.endswith(".py") and ".dist-info/" not in member:
            out = target / member[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(read())


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
    args = sys.argv[1:]
    fresh = "--fresh" in args
    args = [a for a in args if a != "--fresh"]
    if not args:
        sys.exit(__doc__)
    names = args[1:] or ([c.name for c in FRESH] if fresh else None)
    print(json.dumps(fetch(Path(args[0]), names), indent=2))
