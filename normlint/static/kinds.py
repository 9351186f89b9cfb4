"""What torch provides: norm classes, functional norms, and the names they go by."""

from __future__ import annotations

# torch.nn classes -> family. Families drive the rules: "batch" statistics cross the
# batch axis, "layer"/"rms" reduce trailing feature axes, "group"/"instance" reduce spatial
# or time axes per sample.
NORM_CLASSES: dict[str, str] = {
    "LayerNorm": "layer",
    "RMSNorm": "rms",
    "BatchNorm1d": "batch",
    "BatchNorm2d": "batch",
    "BatchNorm3d": "batch",
    "SyncBatchNorm": "batch",
    "LazyBatchNorm1d": "batch",
    "LazyBatchNorm2d": "batch",
    "LazyBatchNorm3d": "batch",
    "GroupNorm": "group",
    "InstanceNorm1d": "instance",
    "InstanceNorm2d": "instance",
    "InstanceNorm3d": "instance",
    "LazyInstanceNorm1d": "instance",
    "LazyInstanceNorm2d": "instance",
    "LazyInstanceNorm3d": "instance",
    "LocalResponseNorm": "lrn",
}

FUNCTIONAL_NORMS: dict[str, str] = {
    "layer_norm": "layer",
    "rms_norm": "rms",
    "batch_norm": "batch",
    "group_norm": "group",
    "instance_norm": "instance",
    "normalize": "lp",
    "local_response_norm": "lrn",
}

# Module prefixes under which torch exposes the classes above.
TORCH_NN_PREFIXES = ("torch.nn.", "torch.nn.modules.normalization.", "torch.nn.modules.batchnorm.",
                     "torch.nn.modules.instancenorm.")
TORCH_FUNCTIONAL_PREFIXES = ("torch.nn.functional.", "torch.")


def torch_norm_class(qualname: str | None) -> str | None:
    """The norm class name for a qualified name from torch (``torch.nn.LayerNorm`` -> LayerNorm)."""
    if not qualname:
        return None
    for prefix in TORCH_NN_PREFIXES:
        if qualname.startswith(prefix):
            tail = qualname[len(prefix):]
            if tail in NORM_CLASSES:
                return tail
    return None


def torch_functional_norm(qualname: str | None) -> str | None:
    """``torch.nn.functional.layer_norm`` / ``torch.layer_norm`` -> "layer_norm"."""
    if not qualname:
        return None
    for prefix in TORCH_FUNCTIONAL_PREFIXES:
        if qualname.startswith(prefix):
            tail = qualname[len(prefix):]
            if tail in FUNCTIONAL_NORMS:
                return tail
    return None


# Other torch.nn classes the module model needs to tell apart: what a value is when it
# comes out of them decides the shape-based rules (NL201, NL204) and sequence evidence.
MODULE_CATEGORIES: dict[str, str] = {
    "Linear": "linear", "LazyLinear": "linear", "Bilinear": "linear",
    "Conv1d": "conv", "Conv2d": "conv", "Conv3d": "conv",
    "ConvTranspose1d": "conv", "ConvTranspose2d": "conv", "ConvTranspose3d": "conv",
    "LazyConv1d": "conv", "LazyConv2d": "conv", "LazyConv3d": "conv",
    "Embedding": "embedding", "EmbeddingBag": "embedding",
    "RNN": "rnn", "LSTM": "rnn", "GRU": "rnn",
    "MultiheadAttention": "attention",
    "Transformer": "transformer",
    "TransformerEncoder": "transformer_stack", "TransformerDecoder": "transformer_stack",
    "TransformerEncoderLayer": "transformer_layer", "TransformerDecoderLayer": "transformer_layer",
    "Dropout": "dropout", "Dropout1d": "dropout", "Dropout2d": "dropout", "Dropout3d": "dropout",
    "AlphaDropout": "dropout",
    "Identity": "identity",
    "ReLU": "act", "ReLU6": "act", "GELU": "act", "SiLU": "act", "Tanh": "act", "Sigmoid": "act",
    "LeakyReLU": "act", "ELU": "act", "Mish": "act", "Hardswish": "act", "Softplus": "act",
    "PReLU": "act", "GLU": "act", "Softmax": "act",
    "ModuleList": "modulelist", "Sequential": "sequential", "ModuleDict": "moduledict",
    "Flatten": "reshape",
}

# Shape-preserving ops a value can pass through and still be "the output of" its producer.
TRANSPARENT_METHODS = frozenset({
    "float", "half", "bfloat16", "double", "to", "type", "type_as", "contiguous", "clone",
    "detach", "relu", "gelu", "silu", "tanh", "sigmoid", "masked_fill", "cuda", "cpu",
    "expand", "expand_as",
})
REDUCTIONS = frozenset({"mean", "var", "std", "sum", "norm", "var_mean", "std_mean", "amax"})


def torch_module_category(qualname: str | None) -> str | None:
    """Category of a torch.nn class that is not a norm (``torch.nn.Linear`` -> "linear")."""
    if not qualname or not qualname.startswith("torch.nn."):
        return None
    return MODULE_CATEGORIES.get(qualname.rsplit(".", 1)[1])
