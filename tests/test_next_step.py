"""The Dale's-law next-step regression (eirnn.training.next_step) and the model initialised from it."""

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from eirnn.data.synthetic import make_recording
from eirnn.training.next_step import (
    inverse_activation,
    next_step_regression,
    next_step_targets,
    smoothed_rates_hz,
)


@pytest.fixture(scope="module")
def tiny():
    dataset, truth = make_recording(seed=3, n_e=5, n_i=2, n_bins=30, n_trials=40, n_conditions=4, n_inputs=6)
    return dataset, truth, smoothed_rates_hz(dataset.counts, dataset.bin_s, 1.0)


def test_inverse_activation_inverts_softplus_above_the_floor():
    rates = np.array([0.01, 0.5, 2.0, 30.0])
    assert np.allclose(np.logaddexp(0.0, inverse_activation(rates, "softplus")), rates)


def test_smoothing_keeps_each_trials_spike_count_and_zero_width_keeps_the_rates():
    counts = np.random.default_rng(0).poisson(0.3, (3, 50, 4))
    smoothed = smoothed_rates_hz(counts, 0.025, 1.5)
    assert np.allclose(smoothed.sum(axis=1), counts.sum(axis=1) / 0.025)
    assert np.array_equal(smoothed_rates_hz(counts, 0.025, 0.0), counts / 0.025)


def test_regression_respects_dales_law(tiny):
    dataset, _, rates = tiny
    estimate = next_step_regression(rates, dataset.inputs, dataset.ei_labels, rate_gain=10.0, alpha=0.25)
    inhibitory = dataset.ei_labels.astype(bool)
    assert np.all(estimate.weights[:, ~inhibitory] >= 0)
    assert np.all(estimate.weights[:, inhibitory] <= 0)
    assert np.all(np.diag(estimate.weights) == 0)
    # the bounds bind somewhere, or the test would not test the constraint
    assert (estimate.weights == 0).sum() > dataset.n_neurons


def test_regression_equals_a_direct_bounded_solve_of_the_full_problem(tiny):
    """Each neuron's row equals scipy's bounded least squares on the whole design matrix (with the
    same ridge as extra rows), so the Cholesky reduction changes nothing."""
    dataset, _, rates = tiny
    gain, alpha, ridge = np.full(dataset.n_neurons, 8.0), 0.25, 1e-3
    estimate = next_step_regression(rates, dataset.inputs, dataset.ei_labels, rate_gain=gain, alpha=alpha, ridge=ridge)
    predictors, targets = next_step_targets(rates, gain, alpha, "softplus")
    design = np.hstack([predictors, dataset.inputs[:, 1:].reshape(-1, dataset.n_inputs), np.ones((len(targets), 1))])
    width = design.shape[1]
    penalty = np.sqrt(ridge * np.trace(design.T @ design) / width) * np.eye(width)
    inhibitory = dataset.ei_labels.astype(bool)
    for neuron in range(dataset.n_neurons):
        keep = np.arange(width) != neuron
        lower = np.r_[np.where(inhibitory, -np.inf, 0.0), np.full(dataset.n_inputs + 1, -np.inf)][keep]
        upper = np.r_[np.where(inhibitory, 0.0, np.inf), np.full(dataset.n_inputs + 1, np.inf)][keep]
        stacked = np.vstack([design[:, keep], penalty[np.ix_(keep, keep)]])
        wanted = np.r_[targets[:, neuron], np.zeros(width - 1)]
        direct = lsq_linear(stacked, wanted, bounds=(lower, upper), method="bvls", tol=1e-12).x
        found = np.r_[estimate.weights[neuron], estimate.input_weights[neuron], estimate.bias[neuron]][keep]
        assert np.allclose(found, direct, rtol=1e-6, atol=1e-8)


def test_regression_on_the_true_rates_of_a_fully_observed_network_finds_its_weights():
    dataset, truth = make_recording(seed=2, n_e=8, n_i=3, n_bins=80, n_trials=200, fully_observed=True)
    labels = truth.unit_is_inhibitory[truth.recorded_units]
    estimate = next_step_regression(truth.rates_hz, dataset.inputs, labels, rate_gain=truth.rate_gain_hz, alpha=0.25)
    true_weights = truth.w_rec[np.ix_(truth.recorded_units, truth.recorded_units)]
    off_diagonal = ~np.eye(dataset.n_neurons, dtype=bool)
    # process noise makes the rates informative; the generator reads input t, not t + 1, hence not 1
    assert np.corrcoef(estimate.weights[off_diagonal], true_weights[off_diagonal])[0, 1] > 0.9


def test_recovery_reports_the_least_squares_baseline_per_block():
    from eirnn.model import create_model_for_dataset
    from eirnn.recovery import BLOCKS, recover

    dataset, truth = make_recording(seed=2, n_e=8, n_i=3, n_bins=60, n_trials=150, fully_observed=True)
    model = create_model_for_dataset(dataset, enforce_ratio=False, tau=100.0, input_embed_dim=8, seed=0)
    model.set_rate_scale(dataset.rates_hz.mean(axis=(0, 1)))
    metrics = recover(model, truth, dataset, seed=0).metrics
    # an untrained model recovers nothing within blocks; the regression on the same trials does
    within = [metrics[f"gt_least_squares_weight_corr_{block}"] for block in BLOCKS]
    assert np.all(np.isfinite(within)) and np.mean(within) > 0.3
    assert np.mean(within) > np.mean([metrics[f"gt_weight_corr_{block}"] for block in BLOCKS]) + 0.2
