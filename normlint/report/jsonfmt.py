"""JSON: a top-level array of finding objects (the Finding fields, fix included)."""

from __future__ import annotations

import json
from typing import Sequence

from ..findings import Finding


def render(findings: Sequence[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"
