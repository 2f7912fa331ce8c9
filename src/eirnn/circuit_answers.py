"""A fixed set of circuit questions asked of one fitted network ("answers"); `docs/metrics.md`
defines each with its unit.

* **Perturbations** (`silence_E`, `boost_E`, `silence_I`, `boost_I`, and the same for seeded
  groups of recorded neurons, `silence_group1`, ...): the output of the chosen units is scaled
  by 0 (silence) or 2 (boost) with `eirnn.in_silico_perturbations.perturbed_copy`, the condition's trials are
  simulated with noise off, and the answer for (condition, neuron) is the change of the
  neuron's condition PSTH averaged over the time bins before the network ran away (Hz).
  Perturbed recorded neurons get NaN (the question is about the *other* neurons).
* **Effective gain** (`gain_EI`, `gain_IE`, per condition, dimensionless): the steady-state
  change of the mean rate r of the I (E) units when every E (I) unit's output rises by one
  unit of r, through all paths of the network linearised at the condition's operating point.
* **Stability** (`leading_eigenvalue`, per condition, 1/s): the real part of the leading
  eigenvalue of the continuous-time linearisation at the operating point; negative is stable.
* **Fixed points** under each condition's input (`eirnn.fixed_points`): their number, how many
  are stable, their recorded rates (Hz); `n_stable_fixed_points` is the answer.

A condition's input is its mean input over trials and time bins; its operating point is the
network's mean state x over its trials and time bins (noise off), where the linearisation
uses the slopes f'(x).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eirnn.choices import ACTIVATIONS
from eirnn.evaluation import predict_rates
from eirnn.fixed_points import (
    FixedPoints,
    continuous_eigenvalues,
    find_fixed_points,
    network_map,
    seeded_starts,
    simulate_states,
)
from eirnn.in_silico_perturbations import perturbed_copy, population_units
from eirnn.metrics import condition_psths
from eirnn.recovery import GROUP_FRACTION, PERTURBATIONS

N_GROUPS = 2
RUNAWAY_ACTIVITY = 1e6  # as eirnn.in_silico_perturbations: far beyond a fitted network's O(1) unit rates

#: answer name pattern -> unit
ANSWER_UNITS = {"silence_*, boost_*": "Hz", "gain_EI, gain_IE": "1 (r per r)", "leading_eigenvalue": "1/s"}


def neuron_groups(n_neurons: int, seed: int) -> dict[str, np.ndarray]:
    """N_GROUPS disjoint groups of GROUP_FRACTION of the recorded neurons (at least one each),
    drawn with their own seed and blind to the E/I labels, so that every fit of an ensemble
    and the true network are asked about the same neurons whatever labels they were given."""
    rng = np.random.default_rng([seed, 21])
    size = max(1, round(GROUP_FRACTION * n_neurons))
    order = rng.permutation(n_neurons)
    return {
        f"group{k + 1}": np.sort(order[k * size : (k + 1) * size])
        for k in range(N_GROUPS)
        if (k + 1) * size <= n_neurons
    }


@dataclass
class CircuitAnswers:
    """What one network answers: `values` maps an answer name to its signed values
    ([conditions, neurons] for perturbations, [conditions] otherwise; NaN where not asked);
    `fixed_points` holds each condition's fixed points, `fixed_point_rates` their recorded
    rates [points, neurons] (Hz)."""

    values: dict[str, np.ndarray]
    fixed_points: list[FixedPoints] = field(default_factory=list)
    fixed_point_rates: list[np.ndarray] = field(default_factory=list)


def _recorded_count(model: torch.nn.Module) -> int:
    # a ground-truth twin (eirnn.recovery) records its hidden units too, after the data's neurons
    return int(getattr(model, "n_data_neurons", model.n_recorded))


def _runaway_bin(units: np.ndarray, perturbed: np.ndarray) -> int | None:
    activity = units[..., ~perturbed]
    ran_away = ~(np.abs(activity) <= RUNAWAY_ACTIVITY).all(axis=(0, 2))
    return int(np.argmax(ran_away)) if ran_away.any() else None


def perturbation_answers(
    model: torch.nn.Module, inputs: np.ndarray, conditions: np.ndarray, groups: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Every perturbation answer [conditions, neurons] (Hz) of `model` on `inputs`."""
    n_neurons = _recorded_count(model)
    recorded_units = model.recorded_units[:n_neurons].cpu().numpy()
    baseline = condition_psths(
        predict_rates(model, inputs).rates.numpy()[..., :n_neurons].astype(np.float64), conditions
    )
    targets = {population: population_units(model, population) for population in ("E", "I")}
    targets.update({name: recorded_units[neurons] for name, neurons in groups.items()})
    answers = {}
    for target, units in targets.items():
        perturbed_mask = np.zeros(model.n_units, dtype=bool)
        perturbed_mask[units] = True
        for kind, factor in PERTURBATIONS.items():
            output = predict_rates(perturbed_copy(model, units, factor), inputs)
            stop = _runaway_bin(output.units.numpy(), perturbed_mask)
            after = condition_psths(output.rates.numpy()[..., :n_neurons].astype(np.float64), conditions)
            with np.errstate(invalid="ignore"):
                change = (
                    (after - baseline)[:, :stop].mean(axis=1) if stop != 0 else np.full(baseline[:, 0].shape, np.nan)
                )
            change[:, perturbed_mask[recorded_units]] = np.nan
            answers[f"{kind}_{target}"] = change
    return answers


def _slopes(states: torch.Tensor, activation: str) -> torch.Tensor:
    states = states.clone().requires_grad_(True)
    (slope,) = torch.autograd.grad(ACTIVATIONS[activation].rate(states).sum(), states)
    return slope


def linear_answers(model: torch.nn.Module, operating_points: torch.Tensor) -> dict[str, np.ndarray]:
    """gain_EI, gain_IE and leading_eigenvalue [conditions] at each operating point [C, N]."""
    weight = model.effective_recurrent_weights().detach().double().cpu()
    e_mask, i_mask = model.e_mask.cpu(), model.i_mask.cpu()
    dt_s = float(model.hparams["dt"]) / 1000.0
    identity = torch.eye(len(weight), dtype=weight.dtype)
    gains: dict[str, list[float]] = {"gain_EI": [], "gain_IE": [], "leading_eigenvalue": []}
    for point in operating_points:
        slope = torch.diag(_slopes(point, model.activation))
        # steady state of x = W (f(x) + extra output): dr = D (I - W D)^-1 W d(output)
        response = slope @ torch.linalg.solve(identity - weight @ slope, weight)
        for name, post, pre in (("gain_EI", i_mask, e_mask), ("gain_IE", e_mask, i_mask)):
            block = response[post][:, pre]
            gains[name].append(float(block.sum(1).mean()) if block.numel() else float("nan"))
        map_eigenvalues = torch.linalg.eigvals((1 - model.alpha) * identity + model.alpha * weight @ slope).numpy()
        gains["leading_eigenvalue"].append(float(continuous_eigenvalues(map_eigenvalues, dt_s).real.max()))
    return {name: np.asarray(values) for name, values in gains.items()}


def ask_circuit(
    model: torch.nn.Module, dataset: Any, *, group_seed: int = 0, seed: int = 0, n_starts: int = 32
) -> CircuitAnswers:
    """Ask `model` every question on the trials of `dataset` (inputs and conditions only):
    perturbation answers for the E and I populations and for `neuron_groups(..., group_seed)`,
    effective gains and stability at each condition's operating point, and fixed points under
    each condition's mean input from `n_starts` starts drawn with `seed`.

    Examples
    --------
    A (here untrained) network asked about a small recording with 2 conditions and 8 neurons:

    >>> from eirnn.circuit_answers import ask_circuit
    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.model import create_model_for_dataset
    >>> dataset, _ = make_recording(seed=0, n_e=6, n_i=2, n_trials=8, n_bins=20, n_conditions=2, n_inputs=4)
    >>> model = create_model_for_dataset(dataset, seed=0)
    >>> answers = ask_circuit(model, dataset, n_starts=2)
    >>> sorted(answers.values)
    ['boost_E', 'boost_I', 'boost_group1', 'boost_group2', 'gain_EI', 'gain_IE', 'leading_eigenvalue',
     'n_stable_fixed_points', 'silence_E', 'silence_I', 'silence_group1', 'silence_group2']
    >>> answers.values["silence_I"].shape, answers.values["gain_EI"].shape  # [conditions, neurons], [conditions]
    ((2, 8), (2,))
    >>> len(answers.fixed_points)  # one search per condition
    2
    """
    inputs = np.asarray(dataset.inputs, dtype=np.float32)
    conditions = np.asarray(dataset.conditions)
    codes = np.unique(conditions)
    n_neurons = _recorded_count(model)
    values = perturbation_answers(model, inputs, conditions, neuron_groups(n_neurons, group_seed))
    states = simulate_states(model, inputs)
    operating_points = torch.stack([states[conditions == code].mean(dim=(0, 1)) for code in codes])
    values.update(linear_answers(model, operating_points))
    gains = model.rate_gain.detach().double().cpu().numpy()[:n_neurons]
    recorded = model.recorded_units[:n_neurons].cpu()
    answers = CircuitAnswers(values)
    for index, code in enumerate(codes):
        trials = conditions == code
        step = network_map(model, inputs[trials].mean(axis=(0, 1)))
        visited = states[trials].reshape(-1, states.shape[-1])
        points = find_fixed_points(step, seeded_starts(visited, n_starts, seed=seed + index))
        answers.fixed_points.append(points)
        rates = ACTIVATIONS[model.activation].rate(torch.as_tensor(points.states))[:, recorded].numpy() * gains
        answers.fixed_point_rates.append(rates)
    values["n_stable_fixed_points"] = np.asarray([points.n_stable for points in answers.fixed_points], dtype=float)
    return answers


def save_answers(answers: CircuitAnswers, path: str | Path) -> Path:
    """Write `answers` as one .npz (arrays only, no pickle): `values/NAME` and, per condition
    index c, `fixed_points/c/{states,q,eigenvalues,stable,rates}`."""
    arrays = {f"values/{name}": value for name, value in answers.values.items()}
    for index, (points, rates) in enumerate(zip(answers.fixed_points, answers.fixed_point_rates)):
        for key in ("states", "q", "eigenvalues", "stable"):
            arrays[f"fixed_points/{index}/{key}"] = getattr(points, key)
        arrays[f"fixed_points/{index}/rates"] = rates
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path


def load_answers(path: str | Path) -> CircuitAnswers:
    """The answers `save_answers` wrote."""
    with np.load(path, allow_pickle=False) as stored:
        values = {key.split("/", 1)[1]: stored[key] for key in stored.files if key.startswith("values/")}
        n_conditions = len({key.split("/")[1] for key in stored.files if key.startswith("fixed_points/")})
        answers = CircuitAnswers(values)
        for index in range(n_conditions):
            part = {
                key: stored[f"fixed_points/{index}/{key}"] for key in ("states", "q", "eigenvalues", "stable", "rates")
            }
            answers.fixed_points.append(FixedPoints(part["states"], part["q"], part["eigenvalues"], part["stable"]))
            answers.fixed_point_rates.append(part["rates"])
    return answers
