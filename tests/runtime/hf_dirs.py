"""Tiny Hugging Face model directories written at test time (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = "[PAD] [UNK] the a cat dog sat on mat".split()


def _transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def gpt2_config(**overrides):
    t = _transformers()
    kwargs = dict(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64,
                  bos_token_id=1, eos_token_id=1)
    kwargs.update(overrides)
    return t.GPT2Config(**kwargs)


def save_gpt2(directory: Path, *, tokenizer: bool = False, tiny_embeddings: bool = False) -> Path:
    """A 2-layer GPT2 LM; ``tiny_embeddings`` scales the token embeddings to std 1e-4, so
    the first norm's input variance is below its eps (NL406) with these weights only."""
    t = _transformers()
    torch.manual_seed(0)
    model = t.GPT2LMHeadModel(gpt2_config())
    if tiny_embeddings:
        with torch.no_grad():
            model.transformer.wte.weight.normal_(0, 1e-4)
            model.transformer.wpe.weight.zero_()
    model.save_pretrained(directory)
    if tokenizer:
        save_tokenizer(directory)
    return directory


def save_tokenizer(directory: Path, *, pad: bool = True) -> None:
    """A word-level tokenizer over WORDS, made with the tokenizers package and saved."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    t = _transformers()
    vocab = {w: i for i, w in enumerate(WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    extra = {"pad_token": "[PAD]"} if pad else {}
    t.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", **extra).save_pretrained(directory)


SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def save_modality(directory: Path, kind: str) -> Path:
    """vit (vision), wav2vec2 (raw audio), whisper (features, encoder-decoder), t5 (text,
    encoder-decoder), clip (text and image), resnet (a config without image_size),
    videomae (video), speech_to_text (features per channel), ast (spectrogram values),
    parakeet (mel features), llava (images inside the text): tiny configs, random
    weights, saved."""
    t = _transformers()
    torch.manual_seed(0)
    if kind == "clip":
        model = t.CLIPModel(t.CLIPConfig(text_config=dict(vocab_size=100, **SMALL), projection_dim=16,
                                         vision_config=dict(image_size=32, patch_size=8, **SMALL)))
    elif kind == "resnet":
        model = t.ResNetModel(t.ResNetConfig(hidden_sizes=[8, 16], depths=[1, 1], embedding_size=8))
    elif kind == "videomae":
        model = t.VideoMAEModel(t.VideoMAEConfig(image_size=32, patch_size=8, num_frames=4,
                                                 tubelet_size=2, **SMALL))
    elif kind == "speech_to_text":  # input_feat_per_channel and input_channels at their defaults
        model = t.Speech2TextModel(t.Speech2TextConfig(
            vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, conv_channels=16))
    elif kind == "ast":
        model = t.ASTModel(t.ASTConfig(num_mel_bins=16, max_length=64, patch_size=8, frequency_stride=8,
                                       time_stride=8, **SMALL))
    elif kind == "parakeet":
        model = t.ParakeetEncoder(t.ParakeetEncoderConfig(num_mel_bins=16, subsampling_conv_channels=8,
                                                          **SMALL))
    elif kind == "llava":
        model = t.LlavaForConditionalGeneration(t.LlavaConfig(
            text_config=t.LlamaConfig(vocab_size=200, num_key_value_heads=1, **SMALL),
            vision_config=t.CLIPVisionConfig(image_size=32, patch_size=8, **SMALL), image_token_index=150))
    elif kind == "vit":
        model = t.ViTModel(t.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, image_size=32, patch_size=8))
    elif kind == "wav2vec2":
        model = t.Wav2Vec2Model(t.Wav2Vec2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2))
    elif kind == "whisper":
        model = t.WhisperModel(t.WhisperConfig(
            d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16,
            max_source_positions=32, vocab_size=100, max_target_positions=64, pad_token_id=0,
            bos_token_id=1, eos_token_id=2, decoder_start_token_id=1))
    elif kind == "t5":
        model = t.T5Model(t.T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=2,
                                     vocab_size=100))
    else:
        raise ValueError(kind)
    model.save_pretrained(directory)
    return directory
