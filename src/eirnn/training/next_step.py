"""Next-step regression of the recorded neurons' single-trial currents: a convex, Dale's-law
estimate of the recurrent weights among recorded neurons, and the model initialised from it.

The model's step from output t to output t+1 for a recorded unit a, with r = f(x) its rate
(Hz = gain * r), is

    x_a[t+1] = (1 - alpha) x_a[t] + alpha (sum_b W_ab r_b[t] + sum_k V_ak u_k[t+1] + b_a) + noise

(the model's outputs are the states after each step, so output t+1 has seen input t+1).

Given single-trial rates R [trials, time, neurons] in Hz (spike counts smoothed with a Gaussian
kernel), r = R / gain and x = f^-1(r), the target y_a[t] = (x_a[t+1] - (1 - alpha) x_a[t]) / alpha
is linear in (W_a., V_a., b_a): one least-squares problem per recorded neuron, with the Dale
signs (W_ab >= 0 for an E presynaptic neuron b, <= 0 for an I one; no self-connection) as bounds.
This is the regression that CORNN (Dinc et al. 2023) and FORCE-style CURBD solve, restricted to
the recorded neurons: unrecorded units' input shows up as residual. The single-trial,
noise-driven fluctuations are what pin down the individual weights, which trial averages do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.linalg import cho_factor, solve_triangular
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import lsq_linear

from eirnn.choices import ACTIVATIONS

# a rate is floored here before the activation is inverted: softplus^-1(r) -> -inf as r -> 0
MIN_UNIT_RATE = 1e-3
# ridge as a share of the mean diagonal of the normal equations: the task's fixation and go
# channels sum to one, like the bias column, so the unregularised problem is singular
DEFAULT_RIDGE = 1e-4


def smoothed_rates_hz(counts: np.ndarray, bin_s: float, sd_bins: float) -> np.ndarray:
    """Single-trial rates in Hz: counts [trials, time, neurons] / bin_s smoothed along time with a
    Gaussian kernel of `sd_bins` bins (edges reflected); sd_bins 0 returns the raw rates."""
    rates = np.asarray(counts, dtype=np.float64) / bin_s
    return gaussian_filter1d(rates, sd_bins, axis=1, mode="reflect") if sd_bins > 0 else rates


def single_trial_rates(dataset: Any, smoothing_bins: float) -> np.ndarray:
    """A data set's smoothed single-trial rates in Hz [trials, time, neurons]: its spike counts
    smoothed over `smoothing_bins` bins, or its rates as given when it has no counts."""
    if dataset.counts is None:
        return np.asarray(dataset.rates_hz, dtype=np.float64)
    return smoothed_rates_hz(dataset.counts, dataset.bin_s, smoothing_bins)


def inverse_activation(rates: np.ndarray | torch.Tensor, activation: str):
    """x with f(x) = r, for unit rates r floored at MIN_UNIT_RATE (numpy or torch)."""
    module = torch if isinstance(rates, torch.Tensor) else np
    return ACTIVATIONS[activation].inverse(module.clip(rates, MIN_UNIT_RATE, None))


@dataclass(frozen=True)
class NextStepEstimate:
    """The regression's answer; weights act on unit rates r = Hz / rate_gain."""

    weights: np.ndarray  # [neurons, neurons] W[post, pre], Dale-signed, zero diagonal
    input_weights: np.ndarray  # [neurons, n_inputs]
    bias: np.ndarray  # [neurons]
    rate_gain: np.ndarray  # [neurons] Hz per unit of r used to turn rates into unit rates
    explained_variance: np.ndarray  # [neurons] R^2 of the next-step target, per neuron

    def effective_weights(self) -> np.ndarray:
        """Drive per Hz of presynaptic rate, W_ab / gain_b (as `eirnn.recovery.effective_weights`)."""
        return self.weights / self.rate_gain[None, :]


def next_step_targets(rates_hz: np.ndarray, rate_gain: np.ndarray, alpha: float, activation: str):
    """(unit rates r[t] [samples, neurons], targets y[t] [samples, neurons]) for t = 0..T-2 of
    every trial, as defined in the module docstring."""
    unit_rates = np.asarray(rates_hz, dtype=np.float64) / rate_gain
    currents = inverse_activation(unit_rates, activation)
    targets = (currents[:, 1:] - (1 - alpha) * currents[:, :-1]) / alpha
    n_neurons = unit_rates.shape[-1]
    return unit_rates[:, :-1].reshape(-1, n_neurons), targets.reshape(-1, n_neurons)


def dale_bounds(ei_labels: np.ndarray | None, n_neurons: int, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of one row's coefficients [W_a. (without a), V_a., b_a] before the
    self-connection is removed: presynaptic E >= 0, I <= 0; no labels: every neuron E, as the model."""
    inhibitory = np.zeros(n_neurons, bool) if ei_labels is None else np.asarray(ei_labels).astype(bool)
    lower = np.concatenate([np.where(inhibitory, -np.inf, 0.0), np.full(n_inputs + 1, -np.inf)])
    upper = np.concatenate([np.where(inhibitory, 0.0, np.inf), np.full(n_inputs + 1, np.inf)])
    return lower, upper


def next_step_regression(
    rates_hz: np.ndarray,
    inputs: np.ndarray,
    ei_labels: np.ndarray | None,
    *,
    rate_gain: np.ndarray | float,
    alpha: float,
    activation: str = "softplus",
    ridge: float = DEFAULT_RIDGE,
) -> NextStepEstimate:
    """Dale's-law least squares of next-step currents (module docstring), one bounded problem per
    neuron solved exactly (bounded-variable least squares on the Cholesky factor of the normal
    equations, so its cost does not grow with the number of samples).

    rates_hz [trials, time, neurons] (smoothed single trials), inputs [trials, time, n_inputs],
    ei_labels [neurons] (1 = I) or None (all E), rate_gain scalar or [neurons], alpha = dt / tau;
    `ridge` adds ridge * mean(diag) to the normal equations' diagonal.
    """
    _, n_bins, n_neurons = rates_hz.shape
    if n_bins < 2:
        raise ValueError(f"rates_hz: expected at least 2 time bins for a next-step regression; found {n_bins}")
    gain = np.broadcast_to(np.asarray(rate_gain, dtype=np.float64), (n_neurons,)).copy()
    predictors, targets = next_step_targets(rates_hz, gain, alpha, activation)
    task = np.asarray(inputs, dtype=np.float64)[:, 1:].reshape(-1, inputs.shape[-1])
    design = np.hstack([predictors, task, np.ones((len(task), 1))])
    gram = design.T @ design
    gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / len(gram)
    products = design.T @ targets
    lower, upper = dale_bounds(ei_labels, n_neurons, inputs.shape[-1])
    coefficients = np.zeros((n_neurons, len(gram)))
    for neuron in range(n_neurons):
        keep = np.arange(len(gram)) != neuron
        factor = cho_factor(gram[np.ix_(keep, keep)], lower=True)[0]
        factor = np.tril(factor)
        # |A w - y|^2 = w'Gw - 2 w'c + const = |L'w - L^-1 c|^2 + const, with G = L L'
        rhs = solve_triangular(factor, products[keep, neuron], lower=True)
        solution = lsq_linear(factor.T, rhs, bounds=(lower[keep], upper[keep]), method="bvls", tol=1e-12)
        coefficients[neuron, keep] = solution.x
    residual = targets - design @ coefficients.T
    explained = 1.0 - residual.var(axis=0) / np.maximum(targets.var(axis=0), 1e-12)
    return NextStepEstimate(
        weights=coefficients[:, :n_neurons],
        input_weights=coefficients[:, n_neurons:-1],
        bias=coefficients[:, -1],
        rate_gain=gain,
        explained_variance=explained,
    )
