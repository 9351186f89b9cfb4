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
