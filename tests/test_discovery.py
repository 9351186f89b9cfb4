from __future__ import annotations

import os
import subprocess

from normlint.config import DEFAULT_EXCLUDE
from normlint.static.discovery import discover

from .helpers import write


def _names(found, root):
    return sorted(p.resolve().relative_to(root.resolve()).as_posix() for p in found.files)


def _git_init(root):
    subprocess.run(["git", "init", "-q", str(root)], check=True)


def test_walks_python_files_only(tmp_path):
    write(tmp_path, "a.py", "")
    write(tmp_path, "b.pyi", "")
    write(tmp_path, "c.txt", "")
    write(tmp_path, "sub/d.py", "")
    found = discover([tmp_path], exclude=DEFAULT_EXCLUDE, root=tmp_path)
    assert _names(found, tmp_path) == ["a.py", "b.pyi", "sub/d.py"]


def test_gitignore_nested_and_negated(tmp_path):
    _git_init(tmp_path)
    write(tmp_path, ".gitignore", "ignored_dir/\n*_gen.py\n!keep_gen.py\n")
    write(tmp_path, "sub/.gitignore", "local.py\n")
    for rel in ["a.py", "ignored_dir/x.py", "model_gen.py", "keep_gen.py", "sub/local.py", "sub/b.py"]:
        write(tmp_path, rel, "")
    found = discover([tmp_path], exclude=DEFAULT_EXCLUDE, root=tmp_path)
    assert _names(found, tmp_path) == ["a.py", "keep_gen.py", "sub/b.py"]


def test_gitignore_outside_a_repository_is_not_applied(tmp_path):
    write(tmp_path, ".gitignore", "*.py\n")
    write(tmp_path, "a.py", "")
    assert _names(discover([tmp_path], exclude=(), root=tmp_path), tmp_path) == ["a.py"]


def test_explicit_file_is_checked_even_if_ignored(tmp_path):
    _git_init(tmp_path)
    write(tmp_path, ".gitignore", "secret.py\n")
    f = write(tmp_path, "secret.py", "")
    assert discover([f], exclude=("secret.py",), root=tmp_path).files == [f]


def test_default_excludes(tmp_path):
    for rel in [".venv/lib/x.py", "build/y.py", "node_modules/z.py", "src/ok.py"]:
        write(tmp_path, rel, "")
    assert _names(discover([tmp_path], exclude=DEFAULT_EXCLUDE, root=tmp_path), tmp_path) == ["src/ok.py"]


def test_symlink_loop_and_missing_paths_are_messages(tmp_path):
    write(tmp_path, "pkg/a.py", "")
    os.symlink(tmp_path / "pkg", tmp_path / "pkg" / "loop")      # a directory loop: not followed
    os.symlink(tmp_path / "self.py", tmp_path / "self.py")        # a file that points at itself
    found = discover([tmp_path / "pkg", tmp_path / "self.py", tmp_path / "missing"],
                     exclude=(), root=tmp_path)
    assert _names(found, tmp_path) == ["pkg/a.py"]
    assert len(found.errors) == 2
    assert any("self.py" in e and ("symlink" in e or "Too many levels" in e) for e in found.errors)
    assert any(e.endswith("missing: no such file or directory") for e in found.errors)


def test_same_file_twice_is_checked_once(tmp_path):
    f = write(tmp_path, "a.py", "")
    assert len(discover([f, tmp_path, f], exclude=(), root=tmp_path).files) == 1
