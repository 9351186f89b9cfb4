"""Audit a zoo of real transformers architectures built from tiny configs (no downloads).

    PYTHONPATH=. python evaluation/run_zoo.py [--write docs/evaluation.md]

Each entry builds one model in memory and states, from the model's own source
(``transformers/models/<name>/modeling_<name>.py``), where every norm sits: a table of
module-path patterns (``fnmatch``, first match wins) to the placement the audit must find.
``tests/runtime/test_zoo.py`` asserts these expectations; this script prints the same
results as the markdown table in ``docs/evaluation.md`` (``## Runtime: the model zoo``).
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Runtime: the model zoo"

# Shared tiny sizes: 2 layers, width 32, small vocab, batch 2 x 8 tokens or 2x3x32x32 images.
_LM = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
           vocab_size=100)


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str
    build: Callable[[], tuple[Any, dict]]
    expected: dict[str, str]                   # module-path pattern -> placement
    design: str                                # the published design, one line
    # Failing findings the design really has (true positives), as (code, module).
    known: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def _tf():
    import transformers
    transformers.logging.set_verbosity_error()
    return transformers


def _ids(length: int = 8, batch: int = 2):
    import torch
    return torch.randint(0, 100, (batch, length), generator=torch.Generator().manual_seed(1))


def _pixels(size: int = 32):
    import torch
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def _audio():
    import torch
    return torch.randn(2, 400, generator=torch.Generator().manual_seed(1))


def _hf(name: str, inputs: Callable[[], dict], config_name: str | None = None, **config):
    """A builder of ``<name>Model(<config_name or name>Config(**config))`` fed ``inputs()``."""
    def build():
        tf = _tf()
        cfg = getattr(tf, f"{config_name or name}Config")(**config)
        return getattr(tf, f"{name}Model")(cfg), inputs()
    return build


def _lm(name: str, **config):
    return _hf(name, lambda: {"input_ids": _ids()}, **config)


def _vision(name: str, **config):
    return _hf(name, lambda: {"pixel_values": _pixels()}, **config)


def _speech(name: str, **config):
    return _hf(name, lambda: {"input_values": _audio()},
               num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
               conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **config)


def _seq2seq(name: str, **config):
    return _hf(name, lambda: {"input_ids": _ids(), "decoder_input_ids": _ids(6)}, **config)


_LLAMA_LIKE = {"layers.*.input_layernorm": "pre", "layers.*.post_attention_layernorm": "pre",
               "norm": "final"}
_BERT_LIKE = {"embeddings.LayerNorm": "embedding", "encoder.layer.*.attention.output.LayerNorm": "post",
              "encoder.layer.*.output.LayerNorm": "post"}
_VIT_LIKE = {"layers.*.layernorm_before": "pre", "layers.*.layernorm_after": "pre", "layernorm": "final"}
_W2V_POST = {"feature_extractor.conv_layers.0.layer_norm": "other",   # GroupNorm over time, first conv
             "feature_projection.layer_norm": "other",
             "encoder.layer_norm": "post",                             # norm(x + pos_conv(x))
             "encoder.layers.*.layer_norm": "post", "encoder.layers.*.final_layer_norm": "post"}
# A GroupNorm over time in the conv front-end depends on padding, measured on the real frames:
# a true positive (transformers' docs: do not batch padded audio through these models).
_W2V_PADDING = frozenset({("NL102", "feature_extractor.conv_layers.0.layer_norm")})

ZOO: tuple[ZooModel, ...] = (
    # ------------------------------------------------------------------ decoder LMs
    ZooModel("gpt2", "decoder", _lm("GPT2", n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=100),
             {"h.*.ln_1": "pre", "h.*.ln_2": "pre", "ln_f": "final"},
             "pre-LN, final ln_f"),
    ZooModel("gpt_neox", "decoder", _lm("GPTNeoX", **_LM),
             {"layers.*.input_layernorm": "pre", "layers.*.post_attention_layernorm": "pre",
              "final_layer_norm": "final"},
             "parallel residual x + attn(ln1(x)) + mlp(ln2(x)), final norm"),
    ZooModel("gptj", "decoder", _lm("GPTJ", n_layer=2, n_embd=32, n_head=2, rotary_dim=8,
                                    n_positions=64, vocab_size=100),
             {"h.*.ln_1": "pre", "ln_f": "final"},
             "parallel block off one ln_1, final ln_f"),
    ZooModel("llama", "decoder", _lm("Llama", num_key_value_heads=1, **_LM), _LLAMA_LIKE,
             "pre-RMSNorm (post_attention_layernorm is pre-FFN), final norm"),
    ZooModel("mistral", "decoder", _lm("Mistral", num_key_value_heads=1, **_LM), _LLAMA_LIKE,
             "pre-RMSNorm, final norm"),
    ZooModel("qwen2", "decoder", _lm("Qwen2", num_key_value_heads=1, **_LM), _LLAMA_LIKE,
             "pre-RMSNorm, final norm"),
    ZooModel("qwen3", "decoder", _lm("Qwen3", num_key_value_heads=1, head_dim=16, **_LM),
             {"layers.*.self_attn.q_norm": "other", "layers.*.self_attn.k_norm": "other", **_LLAMA_LIKE},
             "pre-RMSNorm, per-head QK-norm, final norm"),
    ZooModel("gemma", "decoder", _lm("Gemma", num_key_value_heads=1, head_dim=16, **_LM), _LLAMA_LIKE,
             "pre-RMSNorm with (1 + w), final norm"),
    ZooModel("gemma2", "decoder", _lm("Gemma2", num_key_value_heads=1, head_dim=16, **_LM),
             {"layers.*.input_layernorm": "pre", "layers.*.post_attention_layernorm": "branch-output",
              "layers.*.pre_feedforward_layernorm": "pre",
              "layers.*.post_feedforward_layernorm": "branch-output", "norm": "final"},
             "sandwich: pre and branch-output norms on both sublayers, final norm"),
    ZooModel("phi", "decoder", _lm("Phi", **_LM),
             {"layers.*.input_layernorm": "pre", "final_layernorm": "final"},
             "parallel block off one LayerNorm, final norm"),
    ZooModel("opt", "decoder", _lm("OPT", ffn_dim=64, word_embed_proj_dim=32, max_position_embeddings=64, **_LM),
             {"decoder.layers.*.self_attn_layer_norm": "pre", "decoder.layers.*.final_layer_norm": "pre",
              "decoder.final_layer_norm": "final"},
             "do_layer_norm_before=True: pre-LN, final norm"),
    ZooModel("opt-350m", "decoder", _lm("OPT", ffn_dim=64, word_embed_proj_dim=32, max_position_embeddings=64,
                                        do_layer_norm_before=False, **_LM),
             {"decoder.layers.*.self_attn_layer_norm": "post", "decoder.layers.*.final_layer_norm": "post"},
             "do_layer_norm_before=False: post-LN, no final norm"),
    ZooModel("bloom", "decoder", _lm("Bloom", n_layer=2, hidden_size=32, n_head=2, vocab_size=100),
             {"word_embeddings_layernorm": "embedding", "h.*.input_layernorm": "pre",
              "h.*.post_attention_layernorm": "pre", "ln_f": "final"},
             "embedding LN, pre-LN, final ln_f"),
    ZooModel("falcon", "decoder", _lm("Falcon", num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                      vocab_size=100),
             {"h.*.input_layernorm": "pre", "ln_f": "final"},
             "parallel attention/MLP off one LayerNorm, final ln_f"),
    ZooModel("falcon-40b", "decoder", _lm("Falcon", num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                          num_kv_heads=2, vocab_size=100, new_decoder_architecture=True),
             {"h.*.ln_attn": "pre", "h.*.ln_mlp": "pre", "ln_f": "final"},
             "new_decoder_architecture: parallel block with ln_attn and ln_mlp, final ln_f"),
    ZooModel("olmo", "decoder", _lm("Olmo", num_key_value_heads=2, **_LM), _LLAMA_LIKE,
             "pre-LN without affine parameters (OlmoLayerNorm), final norm"),
    # At the default initializer_range the tiny branch outputs have a variance below eps/10
    # (NL406 says so, correctly); a wider init gives trained-like scales.
    ZooModel("olmo2", "decoder", _lm("Olmo2", num_key_value_heads=2, initializer_range=0.2, **_LM),
             {"layers.*.self_attn.q_norm": "other", "layers.*.self_attn.k_norm": "other",
              "layers.*.post_attention_layernorm": "branch-output",
              "layers.*.post_feedforward_layernorm": "branch-output", "norm": "final"},
             "norms on branch outputs only, full-width QK-norm, final norm"),
    ZooModel("starcoder2", "decoder", _lm("Starcoder2", num_key_value_heads=1, **_LM), _LLAMA_LIKE,
             "pre-LN, final norm"),
    # ------------------------------------------------------------------ encoders
    ZooModel("bert", "encoder", _lm("Bert", max_position_embeddings=64, **_LM), _BERT_LIKE,
             "embedding LN, post-LN, no final norm"),
    ZooModel("roberta", "encoder", _lm("Roberta", max_position_embeddings=64, **_LM), _BERT_LIKE,
             "embedding LN, post-LN, no final norm"),
    ZooModel("electra", "encoder", _lm("Electra", embedding_size=16, max_position_embeddings=64, **_LM),
             _BERT_LIKE, "embedding LN, post-LN, no final norm"),
    ZooModel("albert", "encoder", _lm("Albert", embedding_size=16, **_LM),
             {"embeddings.LayerNorm": "embedding",
              "encoder.albert_layer_groups.*.albert_layers.*.attention.LayerNorm": "post",
              "encoder.albert_layer_groups.*.albert_layers.*.full_layer_layer_norm": "post"},
             "embedding LN, post-LN, one layer shared across depth"),
    # ------------------------------------------------------------------ encoder-decoders
    ZooModel("t5", "encoder-decoder", _seq2seq("T5", num_layers=2, num_decoder_layers=2, d_model=32, d_kv=16,
                                               num_heads=2, d_ff=64, vocab_size=100),
             {"*.block.*.layer.*.layer_norm": "pre", "encoder.final_layer_norm": "final",
              "decoder.final_layer_norm": "final"},
             "pre-RMSNorm (T5LayerNorm), final norm in both stacks"),
    ZooModel("bart", "encoder-decoder", _seq2seq("Bart", encoder_layers=2, decoder_layers=2, d_model=32,
                                                 encoder_attention_heads=2, decoder_attention_heads=2,
                                                 encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100,
                                                 max_position_embeddings=64),
             {"*.layernorm_embedding": "embedding", "*.layers.*.self_attn_layer_norm": "post",
              "decoder.layers.*.encoder_attn_layer_norm": "post", "*.layers.*.final_layer_norm": "post"},
             "embedding LN, post-LN in both stacks"),
    # ------------------------------------------------------------------ vision
    ZooModel("vit", "vision", _vision("ViT", num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                      intermediate_size=64, image_size=32, patch_size=8), _VIT_LIKE,
             "pre-LN (layernorm_after is pre-MLP), final norm"),
    ZooModel("deit", "vision", _vision("DeiT", num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                       intermediate_size=64, image_size=32, patch_size=8), _VIT_LIKE,
             "pre-LN, final norm"),
    ZooModel("swin", "vision", _vision("Swin", image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                                       num_heads=[2, 2], window_size=4),
             # "embedding" is a norm on a token Embedding lookup; a conv patch stem's is "other".
             {"embeddings.norm": "other", "encoder.layers.*.blocks.*.layernorm_before": "pre",
              "encoder.layers.*.blocks.*.layernorm_after": "pre",
              "encoder.layers.*.downsample.norm": "final", "layernorm": "final"},
             "patch-embedding LN, pre-LN, patch merging normalizes the merged stream, final norm"),
    ZooModel("convnext", "vision", _vision("ConvNext", hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
             {"embeddings.layernorm": "other", "encoder.stages.*.downsampling_layer.0": "final",
              "encoder.stages.*.layers.*.layernorm": "other", "layernorm": "final"},
             "channels-first LN after the stem and closing each stage before downsampling, LN "
             "inside each block after the depthwise conv, LN on the pooled features"),
    ZooModel("resnet", "vision", _vision("ResNet", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                         layer_type="basic"),
             {"embedder.embedder.normalization": "other",
              "encoder.stages.*.layers.*.shortcut.normalization": "other",
              "encoder.stages.*.layers.*.layer.1.normalization": "branch-output",
              "encoder.stages.*.layers.*.layer.*.normalization": "other"},
             "BatchNorm after every conv; the last one of a block ends its residual branch "
             "(identity and projection shortcuts alike)"),
    # ------------------------------------------------------------------ speech
    ZooModel("wav2vec2", "speech", _speech("Wav2Vec2", do_stable_layer_norm=False, feat_extract_norm="group"),
             _W2V_POST, "GroupNorm front-end, post-LN encoder (LN before the layers)", known=_W2V_PADDING),
    ZooModel("wav2vec2-stable", "speech", _speech("Wav2Vec2", do_stable_layer_norm=True, feat_extract_norm="layer"),
             {"feature_extractor.conv_layers.*.layer_norm": "other", "feature_projection.layer_norm": "other",
              "encoder.layers.*.layer_norm": "pre", "encoder.layers.*.final_layer_norm": "pre",
              "encoder.layer_norm": "final"},
             "LayerNorm front-end, pre-LN encoder with a final norm"),
    ZooModel("hubert", "speech", _speech("Hubert", do_stable_layer_norm=False, feat_extract_norm="group"),
             _W2V_POST, "GroupNorm front-end, post-LN encoder (as wav2vec2)", known=_W2V_PADDING),
    ZooModel("wav2vec2-conformer", "speech",
             _speech("Wav2Vec2Conformer", conv_depthwise_kernel_size=3, position_embeddings_type="relative"),
             {"feature_extractor.conv_layers.0.layer_norm": "other", "feature_projection.layer_norm": "other",
              "encoder.layers.*.ffn1_layer_norm": "pre", "encoder.layers.*.self_attn_layer_norm": "pre",
              "encoder.layers.*.conv_module.layer_norm": "pre", "encoder.layers.*.conv_module.batch_norm": "other",
              "encoder.layers.*.ffn2_layer_norm": "pre",
              # Each block's closing norm carries the stream into the next block; the last one
              # closes the stack.
              "encoder.layers.0.final_layer_norm": "post", "encoder.layers.1.final_layer_norm": "final",
              "encoder.layer_norm": "other"},
             "macaron pre-LN blocks each closed by final_layer_norm, BatchNorm in the conv module",
             # encoder.layer_norm normalizes the last block's final_layer_norm output again:
             # a real double norm (REFERENCES C10), reported as such.
             known=frozenset({("NL307", "encoder.layer_norm")}) | _W2V_PADDING),
)


def x_transformers_variants() -> tuple[ZooModel, ...]:
    def build(**kwargs):
        def make():
            import x_transformers as xt
            model = xt.TransformerWrapper(num_tokens=100, max_seq_len=64,
                                          attn_layers=xt.Decoder(dim=32, depth=2, heads=2, **kwargs))
            return model, (_ids(),)
        return make

    # layers.<i>.0 holds a sublayer's (pre-branch, post-branch, post-main) norms; the LayerNorm
    # wrapper keeps its nn.LayerNorm as `.ln`, RMSNorm and ScaleNorm normalize themselves.
    def pre(suffix=""):
        return {f"attn_layers.layers.*.0.0{suffix}": "pre", f"attn_layers.final_norm{suffix}": "final"}

    return (
        ZooModel("x-transformers pre-norm", "x-transformers", build(), pre(".ln"), "pre-LN, final norm"),
        ZooModel("x-transformers post-norm", "x-transformers", build(pre_norm=False),
                 {"attn_layers.layers.*.0.2.ln": "post"}, "post-LN, no final norm"),
        ZooModel("x-transformers sandwich", "x-transformers", build(sandwich_norm=True),
                 {**pre(".ln"), "attn_layers.layers.*.0.1.ln": "branch-output"},
                 "sandwich: pre and branch-output norms, final norm"),
        ZooModel("x-transformers rmsnorm", "x-transformers", build(use_rmsnorm=True), pre(),
                 "pre-RMSNorm, final norm"),
        ZooModel("x-transformers scalenorm", "x-transformers", build(use_scalenorm=True), pre(),
                 "pre-ScaleNorm, final norm"),
    )


def all_models() -> tuple[ZooModel, ...]:
    return ZOO + x_transformers_variants()


# ---------------------------------------------------------------------- checking
@dataclass
class ZooResult:
    entry: ZooModel
    norms: dict[str, str]                      # module -> placement
    kinds: dict[str, int]                      # norm class -> count
    findings: list[tuple[str, str, str]]       # (severity, code, module)
    mismatches: list[str]                      # placement problems, one line each
    seconds: float
    error: str | None = None

    @property
    def unexpected(self) -> list[tuple[str, str, str]]:
        return [f for f in self.findings if f[0] in ("warning", "error")
                and (f[1], f[2]) not in self.entry.known]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.mismatches and not self.unexpected


def expected_placement(entry: ZooModel, module: str) -> str | None:
    for pattern, placement in entry.expected.items():
        if fnmatch.fnmatchcase(module, pattern):
            return placement
    return None


def placement_mismatches(entry: ZooModel, got: dict[str, str]) -> list[str]:
    problems = []
    for module, placement in got.items():
        want = expected_placement(entry, module)
        if want is None:
            problems.append(f"{module}: unexpected norm ({placement})")
        elif want != placement:
            problems.append(f"{module}: {placement}, expected {want}")
    for pattern in entry.expected:
        if not any(fnmatch.fnmatchcase(m, pattern) for m in got):
            problems.append(f"{pattern}: no such norm ran")
    return problems


def run(entry: ZooModel) -> ZooResult:
    import torch
    import normlint

    torch.manual_seed(0)
    model, inputs = entry.build()
    model.eval()
    t0 = time.perf_counter()
    try:
        report = normlint.audit(model, inputs)
    except Exception as exc:  # noqa: BLE001 - a crash is a result of the zoo, reported per model
        return ZooResult(entry, {}, {}, [], [], time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - t0
    got = {n.module: n.placement for n in report.norms}
    kinds: dict[str, int] = {}
    for n in report.norms:
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    findings = [(f.severity.value, f.code, f.module or "") for f in report.findings]
    return ZooResult(entry, got, kinds, findings, placement_mismatches(entry, got), seconds)


# ---------------------------------------------------------------------- reporting
def _placements_cell(norms: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for placement in norms.values():
        counts[placement] = counts.get(placement, 0) + 1
    return ", ".join(f"{p} {n}" for p, n in sorted(counts.items()))


def _verdict(result: ZooResult) -> str:
    if result.error:
        return f"crash: {result.error}"
    if result.mismatches:
        return "placement differs: " + "; ".join(result.mismatches)
    if result.unexpected:
        return "finding: " + ", ".join(f"{c} {m}" for _, c, m in result.unexpected)
    notes = [f"{c} {m} ({s}, true positive)" for s, c, m in result.findings
             if (c, m) in result.entry.known]
    notes += sorted({f"{c} info" for s, c, _ in result.findings if s == "info"})
    return "ok" + (" — " + "; ".join(notes) if notes else "")


def markdown(results: list[ZooResult]) -> str:
    import torch
    import transformers

    passed = sum(r.ok for r in results)
    lines = [
        HEADING, "",
        f"`evaluation/run_zoo.py` builds {len(results)} architectures from tiny configs (2 layers, "
        "width 32, no downloads), audits each on CPU in eval mode (batch 2 x 8 tokens, 2x3x32x32 "
        "images or 2 x 400 audio samples) and compares every norm's placement with the design "
        "read from the model's source. `tests/runtime/test_zoo.py` asserts the same table. "
        "Placements are those of `docs/audit.md`: `embedding` is a norm on a token embedding "
        "lookup (a conv patch stem's norm is `other`), `final` also covers a norm that closes "
        "a stage (Swin's patch merging, ConvNeXt's downsampling) or normalizes pooled features.",
        f"torch {torch.__version__}, transformers {transformers.__version__}. "
        f"{passed}/{len(results)} match their design with no unexpected warning or error.", "",
        "| architecture | design | norms found | placements | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(r.kinds.items()))
        lines.append(f"| {r.entry.name} | {r.entry.design} | {kinds} | {_placements_cell(r.norms)} | {_verdict(r)} |")
    lines += ["", "Rerun: `PYTHONPATH=. python evaluation/run_zoo.py --write docs/evaluation.md`.", ""]
    return "\n".join(lines)


def write_section(path: Path, section: str, heading: str = HEADING) -> None:
    """Replace (or append) the section under ``heading``, leaving the rest of the document alone."""
    text = path.read_text() if path.exists() else "# Evaluation\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", type=Path, help="update the zoo section of this markdown file")
    ap.add_argument("--only", nargs="*", help="names of zoo entries to run")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(2)
    results = []
    for entry in all_models():
        if args.only and entry.name not in args.only:
            continue
        result = run(entry)
        results.append(result)
        print(f"{entry.name:<28} {result.seconds:6.2f}s  {_verdict(result)}", file=sys.stderr)
    section = markdown(results)
    if args.write:
        write_section(args.write, section)
    else:
        print(section)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
