"""The named choices are registries (name -> implementation): the config, the CLI help and the
search space offer exactly their names, every entry builds and runs, an unknown name is refused
naming its setting, and reading the names imports no torch."""

import doctest
import importlib
import math
import subprocess
import sys
from dataclasses import fields

import pytest
import torch
from conftest import small_config, tiny_recording

from eirnn import choices
from eirnn.choices import REGISTRIES, UnknownChoice
from eirnn.cli import build_parser
from eirnn.config import ConfigError, TrainConfig
from eirnn.model import EIRNN
from eirnn.pipeline import prepare
from eirnn.training import fit
from eirnn.tuning.search_space import DEFAULT_SEARCH_SPACE

PAIRS = [(setting, name) for setting, registry in REGISTRIES.items() for name in registry]


def test_every_registry_is_a_config_field_s_choices_and_its_flag_s():
    specs = {spec.name: spec for spec in fields(TrainConfig)}
    flags = {action.dest: action for action in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    for setting, registry in REGISTRIES.items():
        assert specs[setting].metadata["choices"] == tuple(registry) == registry.names
        assert specs[setting].default == registry.names[0]  # the default first
        assert tuple(flags[setting].choices) == registry.names
    assert choices.EMBEDDINGS is REGISTRIES["input_embed_type"]


def test_the_search_space_samples_the_registries_names():
    for setting in ("input_embed_type", "loss"):
        assert DEFAULT_SEARCH_SPACE[setting]["choices"] == list(REGISTRIES[setting].names)


def test_every_implementation_lives_in_the_science_core():
    for registry in REGISTRIES.values():
        for name, path in registry.paths.items():
            module, attribute = path.split(":")
            assert module.startswith("eirnn.") and not module.startswith(("eirnn.tracking", "eirnn.tuning"))
            assert registry[name] is getattr(importlib.import_module(module), attribute)


@pytest.fixture(scope="module")
def recording():
    dataset, _ = tiny_recording(seed=2, n_trials=24, n_bins=12)
    return dataset


@pytest.mark.parametrize(("setting", "name"), PAIRS, ids=[f"{s}={n}" for s, n in PAIRS])
def test_every_entry_builds_and_fits(recording, setting, name):
    """Each choice, the rest at defaults: the model builds, and two epochs of fitting run to
    finite losses (the learned perturbation gain and the encoder show up as parameters)."""
    config = small_config(max_epochs=2, patience=5, **{setting: name})
    prepared = prepare(config, dataset=recording)
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    assert len(result.history) == 2
    assert all(math.isfinite(epoch["train_loss"]) for epoch in result.history)
    assert prepared.model.hparams.get(setting, name) == name
    parameters = dict(prepared.model.named_parameters())
    assert ("log_perturbation_gain" in parameters) == (config.perturbation_gain == "learned")
    assert prepared.model.infers_initial_state == (config.initial_state == "inferred")


def test_the_activations_rate_slope_and_inverse_agree():
    x = torch.linspace(-3.0, 25.0, 57, dtype=torch.float64, requires_grad=True)
    for name, activation in choices.ACTIVATIONS.items():
        rate = activation.rate(x)
        (slope,) = torch.autograd.grad(rate.sum(), x)
        written = torch.empty_like(x)
        # the buffered form may round differently (Softplus.rate), never by more than float64's rounding here
        torch.testing.assert_close(activation.rate(x.detach(), out=written), rate.detach(), rtol=1e-15, atol=1e-15)
        grad = torch.ones_like(x)
        activation.multiply_by_slope(grad, rate.detach(), torch.empty_like(x))
        torch.testing.assert_close(grad, slope, msg=name)
        positive = rate.detach() > 1e-3
        torch.testing.assert_close(
            activation.rate(activation.inverse(rate.detach()[positive])), rate.detach()[positive]
        )


def test_an_unknown_name_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="lr_schedule: expected one of constant, warmup, warmup_cosine, plateau"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match=r"initial_state must be one of \('shared', 'inferred'\), got 'learned'"):
        EIRNN(3, 2, 4, initial_state="learned")
    with pytest.raises(KeyError):
        choices.LOSSES["huber"]
    assert "huber" not in choices.LOSSES and choices.LOSSES.get("huber") is None
    assert issubclass(UnknownChoice, ValueError)


def test_reading_the_names_and_the_help_imports_no_torch_and_makes_no_sections():
    code = (
        "import sys\n"
        "from eirnn.cli import build_parser\n"
        "from eirnn.config import TrainConfig\n"
        "build_parser().format_help(); TrainConfig(loss='poisson', lr_schedule='plateau')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'eirnn.config_sections' not in sys.modules, 'sections made'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "module", ["eirnn.choices", "eirnn.config", "eirnn.model.activations", "eirnn.losses", "eirnn.training.schedules"]
)
def test_the_registry_and_section_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    examples = doctest.DocTestFinder().find(importlib.import_module(module), module, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for example in examples:
        runner.run(example)
    assert runner.summarize(verbose=False).attempted > 0
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.parametrize(
    "function",
    [
        "eirnn.model.embeddings.create_embedding",
        "eirnn.model.encoder.no_encoder",
        "eirnn.model.network.fixed_perturbation_gain",
        "eirnn.model.network.learned_perturbation_gain",
        "eirnn.training.teacher_forcing.free_running_weight",
        "eirnn.training.teacher_forcing.teacher_forced_weight",
        "eirnn.training.teacher_forcing.initialise_by_least_squares",
        "eirnn.training.teacher_forcing.keep_random_initialisation",
    ],
)
def test_the_implementations_examples_run(function):
    module_name, name = function.rsplit(".", 1)
    target = getattr(importlib.import_module(module_name), name)
    (example,) = doctest.DocTestFinder(recurse=False).find(target, function, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(example)
    assert example.examples and runner.summarize(verbose=False).failed == 0
