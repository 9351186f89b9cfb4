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
