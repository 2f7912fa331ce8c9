"""Trial 0 of a new study: the settings the study was started with.

A sampler's first draws are random, and asynchronous successive halving lets the first trial to
reach a rung through (there is nothing yet to compare it with), so a poor random first trial
trains to its end and sets a low bar at every rung. Starting from the given settings (the
flags, else TrainConfig's defaults, those of a plain `eirnn train`) makes that first trial a
known-good one instead: it sets the bar the sampled trials must clear at each rung, and the
study's best is never below a plain training run with those settings on the same split.
"""

from __future__ import annotations

from typing import Any

from eirnn.config import TrainConfig, parse_value
from eirnn.tuning.search_space import FIELD_TYPES, SearchSpace, embed_dim_range

FIRST_TRIAL_ATTR = "eirnn.first_trial"


def given_point(space: SearchSpace, base: TrainConfig) -> tuple[dict[str, Any], list[str]]:
    """`base`'s value of every setting in a validated `space`, moved onto the space where it lies
    off it (a number to the nearest allowed value), and one note per moved value. A category
    that is not among the choices is left to the sampler, and noted."""
    point: dict[str, Any] = {}
    notes: list[str] = []
    for name in sorted(space, key=lambda name: name != "attention_heads"):
        spec, value = space[name], getattr(base, name)
        if spec["type"] == "categorical":
            matching = [choice for choice in spec["choices"] if parse_value(FIELD_TYPES[name], choice) == value]
            if matching:
                point[name] = matching[0]
            else:
                notes.append(f"{name} {value!r} is not among the choices {spec['choices']}: sampled")
            continue
        if name == "input_embed_dim" and "attention_heads" in space and "attention_heads" not in point:
            notes.append(f"{name}: sampled, as the attention heads it must be a multiple of are")
            continue
        if name == "input_embed_dim":
            low, high, step = embed_dim_range(spec, int(point.get("attention_heads", base.attention_heads)))
        else:
            low, high, step = spec["low"], spec["high"], spec.get("step")
        moved = _nearest_allowed(value, low, high, step)
        point[name] = int(moved) if spec["type"] == "int" else float(moved)
        if moved != value:
            notes.append(f"{name} {value:g} -> {point[name]:g} (the search space's nearest value)")
    return point, notes


def _nearest_allowed(value: float, low: float, high: float, step: float | None) -> float:
    inside = min(max(value, low), high)
    if not step:
        return inside
    steps = min(round((inside - low) / step), int((high - low) // step))
    return low + steps * step
