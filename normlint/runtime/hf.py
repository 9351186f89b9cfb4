"""Hugging Face model directories (``save_pretrained`` output) and inputs derived from them.

Everything is read from the local directory, offline (``local_files_only=True`` and
``HF_HUB_OFFLINE=1`` while transformers runs): nothing is ever downloaded, and a name that
is not a local directory is never looked up on a hub.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import NormlintError
from .user_code import call_user, describe_exception

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                   "spiece.model", "tokenizer.model")
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
BATCH, TEXT_LENGTH, DECODER_LENGTH, FEATURE_FRAMES = 2, 16, 8, 64
DEFAULT_IMAGE_SIZE = 224             # for vision configs that do not say (ResNet, RegNet)


@dataclass
class LoadedDirectory:
    model: nn.Module
    source: str                         # what was read: "config.json + model.safetensors"
    notes: list[str] = field(default_factory=list)


def weight_files(directory: str) -> list[str]:
    names = os.listdir(directory)
    return sorted(n for n in names if n in WEIGHT_FILES
                  or (n.startswith("model-") and n.endswith(".safetensors"))
                  or (n.startswith("pytorch_model-") and n.endswith(".bin")))


@contextlib.contextmanager
def offline_transformers(verbose: bool = False) -> Iterator[Any]:
    """transformers, offline and quiet (no progress bars, errors only unless ``verbose``);
    the environment and transformers' logging settings are restored afterwards."""
    saved = {k: os.environ.get(k) for k in _OFFLINE_ENV}
    os.environ.update(dict.fromkeys(_OFFLINE_ENV, "1"))
    try:
        try:
            import transformers
        except ImportError:
            raise NormlintError("auditing a Hugging Face model directory needs transformers "
                                "(pip install transformers)") from None
        logging = transformers.utils.logging
        verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
        if not verbose:
            logging.set_verbosity_error()
        logging.disable_progress_bar()
        try:
            yield transformers
        finally:
            logging.set_verbosity(verbosity)
            if bars:
                logging.enable_progress_bar()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _read_config(transformers, directory: str):
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise NormlintError(f"{directory} has no config.json: not a Hugging Face model "
                            "directory (save_pretrained() writes one)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NormlintError(f"cannot read {path}: {describe_exception(exc)}") from None
    if not isinstance(raw, dict):
        raise NormlintError(f"{path} is not a JSON object")
    if raw.get("auto_map"):
        raise NormlintError(f"{path} uses custom modeling code (auto_map); normlint does not run a "
                            "directory's code: write a factory that builds the model and use "
                            "`normlint audit model.py:make`")
    try:
        return transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
    except (ValueError, KeyError) as exc:
        if "model_type" in raw:
            raise NormlintError(
                f"transformers {transformers.__version__} does not know the architecture "
                f"{raw['model_type']!r} of {path}") from None
        raise NormlintError(f"{path} names no model_type ({describe_exception(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - a broken config is the user's input
        raise NormlintError(f"cannot read {path}: {describe_exception(exc)}") from None


def _model_class(transformers, config) -> tuple[type, list[str]]:
    """The class config.json's ``architectures`` names, else the base model of its type
    (and a note naming the architectures this transformers does not have)."""
    named = list(getattr(config, "architectures", None) or ())
    for name in named:
        cls = getattr(transformers, name, None)
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
            return cls, []
    try:
        cls = transformers.AutoModel._model_mapping[type(config)]
    except KeyError:
        raise NormlintError(f"transformers {transformers.__version__} has no model class for "
                            f"{type(config).__name__}") from None
    notes = [f"config.json names {', '.join(named)}, which transformers {transformers.__version__} "
             f"does not have: auditing the base model {cls.__name__} (its head is not audited)"
             ] if named else []
    return cls, notes


def _describe_weight_files(files: list[str]) -> str:
    """``model.safetensors``, or a sharded checkpoint's index and its number of shards."""
    index = next((f for f in files if f.endswith(".index.json")), None)
    if index is None:
        return ", ".join(files)
    return f"{index}, {sum(not f.endswith('.index.json') for f in files)} shards"


def load_directory(directory: str, *, init: str = "weights", meta: bool = False,
                   dtype: torch.dtype | None = None, verbose: bool = False) -> LoadedDirectory:
    """Build the model a ``save_pretrained`` directory describes.

    ``init="weights"`` loads the directory's weights (safetensors or ``pytorch_model.bin``,
    the latter with ``weights_only=True``); ``init="random"`` builds from ``config.json``
    alone. ``meta=True`` builds under ``torch.device("meta")``: no weight is read or
    allocated. Raises ``NormlintError`` for a directory without a config, an architecture
    transformers does not know, unreadable weights, or weights that do not fit the config.
    """
    with offline_transformers(verbose) as transformers:
        config = _read_config(transformers, directory)
        cls, notes = _model_class(transformers, config)
        what = f"building {cls.__name__} from {directory}"
        if meta or init == "random":
            with torch.device("meta") if meta else contextlib.nullcontext():
                model = call_user(what, lambda: cls(config))
            if dtype is not None:
                model = model.to(dtype)
            why = "meta device: weights not read" if meta else "--init random: random weights"
            return LoadedDirectory(model, f"config.json ({why})", notes)
        files = weight_files(directory)
        if not files:
            raise NormlintError(f"{directory} has a config.json but no weights (model.safetensors or "
                                "pytorch_model.bin); pass --init random to audit the architecture "
                                "with random weights, or --device meta for a structural audit")
        kwargs = {"dtype": dtype} if dtype is not None else {}
        try:
            model, info = cls.from_pretrained(directory, local_files_only=True, weights_only=True,
                                              output_loading_info=True, ignore_mismatched_sizes=True,
                                              **kwargs)
        except Exception as exc:  # noqa: BLE001 - corrupt or truncated files are the user's input
            raise NormlintError(f"cannot load the weights in {directory}: "
                                f"{describe_exception(exc)}") from None
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        first = mismatched[0]
        shown = f"{first[0]} {tuple(first[1])} in the file, {tuple(first[2])} in the model" \
            if isinstance(first, tuple) and len(first) == 3 else str(first)
        raise NormlintError(f"the weights in {directory} do not fit its config.json: "
                            f"{len(mismatched)} tensor(s) differ in shape, e.g. {shown}")
    for kind, meaning in (("missing_keys", "missing from the weights (randomly initialised)"),
                          ("unexpected_keys", "in the weights but not in the model (ignored)")):
        keys = sorted(info.get(kind) or ())
        if keys:
            more = f", ... ({len(keys) - 5} more)" if len(keys) > 5 else ""
            notes.append(f"{directory}: {len(keys)} tensors {meaning}: {', '.join(keys[:5])}{more}")
    return LoadedDirectory(model, f"config.json + {_describe_weight_files(files)}", notes)


# ---------------------------------------------------------------------- derived inputs
def is_transformers_model(model: Any) -> bool:
    """A transformers ``PreTrainedModel`` (checked without importing transformers)."""
    return any(c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers.")
               for c in type(model).__mro__)


def _config_value(config, name: str, *, decoder: bool = False):
    """``name`` from the config or, for composite models, its text/vision/decoder part."""
    parts = [config]
    getter = getattr(config, "get_text_config", None)
    if getter is not None:
        with contextlib.suppress(Exception):
            parts.insert(0 if decoder else 1, getter(decoder=True) if decoder else getter())
    parts += [getattr(config, k) for k in ("vision_config", "audio_config", "encoder", "decoder")
              if getattr(config, k, None) is not None]
    for part in parts:
        value = getattr(part, name, None)
        if value is not None:
            return value
    return None


def derive_inputs(model: nn.Module, *, meta: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """Example inputs for a transformers model, from its config and ``main_input_name``:

    - ``input_ids``: int64 (2, 16), uniform in [0, ``vocab_size``);
    - ``pixel_values``: float32 (2, ``num_channels``, ``image_size``, ``image_size``), 224
      when the config has no ``image_size`` (ResNet); video models (``num_frames``) get
      (2, ``num_frames``, ``num_channels``, ``image_size``, ``image_size``);
    - ``input_values``: raw audio, float32 (2, samples for ~20 frames of the conv stack),
      (2, ``audio_channels``, samples) for multi-channel codecs, or a spectrogram
      (2, ``max_length``, ``num_mel_bins``) (AST);
    - ``input_features``: Whisper-style (2, ``num_mel_bins``, 2 x ``max_source_positions``),
      Speech2Text-style (2, 64, ``input_feat_per_channel`` x ``input_channels``), or
      (2, 64, ``num_mel_bins``) frames of mel features (Parakeet and other conformers);
    - then what ``complete_inputs`` adds: the other modality of a text-and-image model
      (CLIP), ``decoder_input_ids`` int64 (2, 8) for encoder-decoders.

    Raises ``NormlintError`` when the config does not say enough (then ``--input`` does).
    """
    config = model.config
    name = getattr(model, "main_input_name", "input_ids")
    generator = torch.Generator().manual_seed(seed)
    kind = type(model).__name__
    if name == "input_ids":
        inputs = {name: _token_ids(config, TEXT_LENGTH, generator, meta, kind=kind)}
    elif name == "pixel_values":
        inputs = {name: _make(_pixels_shape(config), torch.float32, generator, meta)}
    elif name == "input_values":
        inputs = {name: _make(_values_shape(config), torch.float32, generator, meta)}
    elif name == "input_features":
        inputs = {name: _make(_features_shape(config, kind), torch.float32, generator, meta)}
    else:
        raise NormlintError(f"cannot derive {name!r} for {kind}; give it with --input")
    return complete_inputs(model, inputs, meta=meta, generator=generator)


def complete_inputs(model: nn.Module, inputs: dict[str, torch.Tensor], *, meta: bool = False,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``inputs`` (the main input, derived or tokenized) plus what the forward needs beside
    it: ``pixel_values`` for a model that takes text and images side by side (CLIP, SigLIP,
    BLIP: its forward names ``pixel_values`` and its config has a ``vision_config``), and
    ``decoder_input_ids`` for an encoder-decoder. A model whose images are image tokens
    inside the text (LLaVA: ``image_token_id``) gets no pixels: see ``derived_input_notes``."""
    if not is_transformers_model(model):
        return inputs
    config = model.config
    generator = generator or torch.Generator().manual_seed(0)
    inputs = dict(inputs)
    if "pixel_values" not in inputs and _takes_images(model) and not _images_in_text(config):
        inputs["pixel_values"] = _make(_pixels_shape(config), torch.float32, generator, meta)
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" not in inputs \
            and _names(model, "decoder_input_ids"):  # DETR's decoder takes learned queries
        inputs["decoder_input_ids"] = _token_ids(config, DECODER_LENGTH, generator, meta,
                                                 kind=type(model).__name__, decoder=True)
    return inputs


def derived_input_notes(model: nn.Module, inputs: dict[str, Any]) -> list[str]:
    """What the derived inputs leave out, when a part of the model cannot run without it."""
    if (is_transformers_model(model) and "pixel_values" not in inputs and _takes_images(model)
            and _images_in_text(model.config)):
        return [f"derived inputs are token ids only: {type(model).__name__} takes images as image "
                "tokens inside its text, so its vision tower does not run and its norms are "
                "reported as never run (NL306); give --input with pixel_values and those tokens "
                "to audit it"]
    return []


def _names(model: nn.Module, name: str) -> bool:
    """The forward names ``name`` (not just ``**kwargs``, which many forwards take)."""
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _takes_images(model: nn.Module) -> bool:
    return _names(model, "pixel_values") and getattr(model.config, "vision_config", None) is not None \
        and getattr(model, "main_input_name", "input_ids") != "pixel_values"


def _images_in_text(config) -> bool:
    return any(getattr(config, k, None) is not None for k in ("image_token_id", "image_token_index"))


def _token_ids(config, length: int, generator, meta: bool, *, kind: str,
               decoder: bool = False) -> torch.Tensor:
    vocab = _config_value(config, "vocab_size", decoder=decoder)
    if not isinstance(vocab, int) or vocab < 1:
        raise NormlintError(f"cannot derive token ids for {kind}: its config has no vocab_size; "
                            "give --input input_ids=int64[2,16]:0..VOCAB")
    limit = _config_value(config, "max_position_embeddings", decoder=decoder)
    length = min(length, limit) if isinstance(limit, int) and limit > 0 else length
    return _make((BATCH, length), torch.int64, generator, meta, high=vocab)


def _pixels_shape(config) -> tuple[int, ...]:
    size = _config_value(config, "image_size") or DEFAULT_IMAGE_SIZE
    channels = _config_value(config, "num_channels") or 3
    height, width = (size, size) if isinstance(size, int) else tuple(size)[:2]
    frames = _config_value(config, "num_frames")
    if isinstance(frames, int) and frames > 0:  # video: (batch, time, channels, height, width)
        return (BATCH, frames, channels, height, width)
    return (BATCH, channels, height, width)


def _values_shape(config) -> tuple[int, ...]:
    mels, frames = _config_value(config, "num_mel_bins"), _config_value(config, "max_length")
    if isinstance(mels, int) and isinstance(frames, int):  # a spectrogram (AST)
        return (BATCH, frames, mels)
    samples = 20 * math.prod(_config_value(config, "conv_stride") or (320,))
    channels = _config_value(config, "audio_channels")
    if isinstance(channels, int) and channels > 0:  # codecs: (batch, channels, samples)
        return (BATCH, channels, samples)
    return (BATCH, samples)


def _features_shape(config, kind: str) -> tuple[int, ...]:
    mels, positions = _config_value(config, "num_mel_bins"), _config_value(config, "max_source_positions")
    if isinstance(mels, int) and isinstance(positions, int):
        return (BATCH, mels, 2 * positions)  # Whisper: two conv frames per position, fixed length
    per_channel = _config_value(config, "input_feat_per_channel")
    if isinstance(per_channel, int):  # Speech2Text: (batch, frames, features)
        return (BATCH, FEATURE_FRAMES, per_channel * (_config_value(config, "input_channels") or 1))
    if isinstance(mels, int):  # conformers (Parakeet): (batch, frames, mel bins)
        return (BATCH, FEATURE_FRAMES, mels)
    raise NormlintError(f"cannot derive input_features for {kind} from its config; give --input "
                        "input_features=float32[...]")


def _make(shape, dtype, generator, meta: bool, high: int | None = None) -> torch.Tensor:
    if meta:
        return torch.zeros(shape, dtype=dtype, device="meta")
    if high is not None:
        return torch.randint(0, high, shape, generator=generator, dtype=dtype)
    return torch.randn(shape, generator=generator, dtype=dtype)


def _accepts(model: nn.Module, name: str) -> bool:
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return True
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


# ---------------------------------------------------------------------- --text
def has_tokenizer(directory: str) -> bool:
    return os.path.isdir(directory) and any(os.path.isfile(os.path.join(directory, n))
                                            for n in TOKENIZER_FILES)


def tokenize(texts: list[str], directory: str, model: nn.Module, *, meta: bool = False,
             verbose: bool = False) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``texts`` tokenized with ``directory``'s tokenizer into one padded batch with its
    attention mask (so the padding probes run on real padding), keeping only the arguments
    the model's forward accepts, then completed as derived inputs are (``complete_inputs``:
    the images of a text-and-image model, ``decoder_input_ids`` of an encoder-decoder).

    Raises ``NormlintError`` when the directory has no tokenizer, the tokenizer has no pad
    token (nor an end-of-sequence token to pad with), the texts make no tokens, or its ids
    exceed the model's vocab.
    """
    if not os.path.isdir(directory):
        raise NormlintError(f"--tokenizer {directory}: no such directory")
    if not has_tokenizer(directory):
        raise NormlintError(f"--text needs a tokenizer, and {directory} has none "
                            f"({', '.join(TOKENIZER_FILES[:2])}); give --input instead")
    notes = []
    with offline_transformers(verbose) as transformers:
        tokenizer = call_user(f"loading the tokenizer in {directory}",
                              lambda: transformers.AutoTokenizer.from_pretrained(
                                  directory, local_files_only=True))
        if getattr(tokenizer, "pad_token", None) is None:
            if getattr(tokenizer, "eos_token", None) is None:
                raise NormlintError(f"the tokenizer in {directory} has no pad token (nor an "
                                    "end-of-sequence token) to pad --text sentences with")
            tokenizer.pad_token = tokenizer.eos_token
            notes.append(f"--text: padded with the end-of-sequence token {tokenizer.eos_token!r} "
                         "(the tokenizer has no pad token)")
        encoded = call_user("tokenizing --text", lambda: tokenizer(
            list(texts), padding=True, return_tensors="pt"))
        limit = _config_value(model.config, "max_position_embeddings") \
            if is_transformers_model(model) else None
        ids = encoded.get("input_ids")
        if isinstance(limit, int) and 0 < limit and isinstance(ids, torch.Tensor) \
                and ids.dim() == 2 and ids.shape[1] > limit:
            # As derived ids do: a position embedding has no row past the model's maximum.
            encoded = call_user("tokenizing --text", lambda: tokenizer(
                list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt"))
            notes.append(f"--text: truncated to the model's {limit} positions "
                         f"(the longest sentence has {ids.shape[1]} tokens)")
    batch = {k: v for k, v in dict(encoded).items()
             if isinstance(v, torch.Tensor) and _accepts(model, k)}
    if any(v.numel() == 0 for v in batch.values()):
        raise NormlintError(f"--text made no tokens with the tokenizer in {directory} "
                            f"({', '.join(map(repr, texts))}): give sentences with words")
    if not batch:
        raise NormlintError(f"{type(model).__name__}'s forward takes none of the tokenizer's "
                            f"outputs ({', '.join(dict(encoded))}); give --input instead")
    main = getattr(model, "main_input_name", "input_ids")
    if main not in batch and is_transformers_model(model):
        raise NormlintError(f"--text makes token ids, but {type(model).__name__} takes {main}; "
                            "give --input instead")
    vocab = _config_value(getattr(model, "config", None), "vocab_size") if hasattr(model, "config") else None
    if "input_ids" in batch and isinstance(vocab, int) and int(batch["input_ids"].max()) >= vocab:
        raise NormlintError(f"the tokenizer in {directory} produced id {int(batch['input_ids'].max())}, "
                            f"outside the model's vocab_size {vocab}")
    if meta:  # masks are read as values (.item(), any()), which the meta device has none of
        dropped = sorted(k for k in batch if k != main)
        batch = {k: v.to("meta") for k, v in batch.items() if k not in dropped}
        if dropped:
            notes.append(f"meta device: {', '.join(dropped)} not passed (nothing is computed there)")
    return complete_inputs(model, batch, meta=meta), notes
