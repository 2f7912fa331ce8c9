"""Write a binned recording as an NWB file (pynwb), readable back by `eirnn.data.nwb`.

Trials are laid out on one session clock, each as long as the recording's trial plus a gap;
a bin's c spikes are spread evenly inside it, so binning the file again at the same bin size gives
the same counts. The units table holds the spike times, the E/I labels (``cell_type``) and the
neuron ids; the trials table the condition and, for a recording with perturbations, the
ragged ``perturbation_*`` columns (session-clock seconds, an entry per perturbation) beside an
`OptogeneticStimulusSite` (docs/data-format.md). Task inputs and behaviour are not written:
NWB readers build inputs from the task.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DatasetError, NeuralDataset

GAP_S = 0.5
#: session start written into every file, so the same data give the same file contents
SESSION_START = datetime(2000, 1, 1, tzinfo=timezone.utc)
#: the ragged trials columns of the perturbations, one entry per perturbation of the trial
NWB_COLUMNS = {
    "perturbation_target": "targets of the trial's perturbations: E, I or unit ids '3,7' (none: control)",
    "perturbation_kind": "activation or inactivation, per perturbation of the trial",
    "perturbation_label": "type of each perturbation of the trial",
    "perturbation_onset_time": "start of each perturbation of the trial (s, session clock)",
    "perturbation_offset_time": "end of each perturbation of the trial (s, session clock)",
    "perturbation_power": "strength of each perturbation of the trial (drive units)",
}


def _spike_times(counts: np.ndarray, starts_s: np.ndarray, bin_s: float) -> list[np.ndarray]:
    """Per neuron, c spikes evenly inside each bin with count c (times in s)."""
    trials = []
    for neuron in range(counts.shape[2]):
        trial, step = np.nonzero(counts[:, :, neuron])
        n = counts[trial, step, neuron]
        rank = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        offsets = (rank + 0.5) / np.repeat(n, n)
        trials.append(np.repeat(starts_s[trial] + step * bin_s, n) + offsets * bin_s)
    return trials


def _perturbation_columns(dataset: NeuralDataset, starts_s: np.ndarray) -> dict[str, list[list[Any]]]:
    """The ragged perturbation_* trials columns (a list per trial, empty for a control trial);
    windows on the session clock, from each trial's first bin."""
    table = dataset.perturbations
    first_ms = dataset.time_ms[0] if dataset.time_ms is not None else 0.0
    columns: dict[str, list[list[Any]]] = {name: [[] for _ in range(dataset.n_trials)] for name in NWB_COLUMNS}
    ids = dataset.neuron_ids
    for row, trial in enumerate(table.trial.tolist()):
        target = str(table.target[row])
        if target == "neurons":
            target = ",".join(str(neuron_id) for neuron_id in ids[table.neurons[row]].tolist())
        values = {
            "perturbation_target": target,
            "perturbation_kind": str(table.kind[row]),
            "perturbation_label": str(table.label[row]),
            "perturbation_onset_time": starts_s[trial] + (table.onset_ms[row] - first_ms) / 1000.0,
            "perturbation_offset_time": starts_s[trial] + (table.offset_ms[row] - first_ms) / 1000.0,
            "perturbation_power": float(table.strength[row]),
        }
        for name, value in values.items():
            columns[name][trial].append(value)
    return columns


def write_nwb(dataset: NeuralDataset, path: str | Path) -> Path:
    """Write `dataset` (spike counts, integer neuron ids) to `path` as NWB; returns the path."""
    from pynwb import NWBHDF5IO, NWBFile  # deferred: importing pynwb takes about a second

    path = Path(path)
    if dataset.counts is None:
        raise DatasetError(f"{dataset.source}: variable 'counts': expected spike counts to write NWB; found rates only")
    trial_s = dataset.n_bins * dataset.bin_s
    starts_s = GAP_S + np.arange(dataset.n_trials) * (trial_s + GAP_S)
    nwbfile = NWBFile(
        session_description=f"{dataset.name}, written by eirnn",
        identifier=dataset.name,
        session_start_time=SESSION_START,
    )
    nwbfile.add_trial_column("condition", "condition label")
    extra = {}
    if dataset.perturbations is not None:
        device = nwbfile.create_device(name="laser", description="light source of the perturbations")
        nwbfile.create_ogen_site(
            name="photostim",
            device=device,
            description="perturbed population",
            excitation_lambda=473.0,
            location="recorded area",
        )
        extra = _perturbation_columns(dataset, starts_s)
        for name in extra:
            nwbfile.add_trial_column(name, NWB_COLUMNS[name], index=True)
    for trial in range(dataset.n_trials):
        row = {name: values[trial] for name, values in extra.items()}
        condition = str(dataset.condition_labels[dataset.conditions[trial]])
        # a hair longer than the bins, so that the trial's length in ms rounds down to every bin
        stop = starts_s[trial] + trial_s + 1e-6
        nwbfile.add_trial(
            start_time=starts_s[trial], stop_time=stop, condition=condition, id=int(dataset.trial_ids[trial]), **row
        )
    if dataset.ei_labels is not None:
        nwbfile.add_unit_column("cell_type", "E or I")
    for neuron, times in enumerate(_spike_times(dataset.counts, starts_s, dataset.bin_s)):
        labels = {} if dataset.ei_labels is None else {"cell_type": "EI"[dataset.ei_labels[neuron]]}
        nwbfile.add_unit(spike_times=times, id=int(dataset.neuron_ids[neuron]), **labels)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path
