"""pytest plugin (entry point ``pytest11: normlint``): the ``normlint_audit`` fixture.

Loaded into every pytest session of an environment where normlint is installed, so it
must stay cheap: torch is imported only when a test actually audits a model.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def normlint_audit():
    """A function ``normlint_audit(model, inputs, *, ignore=..., select=..., **audit_kwargs)``
    that fails the test with the norms table and the findings when the audit finds a
    warning or an error, and returns the ``AuditReport`` otherwise."""
    from .testing import assert_normalization_ok
    return assert_normalization_ok
