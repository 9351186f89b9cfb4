"""Static rules, one module per family. Each family exposes ``check_class(analysis, cls,
report)`` (per nn.Module class) and optionally ``check_file(analysis, file, report)``."""

from . import axes, choice, numerics, placement, training

FAMILIES = (choice, axes, placement, numerics, training)
