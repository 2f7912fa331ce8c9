"""How well a fitted model predicts the effect of each perturbation type the true network knows.

For every protocol of the `GroundTruth` (`eirnn.data.synthetic_perturbations`), applied to every
trial of the scored trials (usually the validation trials) as the experiment applies it (an
input reaching only the targeted units), the effect on each recorded neuron is the change of
its condition PSTHs (Hz, conditions x time bins): perturbed minus unperturbed, noise off, in
the true network (`eirnn.recovery.ground_truth_model`) and in the model. Neurons targeted by a
neuron-group protocol are left out (their change is the drive itself); population targets ("E",
"I") keep every neuron. Per type: the Pearson correlation of predicted vs true changes pooled
over neurons, conditions and bins, and the fraction of neurons whose mean change has the true
sign. A type is *held out* when no training trial had it; `heldout_perturbation_corr` is the
mean over held-out types, `trained_perturbation_corr` over the others (NaN when there are none).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from eirnn.data.perturbations import time_axis_ms
from eirnn.evaluation import predict_rates
from eirnn.metrics import condition_psths, pearson_r


@dataclass(eq=False)
class TypeEffect:
    """One perturbation type's predicted and true change, [conditions, time, neurons scored]."""

    predicted: np.ndarray
    true: np.ndarray
    heldout: bool
    corr: float
    sign_agreement: float


def _condition_psths(model: Any, dataset: Any, n_neurons: int, steps: Any = None) -> np.ndarray:
    rates = predict_rates(model, dataset.inputs, perturbation=steps).rates.cpu().numpy()[..., :n_neurons]
    return condition_psths(rates.astype(np.float64), np.asarray(dataset.conditions))


def type_changes(model: Any, truth: Any, dataset: Any, n_neurons: int) -> dict[str, np.ndarray]:
    """Each protocol's change of the recorded neurons' condition PSTHs in `model` (Hz,
    [conditions, time, n_neurons]): perturbed minus unperturbed, noise off."""
    if not truth.perturbation_protocols:
        return {}
    unperturbed = _condition_psths(model, dataset, n_neurons)
    return {
        label: _condition_psths(model, dataset, n_neurons, protocol.steps(dataset.n_trials, time_axis_ms(dataset)))
        - unperturbed
        for label, protocol in truth.perturbation_protocols.items()
    }


def type_effects(
    model: Any,
    true_changes: dict[str, np.ndarray],
    truth: Any,
    dataset: Any,
    trained_types: Collection[str],
    n_neurons: int,
) -> dict[str, TypeEffect]:
    """Each protocol's effect in `model` against `true_changes`, the same protocols' changes in
    the true network (`type_changes` of `eirnn.recovery.ground_truth_model`).

    Examples
    --------
    The true network predicts every protocol of its own recording exactly; with no perturbation
    trials in training, every type is held out:

    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.perturbation_recovery import summary_metrics, type_changes, type_effects
    >>> from eirnn.recovery import ground_truth_model
    >>> dataset, truth = make_recording(seed=0, n_e=6, n_i=2, n_trials=8, n_bins=20, n_conditions=2, n_inputs=4)
    >>> twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    >>> true_changes = type_changes(twin, truth, dataset, dataset.n_neurons)
    >>> effects = type_effects(twin, true_changes, truth, dataset, trained_types=(), n_neurons=dataset.n_neurons)
    >>> sorted(effects)
    ['E activation', 'E-group activation', 'E-group inactivation', 'I activation', 'I inactivation',
     'I-group inactivation']
    >>> effects["I inactivation"].predicted.shape, effects["I inactivation"].heldout  # [conditions, time, neurons]
    ((2, 20, 8), True)
    >>> summary_metrics(effects)
    {'heldout_perturbation_corr': 1.0, 'heldout_perturbation_sign_agreement': 1.0, 'trained_perturbation_corr': nan,
     'trained_perturbation_sign_agreement': nan}
    """
    effects = {}
    changes = type_changes(model, truth, dataset, n_neurons)
    for label, protocol in truth.perturbation_protocols.items():
        scored = np.setdiff1d(np.arange(n_neurons), protocol.channel.neurons)
        predicted, true = changes[label][..., scored], true_changes[label][..., scored]
        signs = np.sign(predicted.mean(axis=(0, 1))) == np.sign(true.mean(axis=(0, 1)))
        effects[label] = TypeEffect(
            predicted, true, label not in trained_types, pearson_r(predicted, true), float(signs.mean())
        )
    return effects


def summary_metrics(effects: dict[str, TypeEffect]) -> dict[str, float]:
    """heldout_/trained_perturbation_corr and _sign_agreement: means over the types of each kind.

    Examples
    --------
    See `type_effects`, whose example ends with the summary of the true network's own effects.

    >>> import numpy as np
    >>> from eirnn.perturbation_recovery import TypeEffect, summary_metrics
    >>> same = np.arange(6.0).reshape(1, 3, 2)
    >>> effects = {
    ...     "I inactivation": TypeEffect(same, same, heldout=True, corr=0.9, sign_agreement=1.0),
    ...     "E activation": TypeEffect(same, same, heldout=False, corr=0.5, sign_agreement=0.75),
    ... }
    >>> summary_metrics(effects)
    {'heldout_perturbation_corr': 0.9, 'heldout_perturbation_sign_agreement': 1.0, 'trained_perturbation_corr': 0.5,
     'trained_perturbation_sign_agreement': 0.75}
    """
    values = {}
    for group, heldout in (("heldout", True), ("trained", False)):
        chosen = [effect for effect in effects.values() if effect.heldout == heldout]
        for name in ("corr", "sign_agreement"):
            found = [getattr(effect, name) for effect in chosen if np.isfinite(getattr(effect, name))]
            values[f"{group}_perturbation_{name}"] = float(np.mean(found)) if found else float("nan")
    return values
