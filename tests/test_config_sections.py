"""TrainConfig's sections (data, model, training, tracking): every field in exactly one, read
through `config.section(name)` as the flat field it is."""

from dataclasses import fields

import pytest

from eirnn.config import GROUP_STARTS, ConfigError, TrainConfig


def test_every_field_is_in_exactly_one_section_with_its_value():
    config = TrainConfig(tau=20.0, max_epochs=7, experiment_name="sections", seed=3)
    seen: list[str] = []
    for name in GROUP_STARTS:
        section = vars(config.section(name))
        assert next(iter(section)) == GROUP_STARTS[name]  # a section starts at its first field
        assert all(value == getattr(config, field) for field, value in section.items())
        seen.extend(section)
    assert seen == [spec.name for spec in fields(TrainConfig)]
    assert config.section("model").tau == 20.0 and config.section("training").max_epochs == 7
    assert config.section("tracking").experiment_name == "sections"


def test_an_unknown_section_is_named():
    with pytest.raises(ConfigError, match="section: expected one of data, model, training, tracking"):
        TrainConfig().section("fitting")
