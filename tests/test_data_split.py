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


def test_test_split_is_stratified_disjoint_and_fixed_by_the_seed(default_structure):
    from eirnn.config import TrainConfig
    from eirnn.data import hold_out_test
    from eirnn.pipeline import split_with_test

    rest, test = hold_out_test(default_structure, 0.15, seed=0)
    assert test.n_trials == 156 and rest.n_trials == 1043 - 156
    np.testing.assert_allclose(test.trials_per_condition, 0.15 * default_structure.trials_per_condition, atol=1)
    assert not set(test.trial_ids) & set(rest.trial_ids)
    assert np.array_equal(hold_out_test(default_structure, 0.15, seed=0)[1].trial_ids, test.trial_ids)
    assert not np.array_equal(hold_out_test(default_structure, 0.15, seed=1)[1].trial_ids, test.trial_ids)

    train, val, held = split_with_test(default_structure, TrainConfig(test_fraction=0.15))
    assert np.array_equal(held.trial_ids, test.trial_ids)
    assert val.n_trials == 208  # validation keeps its share of all trials
    parts = [set(part.trial_ids) for part in (train, val, held)]
    assert sum(map(len, parts)) == 1043 and len(set.union(*parts)) == 1043
    # the model seed alone does not move the split when split_seed is set
    other = split_with_test(default_structure, TrainConfig(test_fraction=0.15, seed=5, split_seed=0))
    assert all(np.array_equal(a.trial_ids, b.trial_ids) for a, b in zip(other, (train, val, held)))


def test_without_a_test_split_the_seed_split_is_unchanged(default_structure):
    from eirnn.config import TrainConfig
    from eirnn.pipeline import split_with_test

    train, val, test = split_with_test(default_structure, TrainConfig())
    expected_train, expected_val = train_val_split(default_structure)
    assert test is None
    assert np.array_equal(train.trial_ids, expected_train.trial_ids)
    assert np.array_equal(val.trial_ids, expected_val.trial_ids)
