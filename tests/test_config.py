"""The configuration dataclass, the CLI flags and the MLproject parameters agree, defaults included."""

import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import yaml

from eirnn.cli import build_parser
from eirnn.config import ConfigError, TrainConfig, flag_name, parse_value
from eirnn.model import create_embedding
from eirnn.tuning.ensemble_options import ENSEMBLE_DEFAULTS
from eirnn.tuning.options import TUNE_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]


def _mlproject() -> dict:
    return yaml.safe_load((ROOT / "MLproject").read_text())


def _subparser(name: str):
    parser = build_parser()
    return next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == name)[1]


def _expected_default(command: str, name: str):
    defaults = {"tune": TUNE_DEFAULTS, "ensemble": ENSEMBLE_DEFAULTS}.get(command, {})
    return defaults.get(name, TrainConfig.__dataclass_fields__[name].default)


@pytest.mark.parametrize("entry_point", ["main", "tune", "ensemble"])
def test_mlproject_parameters_match_the_dataclass(entry_point):
    entry = _mlproject()["entry_points"][entry_point]
    for spec in fields(TrainConfig):
        assert spec.name in entry["parameters"], f"MLproject {entry_point} lacks {spec.name}"
        declared = entry["parameters"][spec.name]
        default = declared["default"]
        assert parse_value(spec.type, "" if default is None else default) == _expected_default(entry_point, spec.name)
        assert f"{flag_name(spec.name)} {{{spec.name}}}" in entry["command"], spec.name
    if entry_point == "main":
        assert set(entry["parameters"]) == {spec.name for spec in fields(TrainConfig)}


@pytest.mark.parametrize("command", ["train", "tune", "ensemble"])
def test_cli_flags_match_the_dataclass(command):
    defaults = vars(_subparser(command).parse_args([]))
    for spec in fields(TrainConfig):
        assert defaults[spec.name] == _expected_default(command, spec.name), spec.name


def test_cli_parses_every_flag_back_into_the_dataclass():
    args = _subparser("train").parse_args(["--tau", "20", "--learnable-h0", "false", "--input-embed-type", "mlp"])
    config = TrainConfig(**{spec.name: getattr(args, spec.name) for spec in fields(TrainConfig)})
    assert (config.tau, config.learnable_h0, config.input_embed_type) == (20.0, False, "mlp")


def test_string_params_round_trip_through_from_dict():
    config = TrainConfig(tau=20.0, learnable_h0=False, batch_size=64)
    as_logged = {
        key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in config.to_dict().items()
    }
    assert TrainConfig.from_dict(as_logged) == config


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"loss": "l1"}, "loss"),
        ({"tau": 0}, "tau"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"input_embed_dim": 10, "attention_heads": 4}, "input_embed_dim"),
        ({"selection_metric": "r2"}, "selection_metric"),
        ({"test_fraction": 0.8}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
    ],
)
def test_invalid_settings_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**changes)


def test_split_seed_defaults_to_the_seed():
    assert TrainConfig(seed=3).data_split_seed == 3
    assert TrainConfig(seed=3, split_seed=0).data_split_seed == 0


@pytest.mark.parametrize(
    "name, value, allowed",
    [
        ("noise_scale", -0.1, "a value >= 0"),
        ("batch_size", -4, "a value >= 0"),
        ("threads", -1, "a value >= 0"),
        ("spectral_radius", -1.0, "a value > 0"),
        ("spectral_radius", 0.0, "a value > 0"),
        ("checkpoint_every", -5, "a value >= 0"),
        ("patience", 0, "a value >= 1"),
        ("max_epochs", 0, "a value >= 1"),
        ("learning_rate", float("nan"), "a value > 0"),
        ("h0_init", float("inf"), "a finite value"),
        ("weight_decay", -1e-4, "a value >= 0"),
        ("grad_clip", -1.0, "a value >= 0"),
        ("behavior_weight", -1.0, "a value >= 0"),
        ("seed", -3, "a value >= 0"),
        ("bin_ms", -10.0, "a value >= 0"),
        ("smoothing", 1.0, r"a value in \[0, 1\)"),
    ],
)
def test_every_numeric_setting_states_its_allowed_range(name, value, allowed):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**{name: value})
    message = str(caught.value)
    assert "\n" not in message
    assert re.fullmatch(rf"{name}: expected {allowed}, found {re.escape(repr(value))}", message), message


def test_cli_refuses_a_negative_setting_in_one_line(capsys):
    from eirnn.cli import main

    assert main(["train", "--noise-scale", "-0.5"]) == 2
    assert capsys.readouterr().err.strip() == "eirnn train: error: noise_scale: expected a value >= 0, found -0.5"


def test_every_model_setting_reaches_the_model():
    """The fields marked model_arg are the model's constructor arguments, and each value a config
    holds (none of them the default here) is the one the built model records."""
    import inspect

    from eirnn.data.synthetic import make_recording
    from eirnn.model import EIRNN
    from eirnn.pipeline import build_model

    changed = dict(
        tau=40.0,
        noise_scale=0.05,
        input_embed_dim=6,
        input_embed_type="mlp",
        attention_heads=3,
        learnable_h0=False,
        h0_init=0.2,
        enforce_ratio=False,
        ei_ratio=3.0,
        activation="relu",
        spectral_radius=0.8,
        perturbation_gain="learned",
        device="cpu",
        seed=4,
        initial_state="inferred",
        encoder_hidden=5,
        forward_bins=2,
    )
    config = TrainConfig(**changed)
    assert set(config.model_kwargs()) == set(changed)
    assert set(changed) <= set(inspect.signature(EIRNN).parameters)
    dataset, _ = make_recording(seed=0, n_e=3, n_i=2, n_inputs=4, n_bins=5, n_trials=8, n_conditions=2)
    model = build_model(dataset, config)
    assert {name: model.hparams[name] for name in changed} == changed


def test_choices_are_the_ones_the_model_and_losses_accept():
    from eirnn.choices import REGISTRIES

    specs = {spec.name: spec.metadata["choices"] for spec in fields(TrainConfig)}
    for setting in ("input_embed_type", "activation", "loss", "perturbation_gain"):
        assert specs[setting] == REGISTRIES[setting].names  # the model and losses look names up there
    for embedding in specs["input_embed_type"]:
        create_embedding(embedding, 2, 4, heads=2, token_dim=4)
    for name in specs["activation"]:
        REGISTRIES["activation"][name].rate(torch.zeros(1))


def test_command_line_starts_a_worker_with_exactly_these_settings():
    config = TrainConfig(window_ms="-250,450", learning_rate=3e-3, learnable_h0=False, data="a b.npz")
    args = _subparser("tune").parse_args(config.command_line())
    assert TrainConfig(**{spec.name: getattr(args, spec.name) for spec in fields(TrainConfig)}) == config
