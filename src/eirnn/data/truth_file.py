"""The true circuit of a simulated recording, kept beside its data file.

`eirnn simulate --out sim.npz` writes the recording and ``sim.truth.npz``: the `GroundTruth`
arrays, its perturbation protocols and the sha256 of the data file. Training on ``sim.npz``
reads the truth back when the hash matches (a re-simulated or edited data file is not paired
with a stale truth) and scores what the fit recovers of it (gt_* metrics), as for the built-in
recording.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .binned_files import file_sha256
from .perturbations import Channel
from .synthetic import GroundTruth
from .synthetic_perturbations import Protocol

ARRAYS = ("rates_hz", "w_rec", "w_in", "bias", "w_out", "unit_is_inhibitory", "recorded_units")
SCALARS = ("tau_ms", "noise_sigma", "rate_gain_hz")


def truth_path(data_path: str | Path) -> Path:
    """Where the truth of `data_path` lives: ``NAME.truth.npz`` beside ``NAME.EXT``."""
    data_path = Path(data_path)
    return data_path.with_name(data_path.stem + ".truth.npz")


def write_truth(truth: GroundTruth, data_path: str | Path) -> Path:
    """Write the truth of the (already written) data file `data_path`; returns its path."""
    protocols = list(truth.perturbation_protocols.items())
    n_neurons = len(truth.recorded_units)
    neurons = np.zeros((len(protocols), n_neurons), dtype=np.uint8)
    for row, (_, protocol) in enumerate(protocols):
        neurons[row, list(protocol.channel.neurons)] = 1
    path = truth_path(data_path)
    np.savez(
        path,
        data_sha256=file_sha256(data_path),
        **{name: getattr(truth, name) for name in ARRAYS + SCALARS},
        protocol_label=np.array([label for label, _ in protocols], dtype=str),
        protocol_target=np.array([p.channel.target for _, p in protocols], dtype=str),
        protocol_neurons=neurons,
        protocol_kind=np.array([p.channel.kind for _, p in protocols], dtype=str),
        protocol_strength=np.array([p.strength for _, p in protocols], dtype=float),
        protocol_onset_ms=np.array([p.onset_ms for _, p in protocols], dtype=float),
        protocol_offset_ms=np.array([p.offset_ms for _, p in protocols], dtype=float),
    )
    return path


def read_truth_for(data_path: str | Path, data_sha256: str) -> GroundTruth | None:
    """The truth written beside `data_path` for data with this hash; None when there is none."""
    path = truth_path(data_path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        if str(archive["data_sha256"]) != data_sha256:
            return None
        values = {name: archive[name] for name in ARRAYS}
        values.update({name: float(archive[name]) for name in SCALARS})
        protocols = {}
        for row, label in enumerate(archive["protocol_label"].tolist()):
            target = str(archive["protocol_target"][row])
            neurons = tuple(np.flatnonzero(archive["protocol_neurons"][row]).tolist()) if target == "neurons" else ()
            channel = Channel(target, neurons, str(archive["protocol_kind"][row]))
            timing = (float(archive["protocol_onset_ms"][row]), float(archive["protocol_offset_ms"][row]))
            protocols[label] = Protocol(channel, float(archive["protocol_strength"][row]), *timing)
    return GroundTruth(**values, perturbation_protocols=protocols)
