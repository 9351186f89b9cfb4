"""``normlint audit TARGET``: build the model (and example inputs, when the target has them).

TARGET is one of:

- a local Hugging Face model directory (``config.json`` plus weights), loaded offline;
- a ``.pt``/``.pth`` file holding a whole pickled module (only with ``--trust-pickle``);
- ``path/to/file.py:callable`` or ``package.module:callable``, imported as ``python -m``
  would: the current directory on the path, and a file inside a package imported as part
  of its package (so its relative imports work). The callable returns a module, or
  ``(module, example_inputs)``; ``--arg key=value`` passes keyword arguments to it.

``--weights FILE`` then loads a state dict into the model, whatever built it.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import NormlintError
from .checkpoints import load_pickled_module, load_weights
from .input_specs import InputSpec, build_inputs, parse_input_spec  # noqa: F401 - re-exported
from .user_code import UserSession, call_user, describe_exception

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")


@dataclass(frozen=True)
class TargetOptions:
    """How to build the target: the flags of ``normlint audit`` that concern loading."""

    init: str = "weights"                 # directories: "weights" or "random"
    trust_pickle: bool = False
    weights: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    device: torch.device | None = None
    dtype: torch.dtype | None = None
    verbose: bool = False

    @property
    def meta(self) -> bool:
        return self.device is not None and self.device.type == "meta"


@dataclass
class LoadedTarget:
    model: nn.Module
    inputs: Any                           # the target's own example inputs, or None
    source: str                           # what was loaded, for the report's header
    directory: str | None = None          # a Hugging Face directory (its tokenizer, if any)
    notes: list[str] = field(default_factory=list)


def parse_arg(text: str) -> tuple[str, Any]:
    """``--arg key=value``: the value is a Python literal (``4``, ``0.1``, ``True``,
    ``"gelu"``, ``[1, 2]``) or else the plain string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise NormlintError(f"bad --arg {text!r}; expected key=value, e.g. depth=4")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return key, value


def parse_device(text: str) -> torch.device:
    """A device string torch accepts (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``meta``),
    checked to be usable here. Raises ``NormlintError`` with the reason otherwise."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise NormlintError(f"bad --device {text!r}: {describe_exception(exc)}") from None
    if device.type != "meta":
        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise NormlintError(f"--device {text} is not available with torch {torch.__version__}: "
                                f"{describe_exception(exc)}") from None
    return device


def load_target(target: str, options: TargetOptions, session: UserSession) -> LoadedTarget:
    """The model ``target`` names, built as ``options`` say, with ``--weights`` loaded."""
    if options.args and (os.path.isdir(target) or ":" not in target):
        raise NormlintError("--arg passes keyword arguments to a factory (file.py:callable)")
    if os.path.isdir(target):
        loaded = _load_directory(target, options)
    elif target.endswith(PICKLE_SUFFIXES) and ":" not in target:
        loaded = _load_pickle(target, options, session)
    elif ":" in target:
        loaded = _load_factory(target, options, session)
    else:
        raise NormlintError(
            f"bad target {target!r}; expected a Hugging Face model directory, a .pt/.pth file, "
            "path/to/file.py:callable or package.module:callable (nothing is downloaded: "
            "save_pretrained() a hub model to a directory first)")
    if options.weights:
        loaded.notes.extend(load_weights(loaded.model, options.weights, meta=options.meta))
    return loaded


def _load_directory(target: str, options: TargetOptions) -> LoadedTarget:
    from .hf import load_directory

    if options.weights and options.init != "random" and not options.meta:
        raise NormlintError("--weights on a Hugging Face directory needs --init random "
                            "(the directory's own weights are loaded otherwise)")
    loaded = load_directory(target, init=options.init, meta=options.meta, dtype=options.dtype,
                            verbose=options.verbose)
    return LoadedTarget(loaded.model, None, f"{target} ({loaded.source})", target, loaded.notes)


def _load_pickle(target: str, options: TargetOptions, session: UserSession) -> LoadedTarget:
    if not os.path.isfile(target):
        raise NormlintError(f"target file not found: {target}")
    _only_for_directories(options)
    session.add_path(os.getcwd())  # the pickle's classes import from here
    model = load_pickled_module(target, trust_pickle=options.trust_pickle, meta=options.meta)
    return LoadedTarget(model, None, f"{target} (pickled module)")


def _only_for_directories(options: TargetOptions) -> None:
    if options.init != "weights":
        raise NormlintError("--init random builds a Hugging Face directory from its config.json; "
                            "a factory decides its own initialisation")


# ---------------------------------------------------------------------- factories
def _package_module(path: str) -> tuple[str, str] | None:
    """(folder to put on sys.path, dotted module name) for a file inside a package."""
    folder = os.path.dirname(os.path.abspath(path))
    parts = [os.path.splitext(os.path.basename(path))[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    if len(parts) == 1 or not all(p.isidentifier() for p in parts):
        return None
    if parts[-1] == "__init__":
        parts.pop()
    return folder, ".".join(parts)


def import_target_module(where: str, session: UserSession):
    """Import ``where`` (a file path or a dotted module) as ``python -m`` would."""
    session.add_path(os.getcwd())
    if not (where.endswith(".py") or "/" in where or os.sep in where):
        return call_user(f"importing {where}", lambda: importlib.import_module(where),
                         failure=f"cannot import {where}:")
    if not os.path.isfile(where):
        raise NormlintError(f"target file not found: {where}")
    package = _package_module(where)
    if package is not None:
        root, dotted = package
        session.add_path(root)
        module = call_user(f"importing {where}", lambda: importlib.import_module(dotted),
                           failure=f"cannot import {where}:")
        found = os.path.abspath(getattr(module, "__file__", "") or "")
        if found != os.path.abspath(where):
            raise NormlintError(f"{where} imports as {dotted}, but that name is already taken "
                                f"by {found or 'another module'}")
        return module
    # A plain file: its folder on the path, as `python file.py` does, under a private name
    # (registered in sys.modules: dataclasses and pickling look their module up there).
    session.add_path(os.path.dirname(os.path.abspath(where)))
    name = "_normlint_target_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(where))[0])
    spec = importlib.util.spec_from_file_location(name, where)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    call_user(f"importing {where}", lambda: spec.loader.exec_module(module),
              failure=f"cannot import {where}:")
    return module


def _load_factory(target: str, options: TargetOptions, session: UserSession) -> LoadedTarget:
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise NormlintError(f"bad target {target!r}; expected path/to/file.py:callable or "
                            "package.module:callable")
    _only_for_directories(options)
    module = import_target_module(where, session)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise NormlintError(f"{where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        if options.args:
            raise NormlintError(f"{target} is a module, not a factory: --arg does not apply")
        return LoadedTarget(obj, None, f"{target} (a module object)")
    if not callable(obj):
        raise NormlintError(f"{target} is neither a module nor a callable")
    # On the meta device the factory builds there: no weight is ever allocated.
    with torch.device("meta") if options.meta else contextlib.nullcontext():
        made = call_user(target, lambda: obj(**options.args))
    if isinstance(made, nn.Module):
        return LoadedTarget(made, None, f"{target} (factory)")
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], nn.Module):
        return LoadedTarget(made[0], made[1], f"{target} (factory)")
    raise NormlintError(f"{target} returned {type(made).__name__}; expected a torch.nn.Module "
                        "or (module, example_inputs)")


# ---------------------------------------------------------------------- device and dtype
def to_device_dtype(model: nn.Module, inputs: Any, dtype: torch.dtype | None,
                    device: torch.device | str | None):
    """Move the model and its inputs; only floating-point inputs change dtype."""
    def move(value):
        if isinstance(value, torch.Tensor):
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            return value.to(device) if device is not None else value
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(move(v) for v in value)
        return value

    try:
        if dtype is not None:
            model = model.to(dtype)
        if device is not None:
            model = model.to(device)
        return model, move(inputs)
    except (RuntimeError, AssertionError, NotImplementedError) as exc:
        raise NormlintError(f"cannot move the model or its inputs to {device or dtype}: "
                            f"{describe_exception(exc)}") from exc
