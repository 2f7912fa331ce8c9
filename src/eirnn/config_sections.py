"""TrainConfig's sections as frozen dataclasses, each checked like the config when built:
`TrainConfig.section(name)` gives one. Their fields are TrainConfig's (types, defaults, help,
allowed values), declared once there; a module of their own because making them costs as much
as importing the config, which `eirnn --help` need not pay.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field, fields

from eirnn.config import TrainConfig, check_each_setting, setting_groups


def _section_class(class_name: str, field_names: list[str], doc: str) -> type:
    """A frozen dataclass of these TrainConfig fields, checked by `check_each_setting`."""
    specs = {spec.name: spec for spec in fields(TrainConfig)}
    chosen = [(n, specs[n].type, field(default=specs[n].default, metadata=specs[n].metadata)) for n in field_names]
    namespace = {"__post_init__": check_each_setting, "__doc__": doc}
    section = dataclasses.make_dataclass(class_name, chosen, namespace=namespace, frozen=True)
    section.__module__ = __name__
    return section


_GROUPS = setting_groups()
DataSettings = _section_class("DataSettings", _GROUPS["data"], "What loading and splitting the data read.")
ModelSettings = _section_class(
    "ModelSettings",
    [spec.name for spec in fields(TrainConfig) if spec.metadata["model_arg"]],
    "What the model's constructor takes (the fields marked `model_arg`: the model settings, the seed, the device).",
)
FitSettings = _section_class(
    "FitSettings",
    ["seed", *_GROUPS["training"]],
    "What `eirnn.training.fit` reads: the training settings and the seed of its random steps.",
)
TrackingSettings = _section_class("TrackingSettings", _GROUPS["tracking"], "What the MLflow sink reads.")
#: section name (a help group of the CLI) -> its settings class
SECTIONS = {"data": DataSettings, "model": ModelSettings, "training": FitSettings, "tracking": TrackingSettings}
