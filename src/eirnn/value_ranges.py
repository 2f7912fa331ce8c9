"""Allowed ranges of numeric settings, (lowest, highest, lowest allowed?, highest allowed?), and
their wording in messages and help."""

from __future__ import annotations

import math

ANY = (-math.inf, math.inf, False, False)
POSITIVE = (0.0, math.inf, False, False)
NON_NEGATIVE = (0.0, math.inf, True, False)
AT_LEAST_ONE = (1, math.inf, True, False)
OPEN_UNIT = (0.0, 1.0, False, False)
HALF_OPEN_UNIT = (0.0, 1.0, True, False)


def within(value: float, allowed: tuple) -> bool:
    low, high, low_in, high_in = allowed
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return False
    return (low <= value if low_in else low < value) and (value <= high if high_in else value < high)


def range_text(allowed: tuple) -> str:
    """(0, inf, False, False) -> 'a value > 0'; (0, 1, True, False) -> 'a value in [0, 1)'."""
    low, high, low_in, high_in = allowed
    if low == -math.inf and high == math.inf:
        return "a finite value"
    if high == math.inf:
        return f"a value {'>=' if low_in else '>'} {low:g}"
    return f"a value in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
