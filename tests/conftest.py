from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def pytest_addoption(parser):
    parser.addoption(
        "--regen-fixtures", action="store_true", default=False,
        help="rewrite fixtures/*/*.expected from what normlint reports now (review the diff!)",
    )


@pytest.fixture
def regen_fixtures(request) -> bool:
    return request.config.getoption("--regen-fixtures")


@pytest.fixture(autouse=True)
def strict_static_analysis(monkeypatch):
    """In tests an analysis bug must fail loudly, not be swallowed per class as in a user run."""
    import functools

    from normlint.static import analyzer, engine

    monkeypatch.setattr(engine, "analyze", functools.partial(analyzer.analyze, strict=True))
