"""Loading fixtures/runtime/*.py modules in tests."""

import importlib.util
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "runtime"


def load_fixture(name: str):
    """Import fixtures/runtime/<name>.py (its siblings _blocks/_norms importable)."""
    if str(FIXTURES) not in sys.path:
        sys.path.insert(0, str(FIXTURES))
    spec = importlib.util.spec_from_file_location(f"normlint_fixture_{name}", FIXTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rule_fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("nl*.py"))
