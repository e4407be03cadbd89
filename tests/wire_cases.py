"""Every wire provider's case: one ``wire_case_<provider>.py`` module each."""

from __future__ import annotations

import importlib
from pathlib import Path

from wire_support import FAST_RETRY, WireCase

CASES: list[WireCase] = [
    importlib.import_module(path.stem).CASE
    for path in sorted(Path(__file__).parent.glob("wire_case_*.py"))
]

__all__ = ["CASES", "FAST_RETRY", "WireCase"]
