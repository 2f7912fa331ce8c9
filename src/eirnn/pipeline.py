"""The science pipeline without tracking: load and validate -> split -> build the model.

Internal: `eirnn.tracking` and `eirnn.tuning` call these steps and add MLflow/Optuna around
them; users call `eirnn.train` and `eirnn.split` (eirnn.api).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eirnn.config import TrainConfig
from eirnn.data import NeuralDataset, hold_out_test, load_dataset, train_val_split
from eirnn.data.binned_files import arrays_sha256
from eirnn.data.split import heldout_neuron_index, without_perturbation_types
from eirnn.data.trainability import check_trainable, validates_on_train

BUILTIN_DATA_NAME = "builtin-synthetic"


def load_configured_data(config: TrainConfig) -> NeuralDataset:
    """The file named by `config.data`, or the built-in synthetic recording when it is empty."""
    return load_configured_data_and_truth(config)[0]


def load_configured_data_and_truth(config: TrainConfig) -> tuple[NeuralDataset, Any]:
    """The data and, for the built-in synthetic recording or a file written by `eirnn simulate`
    (its truth file beside it, `eirnn.data.truth_file`), the network that generated it
    (`eirnn.data.synthetic.GroundTruth`; None otherwise)."""
    if not config.data:
        from eirnn.data.synthetic import make_recording

        dataset, truth = make_recording(seed=0)
        # no file: the recording is named as such and hashed from its arrays
        dataset.meta.update(source_file=BUILTIN_DATA_NAME, sha256=arrays_sha256(dataset))
        return dataset, truth
    from eirnn.data.truth_file import read_truth_for

    dataset = load_dataset(config.data, **config.data_options())
    # a file written by `eirnn simulate` has its true circuit beside it; it drove that circuit with
    # the file's own inputs, not with inputs built from the task (an NWB file stores none)
    if "inputs" in dataset.meta:
        return dataset, None
    return dataset, read_truth_for(config.data, str(dataset.meta.get("sha256", "")))


def dataset_sha256(dataset: NeuralDataset) -> str:
    """The file's sha256 when the data came from a file, else the hash of its arrays."""
    return str(dataset.meta.get("sha256") or arrays_sha256(dataset))


def set_threads(config: TrainConfig) -> None:
    """Use `config.threads` torch threads (0 = every core): on a shared machine, workers must each
    take one thread, since oversubscribed cores slow torch down by an order of magnitude."""
    torch.set_num_threads(config.threads or os.cpu_count() or 1)


def build_model(dataset: NeuralDataset, config: TrainConfig) -> Any:
    """The model for `dataset`; it records its held-out neurons (`config.heldout_neurons`, drawn
    with the split seed), which its encoder never reads and the evaluation scores by co-smoothing."""
    from eirnn.model import create_model_for_dataset

    heldout = heldout_neuron_index(dataset, config.heldout_neurons, config.data_split_seed)
    return create_model_for_dataset(dataset, **config.model_kwargs(), heldout_neurons=heldout or None)


def split(dataset: NeuralDataset, config: TrainConfig) -> tuple[NeuralDataset, NeuralDataset]:
    """Stratified train/validation split (without the test trials, see `split_with_test`)."""
    train, val, _ = split_with_test(dataset, config)
    return train, val


def split_with_test(dataset: NeuralDataset, config: TrainConfig) -> tuple[NeuralDataset, NeuralDataset, Any]:
    """(train, validation, test or None), stratified by condition (and perturbation type), drawn
    with the split seed.

    The test trials (`config.test_fraction` of all trials) are set aside first and never reach
    training, early stopping, pruning or the champion; validation then takes `val_fraction` of
    all trials from the rest (with test_fraction 0 the split is exactly the seed's 835/208).
    Trials with a perturbation type of `config.heldout_perturbations` are removed from training.
    Condition-averaged data (one pseudo-trial per condition) has nothing to hold out: with
    `validate_on_train` it is fitted and scored on the same trials, and `Prepared.held_out` says
    so; without it, it is refused."""
    if validates_on_train(dataset, config.validate_on_train):
        return dataset, dataset, None
    seed = config.data_split_seed
    rest, test = dataset, None
    if config.test_fraction > 0:
        rest, test = hold_out_test(dataset, config.test_fraction, seed)
    val_fraction = min(config.val_fraction * dataset.n_trials / rest.n_trials, 0.99)
    train, val = train_val_split(rest, val_fraction=val_fraction, seed=seed)
    if config.bootstrap_seed >= 0:
        # an ensemble's fit sees its own resample of the training trials (eirnn.tuning.ensemble)
        draw = np.random.default_rng([config.bootstrap_seed, 7]).integers(0, train.n_trials, train.n_trials)
        train = train.subset(np.sort(draw))
    # held-out perturbation types leave training only: their validation trials test their prediction
    return without_perturbation_types(train, config.heldout_perturbations), val, test


@dataclass
class Prepared:
    dataset: NeuralDataset
    train: NeuralDataset
    val: NeuralDataset
    model: Any
    test: NeuralDataset | None = None
    truth: Any = None  # GroundTruth of a synthetic recording, else None

    @property
    def held_out(self) -> bool:
        return self.train is not self.val

    def trial_ids(self) -> dict[str, list]:
        """The trial ids of each part of the split: what a user (or a test) checks for leaks."""
        parts = {"train": self.train, "val": self.val, "test": self.test}
        return {name: part.trial_ids.tolist() for name, part in parts.items() if part is not None}


def prepare(config: TrainConfig, dataset: NeuralDataset | None = None, truth: Any = None) -> Prepared:
    set_threads(config)
    if dataset is None:
        dataset, truth = load_configured_data_and_truth(config)
    checked = check_trainable(dataset, drop_silent_neurons=config.drop_silent_neurons)
    # the truth's neurons are the file's: with neurons dropped it no longer lines up
    truth = truth if checked.n_neurons == dataset.n_neurons else None
    dataset = checked
    train, val, test = split_with_test(dataset, config)
    return Prepared(dataset, train, val, build_model(dataset, config), test, truth)
