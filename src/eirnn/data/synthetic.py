"""Built-in synthetic recording: Poisson spikes from a known Dale's-law rate network.

The network has E and I units, more than are "recorded" (hidden units shape the dynamics
too). Unit rates are ``r = softplus(x)`` and

    x[t+1] = (1 - a) x[t] + a (W r[t] + W_in u[t] + b) + sqrt(2 a) sigma xi[t],   a = dt / tau

with W[post, pre] positive in E columns and negative in I columns, each row balanced (its E
and I weights sum to zero) and the spectrum scaled inside the unit circle. A recorded neuron
fires ``rate_gain_hz * r`` Hz; its counts per bin are Poisson draws from that rate.

Task (delayed centre-out reach, one condition per direction): a fixation channel on until
the go time, a one-hot cue channel per condition from cue onset to go, a go step from the go
time on, and trial-constant binary context channels. Cue onset and go time jitter by a few
bins per trial. The behaviour is a linear readout of the E-unit rates, fitted once to a
bell-shaped hand velocity in the cue direction after go.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .dataset import NeuralDataset
from .perturbations import PerturbationSteps, PerturbationTable
from .synthetic_perturbations import RECORDED_TYPES, Protocol, make_protocols, perturbation_table, unit_drive

TAU_MS = 100.0
NOISE_SIGMA = 0.8
RATE_GAIN_HZ = 10.0
SPECTRAL_RADIUS = 0.9
CUE_ONSET_FRACTION = 0.15
GO_FRACTION = 0.6
REACTION_FRACTION = 0.05
MOVEMENT_FRACTION = 0.12
JITTER_FRACTION = 0.02
BURN_IN_TAUS = 5
# trial-varying initial states: offsets along this many of the network's slowest modes, drawn
# from their own stream of the seed so that the default recording is unchanged
TRIAL_STATE_DIMS = 3
TRIAL_STATE_STREAM = 24


@dataclass(eq=False)
class GroundTruth:
    """The network that generated a synthetic recording (units: E first, then I)."""

    rates_hz: np.ndarray  # [trials, time, neurons] true rates of the recorded neurons
    w_rec: np.ndarray  # [units, units], W[post, pre]
    w_in: np.ndarray  # [units, n_inputs]
    bias: np.ndarray  # [units]
    w_out: np.ndarray  # [n_out, n_e_units + 1]: behaviour readout of E rates, last column the offset
    unit_is_inhibitory: np.ndarray  # bool [units]
    recorded_units: np.ndarray  # [neurons]: unit index of each dataset neuron
    tau_ms: float
    noise_sigma: float
    rate_gain_hz: float
    initial_offsets: np.ndarray | None = None  # [trials, units]: x[0] offsets (trial_state_spread > 0)
    #: every perturbation type this network can be subjected to (`synthetic_perturbations`)
    perturbation_protocols: dict[str, Protocol] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return len(self.unit_is_inhibitory)

    def simulate_rates(
        self, inputs: np.ndarray, bin_ms: float, steps: PerturbationSteps | None = None, *, noise: bool, seed: int = 0
    ) -> np.ndarray:
        """Rates (Hz) [trials, time, neurons] of the recorded neurons for `inputs`, under the
        perturbations `steps` (None: none), with the generator's noise or without it."""
        extra = None
        if steps is not None:
            drive = unit_drive(steps.channels, self.unit_is_inhibitory, self.recorded_units)
            extra = lambda t: steps.values[:, t] @ drive  # noqa: E731
        sigma = self.noise_sigma if noise else 0.0
        rng = np.random.default_rng(seed)
        unit_rates = _simulate_unit_rates(rng, inputs, self.w_rec, self.w_in, self.bias, bin_ms, extra, sigma)
        return self.rate_gain_hz * unit_rates[:, :, self.recorded_units].astype(np.float64)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))  # overflow-free, faster than logaddexp


def _dale_weights(rng: np.random.Generator, is_inhibitory: np.ndarray, spectral_radius: float) -> np.ndarray:
    n_units = len(is_inhibitory)
    magnitude = rng.gamma(shape=2.0, scale=1.0, size=(n_units, n_units))
    np.fill_diagonal(magnitude, 0.0)
    excitation = magnitude[:, ~is_inhibitory].sum(axis=1)
    inhibition = magnitude[:, is_inhibitory].sum(axis=1)
    magnitude[:, is_inhibitory] *= (excitation / inhibition)[:, None]
    weights = np.where(is_inhibitory[None, :], -magnitude, magnitude)
    return weights * (spectral_radius / np.max(np.abs(np.linalg.eigvals(weights))))


def _input_weights(rng: np.random.Generator, n_units: int, n_conditions: int, n_inputs: int) -> np.ndarray:
    directions = 2 * np.pi * np.arange(n_conditions) / n_conditions
    preferred = rng.uniform(0, 2 * np.pi, n_units)
    tuning_depth = rng.uniform(0.5, 1.5, n_units)
    fixation = rng.normal(0.0, 0.3, (n_units, 1))
    cues = tuning_depth[:, None] * np.cos(directions[None, :] - preferred[:, None])
    go = rng.normal(0.6, 0.6, (n_units, 1))
    contexts = rng.normal(0.0, 0.3, (n_units, n_inputs - n_conditions - 2))
    return np.hstack([fixation, cues, go, contexts])


def _task(
    rng: np.random.Generator, n_trials: int, n_bins: int, n_conditions: int, n_inputs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(conditions [trials], go bin [trials], inputs [trials, time, n_inputs]), piecewise constant."""
    conditions = rng.permutation(np.arange(n_trials) % n_conditions)
    jitter = max(1, round(JITTER_FRACTION * n_bins))
    cue_on = round(CUE_ONSET_FRACTION * n_bins) + rng.integers(-jitter, jitter + 1, n_trials)
    go = round(GO_FRACTION * n_bins) + rng.integers(-jitter, jitter + 1, n_trials)
    time = np.arange(n_bins)[None, :]
    before_go = time < go[:, None]
    cue_period = time >= cue_on[:, None]
    contexts = rng.integers(0, 2, (n_trials, n_inputs - n_conditions - 2)).astype(np.float32)

    inputs = np.zeros((n_trials, n_bins, n_inputs), dtype=np.float32)
    inputs[:, :, 0] = before_go
    inputs[np.arange(n_trials), :, 1 + conditions] = cue_period
    inputs[:, :, 1 + n_conditions] = ~before_go
    inputs[:, :, 2 + n_conditions :] = contexts[:, None, :]
    return conditions, go, inputs


def _hand_velocity(conditions: np.ndarray, go: np.ndarray, n_bins: int, n_conditions: int) -> np.ndarray:
    """Bell-shaped speed after go (plus a reaction time) towards each condition's direction."""
    onset = go + REACTION_FRACTION * n_bins
    duration = MOVEMENT_FRACTION * n_bins
    phase = (np.arange(n_bins)[None, :] - onset[:, None]) / duration
    speed = np.where((phase > 0) & (phase < 1), np.sin(np.pi * np.clip(phase, 0, 1)) ** 2, 0.0)
    angle = 2 * np.pi * conditions / n_conditions
    return speed[:, :, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)[:, None, :]


def _fitted_readout(e_rates: np.ndarray, target: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    features = np.concatenate([e_rates.reshape(-1, e_rates.shape[-1]), np.ones((e_rates[..., 0].size, 1))], axis=1)
    gram = features.T @ features
    gram += ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
    return np.linalg.solve(gram, features.T @ target.reshape(-1, target.shape[-1])).T


def _simulate_unit_rates(
    rng: np.random.Generator,
    inputs: np.ndarray,
    w_rec: np.ndarray,
    w_in: np.ndarray,
    bias: np.ndarray,
    bin_ms: float,
    perturbation_drive: Callable[[int], np.ndarray] | None = None,
    noise_sigma: float = NOISE_SIGMA,
    initial_offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Unit rates [trials, bins, units] of the noisy ground-truth network, after a burn-in of
    BURN_IN_TAUS time constants on the first bin's inputs (without perturbation; plus
    `initial_offsets` after it); `perturbation_drive(t)` [trials, units] is added to the drive of
    step t."""
    leak = bin_ms / TAU_MS
    noise_scale = np.sqrt(2 * leak) * noise_sigma

    def step(x: np.ndarray, rates: np.ndarray, t: int, perturbed: bool = True) -> np.ndarray:
        drive = rates @ w_rec.T + inputs[:, t] @ w_in.T + bias
        if perturbation_drive is not None and perturbed:
            drive = drive + perturbation_drive(t)
        return (1 - leak) * x + leak * drive + noise_scale * rng.standard_normal(x.shape)

    x = inputs[:, 0] @ w_in.T + bias
    for _ in range(round(BURN_IN_TAUS / leak)):
        x = step(x, _softplus(x), 0, perturbed=False)
    if initial_offsets is not None:
        x = x + initial_offsets
    n_trials, n_bins, _ = inputs.shape
    unit_rates = np.empty((n_trials, n_bins, len(bias)), dtype=np.float32)
    for t in range(n_bins):
        rates = _softplus(x)
        unit_rates[:, t] = rates
        x = step(x, rates, t)
    return unit_rates


def _perturbation_trials(
    seed: int,
    time_ms: np.ndarray,
    is_inhibitory: np.ndarray,
    recorded: np.ndarray,
    n_trials: int,
    settings: tuple[float, Sequence[str], int],
) -> tuple[dict[str, Protocol], PerturbationTable | None, Callable[[int], np.ndarray] | None]:
    """The protocols the network knows, the recording's perturbation table and the drive it adds
    (None, None without perturbations); `settings`: (fraction, types, perturbations per trial)."""
    fraction, types, per_trial = settings
    protocols = make_protocols(is_inhibitory[recorded], time_ms, seed)
    table = perturbation_table(protocols, types, fraction, n_trials, len(recorded), seed, per_trial)
    drive = None if table is None else _perturbation_drive(table, n_trials, time_ms, is_inhibitory, recorded)
    return protocols, table, drive


def _perturbation_drive(
    table: PerturbationTable, n_trials: int, time_ms: np.ndarray, is_inhibitory: np.ndarray, recorded: np.ndarray
) -> Callable[[int], np.ndarray]:
    """The drive [trials, units] of step t that the recording's perturbations add."""
    steps = table.steps(n_trials, time_ms)
    channel_drive = unit_drive(steps.channels, is_inhibitory, recorded)
    return lambda t: steps.values[:, t] @ channel_drive


def _network(
    rng: np.random.Generator,
    n_e_units: int,
    n_i_units: int,
    n_recorded: tuple[int, int],
    n_conditions: int,
    n_inputs: int,
    spectral_radius: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(is_inhibitory, W, W_in, bias, recorded units in file order) of a teacher network, with
    n_recorded = (E, I) of its units recorded, labels interleaved."""
    is_inhibitory = np.arange(n_e_units + n_i_units) >= n_e_units
    w_rec = _dale_weights(rng, is_inhibitory, spectral_radius)
    w_in = _input_weights(rng, len(is_inhibitory), n_conditions, n_inputs)
    bias = rng.normal(0.3, 0.8, len(is_inhibitory))
    recorded_e = rng.choice(n_e_units, n_recorded[0], replace=False)
    recorded_i = n_e_units + rng.choice(n_i_units, n_recorded[1], replace=False)
    return is_inhibitory, w_rec, w_in, bias, rng.permutation(np.concatenate([recorded_e, recorded_i]))


def _check_sizes(n_inputs: int, n_conditions: int, bin_ms: float, smallest_size: int, spectral_radius: float) -> None:
    if n_inputs < n_conditions + 2:
        raise ValueError(f"n_inputs: expected >= n_conditions + 2 = {n_conditions + 2}; found {n_inputs}")
    if not 0 < bin_ms <= TAU_MS:
        raise ValueError(f"bin_ms: expected a bin in (0, {TAU_MS:g}] ms (the time constant); found {bin_ms}")
    if smallest_size < 1:
        raise ValueError("n_e, n_i, n_bins, n_trials and n_conditions must be >= 1")
    if spectral_radius <= 0:
        raise ValueError(f"spectral_radius: expected a value > 0; found {spectral_radius}")


def make_recording(
    seed: int = 0,
    *,
    n_e: int = 41,
    n_i: int = 13,
    n_inputs: int = 14,
    n_bins: int = 219,
    n_trials: int = 1043,
    n_conditions: int = 8,
    bin_ms: float = 25.0,
    trial_state_spread: float = 0.0,
    fully_observed: bool = False,
    spectral_radius: float = SPECTRAL_RADIUS,
    perturbation_fraction: float = 0.0,
    perturbation_types: Sequence[str] = RECORDED_TYPES,
    perturbations_per_trial: int = 1,
) -> tuple[NeuralDataset, GroundTruth]:
    """Simulate a recording of ``n_e`` + ``n_i`` neurons (labels interleaved in file order).

    Twice as many units as recorded neurons, or as many with ``fully_observed``; ``spectral_radius``
    scales W (above 1: strong recurrence, held in check by the leak and the inhibition). Inputs:
    fixation, ``n_conditions`` cues, go, ``n_inputs - n_conditions - 2`` contexts. Deterministic
    per seed. ``trial_state_spread`` > 0 starts each trial from the burnt-in state plus an offset
    of that s.d. along the TRIAL_STATE_DIMS slowest modes of W (`GroundTruth.initial_offsets`).
    ``perturbation_fraction`` of the trials get ``perturbations_per_trial`` perturbations each, of
    ``perturbation_types`` (`synthetic_perturbations`) in turn; with 0 the recording is the one without.
    """
    _check_sizes(n_inputs, n_conditions, bin_ms, min(n_e, n_i, n_bins, n_trials, n_conditions), spectral_radius)
    rng = np.random.default_rng(seed)
    units_per_neuron = 1 if fully_observed else 2
    n_e_units = units_per_neuron * n_e
    is_inhibitory, w_rec, w_in, bias, recorded = _network(
        rng, n_e_units, units_per_neuron * n_i, (n_e, n_i), n_conditions, n_inputs, spectral_radius
    )
    conditions, go, inputs = _task(rng, n_trials, n_bins, n_conditions, n_inputs)
    time_ms = np.arange(n_bins) * bin_ms
    perturbing = (perturbation_fraction, perturbation_types, perturbations_per_trial)
    protocols, table, drive = _perturbation_trials(seed, time_ms, is_inhibitory, recorded, n_trials, perturbing)
    offsets = _trial_state_offsets(seed, w_rec, n_trials, trial_state_spread) if trial_state_spread > 0 else None
    unit_rates = _simulate_unit_rates(rng, inputs, w_rec, w_in, bias, bin_ms, drive, initial_offsets=offsets)

    rates_hz = RATE_GAIN_HZ * unit_rates[:, :, recorded].astype(np.float64)
    counts = rng.poisson(rates_hz * (bin_ms / 1000.0))
    e_rates = unit_rates[:, :, :n_e_units]
    # the readout is fitted on the control trials: a perturbation changes the activity, not the readout
    control = np.ones(n_trials, dtype=bool) if table is None else ~np.isin(np.arange(n_trials), table.trial)
    w_out = _fitted_readout(e_rates[control], _hand_velocity(conditions, go, n_bins, n_conditions)[control])
    behavior = e_rates @ w_out[:, :-1].T + w_out[:, -1]

    input_names = ["fixation", *(f"cue_{k}" for k in range(n_conditions)), "go"]
    input_names += [f"context_{k}" for k in range(n_inputs - n_conditions - 2)]
    dataset = NeuralDataset(
        counts=counts,
        inputs=inputs,
        input_names=input_names,
        ei_labels=is_inhibitory[recorded],
        conditions=conditions,
        bin_ms=bin_ms,
        behavior=behavior,
        behavior_names=["hand_vx", "hand_vy"],
        time_ms=time_ms,
        neuron_ids=recorded,
        perturbations=table,
        meta={"name": f"synthetic-seed{seed}", "generator": "eirnn.data.synthetic.make_recording", "seed": seed},
    )
    truth = GroundTruth(
        rates_hz=rates_hz,
        w_rec=w_rec,
        w_in=w_in,
        bias=bias,
        w_out=w_out,
        unit_is_inhibitory=is_inhibitory,
        recorded_units=recorded,
        tau_ms=TAU_MS,
        noise_sigma=NOISE_SIGMA,
        rate_gain_hz=RATE_GAIN_HZ,
        initial_offsets=offsets,
        perturbation_protocols=protocols,
    )
    return dataset, truth


def _trial_state_offsets(seed: int, w_rec: np.ndarray, n_trials: int, spread: float) -> np.ndarray:
    """[trials, units]: N(0, spread^2) along each of the slowest modes of W (unit-norm real parts
    of its eigenvectors of largest real eigenvalue), scaled to spread per unit on average."""
    values, vectors = np.linalg.eig(w_rec)
    slowest = np.argsort(-values.real)[:TRIAL_STATE_DIMS]
    directions = vectors[:, slowest].real
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    loadings = np.random.default_rng([seed, TRIAL_STATE_STREAM]).standard_normal((n_trials, len(slowest)))
    return spread * np.sqrt(len(w_rec)) * loadings @ directions.T
