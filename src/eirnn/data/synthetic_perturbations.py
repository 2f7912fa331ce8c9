"""Perturbation trials of the built-in synthetic recording and the protocols its true network knows.

A protocol is one perturbation type: a target (the E or I population, or a seeded group of
GROUP_FRACTION of the recorded E or I neurons), a kind, a strength (drive units, as in
`eirnn.data.perturbations`) and a window (from WINDOW_FRACTIONS of the trial). The recording
holds RECORDED_TYPES; the true network also knows the other protocols, which no trial of the
recording contains: they are held out of any fit by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .perturbations import Channel, PerturbationSteps, PerturbationTable

#: label -> (target, kind, strength); targets "E-group"/"I-group" are groups of recorded neurons
PROTOCOLS = {
    "I activation": ("I", "activation", 1.0),
    "E activation": ("E", "activation", 0.5),
    "E-group inactivation": ("E-group", "inactivation", 3.0),
    "I-group inactivation": ("I-group", "inactivation", 3.0),
    "E-group activation": ("E-group", "activation", 1.0),
    "I inactivation": ("I", "inactivation", 3.0),
}
RECORDED_TYPES = ("I activation", "E activation", "E-group inactivation", "I-group inactivation")
GROUP_FRACTION = 0.25
WINDOW_FRACTIONS = (0.25, 0.45)
#: the perturbations draw from their own stream of the seed, so that a recording without them is
#: drawn exactly as before
PERTURBATION_STREAM = 23


@dataclass(frozen=True)
class Protocol:
    """One perturbation type, applied to a whole trial set the same way."""

    channel: Channel
    strength: float
    onset_ms: float
    offset_ms: float

    def steps(self, n_trials: int, time_ms: np.ndarray) -> PerturbationSteps:
        """This protocol on every one of `n_trials` trials."""
        on = (time_ms >= self.onset_ms) & (time_ms < self.offset_ms)
        values = np.zeros((n_trials, len(time_ms), 1), dtype=np.float32)
        values[:, on, 0] = self.strength
        return PerturbationSteps((self.channel,), values)


def make_protocols(is_inhibitory_neuron: np.ndarray, time_ms: np.ndarray, seed: int) -> dict[str, Protocol]:
    """Every protocol of PROTOCOLS for a recording with these neuron labels and time axis."""
    rng = np.random.default_rng([seed, PERTURBATION_STREAM, 1])
    groups = {}
    for name, members in (
        ("E-group", np.flatnonzero(~is_inhibitory_neuron)),
        ("I-group", np.flatnonzero(is_inhibitory_neuron)),
    ):
        size = max(1, round(GROUP_FRACTION * len(members)))
        groups[name] = tuple(np.sort(rng.choice(members, size, replace=False)).tolist())
    first, last = (min(len(time_ms) - 1, round(fraction * len(time_ms))) for fraction in WINDOW_FRACTIONS)
    protocols = {}
    for label, (target, kind, strength) in PROTOCOLS.items():
        channel = Channel("neurons", groups[target], kind) if target in groups else Channel(target, (), kind)
        protocols[label] = Protocol(channel, strength, float(time_ms[first]), float(time_ms[last]))
    return protocols


def perturbation_table(
    protocols: dict[str, Protocol],
    types: Sequence[str],
    fraction: float,
    n_trials: int,
    n_neurons: int,
    seed: int,
    per_trial: int = 1,
) -> PerturbationTable | None:
    """The perturbation table of a recording whose `fraction` of trials (drawn with the seed's own
    stream) each get `per_trial` perturbations of different types: the first types taking turns in
    a random order, each further one the type after the previous in `types`; None for 0."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"perturbation_fraction: expected a fraction in [0, 1]; found {fraction}")
    unknown = [label for label in types if label not in protocols]
    if unknown or not types:
        raise ValueError(f"perturbation_types: expected some of {list(protocols)}; found {list(types)}")
    if not 1 <= per_trial <= len(types):
        raise ValueError(f"perturbations_per_trial: expected 1..{len(types)} (the types); found {per_trial}")
    n_perturbed = round(fraction * n_trials)
    if n_perturbed == 0:
        return None
    rng = np.random.default_rng([seed, PERTURBATION_STREAM])
    trials = np.sort(rng.choice(n_trials, n_perturbed, replace=False))
    first = rng.permutation(np.arange(n_perturbed) % len(types))
    # row r of trial k: the type after the trial's first by r, so one trial's types differ
    type_index = (first[:, None] + np.arange(per_trial)[None, :]) % len(types)
    labels = np.array(types)[type_index.ravel()]
    chosen = [protocols[label] for label in labels]
    neurons = np.zeros((len(chosen), n_neurons), dtype=bool)
    for row, protocol in enumerate(chosen):
        neurons[row, list(protocol.channel.neurons)] = True
    return PerturbationTable(
        trial=np.repeat(trials, per_trial),
        target=np.array([protocol.channel.target for protocol in chosen]),
        neurons=neurons,
        onset_ms=np.array([protocol.onset_ms for protocol in chosen]),
        offset_ms=np.array([protocol.offset_ms for protocol in chosen]),
        kind=np.array([protocol.channel.kind for protocol in chosen]),
        strength=np.array([protocol.strength for protocol in chosen]),
        label=labels,
    )


def unit_drive(channels: Sequence[Channel], unit_is_inhibitory: np.ndarray, recorded_units: np.ndarray) -> np.ndarray:
    """[channels, units]: each channel's signed drive per unit of strength in the true network."""
    drive = np.zeros((len(channels), len(unit_is_inhibitory)))
    for row, channel in enumerate(channels):
        if channel.target == "neurons":
            drive[row, recorded_units[list(channel.neurons)]] = channel.sign
        else:
            drive[row] = channel.sign * (unit_is_inhibitory == (channel.target == "I"))
    return drive
