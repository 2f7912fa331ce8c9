"""Tests of eirnn.metrics: hand-computed cases and simulated data with known answers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from eirnn import metrics as M
from eirnn.metrics import NotAvailable, is_available, to_float


def _smooth_psths(rng, n_time, n_neurons, base=2.0):
    """Positive, smooth PSTHs [time, neurons] with varied modulation depth (counts/bin)."""
    t = np.arange(n_time)[:, None]
    amp = rng.uniform(0.4, 1.5, n_neurons)
    phase = rng.uniform(0, 2 * np.pi, n_neurons)
    freq = rng.uniform(0.5, 2.0, n_neurons)
    return base + amp * np.sin(2 * np.pi * freq * t / n_time + phase)


# --- NotAvailable ---------------------------------------------------------------------------
def test_not_available_basics():
    na = NotAvailable("rates only")
    assert not na
    assert str(na) == "n/a (rates only)"
    assert not is_available(na) and is_available(0.0) and is_available(float("nan"))
    assert math.isnan(to_float(na))
    assert to_float(np.float32(0.5)) == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        na.reason = "x"


# --- PSTH correlation ----------------------------------------------------------------------
def test_psth_correlation_hand_computed():
    # target trials average to x = [1,2,3,4]; model PSTH y = [1,3,2,4]
    # dx = [-1.5,-.5,.5,1.5], dy = [-1.5,.5,-.5,1.5]: cov = 4, var = 5 each -> r = 0.8
    x = np.array([1.0, 2, 3, 4])
    target = np.stack([x - 1, x + 1])[:, :, None]
    model = np.array([1.0, 3, 2, 4])[None, :, None]
    res = M.psth_correlation(model, target)
    assert res.per_neuron[0] == pytest.approx(0.8)
    assert res.mean == pytest.approx(0.8)


def test_psth_correlation_perfect_model_is_one():
    rng = np.random.default_rng(0)
    psth = _smooth_psths(rng, 30, 20)
    target = rng.poisson(np.broadcast_to(psth, (12, 30, 20))).astype(float)
    res = M.psth_correlation(target.mean(axis=0)[None], target)  # model PSTH == target PSTH
    assert res.mean == pytest.approx(1.0)
    assert np.allclose(res.per_neuron, 1.0) and res.n_undefined == 0


def test_psth_correlation_time_shuffled_is_about_zero():
    rng = np.random.default_rng(1)
    n_time, n_neurons = 100, 300
    target = _smooth_psths(rng, n_time, n_neurons)[None]
    shuffled = np.stack([target[0, rng.permutation(n_time), j] for j in range(n_neurons)], axis=1)[None]
    res = M.psth_correlation(shuffled, target)
    # each r ~ N(0, 1/T): the mean of 300 has sd ~0.006
    assert abs(res.mean) < 0.03
    assert np.std(res.per_neuron) == pytest.approx(1 / np.sqrt(n_time), rel=0.25)


def test_psth_correlation_ei_means_and_undefined_neurons():
    s = np.array([0.0, 1, 3, 2, 5])
    target = np.stack([s, s, s, np.full(5, 2.0)], axis=1)[None]  # neuron 3 is constant
    model = np.stack([2 * s + 1, -s, s, s], axis=1)[None]  # r = 1, -1, 1, undefined
    res = M.psth_correlation(model, target, ei_labels=[0, 0, 1, 1])
    assert res.per_neuron[:3] == pytest.approx([1, -1, 1])
    assert np.isnan(res.per_neuron[3]) and res.n_undefined == 1
    assert res.mean == pytest.approx(1 / 3)
    assert res.mean_e == pytest.approx(0.0)
    assert res.mean_i == pytest.approx(1.0)

    unlabeled = M.psth_correlation(model, target)
    assert unlabeled.mean_e == unlabeled.mean
    assert not is_available(unlabeled.mean_i)
    only_e = M.psth_correlation(model, target, ei_labels=[0, 0, 0, 0])
    assert not is_available(only_e.mean_i)
    all_const = M.psth_correlation(model, np.full_like(target, 3.0))
    assert not is_available(all_const.mean) and all_const.n_undefined == 4


def test_psth_correlation_constant_with_roundoff_is_undefined():
    target = np.full((3, 10, 1), 0.1)  # mean of 0.1s can differ from 0.1 by round-off
    model = np.random.default_rng(0).normal(size=(1, 10, 1))
    assert np.isnan(M.psth_correlation(model, target).per_neuron[0])


def test_condition_psth_correlation_is_stricter():
    # target: cond A = s, cond B = s + 5; model swaps the offsets. Pooled PSTHs are identical
    # (r = 1), but stacked [s, s+5] vs [s+5, s] with s = [0, 1]: t = [0,1,5,6], m = [5,6,0,1],
    # dt = [-3,-2,2,3], dm = [2,3,-3,-2] -> cov = -24, var = 26 -> r = -12/13.
    s = np.array([0.0, 1.0])
    target = np.stack([s, s, s + 5, s + 5])[:, :, None]
    model = np.stack([s + 5, s + 5, s, s])[:, :, None]
    cond = np.array([0, 0, 1, 1])
    assert M.psth_correlation(model, target).mean == pytest.approx(1.0)
    res = M.condition_psth_correlation(model, target, cond)
    assert res.mean == pytest.approx(-12 / 13)
    # model run on a different number of trials, coded separately
    res2 = M.condition_psth_correlation(model[[0, 2]], target, cond, model_conditions=[0, 1])
    assert res2.mean == pytest.approx(-12 / 13)
    with pytest.raises(ValueError, match="no trials for conditions"):
        M.condition_psth_correlation(model[[0]], target, cond, model_conditions=[0])


# --- PSTH R^2 -------------------------------------------------------------------------------
def test_psth_r2_hand_computed_perfect_and_mean_predictor():
    # neuron 0: y = [1,2,3], yhat = [1,2,4]: SS_res = 1, SS_tot = 2 -> 0.5; neuron 1 perfect
    y = np.array([[1.0, 5.0], [2.0, 7.0], [3.0, 6.0]])
    yhat = np.array([[1.0, 5.0], [2.0, 7.0], [4.0, 6.0]])
    assert M.psth_r2(yhat, y) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    target = rng.normal(size=(4, 25, 6))  # [conditions, time, neurons]
    assert M.psth_r2(target, target) == pytest.approx(1.0)
    mean_pred = np.broadcast_to(target.reshape(-1, 6).mean(axis=0), target.shape)
    assert M.psth_r2(mean_pred, target) == pytest.approx(0.0, abs=1e-12)


def test_psth_r2_nan_rows_and_constant_targets():
    y = np.array([[1.0], [np.nan], [3.0]])
    yhat = np.array([[1.0], [100.0], [3.0]])
    assert M.psth_r2(yhat, y) == 1.0  # NaN target row dropped (as nlb_tools)
    const = np.full((3, 1), 2.0)
    assert M.psth_r2(const, const) == 1.0  # sklearn force_finite: exact -> 1
    assert M.psth_r2(const + 1, const) == 0.0  # otherwise 0


# --- bits per spike -------------------------------------------------------------------------
def _ll(lams, ks):
    return sum(k * math.log(rate) - rate - math.lgamma(k + 1) for rate, k in zip(lams, ks))


def test_bits_per_spike_hand_computed():
    # 1 trial, 3 bins, 2 neurons
    k0, k1 = [0, 1, 2], [1, 0, 1]
    l0, l1 = [0.5, 1.0, 2.0], [1.0, 0.5, 1.0]
    counts = np.array([k0, k1]).T[None]
    lam = np.array([l0, l1]).T[None]
    ll_model = _ll(l0, k0) + _ll(l1, k1)
    ll_null = _ll([1.0] * 3, k0) + _ll([2 / 3] * 3, k1)  # each neuron's mean count
    expected = (ll_model - ll_null) / (5 * math.log(2))
    assert M.bits_per_spike(lam, counts) == pytest.approx(expected, rel=1e-12)
    # the null model itself scores 0
    null = np.broadcast_to(counts.mean(axis=(0, 1)), counts.shape)
    assert M.bits_per_spike(null, counts) == pytest.approx(0.0, abs=1e-12)
    # an explicit null
    ll_null2 = _ll([0.8] * 3, k0) + _ll([0.5] * 3, k1)
    got = M.bits_per_spike(lam, counts, null_rates=[0.8, 0.5])
    assert got == pytest.approx((ll_model - ll_null2) / (5 * math.log(2)), rel=1e-12)


def test_bits_per_spike_zero_rates_and_not_available():
    counts = np.array([[[1], [0], [3]]])
    lam = np.array([[[1.0], [0.0], [3.0]]])  # zero where k = 0 -> clipped to 1e-9, harmless
    expected = (_ll([1, 1e-9, 3], [1, 0, 3]) - _ll([4 / 3] * 3, [1, 0, 3])) / (4 * math.log(2))
    assert M.bits_per_spike(lam, counts) == pytest.approx(expected, rel=1e-9)
    assert not is_available(M.bits_per_spike(lam, None))
    assert "counts" in str(M.bits_per_spike(lam, None))
    assert not is_available(M.bits_per_spike(lam, counts / 0.03))  # rates, not counts
    assert not is_available(M.bits_per_spike(lam, np.zeros_like(counts)))
    with pytest.raises(ValueError, match="negative expected counts"):
        M.bits_per_spike(-lam, counts)


# --- Fano factor ----------------------------------------------------------------------------
def test_fano_hand_computed_threshold_and_conditions():
    # cond 0, 4 trials: bin 0 counts [1,2,3,6]: mean 3, var(ddof=1) = 14/3 -> F = 14/9
    #                   bin 1 counts [0,0,0,1]: mean 0.25, var = 0.25 -> F = 1 (mean >= 0.1)
    # cond 1 has one trial -> ignored
    counts = np.zeros((5, 2, 1))
    counts[:4, 0, 0] = [1, 2, 3, 6]
    counts[:4, 1, 0] = [0, 0, 0, 1]
    counts[4] = [[7], [9]]
    cond = [0, 0, 0, 0, 1]
    res = M.fano_factor(counts.astype(int), cond)
    assert res.per_neuron[0] == pytest.approx((14 / 9 + 1) / 2)
    assert res.mean == pytest.approx((14 / 9 + 1) / 2)
    assert res.n_cells[0] == 2
    assert M.fano_factor(counts, cond, min_mean_count=0.3).mean == pytest.approx(14 / 9)


def test_fano_poisson_is_one():
    rng = np.random.default_rng(2)
    lam = rng.uniform(0.2, 3.0, size=(1, 20, 15))
    counts = rng.poisson(np.broadcast_to(lam, (200, 20, 15)))
    cond = np.repeat([0, 1], 100)
    res = M.fano_factor(counts, cond)
    assert res.mean == pytest.approx(1.0, abs=0.03)
    assert np.all(np.abs(res.per_neuron - 1) < 0.1)


def test_fano_refuses_rates_in_hz():
    # Hz = counts / bin_s multiplies var/mean by 1/bin_s (40 at 25 ms): F ~ 1.24 would read
    # as ~49.5. The function takes counts; Hz input is refused rather than inflated.
    rng = np.random.default_rng(3)
    counts = rng.poisson(1.0, size=(50, 10, 4))
    bin_s = 0.025
    f_counts = M.fano_factor(counts).mean
    hz = counts / bin_s
    per_cell_hz = hz.var(axis=0, ddof=1) / hz.mean(axis=0)
    per_cell = counts.var(axis=0, ddof=1) / counts.mean(axis=0)
    assert np.allclose(per_cell_hz, per_cell / bin_s)
    assert np.mean(per_cell) == pytest.approx(f_counts)
    na = M.fano_factor(hz)  # integer-valued, but all multiples of 40
    assert not is_available(na) and "Hz" in str(na)
    assert not is_available(M.fano_factor(counts / 0.03))  # non-integer
    assert not is_available(M.fano_factor(None))


def test_fano_needs_two_trials_in_a_condition():
    counts = np.random.default_rng(4).poisson(2.0, size=(3, 5, 2))
    assert not is_available(M.fano_factor(counts, [0, 1, 2]))
    assert not is_available(M.fano_factor(counts[:1]))


def test_model_fano_factor():
    rng = np.random.default_rng(5)
    bin_s = 0.025
    # noise off: identical rates on every trial -> Poisson counts -> F ~ 1
    rates = np.full((300, 10, 8), 40.0)
    assert M.model_fano_factor(rates, bin_s, None, rng).mean == pytest.approx(1.0, abs=0.04)
    # trial-to-trial rate variability: lambda in {0.5, 1.5} -> F = 1 + var/mean = 1.25
    gain = rng.choice([0.5, 1.5], size=(600, 1, 1))
    res = M.model_fano_factor(40.0 * gain * np.ones((600, 10, 8)), bin_s, np.zeros(600), 7)
    assert res.mean == pytest.approx(1.25, abs=0.05)


# --- per-neuron summary ---------------------------------------------------------------------
def test_per_neuron_summary_hand_computed():
    rates = np.array([[[1.0], [2.0], [3.0]], [[3.0], [4.0], [5.0]]])  # PSTH [2,3,4]
    s = M.per_neuron_summary(rates)
    assert s.mean_rate_hz[0] == pytest.approx(3.0)
    assert s.psth_variance_hz2[0] == pytest.approx(2 / 3)
    # by condition: PSTHs [1,2,3] and [3,4,5] stacked: mean 3, var = (4+1+0+0+1+4)/6
    s2 = M.per_neuron_summary(rates, conditions=[0, 1])
    assert s2.psth_variance_hz2[0] == pytest.approx(10 / 6)


# --- noise ceiling --------------------------------------------------------------------------
def _mc_expected_corr(psth, n_trials, rng, reps=150):
    """Monte-Carlo E[corr(true PSTH, PSTH of n_trials Poisson trials)] per neuron."""
    means = rng.poisson(np.broadcast_to(psth, (reps, n_trials, *psth.shape))).mean(axis=1)
    a = psth - psth.mean(axis=0)
    b = means - means.mean(axis=1, keepdims=True)
    r = (a * b).sum(axis=1) / np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=1))
    return r.mean(axis=0)


def test_noise_ceiling_matches_expected_correlation_of_true_psth():
    rng = np.random.default_rng(6)
    n_time, n_neurons, n_trials = 40, 120, 16
    psth = _smooth_psths(rng, n_time, n_neurons)
    counts = rng.poisson(np.broadcast_to(psth, (n_trials, n_time, n_neurons)))
    nc = M.noise_ceiling(counts, n_splits=20, rng=0)
    expected = _mc_expected_corr(psth, n_trials, rng)
    assert 0.5 < expected.mean() < 0.95  # a regime where the ceiling matters
    assert nc.mean == pytest.approx(expected.mean(), abs=0.03)
    assert np.corrcoef(nc.ceiling, expected)[0, 1] > 0.8
    assert np.allclose(nc.ceiling**2, nc.reliability)
    # a perfect model (the true PSTH) normalises to ~1
    r_perfect = M.psth_correlation(psth[None], counts)
    norm = M.normalized_correlation(r_perfect, nc)
    assert np.nanmean(norm) == pytest.approx(1.0, abs=0.05)
    assert M.normalized_correlation(r_perfect.mean, nc) == pytest.approx(r_perfect.mean / nc.mean)


def test_noise_ceiling_by_condition():
    rng = np.random.default_rng(7)
    n_cond, n_time, n_neurons, per_cond = 3, 20, 80, 10
    psth = np.stack([_smooth_psths(rng, n_time, n_neurons) for _ in range(n_cond)])
    cond = np.repeat(np.arange(n_cond), per_cond)
    counts = rng.poisson(psth[cond])
    nc = M.noise_ceiling(counts, cond, n_splits=20, rng=1)
    assert nc.by_condition
    stacked = psth.reshape(-1, n_neurons)
    expected = _mc_expected_corr(stacked, per_cond, rng, reps=100)
    assert nc.mean == pytest.approx(expected.mean(), abs=0.03)
    r_perfect = M.condition_psth_correlation(psth[np.arange(n_cond)], counts, cond, model_conditions=np.arange(n_cond))
    assert np.nanmean(M.normalized_correlation(r_perfect, nc)) == pytest.approx(1.0, abs=0.05)
    pooled = M.noise_ceiling(counts, cond, by_condition=False, rng=1)
    assert not pooled.by_condition and is_available(pooled.mean)


def test_noise_ceiling_not_available_without_repeats():
    rng = np.random.default_rng(8)
    cond_avg = rng.poisson(2.0, size=(4, 10, 3)).astype(float)  # one "trial" per condition
    na = M.noise_ceiling(cond_avg, conditions=[0, 1, 2, 3])
    assert not is_available(na) and "1 trial" in str(na)
    assert not is_available(M.noise_ceiling(cond_avg[0]))  # a 2-D PSTH
    assert not is_available(M.noise_ceiling(cond_avg[:1]))
    assert not is_available(M.normalized_correlation(0.5, na))
    with pytest.raises(ValueError, match="needs conditions"):
        M.noise_ceiling(cond_avg, by_condition=True)


def test_normalized_correlation_arithmetic():
    assert M.normalized_correlation(0.4, 0.8) == pytest.approx(0.5)
    out = M.normalized_correlation(np.array([0.4, 0.3, 0.2]), np.array([0.8, 0.0, np.nan]))
    assert out[0] == pytest.approx(0.5) and np.isnan(out[1]) and np.isnan(out[2])
    assert not is_available(M.normalized_correlation(NotAvailable("x"), 0.8))


# --- PCA ------------------------------------------------------------------------------------
def test_pca_matches_covariance_eigendecomposition():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(200, 3)) @ np.diag([3.0, 1.0, 0.3]) @ np.linalg.qr(rng.normal(size=(3, 6)).T)[0].T
    x = x + rng.normal(scale=0.01, size=x.shape) + 5.0
    pca = M.pca_fit(x, n_components=3)
    evals, evecs = np.linalg.eigh(np.cov(x.T, bias=True))
    order = np.argsort(evals)[::-1]
    assert pca.explained_variance_ratio == pytest.approx(evals[order[:3]] / evals.sum(), rel=1e-8)
    for i in range(3):
        assert abs(pca.components[i] @ evecs[:, order[i]]) == pytest.approx(1.0, abs=1e-8)
    assert np.allclose(pca.components @ pca.components.T, np.eye(3))
    scores = M.pca_project(x, pca)
    assert scores.shape == (200, 3)
    assert np.allclose(scores.mean(axis=0), 0.0, atol=1e-10)
    assert np.allclose(scores @ pca.components + pca.mean, x, atol=0.05)
    # 3-D [conditions, time, neurons] input keeps its leading axes
    assert M.pca_project(x.reshape(4, 50, 6), pca).shape == (4, 50, 3)
    assert M.pca_fit(x, n_components=50).components.shape == (6, 6)
