"""Spike times from a .mat or .npz file, binned into a `NeuralDataset` (docs/data-format.md).

Two schemas, both with ``conditions`` (one per trial) and a window (``--window-ms`` or a
``window_ms`` variable, [start, stop] in ms around each trial's time zero):

- per trial: ``spike_times`` a cell array trials x neurons (neurons x trials is recognised
  from the length of ``conditions``) of spike-time vectors in seconds relative to the trial's
  time zero (e.g. its alignment event);
- per neuron: ``spike_times`` a cell array of one vector per neuron, in seconds on the session
  clock, with ``trial_times`` (or the variable named by ``--align``): each trial's time zero.

``.npz`` files cannot hold object arrays without pickle, which is never enabled: there the
spikes are flat, ``spike_times`` with ``spike_units`` (0-based neuron index of each spike) and,
for the per-trial schema, ``spike_trials`` (0-based trial index), as NWB stores ragged data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .binning import (
    DEFAULT_SPIKE_BIN_MS,
    bin_centres_ms,
    bin_spike_trains,
    bin_trial_spike_trains,
    bins_in_window,
    parse_window_ms,
)
from .dataset import NeuralDataset
from .loaders import FileContents, _file_names, _scalar, _vector, file_sha256
from .perturbations import columns_from_variables

SPIKE_TIMES = "spike_times"
TRIAL_TIMES = "trial_times"
FLAT_UNITS, FLAT_TRIALS = "spike_units", "spike_trials"


def has_spike_times(contents: FileContents) -> bool:
    """Spike times and no binned counts or rates."""
    binned = ("spikes", "counts", "rates")
    has_times = any(SPIKE_TIMES in found for found in (contents.variables, contents.cells, contents.unreadable))
    return has_times and not any(name in contents.variables for name in binned)


def _cell(contents: FileContents, n_trials: int, n_neurons: int | None) -> np.ndarray:
    """The spike-time vectors as an object array (cells, scalars-only cells, or the flat form)."""
    if SPIKE_TIMES in contents.cells:
        return np.vectorize(lambda v: np.asarray(v, dtype=float).ravel(), otypes=[object])(contents.cells[SPIKE_TIMES])
    if SPIKE_TIMES not in contents.variables:
        contents.fail(
            SPIKE_TIMES,
            f"numbers in the flat form ('{SPIKE_TIMES}', '{FLAT_UNITS}'[, '{FLAT_TRIALS}']): "
            ".npz object arrays need pickle, which is never enabled",
            f"{contents.unreadable[SPIKE_TIMES]}",
        )
    values = contents.variables[SPIKE_TIMES]
    if FLAT_UNITS not in contents.variables:
        if contents.format == "npz":
            contents.fail(
                SPIKE_TIMES,
                f"the flat form with '{FLAT_UNITS}' (and '{FLAT_TRIALS}') in .npz",
                f"no '{FLAT_UNITS}'; variables present: {contents.listing()}",
            )
        return np.vectorize(lambda v: np.array([v], dtype=float), otypes=[object])(values)  # one spike per cell
    units = _vector(contents, FLAT_UNITS).astype(np.int64)
    times = values.reshape(-1).astype(float)
    trials = _vector(contents, FLAT_TRIALS).astype(np.int64) if FLAT_TRIALS in contents.variables else None
    n_units = max(int(units.max()) + 1 if len(units) else 0, n_neurons or 0)
    shape = (n_units,) if trials is None else (n_trials, n_units)
    key = units if trials is None else trials * n_units + units
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(np.prod(shape) + 1))
    cell = np.empty(int(np.prod(shape)), dtype=object)
    for index in range(len(cell)):
        cell[index] = times[order[bounds[index] : bounds[index + 1]]]
    return cell.reshape(shape)


def load_spike_times(
    contents: FileContents,
    *,
    keys: dict[str, str],
    bin_ms: float | None = None,
    window_ms: str | Sequence[float] | None = None,
    align: str = "",
) -> NeuralDataset:
    """Bin the file's spike times; inputs are the file's ``inputs`` or a placeholder that the
    caller replaces (`eirnn.data.task_inputs`)."""
    names = _file_names(contents, keys)
    source = str(contents.path)
    if "conditions" not in names:
        contents.fail(
            "conditions", "one condition per trial", f"no such variable; variables present: {contents.listing()}"
        )
    conditions = _vector(contents, names["conditions"])
    n_trials = len(conditions)
    window_text = window_ms or (contents.variables["window_ms"].ravel() if "window_ms" in contents.variables else None)
    window = parse_window_ms(window_text, source)
    if window is None:
        contents.fail(
            "window_ms",
            "the window [start, stop] in ms around each trial's time zero (or --window-ms START,STOP)",
            f"none; variables present: {contents.listing()}",
        )
    in_file = _file_bin_ms(contents, names)
    bin_source = "settings" if bin_ms else "file" if in_file else "default for spike times; --bin-ms to change"
    bin_ms = bin_ms or in_file or DEFAULT_SPIKE_BIN_MS
    n_bins = bins_in_window(window, bin_ms, source)
    n_neurons = len(_vector(contents, names["neuron_ids"])) if "neuron_ids" in names else None
    cell = _cell(contents, n_trials, n_neurons)
    zero_name = align or TRIAL_TIMES
    if zero_name in contents.variables:
        zero = _vector(contents, zero_name).astype(float)
        if len(zero) != n_trials:
            contents.fail(zero_name, f"{n_trials} trial times (one per condition entry)", f"{len(zero)}")
        starts = zero + window[0] / 1000.0
        counts = bin_spike_trains(list(cell.ravel()), starts, n_bins, bin_ms / 1000.0)
        layout = f"per neuron, session clock, time zero from '{zero_name}'"
    else:
        if align:
            contents.fail(
                align,
                "per-trial times (s) to align on (--align)",
                f"no such variable; variables present: {contents.listing()}",
            )
        cell = cell.reshape(cell.shape[0], -1) if cell.ndim == 2 else cell.reshape(-1, 1)
        if cell.shape[0] != n_trials and cell.shape[1] == n_trials:
            cell = cell.T  # MATLAB's neurons x trials habit
        if cell.shape[0] != n_trials:
            contents.fail(
                SPIKE_TIMES,
                f"trials x neurons with {n_trials} trials (the length of 'conditions'), or "
                f"one vector per neuron with '{TRIAL_TIMES}'",
                f"shape {'x'.join(map(str, cell.shape))}",
            )
        counts = bin_trial_spike_trains(cell, window[0] / 1000.0, n_bins, bin_ms / 1000.0)
        layout = "per trial, times relative to each trial's time zero"
    optional: dict[str, Any] = {
        field: _vector(contents, names[field]) for field in ("ei_labels", "neuron_ids", "trial_ids") if field in names
    }
    file_inputs = contents.variables.get(names.get("inputs", ""))
    return NeuralDataset(
        counts=counts,
        inputs=file_inputs if file_inputs is not None else np.zeros((*counts.shape[:2], 1)),
        conditions=conditions,
        bin_ms=bin_ms,
        time_ms=bin_centres_ms(window, n_bins, bin_ms),
        perturbations=columns_from_variables(contents.variables),
        **optional,
        meta={
            "source_file": source,
            "sha256": file_sha256(contents.path),
            "format": f"{contents.format} spike times ({layout})",
            "align": zero_name if zero_name in contents.variables else "each trial's time zero",
            "window_ms": f"{window[0]:g},{window[1]:g}",
            "bin_ms_source": bin_source,
            "source_variables": {"inputs": names["inputs"]} if file_inputs is not None else {},
        },
    )


def _file_bin_ms(contents: FileContents, names: dict[str, str]) -> float | None:
    if "bin_ms" in names:
        return float(_scalar(contents, names["bin_ms"]))
    if "bin_s" in names:
        return 1000.0 * float(_scalar(contents, names["bin_s"]))
    return None
