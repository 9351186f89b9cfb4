import pytest

# The runtime tests need torch; a static-only environment skips them.
pytest.importorskip("torch")
