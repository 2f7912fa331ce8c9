"""What a fit recovers of a known circuit: compare a fitted model with the network that generated
the data (`eirnn.data.synthetic.GroundTruth`).

Two kinds of numbers, both among the recorded neurons only (the fitted model never sees the
hidden units of the true network):

* **Weights.** The effective weight from recorded neuron b onto recorded neuron a is
  ``W_rec[unit(a), unit(b)] / gain(b)``: the drive a receives per Hz of b's recorded rate (both
  networks turn rates r into Hz with a gain, and only the product is pinned by data). Pearson
  correlation of fitted vs true effective weights over all ordered pairs a != b
  (`weight_corr`), per block (`weight_corr_XY`: onto X from Y, i.e. W[post=X, pre=Y], blocks by
  the *true* labels) and the fraction of pairs whose fitted weight has the true sign
  (`sign_agreement`; 1 by construction when the fit used the true E/I labels, since Dale's law
  fixes every weight's sign by its presynaptic label).
* **Perturbations.** A seeded group of recorded neurons that are truly inhibitory (then a group
  that are truly excitatory) is silenced (output x 0) and separately boosted (output x 2) with
  `eirnn.in_silico_perturbations.perturbed_copy`, in the true network and in the fitted model, on the same
  inputs, noise off. For every other recorded neuron, the change of its condition PSTHs
  (Hz, conditions x time bins, bins before either network ran away) is compared:
  `perturbation_corr` is the Pearson correlation of predicted vs true changes pooled over
  neurons, conditions and bins; `perturbation_sign_agreement` the fraction of neurons whose mean
  change has the true sign.

The null is the fitted model with its recurrent weights shuffled within each of its own E/I
blocks (seeded): same weight distribution and Dale's signs, no structure. The baseline
(`gt_least_squares_*`) is the convex Dale's-law next-step regression of the scored trials'
smoothed single-trial currents (`eirnn.training.next_step`, the fitted model's gains, time
constant, activation and labels): what a regression gets from the same trials without a fit.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from eirnn.evaluation import predict_rates
from eirnn.in_silico_perturbations import run_perturbation
from eirnn.metrics import condition_psths, pearson_r
from eirnn.perturbation_recovery import TypeEffect, summary_metrics, type_changes, type_effects
from eirnn.training.next_step import next_step_regression, single_trial_rates

# smoothing of the scored trials' spike counts for the least-squares baseline, in bins
BASELINE_SMOOTHING_BINS = 1.0

BLOCKS = ("EE", "EI", "IE", "II")
PERTURBATIONS = {"silence": 0.0, "boost": 2.0}
GROUP_FRACTION = 0.25  # share of the recorded neurons of a population perturbed together
BURN_IN_TAUS = 5


def ground_truth_model(truth: Any, bin_ms: float, initial_inputs: np.ndarray) -> torch.nn.Module:
    """The true network as an `EIRNN` (noise off), wired like a fitted model: neuron j of the
    data set is `model.recorded_units[j]` (the true network's hidden units follow as extra
    neurons), so every tool that reads a fitted model reads this one the same way.

    The input embedding is the identity, so W_in and the bias are the true ones; h0 is the noise-
    free state after a burn-in of BURN_IN_TAUS time constants under the mean of `initial_inputs`
    [trials, n_inputs] (the generator burns in each trial with noise; noise off, one shared start).
    """
    from eirnn.model import EIRNN

    n_recorded = len(truth.recorded_units)
    hidden = np.setdiff1d(np.arange(truth.n_units), truth.recorded_units)
    neuron_order = np.concatenate([truth.recorded_units, hidden])  # true unit of each twin neuron
    labels = truth.unit_is_inhibitory[neuron_order].astype(int)
    n_inputs = truth.w_in.shape[1]
    model = EIRNN(
        int((labels == 0).sum()),
        int((labels == 1).sum()),
        n_inputs,
        enforce_ratio=False,
        input_embed_dim=n_inputs,
        input_embed_type="linear",
        learnable_h0=False,
        tau=truth.tau_ms,
        dt=bin_ms,
        noise_scale=0.0,
        neuron_labels=labels.tolist(),
        self_connections=False,
    )
    true_unit = np.empty(truth.n_units, dtype=np.int64)  # true unit of each twin unit
    true_unit[model.recorded_units.numpy()] = neuron_order
    w_rec = truth.w_rec[true_unit][:, true_unit]
    state = _burn_in(truth, bin_ms, np.asarray(initial_inputs, dtype=np.float64).mean(axis=0))
    with torch.no_grad():
        model.recurrent_weight_raw.copy_(torch.as_tensor(np.abs(w_rec)))
        model.embedding.projection.weight.copy_(torch.eye(n_inputs))
        model.embedding.projection.bias.zero_()
        model.input_projection.weight.copy_(torch.as_tensor(truth.w_in[true_unit]))
        model.input_projection.bias.copy_(torch.as_tensor(truth.bias[true_unit]))
        model.h0.copy_(torch.as_tensor(state[true_unit]))
        model.log_rate_gain.fill_(float(np.log(truth.rate_gain_hz)))
    model.n_data_neurons = n_recorded
    return model.eval()


def _burn_in(truth: Any, bin_ms: float, first_input: np.ndarray) -> np.ndarray:
    leak = bin_ms / truth.tau_ms
    drive = truth.w_in @ first_input + truth.bias
    state = drive.copy()
    for _ in range(round(BURN_IN_TAUS / leak)):
        rates = np.logaddexp(0.0, state)
        state = (1 - leak) * state + leak * (truth.w_rec @ rates + drive)
    return state


def effective_weights(model: torch.nn.Module, n_neurons: int) -> np.ndarray:
    """[n_neurons, n_neurons] effective weights among the first `n_neurons` recorded neurons
    (data set order): W_rec[unit(a), unit(b)] / gain(b), drive per Hz of presynaptic rate."""
    units = model.recorded_units[:n_neurons]
    with torch.no_grad():
        weights = model.effective_recurrent_weights()[units][:, units]
        gains = model.rate_gain[:n_neurons]
        return (weights / gains[None, :]).double().cpu().numpy()


def weight_recovery(fitted: np.ndarray, true: np.ndarray, true_is_inhibitory: np.ndarray) -> dict[str, float]:
    """Correlation overall and per block, and sign agreement, over ordered pairs a != b.

    Examples
    --------
    Weights among 2 E and 2 I neurons, fitted at half their true size: every sign is right and
    the correlations are perfect, but for the EE and II blocks, whose 2 pairs each are too few for
    a correlation (NaN):

    >>> import numpy as np
    >>> from eirnn.recovery import weight_recovery
    >>> true = np.array([[0.0, 0.8, -1.5, -0.4], [0.6, 0.0, -1.2, -0.9], [1.0, 0.1, 0.0, -0.3], [0.2, 0.7, -0.5, 0.0]])
    >>> scores = weight_recovery(0.5 * true, true, np.array([False, False, True, True]))
    >>> {name: round(value, 3) for name, value in scores.items()}
    {'weight_corr': 1.0, 'sign_agreement': 1.0, 'weight_corr_EE': nan, 'weight_corr_EI': 1.0, 'weight_corr_IE': 1.0,
     'weight_corr_II': nan}
    """
    off_diagonal = ~np.eye(len(fitted), dtype=bool)
    result = {
        "weight_corr": pearson_r(fitted[off_diagonal], true[off_diagonal]),
        "sign_agreement": float((np.sign(fitted[off_diagonal]) == np.sign(true[off_diagonal])).mean()),
    }
    for block in BLOCKS:
        post = true_is_inhibitory if block[0] == "I" else ~true_is_inhibitory
        pre = true_is_inhibitory if block[1] == "I" else ~true_is_inhibitory
        pairs = off_diagonal & post[:, None] & pre[None, :]
        result[f"weight_corr_{block}"] = pearson_r(fitted[pairs], true[pairs])
    return result


def least_squares_baseline(model: torch.nn.Module, dataset: Any, true_weights: np.ndarray, truth_labels) -> dict:
    """`weight_recovery` of the next-step regression on `dataset`'s smoothed single trials, run
    with the fitted model's gains, time constant, activation and the data's E/I labels."""
    n_neurons = len(truth_labels)
    estimate = next_step_regression(
        single_trial_rates(dataset, BASELINE_SMOOTHING_BINS),
        np.asarray(dataset.inputs),
        dataset.ei_labels,
        rate_gain=model.rate_gain[:n_neurons].detach().double().cpu().numpy(),
        alpha=model.alpha,
        activation=model.activation,
    )
    return weight_recovery(estimate.effective_weights(), true_weights, truth_labels)


def perturbation_groups(true_is_inhibitory: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Recorded neurons perturbed together: GROUP_FRACTION of the truly I, then of the truly E
    neurons (at least one each), drawn with their own seed."""
    rng = np.random.default_rng([seed, 12])
    groups = {}
    for name, members in (("I", np.flatnonzero(true_is_inhibitory)), ("E", np.flatnonzero(~true_is_inhibitory))):
        size = max(1, round(GROUP_FRACTION * len(members)))
        groups[name] = np.sort(rng.choice(members, size, replace=False))
    return groups


@dataclass
class PerturbationEffect:
    """Change of every recorded neuron's condition PSTH (Hz) under one perturbation."""

    change: np.ndarray  # [conditions, time, neurons]
    runaway_bin: int | None


def perturbation_effect(
    model: torch.nn.Module,
    inputs: np.ndarray,
    conditions: np.ndarray,
    neurons: np.ndarray,
    factor: float,
    baseline: Any = None,
) -> PerturbationEffect:
    """`baseline`: the model's unperturbed output for `inputs`, shared by several perturbations."""
    n_neurons = getattr(model, "n_data_neurons", model.n_recorded)
    units = model.recorded_units[torch.as_tensor(neurons)].cpu().numpy()
    result = run_perturbation(model, inputs, units=units, factor=factor, baseline=baseline)
    before = condition_psths(result.baseline_rates[..., :n_neurons].astype(np.float64), conditions)
    after = condition_psths(result.perturbed_rates[..., :n_neurons].astype(np.float64), conditions)
    return PerturbationEffect(after - before, result.runaway_bin)


def compare_effects(
    predicted: PerturbationEffect, true: PerturbationEffect, neurons: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(correlation, sign agreement, predicted, true): the other neurons' changes, in the bins
    before either network ran away."""
    stops = [b for b in (predicted.runaway_bin, true.runaway_bin) if b is not None]
    last = min(stops) if stops else None
    others = np.setdiff1d(np.arange(true.change.shape[-1]), neurons)
    fitted_change = predicted.change[:, :last][..., others]
    true_change = true.change[:, :last][..., others]
    if fitted_change.shape[1] == 0:
        return float("nan"), float("nan"), fitted_change, true_change
    signs = np.sign(fitted_change.mean(axis=(0, 1))) == np.sign(true_change.mean(axis=(0, 1)))
    return pearson_r(fitted_change, true_change), float(signs.mean()), fitted_change, true_change


def shuffled_within_blocks(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of `model` whose recurrent weights are permuted within each of its E/I blocks
    (off-diagonal entries only): same weights and signs, structure destroyed."""
    null = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        raw = null.recurrent_weight_raw
        off_diagonal = ~torch.eye(raw.shape[0], dtype=torch.bool, device=raw.device)
        for post in (null.e_mask, null.i_mask):
            for pre in (null.e_mask, null.i_mask):
                block = post[:, None] & pre[None, :] & off_diagonal
                values = raw[block]
                raw[block] = values[torch.randperm(values.numel(), generator=generator).to(values.device)]
    return null


@dataclass(eq=False)
class Recovery:
    """gt_* metrics of a fitted model and of its null, plus what the report's figure shows."""

    metrics: dict[str, float]
    fitted_weights: np.ndarray  # [neurons, neurons] effective weights
    true_weights: np.ndarray
    true_is_inhibitory: np.ndarray
    groups: dict[str, np.ndarray]
    effects: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (predicted, true)
    type_effects: dict[str, TypeEffect] = field(default_factory=dict)  # perturbation type -> effects


def _score(model, twin, inputs, conditions, truth_labels, groups, true_weights, true_effects, n_neurons):
    values = weight_recovery(effective_weights(model, n_neurons), true_weights, truth_labels)
    effects = {}
    baseline = predict_rates(model, inputs)
    for group, neurons in groups.items():
        for kind, factor in PERTURBATIONS.items():
            name = f"{kind}_{group}"
            predicted = perturbation_effect(model, inputs, conditions, neurons, factor, baseline)
            corr, sign, fitted_change, true_change = compare_effects(predicted, true_effects[name], neurons)
            values[f"perturbation_corr_{name}"] = corr
            values[f"perturbation_sign_agreement_{name}"] = sign
            effects[name] = (fitted_change, true_change)
    names = [f"{kind}_{group}" for group in groups for kind in PERTURBATIONS]
    values["perturbation_corr"] = float(np.nanmean([values[f"perturbation_corr_{n}"] for n in names]))
    values["perturbation_sign_agreement"] = float(
        np.nanmean([values[f"perturbation_sign_agreement_{n}"] for n in names])
    )
    return values, effects


def recover(
    model: torch.nn.Module, truth: Any, dataset: Any, *, seed: int = 0, trained_types: Collection[str] = ()
) -> Recovery:
    """Score `model` (fitted to `dataset`, usually the validation trials of a recording with
    `truth`) and its null against the true network. Metric names carry the `gt_` prefix, the
    null's `gt_null_`. `trained_types`: the perturbation types of the training trials; the
    truth's other protocols are scored as held out (`eirnn.perturbation_recovery`).

    Examples
    --------
    The true network itself (`ground_truth_model`) recovers its own weights and perturbation
    effects exactly; its block-shuffled null does not:

    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.recovery import ground_truth_model, recover
    >>> dataset, truth = make_recording(seed=0, n_e=6, n_i=2, n_trials=8, n_bins=20, n_conditions=2, n_inputs=4)
    >>> twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    >>> scores = recover(twin, truth, dataset, seed=0)
    >>> round(scores.metrics["gt_weight_corr"], 3), round(scores.metrics["gt_perturbation_corr"], 3)
    (1.0, 1.0)
    >>> scores.metrics["gt_null_weight_corr"] < 1, scores.fitted_weights.shape  # [neurons, neurons]
    (True, (8, 8))
    """
    n_neurons = len(truth.recorded_units)
    truth_labels = truth.unit_is_inhibitory[truth.recorded_units]
    inputs = np.asarray(dataset.inputs, dtype=np.float32)
    conditions = np.asarray(dataset.conditions)
    twin = ground_truth_model(truth, float(dataset.bin_ms), inputs[:, 0])
    true_weights = effective_weights(twin, n_neurons)
    groups = perturbation_groups(truth_labels, seed)
    twin_baseline = predict_rates(twin, inputs)
    true_effects = {
        f"{kind}_{group}": perturbation_effect(twin, inputs, conditions, neurons, factor, twin_baseline)
        for group, neurons in groups.items()
        for kind, factor in PERTURBATIONS.items()
    }
    common = (twin, inputs, conditions, truth_labels, groups, true_weights, true_effects, n_neurons)
    fitted, effects = _score(model, *common)
    null_model = shuffled_within_blocks(model, seed)
    null, _ = _score(null_model, *common)
    metrics = {f"gt_{k}": v for k, v in fitted.items()}
    metrics.update({f"gt_null_{k}": null[k] for k in ("weight_corr", "sign_agreement", "perturbation_corr")})
    metrics["gt_null_perturbation_sign_agreement"] = null["perturbation_sign_agreement"]
    baseline = least_squares_baseline(model, dataset, true_weights, truth_labels)
    metrics.update({f"gt_least_squares_{k}": v for k, v in baseline.items() if k != "sign_agreement"})
    true_changes = type_changes(twin, truth, dataset, n_neurons)
    by_type = type_effects(model, true_changes, truth, dataset, trained_types, n_neurons)
    if by_type:
        metrics.update({f"gt_{k}": v for k, v in summary_metrics(by_type).items()})
        null_by_type = type_effects(null_model, true_changes, truth, dataset, trained_types, n_neurons)
        metrics.update({f"gt_null_{k}": v for k, v in summary_metrics(null_by_type).items() if k.endswith("_corr")})
    return Recovery(
        metrics=metrics,
        fitted_weights=effective_weights(model, n_neurons),
        true_weights=true_weights,
        true_is_inhibitory=truth_labels,
        groups=groups,
        effects=effects,
        type_effects=by_type,
    )
