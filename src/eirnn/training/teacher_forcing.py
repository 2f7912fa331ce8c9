"""The teacher-forced term of the fitting objective, and the model's initialisation from the
next-step regression (`eirnn.training.next_step`).

The free-running loss runs the network from one shared state with fresh process noise and
matches what trials share (their PSTHs); any circuit with the right averages fits it equally
well. The teacher-forced term asks the model to predict each recorded neuron's next current
from the *recorded* single-trial rates (smoothed spike counts), one step ahead:

    y_a[t] = (x_a[t+1] - (1 - alpha) x_a[t]) / alpha,   x = f^-1(R / gain)
    y^_a[t] = sum_{b recorded} W_ab r_b[t] + sum_{h hidden} W_ah r_h[t] + drive_a(u[t+1])

where r_b[t] = R_b[t] / gain_b are the recorded rates, r_h[t] the hidden units' rates from the
same batch's free-running pass (held fixed: the term constrains no hidden unit), and the drive
uses the input of step t+1, as the model's own step from output t to output t+1 does. The loss
is the per-neuron mean of (y - y^)^2 / var(y), the unexplained share of each neuron's next-step
variance, so it sits on the free-running loss's scale. The gain is held fixed in it (the
free-running loss sets it). The model itself stays the free-running Dale's-law network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from eirnn.training.next_step import inverse_activation, next_step_regression, single_trial_rates

# an LS weight at its Dale bound (zero) starts at this share of the mean |weight| instead:
# |W_raw| has zero gradient at exactly zero, so a zero weight could never grow again
MIN_INITIAL_WEIGHT_SHARE = 1e-2


def hidden_units(model: Any) -> torch.Tensor:
    """Indices of the units that no recorded neuron maps to."""
    recorded = torch.zeros(model.n_units, dtype=torch.bool, device=model.recorded_units.device)
    recorded[model.recorded_units] = True
    return torch.nonzero(~recorded).flatten()


def teacher_forced_loss(model: Any, inputs: Any, single_trial_rates_hz: torch.Tensor, units: torch.Tensor):
    """The teacher-forced term (module docstring) for one batch.

    inputs: the batch's `PreparedInputs`; single_trial_rates_hz [B, T, n_recorded] smoothed
    recorded rates in Hz; units [B, T, n_units] the batch's free-running unit rates.
    """
    recorded = model.recorded_units
    gain = model.rate_gain.detach()
    unit_rates = single_trial_rates_hz / gain
    currents = inverse_activation(unit_rates, model.activation)
    alpha = model.alpha
    target = (currents[:, 1:] - (1 - alpha) * currents[:, :-1]) / alpha
    weights = model.effective_recurrent_weights()[recorded]
    hidden = hidden_units(model)
    drive_table = model.input_projection(model.embedding(inputs.unique_inputs))[:, recorded]
    prediction = unit_rates[:, :-1] @ weights[:, recorded].t() + drive_table[inputs.step_rows[:, 1:]]
    if hidden.numel():
        prediction = prediction + units[:, :-1].detach().index_select(-1, hidden) @ weights[:, hidden].t()
    error = (prediction - target).square().mean(dim=(0, 1))
    variance = target.detach().var(dim=(0, 1)).clamp_min(1e-6)
    return (error / variance).mean()


def free_running_weight(settings: Any) -> float:
    """`objective` "free_running": the teacher-forced term's weight, zero (the rate loss alone).

    Examples
    --------
    >>> from eirnn.choices import OBJECTIVES
    >>> from eirnn.config import TrainConfig
    >>> OBJECTIVES["free_running"](TrainConfig(teacher_forcing_weight=0.5))
    0.0
    """
    return 0.0


def teacher_forced_weight(settings: Any) -> float:
    """`objective` "teacher_forced": the teacher-forced term's weight, `settings.teacher_forcing_weight`.

    Examples
    --------
    >>> from eirnn.choices import OBJECTIVES
    >>> from eirnn.config import TrainConfig
    >>> OBJECTIVES["teacher_forced"](TrainConfig(teacher_forcing_weight=0.5))
    0.5
    """
    return float(settings.teacher_forcing_weight)


def balance_rows(model: Any) -> None:
    """Scale each row's inhibitory weights so that they sum to its excitatory ones, as the random
    initialisation does (`eirnn.model.network.balanced_dale_magnitudes`). The regression's rows
    are excitation-heavy (they absorb the unrecorded units' mean drive), and unbalanced rows make
    the network's mean mode run away from the first step."""
    raw = model.recurrent_weight_raw
    weights = model.effective_recurrent_weights()
    excitation = weights[:, model.e_mask].sum(1, keepdim=True)
    inhibition = -weights[:, model.i_mask].sum(1, keepdim=True)
    if model.i_mask.any():
        raw[:, model.i_mask] *= torch.where(inhibition > 0, excitation / inhibition.clamp_min(1e-12), 1.0)


def initialise_from_regression(model: Any, rates_hz: np.ndarray, inputs: np.ndarray, labels: Any) -> Any:
    """Set the recorded block of W_rec to the Dale's-law next-step regression on `rates_hz`
    [trials, time, neurons] (smoothed single-trial rates in Hz), using the model's gains, time
    constant and activation; returns the `NextStepEstimate`. The whole matrix is then scaled
    down to the model's `spectral_radius` if it exceeds it (the random initialisation's scale).
    Hidden units' weights, the input pathway and the gains keep their values: the regression's
    input weights act on raw inputs, which the model sees only through its embedding."""
    estimate = next_step_regression(
        rates_hz,
        inputs,
        labels,
        rate_gain=model.rate_gain.detach().double().cpu().numpy(),
        alpha=model.alpha,
        activation=model.activation,
    )
    magnitudes = np.abs(estimate.weights)
    floor = MIN_INITIAL_WEIGHT_SHARE * magnitudes[magnitudes > 0].mean() if (magnitudes > 0).any() else 0.0
    units = model.recorded_units
    with torch.no_grad():
        raw = model.recurrent_weight_raw
        block = torch.as_tensor(np.maximum(magnitudes, floor), dtype=raw.dtype, device=raw.device)
        raw[units[:, None], units[None, :]] = block
        balance_rows(model)
        radius = torch.linalg.eigvals(model.effective_recurrent_weights().double()).abs().max().item()
        wanted = model.hparams["spectral_radius"]
        if radius > wanted:
            # the regression absorbs unrecorded input and a mis-set time constant into the
            # recorded block, which can then run away; scaling keeps every weight's share
            raw.mul_(wanted / radius)
    return estimate


def initialise_by_least_squares(model: Any, train: Any, smoothing_bins: float) -> None:
    """`recurrent_init` "least_squares": `initialise_from_regression` on the training set's
    single-trial rates (spike counts smoothed over `smoothing_bins` bins).

    Examples
    --------
    >>> import torch
    >>> from eirnn.choices import RECURRENT_INITS
    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.model import create_model_for_dataset
    >>> dataset, _ = make_recording(seed=0, n_e=3, n_i=2, n_inputs=4, n_bins=20, n_trials=8, n_conditions=2)
    >>> model = create_model_for_dataset(dataset, input_embed_type="linear", input_embed_dim=4, seed=0)
    >>> before = model.effective_recurrent_weights().clone()
    >>> RECURRENT_INITS["least_squares"](model, dataset, 1.0)
    >>> bool((model.effective_recurrent_weights() != before).any())
    True
    """
    rates = single_trial_rates(train, smoothing_bins)
    initialise_from_regression(model, rates, train.inputs, train.ei_labels)


def keep_random_initialisation(model: Any, train: Any, smoothing_bins: float) -> None:
    """`recurrent_init` "random": W_rec keeps the model's balanced random Dale matrix
    (`eirnn.model.network.balanced_dale_magnitudes`); the arguments are those of
    `initialise_by_least_squares`.

    Examples
    --------
    >>> from eirnn.choices import RECURRENT_INITS
    >>> RECURRENT_INITS["random"](None, None, 1.0) is None
    True
    """
