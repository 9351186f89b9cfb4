"""Build any transformers architecture from a tiny configuration, with example inputs.

Nothing is downloaded: each model type of transformers' auto mapping (``MODEL_MAPPING_NAMES``)
is built from its configuration class's defaults, shrunk, and fed inputs derived from its
``forward`` signature. Three configurations are tried in order, and the first one that
builds and runs a plain forward is kept:

1. ``tiny``: 2 layers, width 32, 2 heads, intermediate 64, 4 experts (every sub-config too);
2. ``narrow``: 2 layers and 2 heads that keep their original head size (rotary sections
   and other per-head constants in the modeling code need it);
3. ``shallow``: only the depth shrunk to 2 layers (for models whose widths are tied together
   in ways a generic shrink breaks);
4. ``default``: the defaults, when the model has at most ``MAX_PARAMS`` parameters.

Every level caps the vocabulary at ``MAX_VOCAB`` (special token ids move to its top, above
the ids the inputs use).

Used by ``evaluation/sweep_transformers.py`` (the whole mapping) and its CI sample.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_PARAMS = 100_000_000
MAX_VOCAB = 32_768
BATCH, LENGTH, DECODER_LENGTH = 2, 16, 8

_LAYER_KEYS = frozenset({
    "num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers",
    "num_encoder_layers", "num_decoder_layers", "depth", "num_text_layers", "num_vision_layers",
    "text_layers", "vision_layers", "num_self_attends_per_block", "num_blocks",
})
_WIDTH_KEYS = frozenset({"hidden_size", "d_model", "n_embd", "embed_dim", "hidden_dim", "dim",
                         "n_embed", "d_embed", "emb_dim"})
_HEAD_KEYS = frozenset({"num_attention_heads", "n_head", "n_heads", "num_heads",
                        "encoder_attention_heads", "decoder_attention_heads",
                        "decoder_num_attention_heads"})
_FFN_KEYS = frozenset({"intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "n_inner",
                       "d_ff", "decoder_intermediate_size", "mlp_dim", "dim_feedforward"})
_SMALL = {"head_dim": 16, "num_key_value_heads": 2, "moe_intermediate_size": 32,
          "shared_expert_intermediate_size": 32, "num_experts": 4, "n_routed_experts": 4,
          "num_local_experts": 4, "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1,
          "kv_lora_rank": 32, "q_lora_rank": 32, "embedding_size": 32, "projection_dim": 32,
          "text_embed_dim": 32, "vision_embed_dim": 32, "d_kv": 16, "first_k_dense_replace": 1,
          "num_shared_experts": 1, "n_shared_experts": 1, "rotary_dim": 8, "qk_rope_head_dim": 8,
          "qk_nope_head_dim": 16, "v_head_dim": 16, "qk_head_dim": 24, "mamba_d_head": 16}


_CHANNEL_LISTS = frozenset({"hidden_sizes", "in_channels", "out_channels", "stage_in_channels",
                            "stage_out_channels", "stage_mid_channels", "embed_dims",
                            "backbone_channel_list", "neck_hidden_sizes", "channels"})
_REPEAT_LISTS = frozenset({"num_block_repeats", "stage_num_blocks", "stage_numb_of_layers", "num_blocks",
                           "depths", "block_repeats", "layers"})


def _resnet_backbone(timm: dict) -> dict:
    from transformers import ResNetConfig

    indices = timm.get("out_indices") or [1, 2, 3, 4]
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                          layer_type="basic", out_features=[f"stage{i}" for i in indices])
    return config.to_dict()


@dataclass
class Built:
    model: Any
    inputs: dict
    config: str          # tiny | narrow | shallow | default
    parameters: int


class BuildError(Exception):
    """The model type does not build or run a plain forward from any tried configuration."""


def model_types() -> list[str]:
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES
    return sorted(MODEL_MAPPING_NAMES)


def _kept_layers(d: dict, old_layers: int) -> list[int]:
    """Layer indices to keep: the first two, plus the first layer of every kind that the
    per-layer lists (``layer_types``, ``mlp_layer_types``) name, so a hybrid model keeps one
    layer of each kind (Qwen3.5's full-attention layer, Jamba's attention layer)."""
    keep = {0, 1} & set(range(old_layers))
    for value in d.values():
        if isinstance(value, list) and len(value) == old_layers and value \
                and not all(isinstance(v, (int, float)) for v in value):
            firsts: dict[str, int] = {}
            for i, v in enumerate(value):
                firsts.setdefault(repr(v), i)
            keep.update(firsts.values())
    return sorted(keep)


def _shrink(d: dict, level: str) -> dict:
    out = dict(d)
    old_layers = next((v for k, v in d.items() if k in _LAYER_KEYS and isinstance(v, int)
                       and not isinstance(v, bool)), None)
    kept = _kept_layers(d, old_layers) if old_layers else []
    for key, value in d.items():
        if isinstance(value, dict) and value.get("model_type") == "timm_backbone":
            out[key] = _resnet_backbone(value)   # timm is not importable here: a tiny ResNet
            continue
        if isinstance(value, dict) and "model_type" in value:
            out[key] = _shrink(value, level)
            continue
        if isinstance(value, dict) and old_layers and value and all(
                str(k).isdigit() for k in value) and len(kept) != old_layers:
            # per-layer settings keyed by layer index (Gemma 4's per_layer_config)
            out[key] = {type(k)(kept.index(int(k))): v for k, v in value.items() if int(k) in kept}
            continue
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if key in _LAYER_KEYS and is_int:
            out[key] = len(kept) if value == old_layers and kept else min(value, 2)
        elif (isinstance(value, list) and old_layers and len(value) == old_layers
              and len(kept) != old_layers and "index" not in key and "ids" not in key):
            out[key] = [value[i] for i in kept]   # per-layer lists (layer_types, sizes)
        elif key in ("use_timm_backbone", "use_pretrained_backbone") and value is True:
            out[key] = False
        elif key == "image_size" and is_int and value > 128:
            out[key] = 128
        elif level == "narrow" and key in _HEAD_KEYS and is_int and value > 2:
            out[key] = 2
        elif level == "narrow" and key == "num_key_value_heads" and is_int:
            out[key] = min(value, 2)
        elif level != "tiny":
            continue
        elif key in _WIDTH_KEYS and is_int and value > 32:
            out[key] = 32
        elif key == "vocab_size" and value is None:
            out[key] = 64
        elif key in _HEAD_KEYS and is_int:
            out[key] = min(value, 2)
        elif key in _HEAD_KEYS and isinstance(value, list) and all(isinstance(v, int) for v in value):
            out[key] = [min(v, 2) for v in value]
        elif key in _FFN_KEYS and is_int and value > 64:
            out[key] = 64
        elif key in _CHANNEL_LISTS and isinstance(value, list) and value \
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            out[key] = [max(8, v // 16 // 8 * 8) for v in value]
        elif key in _REPEAT_LISTS and isinstance(value, list) and all(isinstance(v, int) for v in value):
            out[key] = [min(v, 1) for v in value]
        elif key in _SMALL and is_int:
            out[key] = min(value, _SMALL[key])
    if level == "tiny":
        _fix_invariants(d, out)
    elif level == "narrow":
        _narrow(d, out)
    _cap_vocabulary(out)
    return out


def _narrow(old: dict, new: dict) -> None:
    """Width = 2 heads of the original head size; the feed-forward 4x that."""
    heads = old.get("num_attention_heads")
    hidden = old.get("hidden_size")
    if not (isinstance(heads, int) and isinstance(hidden, int) and heads):
        return
    head = old["head_dim"] if isinstance(old.get("head_dim"), int) else hidden // heads
    new["hidden_size"] = 2 * head
    for key in _FFN_KEYS | {"moe_intermediate_size", "shared_expert_intermediate_size"}:
        if isinstance(old.get(key), int):
            new[key] = min(old[key], 8 * head)
    for key, small in (("num_experts", 4), ("n_routed_experts", 4), ("num_local_experts", 4),
                       ("num_experts_per_tok", 2), ("n_group", 1), ("topk_group", 1)):
        if isinstance(old.get(key), int):
            new[key] = min(old[key], small)


def _cap_vocabulary(new: dict) -> None:
    """A large vocabulary dominates a tiny model: cap it, moving the special token ids that
    fall outside to the top of the new range (above the ids ``input_candidates`` draws)."""
    vocab = new.get("vocab_size")
    if not isinstance(vocab, int) or vocab <= MAX_VOCAB:
        return
    for key in new:
        if key.startswith("vocab_size") and isinstance(new[key], int) and new[key] > MAX_VOCAB:
            new[key] = MAX_VOCAB
    top = MAX_VOCAB - 1
    for key in sorted(new):
        value = new[key]
        if (key.endswith(("_token_id", "_token_index", "_id")) and isinstance(value, int)
                and not isinstance(value, bool) and value >= MAX_VOCAB):
            new[key] = top
            top -= 1


def _fix_invariants(old: dict, new: dict) -> None:
    """Re-establish the width identities that configs validate."""
    hidden = new.get("hidden_size")
    # Mamba2-style heads: num_heads * head_dim == expand * hidden_size.
    for heads, expand, head_dim in (("num_heads", "expand", "head_dim"),
                                    ("mamba_n_heads", "mamba_expand", "mamba_d_head")):
        if all(isinstance(new.get(k), int) for k in (heads, expand)) and isinstance(hidden, int):
            width = hidden * new[expand]
            size = new.get(head_dim) if isinstance(new.get(head_dim), int) else 16
            new[heads] = max(1, width // size)
            if head_dim in new:
                new[head_dim] = width // new[heads]
            if isinstance(new.get("n_groups"), int):
                new["n_groups"] = 1
            if isinstance(new.get("mamba_n_groups"), int):
                new["mamba_n_groups"] = 1
    # DeepSeek MLA: the rotary part of a head is head_dim.
    if isinstance(new.get("qk_rope_head_dim"), int) and "head_dim" in new:
        new["head_dim"] = new["qk_rope_head_dim"]
        if isinstance(new.get("qk_nope_head_dim"), int) and "qk_head_dim" in new:
            new["qk_head_dim"] = new["qk_nope_head_dim"] + new["qk_rope_head_dim"]
    # Multimodal RoPE sections: they split half the head dimension.
    head = new.get("head_dim") if isinstance(new.get("head_dim"), int) else (
        hidden // new["num_attention_heads"] if isinstance(hidden, int)
        and isinstance(new.get("num_attention_heads"), int) and new["num_attention_heads"] else None)
    for key in ("rope_parameters", "rope_scaling"):
        rope = new.get(key)
        if head and isinstance(rope, dict) and isinstance(rope.get("mrope_section"), list):
            sections = rope["mrope_section"]
            half, total = head // 2, sum(sections) or 1
            scaled = [max(1, s * half // total) for s in sections]
            scaled[0] += half - sum(scaled)
            new[key] = {**rope, "mrope_section": scaled}


def make_config(model_type: str, level: str):
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type]
    default = cls()
    if level == "default":
        return default
    shrunk = _shrink(default.to_dict(), level)
    shrunk.pop("model_type", None)
    shrunk.pop("transformers_version", None)
    try:
        return cls(**shrunk)
    except Exception:  # noqa: BLE001 - configs that reject their own to_dict(): rebuild from it
        return AutoConfig.for_model(model_type, **shrunk)


def _model_class(model_type: str):
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    name = MODEL_MAPPING_NAMES[model_type]
    if isinstance(name, (tuple, list)):
        name = name[0]
    return getattr(transformers, name)


def _get(config, *names, default=None):
    """The first of ``names`` on the config or one of its sub-configs."""
    subs = [config] + [getattr(config, s, None) for s in
                       ("vision_config", "text_config", "audio_config", "encoder_config",
                        "backbone_config", "encoder", "vision_encoder_config")]
    for sub in subs:
        if sub is None:
            continue
        for name in names:
            value = getattr(sub, name, None)
            if value is not None and not isinstance(value, bool):
                return value
    return default


def _ids(vocab: int, length: int, generator):
    import torch
    high = max(4, min(vocab or 100, 1000))
    return torch.randint(3 if high > 8 else 0, high, (BATCH, length), generator=generator)


def input_candidates(model, config) -> list[dict]:
    """Keyword inputs to try, most complete first, from ``model.forward``'s parameters."""
    import torch

    params = set(inspect.signature(model.forward).parameters)
    gen = torch.Generator().manual_seed(1)
    vocab = _get(config, "vocab_size", default=100)
    if isinstance(vocab, (list, tuple)):
        vocab = min(vocab)
    size = _get(config, "image_size", default=64)
    if isinstance(size, (list, tuple)):
        size = size[-1]
    size = int(size) if isinstance(size, int) and 8 <= size <= 1024 else 64
    channels = _get(config, "num_channels", "in_channels", "input_channels", default=3)
    channels = channels if isinstance(channels, int) and 0 < channels <= 16 else 3
    parts: dict[str, list[dict]] = {}
    extra = {"use_cache": False} if "use_cache" in params else {}
    if "decoder_input_ids" in params and getattr(config, "is_encoder_decoder", False):
        extra["decoder_input_ids"] = _ids(vocab, DECODER_LENGTH, gen)
    if "input_ids" in params:
        parts["text"] = [{"input_ids": _ids(vocab, LENGTH, gen)}]
    if "pixel_values" in params:
        shapes = [(BATCH, channels, size, size)]
        if size != 64:
            shapes.append((BATCH, channels, 64, 64))
        parts["image"] = [{"pixel_values": torch.randn(s, generator=gen)} for s in shapes]
    frames = _get(config, "num_frames", "frames_per_clip")
    if "pixel_values_videos" in params or frames:
        frames = frames if isinstance(frames, int) and 0 < frames <= 16 else 8
        name = "pixel_values_videos" if "pixel_values_videos" in params else "pixel_values"
        if name in params:
            parts.setdefault("image", []).append(
                {name: torch.randn(BATCH, frames, channels, size, size, generator=gen)})
    if "input_values" in params:
        parts["audio"] = [{"input_values": torch.randn(BATCH, n, generator=gen)} for n in (4000, 16000)]
    if "input_features" in params:
        mels = _get(config, "num_mel_bins", "feature_size", "input_feat_per_channel", "n_mels",
                    default=80)
        mels = mels if isinstance(mels, int) and 0 < mels <= 512 else 80
        frames = 2 * _get(config, "max_source_positions", default=1500)
        frames = frames if isinstance(frames, int) and frames <= 6000 else 3000
        parts["features"] = [{"input_features": torch.randn(BATCH, mels, frames, generator=gen)},
                             {"input_features": torch.randn(BATCH, 64, mels, generator=gen)},
                             {"input_features": torch.randn(BATCH, mels, 64, generator=gen)}]
    if "past_values" in params:
        length = _get(config, "context_length", default=32)
        lags = _get(config, "lags_sequence", default=[0])
        length = (length if isinstance(length, int) else 32) + (max(lags) if lags else 0)
        channels_ts = _get(config, "num_input_channels", "input_size", default=1)
        channels_ts = channels_ts if isinstance(channels_ts, int) else 1
        shape = (BATCH, length, channels_ts) if channels_ts > 1 or "num_input_channels" in dir(config) \
            else (BATCH, length)
        parts["series"] = [{"past_values": torch.randn(shape, generator=gen)}]
    candidates: list[dict] = []
    # Several modalities together first (CLIP needs both), then each alone.
    if "text" in parts and "image" in parts:
        candidates.append({**parts["text"][0], **parts["image"][0]})
    for options in parts.values():
        candidates.extend(options)
    return [{**c, **extra} for c in candidates]


def _count_parameters(cls, config) -> int:
    import torch
    with torch.device("meta"):
        model = cls(config)
    return sum(p.numel() for p in model.parameters())


def build(model_type: str, levels=("tiny", "narrow", "shallow", "default")) -> Built:
    """The first configuration level that builds and runs a plain forward (eval, no_grad)."""
    import torch

    errors = []
    cls = _model_class(model_type)
    for level in levels:
        try:
            config = make_config(model_type, level)
            count = _count_parameters(cls, config)
            if count > MAX_PARAMS:
                errors.append(f"{level}: {count / 1e6:.0f}M parameters")
                continue
            torch.manual_seed(0)
            model = cls(config).eval()
        except Exception as exc:  # noqa: BLE001 - try the next configuration
            errors.append(f"{level}: {type(exc).__name__}: {_one_line(exc)}")
            continue
        for inputs in input_candidates(model, config):
            try:
                with torch.no_grad():
                    model(**inputs)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{level} {sorted(inputs)}: {type(exc).__name__}: {_one_line(exc)}")
                continue
            return Built(model, inputs, level, count)
        if not input_candidates(model, config):
            errors.append(f"{level}: no known input in forward{tuple(inspect.signature(model.forward).parameters)[:6]}")
    raise BuildError("; ".join(errors[-3:]) or "nothing tried")


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return text[:limit]


def plain_forward_seconds(model, inputs, repeat: int = 3) -> float:
    """Median CPU time of ``repeat`` plain forwards under no_grad (after the one ``build``
    ran): CPU time, so that other work on a shared machine does not enter the ratio."""
    import time

    import torch

    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        with torch.no_grad():
            model(**inputs)
        times.append(time.process_time() - t0)
    times.sort()
    return times[len(times) // 2] if times else math.nan
