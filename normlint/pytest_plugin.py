"""pytest plugin (entry point ``pytest11: normlint``): the ``normlint_audit`` fixture.

Loaded into every pytest session of an environment where normlint is installed, so it
must stay cheap: torch is imported only when a test actually audits a model.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def normlint_audit(request):
    """A function ``normlint_audit(model, inputs, *, ignore=..., select=..., **audit_kwargs)``
    that fails the test with the norms table and the findings when the audit finds a
    warning or an error, and returns the ``AuditReport`` otherwise.

    The project's ``[tool.normlint]`` applies, found as ``normlint.audit`` finds it (from
    the model's own source file), else from pytest's rootdir: a test run from outside the
    project (``pytest proj/tests``) that audits a library model (a transformers class)
    still reads the project's configuration; ``config=`` overrides."""
    from .runtime.project import ConfigDiscovery
    from .testing import assert_normalization_ok

    rootdir = Path(request.config.rootpath)
    # One per test: its audits share what was discovered; the next test reads the files again.
    discovery = ConfigDiscovery()

    def check(model, inputs=None, **audit_kwargs):
        __tracebackhide__ = True
        if "config" not in audit_kwargs:
            audit_kwargs["config"] = discovery.for_model(model, fallback=rootdir)
        return assert_normalization_ok(model, inputs, **audit_kwargs)

    return check
