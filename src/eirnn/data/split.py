"""Train/validation (and optional test) split stratified by condition and perturbation type.

The strata are the conditions when every trial is a control trial (the split is then exactly
the condition-stratified one), else the (condition, perturbation type) pairs."""

from __future__ import annotations

import numpy as np

from .dataset import DatasetError, NeuralDataset
from .perturbations import trial_types


def strata(dataset: NeuralDataset) -> np.ndarray:
    """Stratum code of each trial: its condition, or its (condition, perturbation type) pair."""
    if dataset.perturbations is None:
        return dataset.conditions
    pairs = np.char.add(dataset.conditions.astype(str), np.char.add("|", trial_types(dataset)))
    return np.unique(pairs, return_inverse=True)[1].astype(np.int64)


def _validation_counts(per_condition: np.ndarray, n_val: int) -> np.ndarray:
    """Trials each condition gives to validation: proportional, largest remainder first.

    A condition keeps at least one trial in training, so single-trial conditions give none.
    """
    capacity = np.maximum(per_condition - 1, 0)
    share = per_condition * (n_val / per_condition.sum())
    counts = np.minimum(np.floor(share).astype(int), capacity)
    # stable sort on the negated remainder: ties go to the lower condition code, reproducibly
    for code in np.argsort(-(share - np.floor(share)), kind="stable"):
        if counts.sum() >= n_val:
            break
        if counts[code] < capacity[code]:
            counts[code] += 1
    while counts.sum() < n_val:  # capped conditions leave trials for those with room
        counts[np.argmax(capacity - counts)] += 1
    return counts


def train_val_split(
    dataset: NeuralDataset, val_fraction: float = 0.2, seed: int = 0
) -> tuple[NeuralDataset, NeuralDataset]:
    """Split trials into (train, validation), stratified by condition and reproducible per seed.

    The validation size is ``floor(val_fraction * n_trials)`` (1043 trials -> 835/208), shared
    among conditions in proportion to their trials; both parts keep the original trial order.

    Examples
    --------
    >>> from eirnn.data.split import train_val_split
    >>> from eirnn.data.synthetic import make_recording
    >>> dataset, _ = make_recording(seed=0, n_e=6, n_i=2, n_trials=16, n_bins=20, n_conditions=2, n_inputs=4)
    >>> train, val = train_val_split(dataset, val_fraction=0.25, seed=0)
    >>> train.n_trials, val.n_trials, val.trials_per_condition  # 4 of 16 trials, 2 per condition
    (12, 4, array([2, 2]))
    >>> val.trial_ids  # the same trials for the same seed
    array([ 4,  6,  7, 11])
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(
            f"{dataset.source}: variable 'val_fraction': expected a value in (0, 1); found {val_fraction}"
        )
    per_condition = np.bincount(strata(dataset))
    n_val = int(np.floor(val_fraction * dataset.n_trials + 1e-9))
    available = int(np.maximum(per_condition - 1, 0).sum())
    if available == 0:
        raise DatasetError(
            f"{dataset.source}: variable 'conditions': expected a condition with at least 2 trials so that "
            f"val_fraction={val_fraction} leaves validation trials; found {dataset.n_trials} trials in "
            f"{dataset.n_conditions} conditions, at most {int(per_condition.max())} per condition"
        )
    if n_val == 0:
        raise DatasetError(
            f"{dataset.source}: variable 'val_fraction': expected at least one validation trial; found "
            f"{val_fraction} x {dataset.n_trials} trials < 1"
        )
    n_val = min(n_val, available)
    is_val = _draw(dataset, _validation_counts(per_condition, n_val), np.random.default_rng(seed))
    return dataset.subset(~is_val), dataset.subset(is_val)


def _draw(dataset: NeuralDataset, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mask of `counts[code]` trials drawn at random from each stratum."""
    chosen = np.zeros(dataset.n_trials, dtype=bool)
    codes = strata(dataset)
    for code, count in enumerate(counts):
        trials = np.flatnonzero(codes == code)
        chosen[rng.permutation(trials)[:count]] = True
    return chosen


# the test split draws from its own stream of the split seed, so that adding it leaves the
# validation draw's generator as it was
TEST_STREAM = 7


def hold_out_test(dataset: NeuralDataset, test_fraction: float, seed: int = 0) -> tuple[NeuralDataset, NeuralDataset]:
    """(rest, test): ``floor(test_fraction * n_trials)`` trials held out, stratified by condition
    like the validation split, from a generator of its own (seeded by [seed, TEST_STREAM]).
    Every condition keeps at least one trial in the rest."""
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(
            f"{dataset.source}: variable 'test_fraction': expected a value in (0, 1); found {test_fraction}"
        )
    per_condition = np.bincount(strata(dataset))
    n_test = min(int(np.floor(test_fraction * dataset.n_trials + 1e-9)), int(np.maximum(per_condition - 1, 0).sum()))
    if n_test == 0:
        raise DatasetError(
            f"{dataset.source}: variable 'test_fraction': expected at least one test trial; found "
            f"{test_fraction} x {dataset.n_trials} trials in {dataset.n_conditions} conditions"
        )
    is_test = _draw(dataset, _validation_counts(per_condition, n_test), np.random.default_rng([seed, TEST_STREAM]))
    return dataset.subset(~is_test), dataset.subset(is_test)


# the held-out neurons draw from their own stream of the split seed
HELDOUT_NEURON_STREAM = 11


def heldout_neuron_index(dataset: NeuralDataset, heldout: str, seed: int = 0) -> list[int]:
    """The neurons (dataset column indices, sorted) held out for co-smoothing.

    `heldout`: "" (none); a fraction in (0, 1), e.g. "0.2": round(fraction * n_neurons) neurons
    (at least one, leaving at least one) drawn from a generator of their own, seeded by
    [seed, HELDOUT_NEURON_STREAM]; or a comma-separated list of the data's neuron ids, e.g. "3,17".
    """
    text = heldout.strip()
    if not text:
        return []
    n_neurons = dataset.n_neurons
    try:
        fraction = float(text)
    except ValueError:
        fraction = None
    if fraction is not None and "," not in text and "." in text:
        if not 0.0 < fraction < 1.0 or n_neurons < 2:
            raise DatasetError(
                f"{dataset.source}: variable 'heldout_neurons': expected a fraction in (0, 1) of "
                f"{n_neurons} neurons that leaves some held in; found {text}"
            )
        count = min(max(round(fraction * n_neurons), 1), n_neurons - 1)
        chosen = np.random.default_rng([seed, HELDOUT_NEURON_STREAM]).choice(n_neurons, count, replace=False)
        return sorted(int(index) for index in chosen)
    ids = [str(neuron_id) for neuron_id in dataset.neuron_ids]
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in wanted if name not in ids]
    if unknown:
        raise DatasetError(
            f"{dataset.source}: variable 'heldout_neurons': expected neuron ids of the data (e.g. {ids[0]}); "
            f"found unknown {', '.join(unknown[:5])}"
        )
    return sorted({ids.index(name) for name in wanted})


def without_perturbation_types(dataset: NeuralDataset, labels: str) -> NeuralDataset:
    """`dataset` without the trials that have a perturbation of one of `labels` (comma-separated
    perturbation labels, as in `perturbation_label`); unchanged for an empty `labels`."""
    wanted = [label.strip() for label in labels.split(",") if label.strip()]
    if not wanted:
        return dataset
    table = dataset.perturbations
    present = sorted(set(table.label.tolist())) if table is not None else []
    unknown = [label for label in wanted if label not in present]
    if unknown:
        raise DatasetError(
            f"{dataset.source}: variable 'perturbation_label' (setting heldout_perturbations): expected "
            f"labels among {present or 'none (no perturbation trials)'}; found {unknown[0]!r}"
        )
    dropped = np.isin(np.arange(dataset.n_trials), table.trial[np.isin(table.label, wanted)])
    return dataset.subset(~dropped)
