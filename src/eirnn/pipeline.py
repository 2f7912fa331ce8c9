"""The science pipeline without tracking: load and validate -> split -> build the model.

Internal: `eirnn.tracking` and `eirnn.tuning` call these steps and add MLflow/Optuna around
them; users call `eirnn.train` and `eirnn.split` (eirnn.api).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from eirnn.config import TrainConfig
from eirnn.data import NeuralDataset, load_dataset, train_val_split
from eirnn.data.loaders import arrays_sha256
from eirnn.data.validation import check_trainable, validates_on_train

BUILTIN_DATA_NAME = "builtin-synthetic"


def load_configured_data(config: TrainConfig) -> NeuralDataset:
    """The file named by `config.data`, or the built-in synthetic recording when it is empty."""
    if not config.data:
        from eirnn.data.synthetic import make_recording

        dataset, _ = make_recording(seed=0)
        # no file: the recording is named as such and hashed from its arrays
        dataset.meta.update(source_file=BUILTIN_DATA_NAME, sha256=arrays_sha256(dataset))
        return dataset
    return load_dataset(config.data, **config.data_options())


def set_threads(config: TrainConfig) -> None:
    """Use `config.threads` torch threads (0 = every core): on a shared machine, workers must each
    take one thread, since oversubscribed cores slow torch down by an order of magnitude."""
    torch.set_num_threads(config.threads or os.cpu_count() or 1)


def build_model(dataset: NeuralDataset, config: TrainConfig) -> Any:
    from eirnn.model import create_model_for_dataset

    return create_model_for_dataset(dataset, **config.model_kwargs())


def split(dataset: NeuralDataset, config: TrainConfig) -> tuple[NeuralDataset, NeuralDataset]:
    """Stratified train/validation split. Condition-averaged data (one pseudo-trial per
    condition) has nothing to hold out: with `validate_on_train` it is fitted and scored on the
    same trials, and `Prepared.held_out` says so; without it, it is refused."""
    if validates_on_train(dataset, config.validate_on_train):
        return dataset, dataset
    return train_val_split(dataset, val_fraction=config.val_fraction, seed=config.seed)


@dataclass
class Prepared:
    dataset: NeuralDataset
    train: NeuralDataset
    val: NeuralDataset
    model: Any

    @property
    def held_out(self) -> bool:
        return self.train is not self.val


def prepare(config: TrainConfig, dataset: NeuralDataset | None = None) -> Prepared:
    set_threads(config)
    dataset = dataset if dataset is not None else load_configured_data(config)
    dataset = check_trainable(dataset, drop_silent_neurons=config.drop_silent_neurons)
    train, val = split(dataset, config)
    return Prepared(dataset, train, val, build_model(dataset, config))
