"""Checkpoint files: a pickled whole module (``.pt``/``.pth``) and ``--weights FILE``.

Unpickling runs code, so a whole pickled module is only loaded with ``--trust-pickle``;
weights are read without running code: safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch
from torch import nn

from ..errors import NormlintError
from .user_code import UserCodeError, call_user, describe_exception, one_line

_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module")


def _first_line(exc: BaseException) -> str:
    return one_line(str(exc))[0] or type(exc).__name__


def _torch_load(path: str, *, weights_only: bool, meta: bool) -> Any:
    location = "meta" if meta else "cpu"
    try:
        return torch.load(path, map_location=location, weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        if weights_only and "Unsupported global" in str(exc):
            raise _HoldsObjects(path) from None
        raise NormlintError(f"cannot read {path}: not a torch checkpoint "
                            f"({_unpickler_reason(exc)})") from None
    except EOFError:
        raise NormlintError(f"cannot read {path}: the file is empty or truncated") from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise NormlintError(f"cannot read {path}: {_first_line(exc)}") from None


def _unpickler_reason(exc: BaseException) -> str:
    """What the weights-only unpickler found wrong: torch's message opens with advice to
    retry with ``weights_only=False``, which is wrong for a corrupt file and unsafe anyway."""
    _, marker, reason = str(exc).partition("WeightsUnpickler error:")
    return (one_line(reason)[0] if marker else "") or _first_line(exc)


class _HoldsObjects(NormlintError):
    """The file pickles objects other than tensors (a module, an optimizer, ...)."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


def _state_dict_hint(path: str, what: str) -> NormlintError:
    return NormlintError(
        f"{path} holds {what}, not a module: audit it with the factory that builds the model, "
        f"e.g. `normlint audit model.py:make --weights {path}`")


def load_pickled_module(path: str, *, trust_pickle: bool, meta: bool) -> nn.Module:
    """The module pickled whole in ``path`` (``torch.save(model, path)``).

    Raises ``NormlintError`` without ``trust_pickle`` (unpickling runs the file's code), for
    a file that holds only weights (use a factory and ``--weights``) and for anything else.
    """
    if not trust_pickle:
        try:
            loaded = _torch_load(path, weights_only=True, meta=True)
        except _HoldsObjects:
            raise NormlintError(
                f"{path} is a pickled module: loading it runs code stored in the file; pass "
                "--trust-pickle if you trust its source, or save a state_dict and use a "
                "factory with --weights") from None
        raise _state_dict_hint(path, _describe_weights(loaded))
    try:
        loaded = call_user(f"unpickling {path}",
                           lambda: torch.load(path, map_location="meta" if meta else "cpu",
                                              weights_only=False))
    except UserCodeError as exc:
        cause = exc.__cause__
        if not isinstance(cause, (ImportError, AttributeError)):
            raise
        # A pickle names its classes by module and name; they are imported again here.
        raise UserCodeError(
            f"unpickling {path} needs the classes it was saved with, importable from here "
            f"({describe_exception(cause)}): run from the folder their package is in or put it "
            "on PYTHONPATH; a class defined in a script's __main__ cannot be unpickled elsewhere",
            exc.details) from cause
    if isinstance(loaded, nn.Module):
        return loaded
    if isinstance(loaded, dict):
        raise _state_dict_hint(path, _describe_weights(loaded))
    raise NormlintError(f"{path} holds a {type(loaded).__name__}, not a torch.nn.Module")


def _describe_weights(loaded: Any) -> str:
    if isinstance(loaded, dict) and loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return f"a state_dict ({len(loaded)} tensors)"
    if isinstance(loaded, dict):
        return f"a dict with keys {', '.join(map(str, list(loaded)[:4]))}"
    return f"a {type(loaded).__name__}"


def read_state_dict(path: str, *, meta: bool) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors in a weights file and notes on how they were found.

    ``.safetensors`` is read with safetensors; anything else with
    ``torch.load(weights_only=True)``. A checkpoint dict that nests its state dict under
    ``state_dict``/``model``/``module`` is unwrapped. On the meta device only names and
    shapes are read.
    """
    if not os.path.isfile(path):
        raise NormlintError(f"weights file not found: {path}")
    notes: list[str] = []
    if path.endswith(".safetensors"):
        state = _read_safetensors(path, meta=meta)
    else:
        try:
            state = _torch_load(path, weights_only=True, meta=meta)
        except _HoldsObjects:
            raise NormlintError(f"{path} pickles objects other than tensors; --weights reads "
                                "tensors only (weights_only=True): save model.state_dict()") from None
        if isinstance(state, nn.Module):  # weights_only never returns one; kept for clarity
            state = state.state_dict()
    if isinstance(state, dict) and not _all_tensors(state):
        nested = next((k for k in _NESTED_KEYS if isinstance(state.get(k), dict)
                       and _all_tensors(state[k])), None)
        if nested is None:
            raise NormlintError(f"{path} is not a state_dict: {_describe_weights(state)}")
        notes.append(f"{path}: using the state_dict under {nested!r}")
        state = state[nested]
    if not isinstance(state, dict) or not state:
        raise NormlintError(f"{path} holds no tensors")
    return state, notes


def _all_tensors(mapping: dict) -> bool:
    return bool(mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                 for k, v in mapping.items())


def _read_safetensors(path: str, *, meta: bool) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:
        raise NormlintError("reading .safetensors needs the safetensors package "
                            "(pip install safetensors)") from None
    try:
        with safe_open(path, framework="pt", device="cpu") as reader:
            if not meta:
                return {k: reader.get_tensor(k) for k in reader.keys()}
            state = {}
            for key in reader.keys():
                piece = reader.get_slice(key)
                dtype = _SAFETENSORS_DTYPES.get(piece.get_dtype(), torch.float32)
                state[key] = torch.empty(piece.get_shape(), dtype=dtype, device="meta")
            return state
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise NormlintError(f"cannot read weights {path}: {_first_line(exc)}") from None


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                       "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
                       "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def load_weights(model: nn.Module, path: str, *, meta: bool) -> list[str]:
    """Load ``path`` into ``model``; returns notes on missing and unexpected keys.

    Raises ``NormlintError`` when a tensor's shape differs from the model's (the weights do
    not fit it). On the meta device the names and shapes are checked, nothing is loaded.
    """
    state, notes = read_state_dict(path, meta=meta)
    expected = model.state_dict()
    if all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in expected):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append(f"{path}: stripped the 'module.' prefix (a DataParallel/DDP checkpoint)")
    misfits = [f"{k} {tuple(v.shape)} in the file, {tuple(expected[k].shape)} in the model"
               for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if misfits:
        raise NormlintError(f"weights {path} do not fit {type(model).__name__}: "
                            f"{len(misfits)} tensor(s) differ in shape, e.g. {misfits[0]}")
    # A tied tensor (a head sharing the embedding's weight) is one tensor under several
    # names; safetensors and save_pretrained store it once, and loading fills every name.
    names_of: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        names_of.setdefault(id(tensor), []).append(key)
    tied = {key: names for names in names_of.values() if len(names) > 1 for key in names}
    missing = [k for k in expected if k not in state and not any(t in state for t in tied.get(k, ()))]
    unexpected = [k for k in state if k not in expected]
    if missing:
        notes.append(f"{path}: {len(missing)} of the model's {len(expected)} tensors "
                     f"{'is' if len(missing) == 1 else 'are'} missing from the file (kept as the "
                     f"target built them): {_some(missing)}")
    if unexpected:
        notes.append(f"{path}: {len(unexpected)} tensors in the file are not in the model and "
                     f"were ignored: {_some(unexpected)}")
    if expected and len(missing) == len(expected):
        raise NormlintError(f"weights {path} share no tensor name with {type(model).__name__} "
                            f"(the file has e.g. {next(iter(state))}, the model {next(iter(expected))})")
    if meta:
        notes.append(f"{path}: meta device: names and shapes checked, nothing loaded")
    else:
        with torch.no_grad():
            model.load_state_dict(state, strict=False)
    return notes


def _some(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
