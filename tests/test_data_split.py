"""Stratified train/validation split."""

import numpy as np
import pytest

from eirnn.data import DatasetError, NeuralDataset, train_val_split
from eirnn.data.synthetic import make_recording


def cheap_dataset(conditions, n_bins=2):
    n_trials = len(conditions)
    return NeuralDataset(
        counts=np.zeros((n_trials, n_bins, 1), dtype=int),
        inputs=np.zeros((n_trials, n_bins, 1)),
        conditions=conditions,
        bin_ms=10.0,
    )


@pytest.fixture(scope="module")
def default_structure():
    """The default recording's 1043 trials and 8 conditions, with few neurons and bins."""
    return make_recording(n_e=2, n_i=1, n_bins=12)[0]


def test_default_recording_splits_835_208_stratified(default_structure):
    train, val = train_val_split(default_structure)
    assert (train.n_trials, val.n_trials) == (835, 208)
    per_condition = default_structure.trials_per_condition
    np.testing.assert_allclose(val.trials_per_condition, 0.2 * per_condition, atol=1)
    assert set(train.trial_ids) | set(val.trial_ids) == set(range(1043))
    assert not set(train.trial_ids) & set(val.trial_ids)
    assert np.all(np.diff(val.trial_ids) > 0)


def test_split_is_reproducible_per_seed(default_structure):
    first = train_val_split(default_structure, seed=5)[1].trial_ids
    again = train_val_split(default_structure, seed=5)[1].trial_ids
    other = train_val_split(default_structure, seed=6)[1].trial_ids
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_single_trial_condition_stays_in_training():
    dataset = cheap_dataset(["a"] * 10 + ["b"] * 10 + ["rare"])
    train, val = train_val_split(dataset, val_fraction=0.2)
    assert val.n_trials == 4
    assert "rare" not in [val.condition_labels[code] for code in val.conditions]
    assert train.trials_per_condition[dataset.condition_labels.index("rare")] == 1
    assert val.trials_per_condition.tolist() == [2, 2, 0]


def test_capped_conditions_pass_their_share_to_others():
    dataset = cheap_dataset([0, 1, 2, 3, 4, 5] + [6] * 6)
    train, val = train_val_split(dataset, val_fraction=0.5)
    assert (train.n_trials, val.n_trials) == (7, 5)
    assert val.trials_per_condition[6] == 5


def test_impossible_validation_names_conditions():
    with pytest.raises(DatasetError, match=r"variable 'conditions'.*at least 2 trials.*at most 1 per condition"):
        train_val_split(cheap_dataset([0, 1, 2, 3, 4, 5, 6, 7]))
    with pytest.raises(DatasetError, match=r"variable 'val_fraction'"):
        train_val_split(cheap_dataset([0, 0, 1, 1]), val_fraction=0.1)
    with pytest.raises(DatasetError, match=r"variable 'val_fraction'.*\(0, 1\)"):
        train_val_split(cheap_dataset([0, 0, 1, 1]), val_fraction=1.0)
