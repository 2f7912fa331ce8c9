"""In-silico experiments on a fitted network: silence or boost chosen units and compare.

A perturbation multiplies the output r_j of each chosen unit j by `factor` wherever it acts:
on the other units (its column of W_rec), on the behaviour readout, and in its recorded rate.
factor 0 silences the units (as an optogenetic silencing of their output would), factor 2
doubles their output, factor 1 changes nothing.

Removing inhibition from an inhibition-stabilised network makes excitation run away: the E
activity grows without bound and, in float32, overflows. Results therefore say from which time
bin the unperturbed units ran away (`runaway_bin`), and average activity only before it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eirnn.evaluation import predict_rates

POPULATIONS = ("E", "I")
RUNAWAY_ACTIVITY = 1e6  # unit activity r is O(1) in a fitted network; far beyond it, it has run away


def population_units(model: torch.nn.Module, population: str) -> np.ndarray:
    """Unit indices of the E or I population (hidden units included).

    Examples
    --------
    A network for a small recording of 6 E and 2 I neurons has 8 E units (2 of them hidden) and
    2 I units:

    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.model import create_model_for_dataset
    >>> from eirnn.in_silico_perturbations import population_units
    >>> dataset, _ = make_recording(seed=0, n_e=6, n_i=2, n_trials=8, n_bins=20, n_conditions=2, n_inputs=4)
    >>> model = create_model_for_dataset(dataset, seed=0)
    >>> population_units(model, "I"), population_units(model, "E")
    (array([8, 9]), array([0, 1, 2, 3, 4, 5, 6, 7]))
    """
    if population not in POPULATIONS:
        raise ValueError(f"population: expected one of {POPULATIONS}, found {population!r}")
    mask = model.e_mask if population == "E" else model.i_mask
    return torch.nonzero(mask).flatten().cpu().numpy()


def perturbed_copy(model: torch.nn.Module, units: Sequence[int], factor: float) -> torch.nn.Module:
    """A copy of `model` whose `units` act with their output scaled by `factor` (>= 0).

    Examples
    --------
    Doubling unit 0's output doubles its column of the recurrent weights:

    >>> import torch
    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.model import create_model_for_dataset
    >>> from eirnn.in_silico_perturbations import perturbed_copy
    >>> dataset, _ = make_recording(seed=0, n_e=6, n_i=2, n_trials=8, n_bins=20, n_conditions=2, n_inputs=4)
    >>> model = create_model_for_dataset(dataset, seed=0)
    >>> boosted = perturbed_copy(model, [0], factor=2.0)
    >>> bool(torch.allclose(boosted.recurrent_weight_raw[:, 0], 2 * model.recurrent_weight_raw[:, 0]))
    True
    >>> boosted is model  # the model itself is left as it was
    False
    """
    if factor < 0:
        raise ValueError(f"factor: expected >= 0 (Dale's law keeps each unit's sign), found {factor}")
    units = torch.as_tensor(np.asarray(units, dtype=np.int64))
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        # |W_raw| carries the magnitude; scaling a presynaptic column scales that unit's output
        perturbed.recurrent_weight_raw[:, units] *= factor
        if factor == 0:
            # a silent unit's own state no longer matters; cutting its inputs keeps it finite
            # when the rest runs away, so that 0 * inf cannot turn the network's sums into NaN
            perturbed.recurrent_weight_raw[units, :] = 0.0
        if perturbed.readout is not None:
            e_units = units[units < perturbed.n_e]
            perturbed.readout.weight[:, e_units] *= factor
        recorded = torch.isin(perturbed.recorded_units.cpu(), units)
        perturbed.log_rate_gain[recorded] += float(np.log(factor)) if factor > 0 else -torch.inf
    return perturbed


@dataclass
class PerturbationResult:
    units: np.ndarray  # perturbed unit indices
    factor: float
    e_mask: np.ndarray  # [n_units]
    i_mask: np.ndarray
    baseline_units: np.ndarray  # r [trials, time, n_units]
    perturbed_units: np.ndarray
    baseline_rates: np.ndarray  # recorded neurons, Hz [trials, time, neurons]
    perturbed_rates: np.ndarray

    @property
    def unperturbed_mask(self) -> np.ndarray:
        mask = np.ones_like(self.e_mask)
        mask[self.units] = False
        return mask

    @property
    def runaway_bin(self) -> int | None:
        """First time bin in which an unperturbed unit's activity is non-finite or above
        RUNAWAY_ACTIVITY in the perturbed network, or None."""
        activity = self.perturbed_units[..., self.unperturbed_mask]
        ran_away = ~(np.abs(activity) <= RUNAWAY_ACTIVITY).all(axis=(0, 2))
        return int(np.argmax(ran_away)) if ran_away.any() else None

    def mean_activity(self, population: str, perturbed: bool) -> float:
        """Mean r over trials, the population's unperturbed units and the time bins before the
        perturbed network ran away (all bins when it did not)."""
        mask = (self.e_mask if population == "E" else self.i_mask) & self.unperturbed_mask
        activity = self.perturbed_units if perturbed else self.baseline_units
        return float(activity[:, : self.runaway_bin, mask].mean())


def run_perturbation(
    model: torch.nn.Module,
    inputs: np.ndarray,
    *,
    units: Sequence[int] | None = None,
    population: str | None = None,
    factor: float = 0.0,
    baseline: Any = None,
) -> PerturbationResult:
    """Simulate `inputs` [trials, time, n_inputs] (noise off) with and without the perturbation
    of `units` (or of a whole `population`, "E" or "I"). `baseline`: the model's unperturbed
    output for these inputs (`eirnn.evaluation.predict_rates`), when already at hand.

    Examples
    --------
    Silence the I population of a (here untrained) network on a small recording's trials:

    >>> import numpy as np
    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.model import create_model_for_dataset
    >>> from eirnn.in_silico_perturbations import run_perturbation
    >>> dataset, _ = make_recording(seed=0, n_e=6, n_i=2, n_trials=8, n_bins=20, n_conditions=2, n_inputs=4)
    >>> model = create_model_for_dataset(dataset, seed=0)
    >>> result = run_perturbation(model, dataset.inputs, population="I", factor=0.0)
    >>> result.units, result.perturbed_rates.shape  # [trials, time, recorded neurons], Hz
    (array([8, 9]), (8, 20, 8))
    >>> silenced = np.asarray(dataset.ei_labels) == 1  # the recorded I neurons
    >>> bool((result.perturbed_rates[..., silenced] == 0).all()), bool((result.baseline_rates[..., silenced] > 0).all())
    (True, True)
    """
    if (units is None) == (population is None):
        raise ValueError("give units or population, not both")
    chosen = population_units(model, population) if population is not None else np.asarray(units, dtype=np.int64)
    baseline = predict_rates(model, inputs) if baseline is None else baseline
    perturbed = predict_rates(perturbed_copy(model, chosen, factor), inputs)
    return PerturbationResult(
        units=chosen,
        factor=factor,
        e_mask=model.e_mask.cpu().numpy(),
        i_mask=model.i_mask.cpu().numpy(),
        baseline_units=baseline.units.cpu().numpy(),
        perturbed_units=perturbed.units.cpu().numpy(),
        baseline_rates=baseline.rates.cpu().numpy(),
        perturbed_rates=perturbed.rates.cpu().numpy(),
    )
