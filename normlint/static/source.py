"""A parsed source file as the rules see it."""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedFile:
    path: str          # as reported in findings (relative to the cwd where possible)
    text: str
    tree: ast.Module
