"""The hyperparameter search space: one dict of named distributions, written as data.

Each entry maps a TrainConfig field to a distribution. A YAML file in the same format replaces
the whole space (`eirnn tune --search-space FILE`); every field it leaves out keeps its value
from the TrainConfig built from the flags:

    learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    input_embed_dim: {type: int, low: 16, high: 96, step: 8}
    input_embed_type: {type: categorical, choices: [attention, linear, mlp]}

Constraints: `attention_heads` is sampled before `input_embed_dim`, whose value is then drawn
from the multiples of the heads within its range (multi-head attention splits the embedding
evenly); `tau` may not go below the data's bin size (the network integrates one bin per step);
the Poisson loss needs spike counts.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from eirnn.choices import EMBEDDINGS, LOSSES, REGISTRIES
from eirnn.config import ConfigError, TrainConfig, parse_value

SearchSpace = dict[str, dict[str, Any]]

DEFAULT_SEARCH_SPACE: SearchSpace = {
    "learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "tau": {"type": "float", "low": 20.0, "high": 200.0, "log": True},
    "noise_scale": {"type": "float", "low": 0.0, "high": 0.3},
    "attention_heads": {"type": "categorical", "choices": [1, 2, 4, 8]},
    "input_embed_dim": {"type": "int", "low": 16, "high": 96, "step": 8},
    "input_embed_type": {"type": "categorical", "choices": list(EMBEDDINGS)},
    "h0_init": {"type": "float", "low": 0.0, "high": 0.5},
    "weight_decay": {"type": "float", "low": 1.0e-8, "high": 1.0e-3, "log": True},
    "loss": {"type": "categorical", "choices": list(LOSSES)},
}

# distribution type -> (required keys, optional keys)
_KEYS = {
    "float": ({"low", "high"}, {"log", "step"}),
    "int": ({"low", "high"}, {"log", "step"}),
    "categorical": ({"choices"}, set()),
}
# TrainConfig field type -> the distributions that can produce it
_DISTRIBUTIONS_FOR = {"float": ("float", "int", "categorical"), "int": ("int", "categorical")}
FIELD_TYPES = {spec.name: spec.type for spec in fields(TrainConfig)}
_SAMPLED_FIRST = ("attention_heads",)


def default_search_space(dataset: Any) -> SearchSpace:
    """The built-in space fitted to a dataset: tau from its bin size up, and the Poisson loss
    only with spike counts."""
    space = {name: dict(spec) for name, spec in DEFAULT_SEARCH_SPACE.items()}
    space["tau"]["low"] = max(space["tau"]["low"], float(dataset.bin_ms))
    if not dataset.has_counts:
        space["loss"]["choices"] = [loss for loss in space["loss"]["choices"] if not LOSSES[loss].needs_counts]
    return space


def load_search_space(path: str | Path) -> SearchSpace:
    try:
        space = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"search space {path}: cannot read it: {error}") from error
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"search space {path}: expected a mapping of setting names to distributions")
    return space


def dump_search_space(space: SearchSpace) -> str:
    return yaml.safe_dump(space, sort_keys=False)


def validate_search_space(space: SearchSpace, base: TrainConfig, dataset: Any) -> SearchSpace:
    """Check every entry, and the constraints between entries and with the data, before any
    trial runs. Returns the space with numeric bounds as numbers (YAML reads `1e-4` without a
    dot as a string)."""
    checked = {name: _checked_distribution(name, spec) for name, spec in space.items()}
    counts_only = [loss for loss in checked.get("loss", {}).get("choices", ()) if LOSSES[loss].needs_counts]
    if not dataset.has_counts and counts_only:
        raise ConfigError(f"search space: loss {counts_only[0]!r} needs spike counts, but the data has rates only")
    if min(map(float, _possible_values(checked.get("tau"), base.tau))) < dataset.bin_ms:
        raise ConfigError(f"search space: tau must stay >= the bin size, {dataset.bin_ms:g} ms")
    if "attention" in _possible_values(checked.get("input_embed_type"), base.input_embed_type):
        _check_heads_divide_embedding(checked, base)
    return checked


def _check_heads_divide_embedding(space: SearchSpace, base: TrainConfig) -> None:
    dim_spec = space.get("input_embed_dim")
    for heads in map(int, _possible_values(space.get("attention_heads"), base.attention_heads)):
        if dim_spec is not None and dim_spec["type"] == "int":
            embed_dim_range(dim_spec, heads)  # drawn as multiples of the heads: only needs one in range
            continue
        dims = [int(dim) for dim in _possible_values(dim_spec, base.input_embed_dim)]
        if any(dim % heads for dim in dims):
            raise ConfigError(f"search space: attention_heads={heads} does not divide every input_embed_dim in {dims}")


def _checked_distribution(name: str, spec: Any) -> dict[str, Any]:
    if name not in FIELD_TYPES:
        raise ConfigError(f"search space: {name!r} is not a TrainConfig setting")
    field_type = FIELD_TYPES[name]
    allowed = _DISTRIBUTIONS_FOR.get(field_type, ("categorical",))
    if not isinstance(spec, dict) or spec.get("type") not in allowed:
        raise ConfigError(
            f"search space: {name} ({field_type}): expected a mapping with type one of {allowed}, found {spec!r}"
        )
    required, optional = _KEYS[spec["type"]]
    keys = set(spec) - {"type"}
    if not required <= keys or keys - required - optional:
        raise ConfigError(
            f"search space: {name}: a {spec['type']} distribution takes {sorted(required)} "
            f"and optionally {sorted(optional)}, found {sorted(keys)}"
        )
    try:
        if spec["type"] == "categorical":
            for choice in spec["choices"]:
                parse_value(field_type, choice)
            unknown = [choice for choice in spec["choices"] if name in REGISTRIES and choice not in REGISTRIES[name]]
            if unknown:
                raise ConfigError(f"search space: {name}: {unknown} not among {', '.join(REGISTRIES[name])}")
            return {"type": "categorical", "choices": list(spec["choices"])}
        number = float if spec["type"] == "float" else int
        checked = {"type": spec["type"], "low": number(float(spec["low"])), "high": number(float(spec["high"]))}
        checked.update({"log": bool(spec["log"])} if "log" in spec else {})
        checked.update({"step": number(float(spec["step"]))} if "step" in spec else {})
    except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
        raise ConfigError(f"search space: {name}: {error}") from error
    if checked["low"] > checked["high"]:
        raise ConfigError(f"search space: {name}: low {checked['low']} is above high {checked['high']}")
    if checked.get("log") and (checked.get("step", 1) != 1 or name == "input_embed_dim"):
        # Optuna samples log-uniform values on a continuous or unit-step scale only
        raise ConfigError(f"search space: {name}: log cannot be combined with a step")
    return checked


def _possible_values(spec: dict[str, Any] | None, fixed: Any) -> list[Any]:
    """Every value an int or categorical entry can take; the bounds of a float one."""
    if spec is None:
        return [fixed]
    if spec["type"] == "categorical":
        return list(spec["choices"])
    if spec["type"] == "float":
        return [spec["low"], spec["high"]]
    return list(range(spec["low"], spec["high"] + 1, spec.get("step", 1)))


def embed_dim_range(spec: dict[str, Any], heads: int) -> tuple[int, int, int]:
    """(low, high, step) of the embedding sizes in the spec's range that are multiples of both
    its step and `heads`."""
    step = math.lcm(spec.get("step", 1), heads)
    low, high = math.ceil(spec["low"] / step) * step, spec["high"] // step * step
    if low > high:
        raise ConfigError(
            f"search space: input_embed_dim in [{spec['low']}, {spec['high']}] holds no multiple of {step} "
            f"(attention_heads={heads})"
        )
    return low, high, step


def suggest_settings(trial: Any, space: SearchSpace, base: TrainConfig) -> dict[str, Any]:
    """Draw one value per entry of a validated `space` from an Optuna trial, as TrainConfig values."""
    order = sorted(space, key=lambda name: name not in _SAMPLED_FIRST)
    values: dict[str, Any] = {}
    for name in order:
        spec = space[name]
        if spec["type"] == "categorical":
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif name == "input_embed_dim":  # an int range: drawn from the multiples of the heads
            low, high, step = embed_dim_range(spec, int(values.get("attention_heads", base.attention_heads)))
            values[name] = trial.suggest_int(name, low, high, step=step)
        elif spec["type"] == "int":
            values[name] = trial.suggest_int(
                name, spec["low"], spec["high"], step=spec.get("step", 1), log=spec.get("log", False)
            )
        else:
            values[name] = trial.suggest_float(
                name, spec["low"], spec["high"], step=spec.get("step"), log=spec.get("log", False)
            )
    return {name: parse_value(FIELD_TYPES[name], value) for name, value in values.items()}
