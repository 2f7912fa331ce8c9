"""Synthetic recording: realism, ground truth, determinism, export to .mat."""

import numpy as np
import pytest

from eirnn.data import NeuralDataset, load_dataset, write_dataset
from eirnn.data.synthetic import make_recording

TINY = dict(n_e=9, n_i=3, n_bins=60, n_trials=80)
CONDITION_SHARE_THRESHOLD = 0.3


@pytest.fixture(scope="module")
def full_size():
    return make_recording(seed=0)


def mean_fano_factor(dataset: NeuralDataset) -> float:
    """Spike-count Fano factor within condition, over bins with mean count >= 0.1."""
    ratios = []
    for code in range(dataset.n_conditions):
        counts = dataset.counts[dataset.conditions == code]
        mean, variance = counts.mean(axis=0), counts.var(axis=0, ddof=1)
        ratios.append(variance[mean >= 0.1] / mean[mean >= 0.1])
    return float(np.mean(np.concatenate(ratios)))


def condition_variance_share(dataset: NeuralDataset, seed: int = 0) -> float:
    """Across-condition PSTH variance, cross-validated between two halves of each condition's
    trials (so trial noise does not count as condition structure), over the total PSTH variance."""
    rng = np.random.default_rng(seed)
    first_half = np.zeros(dataset.n_trials, dtype=bool)
    for code in range(dataset.n_conditions):
        trials = rng.permutation(np.flatnonzero(dataset.conditions == code))
        first_half[trials[: len(trials) // 2]] = True
    a, b = dataset.subset(first_half).condition_psths(), dataset.subset(~first_half).condition_psths()
    across = ((a - a.mean(axis=0)) * (b - b.mean(axis=0))).mean(axis=(0, 1)).sum()
    psths = dataset.condition_psths()
    return float(across / psths.reshape(-1, dataset.n_neurons).var(axis=0).sum())


def with_counts(dataset: NeuralDataset, counts=None, conditions=None) -> NeuralDataset:
    return NeuralDataset(
        counts=dataset.counts if counts is None else counts,
        inputs=dataset.inputs,
        conditions=dataset.conditions if conditions is None else conditions,
        bin_ms=dataset.bin_ms,
    )


def test_default_sizes_and_interleaved_labels(full_size):
    dataset = full_size[0]
    assert (dataset.n_neurons, dataset.n_e, dataset.n_i) == (54, 41, 13)
    assert (dataset.n_inputs, dataset.n_bins, dataset.bin_ms, dataset.n_trials) == (14, 219, 25.0, 1043)
    assert dataset.n_conditions >= 8
    labels = dataset.ei_labels
    assert not np.all(labels[:-1] <= labels[1:])  # not sorted E-then-I
    assert np.sum(labels[1:] != labels[:-1]) >= 10


def test_spike_variability_is_cortex_like(full_size):
    dataset = full_size[0]
    assert 0.8 < mean_fano_factor(dataset) < 3.0


def test_psths_carry_condition_structure_that_shuffling_removes(full_size):
    dataset = full_size[0]
    assert condition_variance_share(dataset) > CONDITION_SHARE_THRESHOLD
    rng = np.random.default_rng(1)
    shuffled = with_counts(dataset, conditions=rng.permutation(dataset.conditions))
    assert condition_variance_share(shuffled) < CONDITION_SHARE_THRESHOLD / 3
    flat = with_counts(dataset, counts=rng.poisson(dataset.counts.mean(), dataset.counts.shape))
    assert condition_variance_share(flat) < CONDITION_SHARE_THRESHOLD / 3


def test_psths_have_temporal_structure(full_size):
    dataset = full_size[0]
    psths = dataset.condition_psths()
    smoothed = np.cumsum(psths, axis=1)
    smoothed = (smoothed[:, 8:] - smoothed[:, :-8]) / 8  # 200 ms boxcar damps count noise
    modulation = smoothed.std(axis=1).mean(axis=0) / psths.mean(axis=(0, 1))
    assert np.median(modulation) > 0.15


def test_rates_are_realistic_and_counts_follow_them(full_size):
    dataset, truth = full_size
    mean_rates = dataset.rates_hz.mean(axis=(0, 1))
    assert 2 < np.median(mean_rates) < 40
    assert mean_rates.min() > 0.5 and mean_rates.max() < 80
    expected_counts = truth.rates_hz.sum(axis=(0, 1)) * dataset.bin_s
    np.testing.assert_allclose(dataset.counts.sum(axis=(0, 1)), expected_counts, rtol=0.02)
    trial_totals = dataset.counts.sum(axis=(1, 2))
    assert trial_totals.std() > 0


def test_ground_truth_network_follows_dale_and_is_stable(full_size):
    dataset, truth = full_size
    assert truth.n_units > dataset.n_neurons
    inhibitory = truth.unit_is_inhibitory
    assert not inhibitory[: np.argmax(inhibitory)].any()  # E units first
    off_diagonal = ~np.eye(truth.n_units, dtype=bool)
    assert (truth.w_rec[:, ~inhibitory][off_diagonal[:, ~inhibitory]] > 0).all()
    assert (truth.w_rec[:, inhibitory][off_diagonal[:, inhibitory]] < 0).all()
    np.testing.assert_allclose(truth.w_rec.sum(axis=1), 0, atol=1e-9)
    assert np.max(np.abs(np.linalg.eigvals(truth.w_rec))) < 1
    np.testing.assert_array_equal(dataset.ei_labels, inhibitory[truth.recorded_units])
    assert truth.rates_hz.shape == dataset.counts.shape
    assert truth.w_in.shape == (truth.n_units, dataset.n_inputs)


def test_inputs_are_piecewise_constant_with_few_distinct_vectors(full_size):
    dataset = full_size[0]
    assert len(np.unique(dataset.inputs.reshape(-1, dataset.n_inputs), axis=0)) < 2000
    changes = np.any(np.diff(dataset.inputs, axis=1) != 0, axis=2).sum(axis=1)
    assert changes.max() <= 3  # cue onset, go (fixation off, go on) at most
    cues = dataset.inputs[:, :, 1:9].max(axis=1)
    np.testing.assert_array_equal(cues.argmax(axis=1), dataset.conditions)
    assert dataset.input_names[:2] == ["fixation", "cue_0"] and "go" in dataset.input_names


def test_deterministic_per_seed():
    first, truth = make_recording(seed=3, **TINY)
    again, truth_again = make_recording(seed=3, **TINY)
    other, _ = make_recording(seed=4, **TINY)
    assert first == again and first != other
    np.testing.assert_array_equal(truth.w_rec, truth_again.w_rec)
    assert (first.n_neurons, first.n_bins, first.n_trials) == (12, 60, 80)


def test_invalid_sizes_are_refused():
    with pytest.raises(ValueError, match="n_inputs"):
        make_recording(n_inputs=5, n_conditions=8)
    with pytest.raises(ValueError, match="bin_ms"):
        make_recording(bin_ms=0, **TINY)


def test_default_recording_exports_to_matlab_layout(full_size, tmp_path):
    dataset = full_size[0]
    path = write_dataset(dataset, tmp_path / "x.mat")
    loaded = load_dataset(path, layout="neurons,time,trials")
    summary = loaded.summary()
    for row in (
        "| Neurons | 54 (41 E, 13 I) |",
        "| Inputs | 14 |",
        "| Time bins | 219 ",
        "| Bin size | 25 ms |",
        "| Trials | 1043 ",
    ):
        assert row in summary
    assert loaded == dataset


def test_trial_varying_initial_states_spread_trials_early_and_leave_the_task_alone():
    sizes = dict(n_e=8, n_i=3, n_trials=96, n_bins=60)
    usual, usual_truth = make_recording(seed=2, **sizes)
    varied, truth = make_recording(seed=2, trial_state_spread=2.0, **sizes)
    assert usual_truth.initial_offsets is None and truth.initial_offsets.shape == (96, truth.n_units)
    np.testing.assert_array_equal(varied.inputs, usual.inputs)
    np.testing.assert_array_equal(varied.conditions, usual.conditions)

    def within_condition_variance(rates, conditions, bins):
        return np.mean([rates[conditions == c][:, bins].var(axis=0).mean() for c in np.unique(conditions)])

    early, late = slice(0, 5), slice(-5, None)
    assert within_condition_variance(truth.rates_hz, varied.conditions, early) > 3 * within_condition_variance(
        usual_truth.rates_hz, usual.conditions, early
    )
    assert within_condition_variance(truth.rates_hz, varied.conditions, late) == pytest.approx(
        within_condition_variance(usual_truth.rates_hz, usual.conditions, late), rel=0.5
    )


def test_fully_observed_teacher_records_every_unit_and_strong_recurrence_scales_the_spectrum():
    dataset, truth = make_recording(seed=4, n_e=6, n_i=2, n_trials=16, n_bins=20, fully_observed=True)
    assert truth.n_units == dataset.n_neurons == 8
    assert sorted(truth.recorded_units.tolist()) == list(range(8))
    assert np.array_equal(dataset.ei_labels, truth.unit_is_inhibitory[truth.recorded_units])
    _, strong = make_recording(seed=4, n_e=6, n_i=2, n_trials=16, n_bins=20, spectral_radius=1.5)
    assert np.max(np.abs(np.linalg.eigvals(strong.w_rec))) == pytest.approx(1.5)
    assert strong.n_units == 16
