"""normlint: find normalization bugs in PyTorch models.

The public API is small on purpose:

- ``check_paths(paths, ...)`` / ``check_source(text, ...)``: the static engine (no torch).
- ``fix_source(text, ...)``: the same check, then its fixes applied (libcst, no torch).
- ``audit(model, example_inputs, ...)``: the runtime engine (imports torch lazily).
- ``Finding`` and ``Severity``: what both return.
"""

from __future__ import annotations

from .errors import AuditError, ConfigError, NormlintError
from .findings import Engine, Finding, Severity

__version__ = "0.1.0"

__all__ = [
    "AuditError", "ConfigError", "Engine", "Finding", "NormlintError", "Severity",
    "audit", "check_paths", "check_source", "fix_source", "__version__",
]


def check_paths(paths=(".",), **kwargs):
    from .api import check_paths as _check_paths
    return _check_paths(paths, **kwargs)


def check_source(text, **kwargs):
    from .api import check_source as _check_source
    return _check_source(text, **kwargs)


def fix_source(text, **kwargs):
    """Apply normlint's fixes to one source text; see ``normlint.fix.api.fix_source``."""
    from .fix.api import fix_source as _fix_source
    return _fix_source(text, **kwargs)


def audit(model, example_inputs=None, **kwargs):
    # Imported here so that `import normlint` (and the static path) never loads torch.
    from .runtime.api import audit as _audit
    return _audit(model, example_inputs, **kwargs)
