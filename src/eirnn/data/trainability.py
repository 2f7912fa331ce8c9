"""Checks that a valid recording can be fitted: something to fit (not all zeros), no neuron that
never fires (its correlations are undefined and its normalised loss divides by zero), and
validation trials to score on.

`NeuralDataset` checks what any recording must satisfy; these checks depend on the training
settings (`drop_silent_neurons`, `validate_on_train`), so the pipeline runs them before a fit.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from .dataset import DatasetError, NeuralDataset

SHOWN_IDS = 10


def _signal(dataset: NeuralDataset) -> tuple[str, np.ndarray]:
    return ("counts", dataset.counts) if dataset.counts is not None else ("rates", dataset.rates)


def silent_neurons(dataset: NeuralDataset) -> np.ndarray:
    """Indices of the neurons with no spike (or a rate of 0) in any trial and bin."""
    _, values = _signal(dataset)
    return np.flatnonzero(~np.any(values > 0, axis=(0, 1)))


def without_neurons(dataset: NeuralDataset, drop: np.ndarray) -> NeuralDataset:
    keep = np.setdiff1d(np.arange(dataset.n_neurons), drop)

    def take(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else array[..., keep]

    return dataclasses.replace(
        dataset,
        counts=take(dataset.counts),
        rates=take(dataset.rates),
        ei_labels=take(dataset.ei_labels),
        neuron_ids=dataset.neuron_ids[keep],
        perturbations=None if dataset.perturbations is None else dataset.perturbations.keep_neurons(keep),
        meta={**dataset.meta, "n_silent_dropped": len(drop)},
    )


def check_trainable(dataset: NeuralDataset, *, drop_silent_neurons: bool = False) -> NeuralDataset:
    """The dataset, refused when it is all zeros or has neurons that never fire; with
    `drop_silent_neurons` those neurons are dropped instead, with a line on stderr saying how many."""
    name, values = _signal(dataset)
    if not np.any(values > 0):
        dataset._fail(name, "some spikes (a recording to fit)", f"all {values.size} values are 0")
    silent = silent_neurons(dataset)
    if len(silent) == 0:
        return dataset
    ids = ", ".join(str(i) for i in dataset.neuron_ids[silent][:SHOWN_IDS]) + (
        ", ..." if len(silent) > SHOWN_IDS else ""
    )
    if not drop_silent_neurons:
        dataset._fail(
            name,
            "every neuron to fire at least once (or drop the silent ones: --drop-silent-neurons true)",
            f"{len(silent)} of {dataset.n_neurons} neurons never fire (neuron_ids {ids})",
        )
    kept = without_neurons(dataset, silent)
    if kept.is_labeled and dataset.n_i and not kept.n_i:
        dataset._fail("ei_labels", "an inhibitory neuron left after dropping silent ones", "every I neuron silent")
    print(
        f"eirnn: dropped {len(silent)} of {dataset.n_neurons} neurons that never fire (neuron_ids {ids})",
        file=sys.stderr,
    )
    return kept


def is_condition_averaged(dataset: NeuralDataset) -> bool:
    """One pseudo-trial per condition, rates only: the shape of a condition-averaged export."""
    return dataset.counts is None and int(dataset.trials_per_condition.max()) == 1


def validates_on_train(dataset: NeuralDataset, validate_on_train: bool) -> bool:
    """Whether to score validation on the training trials: only for condition-averaged data and
    only when the user says so (`validate_on_train`); every other combination is refused here
    or by `train_val_split` with a message that says what to do."""
    if not validate_on_train:
        if is_condition_averaged(dataset):
            dataset._fail(
                "conditions",
                "trials to hold out for validation, or, for condition-averaged data, --validate-on-train true "
                "(scores are then measured on the fitted trials)",
                f"one pseudo-trial per condition ({dataset.n_trials} trials, {dataset.n_conditions} conditions)",
            )
        return False
    if not is_condition_averaged(dataset):
        per_condition = int(dataset.trials_per_condition.max())
        found = "spike counts" if dataset.counts is not None else f"up to {per_condition} trials per condition"
        raise DatasetError(
            f"{dataset.source}: setting 'validate_on_train': expected condition-averaged data (rates, one "
            f"pseudo-trial per condition) to validate on the training trials; found {found}: hold out "
            "validation trials instead (validate_on_train=false)"
        )
    return True
