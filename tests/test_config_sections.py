"""TrainConfig's sections (data, model, training, tracking): typed, frozen, checked settings
objects read through `config.section(name)`, every field in its help group's section, the model
section what the model's constructor takes and the training section what `fit` takes."""

import dataclasses
from dataclasses import fields

import pytest
from conftest import small_config, tiny_recording

from eirnn.config import GROUP_STARTS, ConfigError, TrainConfig, setting_groups
from eirnn.config_sections import SECTIONS, FitSettings, ModelSettings
from eirnn.pipeline import prepare
from eirnn.training import fit


def test_every_field_is_in_its_group_s_section_with_its_value():
    config = TrainConfig(tau=20.0, max_epochs=7, experiment_name="sections", seed=3)
    assert list(SECTIONS) == list(GROUP_STARTS)
    for name, group in setting_groups().items():
        section = config.section(name)
        assert isinstance(section, SECTIONS[name])
        assert set(group) <= {spec.name for spec in fields(section)}
        assert all(getattr(section, spec.name) == getattr(config, spec.name) for spec in fields(section))
    assert config.section("model").tau == 20.0 and config.section("training").max_epochs == 7
    assert config.section("tracking").experiment_name == "sections"
    assert config.section("training").seed == config.section("model").seed == 3  # the seed both read


def test_the_model_section_is_what_the_model_takes_and_the_training_section_what_fit_reads():
    model_fields = [spec.name for spec in fields(ModelSettings)]
    assert model_fields == [spec.name for spec in fields(TrainConfig) if spec.metadata["model_arg"]]
    assert TrainConfig(tau=30.0).model_kwargs() == dataclasses.asdict(TrainConfig(tau=30.0).section("model"))
    assert [spec.name for spec in fields(FitSettings)] == ["seed", *setting_groups()["training"]]
    assert {spec.name: spec.default for spec in fields(FitSettings)} == {
        spec.name: getattr(TrainConfig(), spec.name) for spec in fields(FitSettings)
    }


def test_a_section_is_frozen_and_checked_like_the_config():
    settings = TrainConfig().section("training")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_epochs = 3
    with pytest.raises(ConfigError, match="patience: expected a value >= 1, found 0"):
        FitSettings(patience=0)
    with pytest.raises(ConfigError, match="lr_schedule: expected one of constant"):
        FitSettings(lr_schedule="step")


def test_fit_takes_the_training_section_only():
    dataset, _ = tiny_recording(seed=4, n_trials=16, n_bins=10)
    config = small_config(max_epochs=2)
    prepared = prepare(config, dataset=dataset)
    with pytest.raises(TypeError, match=r"config.section\('training'\), found TrainConfig"):
        fit(prepared.model, prepared.train, prepared.val, config, progress=False)
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    assert result.total_epochs == 2


def test_an_unknown_section_is_named():
    with pytest.raises(ConfigError, match="section: expected one of data, model, training, tracking"):
        TrainConfig().section("fitting")
