"""NeuralDataset: construction, derived quantities and validation messages."""

import re

import numpy as np
import pytest

from eirnn.data import DatasetError, NeuralDataset

N_TRIALS, N_BINS, N_NEURONS, N_INPUTS = 6, 5, 4, 3


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "counts": rng.poisson(2.0, (N_TRIALS, N_BINS, N_NEURONS)),
        "inputs": rng.normal(size=(N_TRIALS, N_BINS, N_INPUTS)).astype(np.float32),
        "conditions": ["left", "right", "left", "up", "right", "left"],
        "bin_ms": 20.0,
    }


def make_dataset(**changes):
    return NeuralDataset(**{**make_arrays(), "ei_labels": ["E", "I", "e", "classic"], **changes})


def test_sizes_labels_and_condition_codes():
    dataset = make_dataset(ei_labels=["Classic", "INTERNEURON", "pyramidal", "fast_spiking"])
    assert (dataset.n_trials, dataset.n_bins, dataset.n_neurons, dataset.n_inputs) == (6, 5, 4, 3)
    assert dataset.ei_labels.tolist() == [0, 1, 0, 1]
    assert (dataset.n_e, dataset.n_i) == (2, 2)
    assert dataset.condition_labels == ["left", "right", "up"]
    assert dataset.conditions.tolist() == [0, 1, 0, 2, 1, 0]
    assert dataset.trials_per_condition.tolist() == [3, 2, 1]
    assert dataset.counts.dtype == np.int64 and dataset.inputs.dtype == np.float32


@pytest.mark.parametrize(
    "labels, expected",
    [
        ([True, False, False, True], [1, 0, 0, 1]),
        ([1, 0, 0, 1], [1, 0, 0, 1]),
        ([1.0, 0.0, 0.0, 0.0], [1, 0, 0, 0]),
        (["inh", "exc", " I ", "Excitatory"], [1, 0, 1, 0]),
    ],
)
def test_label_spellings(labels, expected):
    assert make_dataset(ei_labels=labels).ei_labels.tolist() == expected


def test_integer_conditions_and_explicit_codes():
    by_label = make_dataset(conditions=[7, 3, 3, 7, 9, 9.0])
    assert by_label.condition_labels == [3, 7, 9]
    assert by_label.conditions.tolist() == [1, 0, 0, 1, 2, 2]
    by_code = make_dataset(conditions=[1, 0, 0, 1, 2, 2], condition_labels=[3, 7, 9])
    assert by_code == by_label


def test_rates_from_counts_and_rates_only():
    counted = make_dataset()
    np.testing.assert_allclose(counted.rates_hz, counted.counts / 0.020)
    assert counted.has_counts
    rates = counted.rates_hz * 1.5
    rated = make_dataset(counts=None, rates=rates)
    assert not rated.has_counts and rated.counts is None
    np.testing.assert_array_equal(rated.rates_hz, rates)


def test_unlabeled_data_counts_every_neuron_as_excitatory():
    dataset = make_dataset(ei_labels=None)
    assert dataset.ei_labels is None and not dataset.is_labeled
    assert (dataset.n_e, dataset.n_i) == (N_NEURONS, 0)
    assert "unlabeled" in dataset.summary()
    assert dataset.facts()["ei_labels"] == "unlabeled"


def test_condition_psths_average_the_trials_of_each_condition():
    dataset = make_dataset()
    psths = dataset.condition_psths()
    assert psths.shape == (3, N_BINS, N_NEURONS)
    left = dataset.rates_hz[[0, 2, 5]].mean(axis=0)
    np.testing.assert_allclose(psths[0], left)
    model_rates = np.ones((N_TRIALS, N_BINS, 2)) * np.arange(N_TRIALS)[:, None, None]
    np.testing.assert_allclose(dataset.condition_psths(model_rates)[:, 0, 0], [7 / 3, 2.5, 3.0])


def test_subset_keeps_condition_codes_and_trial_ids():
    dataset = make_dataset(behavior=np.zeros((N_TRIALS, N_BINS, 2)), behavior_names=["x", "y"])
    part = dataset.subset([3, 5])
    assert part.n_trials == 2
    assert part.trial_ids.tolist() == [3, 5]
    assert part.condition_labels == dataset.condition_labels
    assert part.conditions.tolist() == [2, 0]
    np.testing.assert_array_equal(part.counts, dataset.counts[[3, 5]])
    assert part.behavior.shape == (2, N_BINS, 2)
    assert np.isnan(part.condition_psths()[1]).all()  # 'right' has no trial in this subset
    assert dataset.subset(np.arange(N_TRIALS) < 2).n_trials == 2


def test_summary_and_facts():
    dataset = make_dataset(meta={"source_file": "/data/rec.mat", "sha256": "abc"})
    summary = dataset.summary()
    rows = (
        "| File | /data/rec.mat |",
        "| Neurons | 4 (3 E, 1 I) |",
        "| Inputs | 3 |",
        "| Trials | 6 (3 conditions) |",
        "| Time bins | 5 (100 ms) |",
        "| Bin size | 20 ms |",
    )
    for row in rows:
        assert row in summary
    facts = dataset.facts()
    assert facts["data_file"] == "/data/rec.mat" and facts["data_sha256"] == "abc"
    assert (facts["n_neurons"], facts["n_e"], facts["n_i"], facts["n_inputs"]) == (4, 3, 1, 3)
    assert (facts["n_bins"], facts["bin_ms"], facts["n_trials"], facts["n_conditions"]) == (5, 20.0, 6, 3)
    assert all(isinstance(value, (str, int, float)) for value in facts.values())


def test_equality_compares_data_not_meta():
    assert make_dataset(meta={"source_file": "a"}) == make_dataset(meta={"source_file": "b"})
    changed = make_arrays()
    changed["counts"][0, 0, 0] += 1
    assert make_dataset(counts=changed["counts"]) != make_dataset()


# ---------------------------------------------------------------------- validation
def expect_error(variable, pattern="", **changes):
    with pytest.raises(DatasetError) as caught:
        make_dataset(meta={"source_file": "rec.npz"}, **changes)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message
    assert message.startswith("rec.npz: ")
    assert f"'{variable}'" in message, message
    assert re.search(pattern, message), message
    return message


def with_value(name, index, value, dtype=float):
    array = make_arrays()[name].astype(dtype)
    array[index] = value
    return array


def test_nan_and_inf_give_count_and_first_index():
    counts = with_value("counts", (2, 1, 3), np.nan)
    counts[4, 0, 0] = np.nan
    expect_error("counts", r"2 NaN and 0 Inf, first at \(trial 2, bin 1, neuron 3\)", counts=counts)
    inputs = with_value("inputs", (1, 4, 2), np.inf)
    expect_error("inputs", r"0 NaN and 1 Inf, first at \(trial 1, bin 4, input 2\)", inputs=inputs)
    expect_error("rates", "NaN", counts=None, rates=with_value("counts", (0, 0, 0), np.nan))


def test_negative_and_fractional_counts():
    expect_error(
        "counts",
        r"counts >= 0.*1 negative values, first -1 at \(trial 0, bin 2, neuron 1\)",
        counts=with_value("counts", (0, 2, 1), -1, int),
    )
    expect_error(
        "counts", r"whole-number.*1 non-integer values, first 0.5", counts=with_value("counts", (3, 3, 3), 0.5)
    )
    expect_error("rates", r"values >= 0", counts=None, rates=with_value("counts", (0, 0, 0), -2.0))


def test_mismatched_sizes_name_the_variable_and_both_sizes():
    inputs = make_arrays()["inputs"]
    expect_error("inputs", r"expected 6 trials.*found 5", inputs=inputs[:5])
    expect_error("inputs", r"expected 5 time bins.*found 4", inputs=inputs[:, :4])
    rates = np.ones((N_TRIALS, N_BINS, N_NEURONS + 1))
    expect_error("rates", r"expected 4 neurons.*found 5", rates=rates)
    expect_error("behavior", r"expected 6 trials", behavior=np.zeros((2, N_BINS, 2)))
    expect_error("conditions", r"expected 6 entries.*found 5", conditions=[1, 2, 3, 4, 5])
    expect_error("time_ms", r"expected 5 entries", time_ms=np.arange(7))


def test_label_problems():
    expect_error("ei_labels", r"expected 4 labels.*found 3", ei_labels=["E", "I", "E"])
    message = expect_error("ei_labels", r"found 'basket' for neuron 2", ei_labels=["E", "I", "basket", "E"])
    assert "interneuron" in message and "classic" in message
    expect_error("ei_labels", r"found 2 for neuron 0", ei_labels=[2, 0, 0, 0])


@pytest.mark.parametrize("bin_ms", [0, -25.0, np.nan])
def test_bin_size_must_be_positive(bin_ms):
    expect_error("bin_ms", r"bin size > 0", bin_ms=bin_ms)


def test_empty_missing_and_misshapen_arrays():
    expect_error(
        "counts",
        r"non-empty.*0x5x4",
        counts=np.zeros((0, N_BINS, N_NEURONS), int),
        inputs=np.zeros((0, N_BINS, 3)),
        conditions=[],
    )
    expect_error("counts", r"3-d array.*shape 6x5", counts=np.zeros((N_TRIALS, N_BINS), int))
    expect_error("counts", r"spike counts or rates.*neither", counts=None)
    expect_error("behavior_names", r"expected 2 names", behavior=np.zeros((N_TRIALS, N_BINS, 2)), behavior_names=["x"])
