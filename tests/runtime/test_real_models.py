"""Ground truth from REFERENCES.md §4 on real architectures built from tiny configs."""


import pytest
import torch
from torch import nn

import normlint

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def ids(length=16, batch=2):
    return torch.randint(0, 100, (batch, length), generator=torch.Generator().manual_seed(1))


def placements(report):
    return {n.module: n.placement for n in report.norms}


def codes(report, failing_only=True):
    return {f.code for f in report.findings if f.severity.fails_run or not failing_only}


def gpt2():
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=100)
    return transformers.GPT2Model(config).eval()


def test_gpt2_pre_norm_with_final_norm():
    report = normlint.audit(gpt2(), {"input_ids": ids()})
    assert placements(report) == {"h.0.ln_1": "pre", "h.0.ln_2": "pre", "h.1.ln_1": "pre",
                                  "h.1.ln_2": "pre", "ln_f": "final"}
    assert report.findings == []
    # Declared axes are exact (not re-measured by the invariance probe).
    assert all(n.declared_axes == (2,) and n.measured_axes is None and n.feature_axis == 2
               for n in report.norms)


def test_gpt2_without_final_norm_is_nl302():
    model = gpt2()
    model.ln_f = nn.Identity()
    report = normlint.audit(model, {"input_ids": ids()})
    assert [(f.code, f.module) for f in report.findings] == [("NL302", "h.1")]
    assert report.findings[0].path.endswith("modeling_gpt2.py")


def test_bert_post_norm_without_nl302():
    config = transformers.BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=100, max_position_embeddings=64)
    report = normlint.audit(transformers.BertModel(config).eval(), {"input_ids": ids()})
    got = placements(report)
    assert got.pop("embeddings.LayerNorm") == "embedding"
    assert set(got.values()) == {"post"} and len(got) == 4
    assert report.findings == []  # eps=1e-12 in float32 is not a finding


def test_llama_pre_rmsnorm_with_final_norm():
    config = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                      num_key_value_heads=1, intermediate_size=64, vocab_size=100)
    report = normlint.audit(transformers.LlamaModel(config).eval(), {"input_ids": ids()})
    got = placements(report)
    assert got.pop("norm") == "final"
    assert set(got.values()) == {"pre"} and len(got) == 4  # post_attention_layernorm is pre-FFN
    assert {n.kind for n in report.norms} == {"LlamaRMSNorm"}
    assert report.findings == []


def test_t5_encoder_decoder():
    config = transformers.T5Config(num_layers=2, num_decoder_layers=2, d_model=32, d_kv=16,
                                   num_heads=2, d_ff=64, vocab_size=100)
    report = normlint.audit(transformers.T5Model(config).eval(),
                            {"input_ids": ids(), "decoder_input_ids": ids(8)})
    got = placements(report)
    assert got.pop("encoder.final_layer_norm") == "final"
    assert got.pop("decoder.final_layer_norm") == "final"
    assert set(got.values()) == {"pre"} and len(got) == 10
    assert report.findings == []


def test_vit_pre_norm_with_final_norm():
    config = transformers.ViTConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                    intermediate_size=64, image_size=16, patch_size=4)
    report = normlint.audit(transformers.ViTModel(config).eval(), {"pixel_values": torch.randn(2, 3, 16, 16)})
    values = list(placements(report).values())
    assert values == ["pre"] * 4 + ["final"]
    assert report.findings == []


def _wav2vec2_config(cls, **kwargs):
    return cls(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
               conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **kwargs)


def test_wav2vec2_post_norm_group_feature_extractor():
    config = _wav2vec2_config(transformers.Wav2Vec2Config, do_stable_layer_norm=False,
                              feat_extract_norm="group")
    report = normlint.audit(transformers.Wav2Vec2Model(config).eval(), {"input_values": torch.randn(2, 400)})
    got = placements(report)
    assert got["encoder.layer_norm"] == "post"
    assert {got[f"encoder.layers.{i}.{n}"] for i in (0, 1) for n in ("layer_norm", "final_layer_norm")} == {"post"}
    # Post-LN feeds the normalized h into the next residual: not NL303. The GroupNorm over
    # time in the conv front-end does depend on padding (measured on the real frames): the
    # reason transformers' docs say not to batch padded audio through wav2vec2-base.
    assert {(f.code, f.module, f.severity.value) for f in report.findings} == {
        ("NL102", "feature_extractor.conv_layers.0.layer_norm", "warning")}


def test_wav2vec2_stable_layer_norm():
    config = _wav2vec2_config(transformers.Wav2Vec2Config, do_stable_layer_norm=True,
                              feat_extract_norm="layer")
    report = normlint.audit(transformers.Wav2Vec2Model(config).eval(), {"input_values": torch.randn(2, 400)})
    got = placements(report)
    assert got["encoder.layer_norm"] == "final"
    assert {got[f"encoder.layers.{i}.{n}"] for i in (0, 1) for n in ("layer_norm", "final_layer_norm")} == {"pre"}
    assert report.findings == []


def test_wav2vec2_conformer_batchnorm_is_info():
    config = _wav2vec2_config(transformers.Wav2Vec2ConformerConfig, conv_depthwise_kernel_size=3,
                              position_embeddings_type="relative")
    report = normlint.audit(transformers.Wav2Vec2ConformerModel(config).eval(),
                            {"input_values": torch.randn(2, 400)})
    bn = [f for f in report.findings if "batch_norm" in (f.module or "")]
    assert {f.code for f in bn} == {"NL101"} and all(f.severity.value == "info" for f in bn)
    train = normlint.audit(transformers.Wav2Vec2ConformerModel(config).train(),
                           {"input_values": torch.randn(2, 400)})
    bn = [f for f in train.findings if "batch_norm" in (f.module or "")]
    # The conv sub-block makes the BatchNorm a deliberate choice (NL101, NL103: info), but
    # padding measurably changes the real frames' outputs in train mode (NL102: warning).
    assert {(f.code, f.severity.value) for f in bn} == {("NL101", "info"), ("NL102", "warning"),
                                                        ("NL103", "info")}
    # The encoder LayerNorm after layers that each end in final_layer_norm is a true double
    # norm (C10); the GroupNorm over time in the conv front-end depends on padding (NL102).
    assert {(f.code, f.module) for f in report.findings if f.severity.fails_run} == {
        ("NL307", "encoder.layer_norm"), ("NL102", "feature_extractor.conv_layers.0.layer_norm")}


def test_gemma2_sandwich():
    config = transformers.Gemma2Config(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                       num_key_value_heads=1, head_dim=16, intermediate_size=64,
                                       vocab_size=100)
    report = normlint.audit(transformers.Gemma2Model(config).eval(), {"input_ids": ids()})
    got = placements(report)
    assert got.pop("norm") == "final"
    for i in (0, 1):
        assert got[f"layers.{i}.input_layernorm"] == "pre"
        assert got[f"layers.{i}.pre_feedforward_layernorm"] == "pre"
        assert got[f"layers.{i}.post_attention_layernorm"] == "branch-output"
        assert got[f"layers.{i}.post_feedforward_layernorm"] == "branch-output"
    assert report.findings == []
    assert all(n.declared_axes == (2,) for n in report.norms)  # (1 + w) with w = 0 init


@pytest.mark.parametrize("kwargs, expected", [
    ({}, ["pre"] * 4 + ["final"]),
    ({"pre_norm": False}, ["post"] * 4),
    ({"sandwich_norm": True}, ["pre", "branch-output"] * 4 + ["final"]),
    ({"use_rmsnorm": True}, ["pre"] * 4 + ["final"]),
    ({"use_scalenorm": True}, ["pre"] * 4 + ["final"]),
])
def test_x_transformers_decoder(kwargs, expected):
    x_transformers = pytest.importorskip("x_transformers")
    model = x_transformers.TransformerWrapper(
        num_tokens=100, max_seq_len=64,
        attn_layers=x_transformers.Decoder(dim=32, depth=2, heads=2, **kwargs)).eval()
    report = normlint.audit(model, ids())
    assert [n.placement for n in report.norms] == expected
    assert report.findings == []


def test_qwen3_per_head_qk_norm():
    config = transformers.Qwen3Config(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                      num_key_value_heads=1, head_dim=16, intermediate_size=64,
                                      vocab_size=100)
    report = normlint.audit(transformers.Qwen3Model(config).eval(), {"input_ids": ids()})
    q_norm = next(n for n in report.norms if n.module == "layers.0.self_attn.q_norm")
    assert (q_norm.placement, q_norm.declared_axes, q_norm.feature_axis) == ("other", (3,), 3)
    assert report.findings == []


def test_olmo2_branch_output_norms_and_full_width_qk_norm():
    # At the default initializer_range the tiny branch outputs have a variance below eps/10
    # (NL406 says so, correctly); a wider init gives trained-like scales.
    config = transformers.Olmo2Config(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                      num_key_value_heads=2, intermediate_size=64, vocab_size=100,
                                      initializer_range=0.2)
    report = normlint.audit(transformers.Olmo2Model(config).eval(), {"input_ids": ids()})
    got = placements(report)
    assert got.pop("norm") == "final"
    assert {got.pop(f"layers.{i}.self_attn.{n}") for i in (0, 1) for n in ("q_norm", "k_norm")} == {"other"}
    assert set(got.values()) == {"branch-output"}
    assert report.findings == []


def test_albert_shared_layers_are_not_reuse():
    config = transformers.AlbertConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=2,
                                       intermediate_size=64, vocab_size=100, embedding_size=16)
    report = normlint.audit(transformers.AlbertModel(config).eval(), {"input_ids": ids()})
    assert max(n.calls for n in report.norms) == 3  # one shared layer, called per depth
    assert report.findings == []


def test_clip_normalized_stem_before_pre_norm_stack_is_not_nl303():
    config = transformers.CLIPVisionConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                           intermediate_size=64, image_size=16, patch_size=4)
    report = normlint.audit(transformers.CLIPVisionModel(config).eval(),
                            {"pixel_values": torch.randn(2, 3, 16, 16)})
    assert report.findings == []


def test_convnext_channels_first_layernorm_is_measured_not_nl204():
    config = transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_channels=3, num_stages=2)
    report = normlint.audit(transformers.ConvNextModel(config).eval(), {"pixel_values": torch.randn(2, 3, 32, 32)})
    stem = next(n for n in report.norms if n.module == "embeddings.layernorm")
    assert stem.declared_axes is None and stem.measured_axes == (1,) and stem.verdict == "ok"
    assert report.findings == []


@pytest.mark.parametrize("train", [False, True])
def test_resnet_batchnorm_is_fine(train):
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_channels=3)
    report = normlint.audit(transformers.ResNetModel(config).train(train),
                            {"pixel_values": torch.randn(2, 3, 32, 32)})
    assert report.findings == []


def test_torch_transformer_adds_a_second_final_norm():
    """nn.Transformer's encoder/decoder norm on top of post-norm layers (C9)."""
    model = nn.Transformer(16, 2, 1, 1, 32, batch_first=True).eval()
    report = normlint.audit(model, (torch.randn(2, 8, 16), torch.randn(2, 6, 16)))
    assert {(f.code, f.module) for f in report.findings} == {("NL307", "encoder.norm"), ("NL307", "decoder.norm")}


@pytest.mark.parametrize("final_norm, expected", [(None, ["NL302"]), (nn.LayerNorm(16), [])])
def test_torch_encoder_norm_first(final_norm, expected):
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, norm_first=True)
    model = nn.TransformerEncoder(layer, 2, norm=final_norm, enable_nested_tensor=False).eval()
    report = normlint.audit(model, torch.randn(2, 8, 16))
    assert [f.code for f in report.findings] == expected


def _decoder(name, **extra):
    config = getattr(transformers, f"{name}Config")(num_hidden_layers=2, hidden_size=32,
                                                  num_attention_heads=2, intermediate_size=64,
                                                  vocab_size=100, **extra)
    return getattr(transformers, f"{name}Model")(config).eval()


@pytest.mark.parametrize("name, extra, expected", [
    # QK-norm followed by RoPE: x * cos + rotate_half(x) * sin is not a residual add.
    ("Gemma3Text", {"num_key_value_heads": 1, "head_dim": 16},
     {"pre": 4, "other": 4, "branch-output": 4, "final": 1}),
    # Parallel attention + MLP off one norm: x + attn(n) + mlp(n) is one stream.
    ("Cohere", {"num_key_value_heads": 2}, {"pre": 2, "final": 1}),
    # OPT reshapes the stream to 2-D around its FFN.
    ("OPT", {"ffn_dim": 64, "word_embed_proj_dim": 32, "max_position_embeddings": 64},
     {"pre": 4, "final": 1}),
])
def test_more_decoders(name, extra, expected):
    report = normlint.audit(_decoder(name, **extra), {"input_ids": ids()})
    counts = {}
    for n in report.norms:
        counts[n.placement] = counts.get(n.placement, 0) + 1
    assert counts == expected
    assert report.findings == []


@pytest.mark.parametrize("name, kwargs", [
    # Patch merging concatenates slices of the stream before its norm.
    ("Swin", dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                  window_size=4)),
    # The final norm is applied to the mean-pooled tokens.
    ("Beit", dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=64, use_mean_pooling=True)),
    # A vision transformer that chooses BatchNorm: not a sequence model.
    ("Levit", dict(image_size=32, hidden_sizes=[16, 32], num_attention_heads=[1, 2], depths=[1, 1],
                   key_dim=[8, 8], drop_path_rate=0, mlp_ratio=[2, 2], attention_ratio=[2, 2],
                   down_ops=[["Subsample", 8, 1, 2, 2, 2]])),
])
def test_vision_models(name, kwargs):
    model = getattr(transformers, f"{name}Model")(getattr(transformers, f"{name}Config")(**kwargs)).eval()
    report = normlint.audit(model, {"pixel_values": torch.randn(2, 3, 32, 32)})
    assert report.findings == []


def test_deep_post_norm_bert_is_nl301():
    config = transformers.BertConfig(num_hidden_layers=13, hidden_size=16, num_attention_heads=2,
                                     intermediate_size=32, vocab_size=100, max_position_embeddings=64)
    report = normlint.audit(transformers.BertModel(config).eval(), {"input_ids": ids()})
    assert [(f.code, f.module) for f in report.findings] == [("NL301", "encoder.layer")]


def test_low_precision_ground_truth():
    """LlamaRMSNorm upcasts (no NL402 in bf16); BERT's eps=1e-12 under fp16 is info only."""
    config = transformers.LlamaConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                      num_key_value_heads=1, intermediate_size=64, vocab_size=100)
    llama = transformers.LlamaModel(config).to(torch.bfloat16).eval()
    assert normlint.audit(llama, {"input_ids": ids()}).findings == []
    config = transformers.BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=100, max_position_embeddings=64)
    report = normlint.audit(transformers.BertModel(config).half().eval(), {"input_ids": ids()})
    assert report.findings and {(f.code, f.severity.value) for f in report.findings} == {("NL401", "info")}
