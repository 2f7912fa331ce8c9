"""In-silico experiments on a fitted network: silence or boost chosen units and compare.

A perturbation multiplies the output r_j of each chosen unit j by `factor` wherever it acts:
on the other units (its column of W_rec), on the behaviour readout, and in its recorded rate.
factor 0 silences the units (as an optogenetic silencing of their output would), factor 2
doubles their output, factor 1 changes nothing.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from eirnn.evaluation import predict_rates

POPULATIONS = ("E", "I")


def population_units(model: torch.nn.Module, population: str) -> np.ndarray:
    """Unit indices of the E or I population (hidden units included)."""
    if population not in POPULATIONS:
        raise ValueError(f"population: expected one of {POPULATIONS}, found {population!r}")
    mask = model.e_mask if population == "E" else model.i_mask
    return torch.nonzero(mask).flatten().cpu().numpy()


def perturbed_copy(model: torch.nn.Module, units: Sequence[int], factor: float) -> torch.nn.Module:
    """A copy of `model` whose `units` act with their output scaled by `factor` (>= 0)."""
    if factor < 0:
        raise ValueError(f"factor: expected >= 0 (Dale's law keeps each unit's sign), found {factor}")
    units = torch.as_tensor(np.asarray(units, dtype=np.int64))
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        # |W_raw| carries the magnitude; scaling a presynaptic column scales that unit's output
        perturbed.recurrent_weight_raw[:, units] *= factor
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

    def mean_activity(self, population: str, perturbed: bool) -> float:
        """Mean r over trials, time and the population's units that were not perturbed."""
        mask = (self.e_mask if population == "E" else self.i_mask).copy()
        mask[self.units] = False
        activity = self.perturbed_units if perturbed else self.baseline_units
        return float(activity[..., mask].mean())


def run_perturbation(
    model: torch.nn.Module,
    inputs: np.ndarray,
    *,
    units: Sequence[int] | None = None,
    population: str | None = None,
    factor: float = 0.0,
) -> PerturbationResult:
    """Simulate `inputs` [trials, time, n_inputs] (noise off) with and without the perturbation
    of `units` (or of a whole `population`, "E" or "I")."""
    if (units is None) == (population is None):
        raise ValueError("give units or population, not both")
    chosen = population_units(model, population) if population is not None else np.asarray(units, dtype=np.int64)
    baseline = predict_rates(model, inputs)
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
