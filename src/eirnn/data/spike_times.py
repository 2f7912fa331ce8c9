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

from .binned_files import FileContents, _file_names, _numbers, _positive_number, _vector, file_sha256
from .binning import (
    DEFAULT_SPIKE_BIN_MS,
    MAX_RELATIVE_SPIKE_TIME_S,
    bin_centres_ms,
    bin_spike_trains,
    bin_trial_spike_trains,
    bins_in_window,
    cleaned_trains,
    parse_window_ms,
    time_unit_problem,
)
from .dataset import NeuralDataset
from .perturbations import columns_from_variables

SPIKE_TIMES = "spike_times"
TRIAL_TIMES = "trial_times"
FLAT_UNITS, FLAT_TRIALS = "spike_units", "spike_trials"


def has_spike_times(contents: FileContents) -> bool:
    """Spike times and no binned counts or rates."""
    binned = ("spikes", "counts", "rates")
    has_times = any(SPIKE_TIMES in found for found in (contents.variables, contents.cells, contents.unreadable))
    return has_times and not any(name in contents.variables for name in binned)


def _as_times(contents: FileContents, values: Any) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        contents.fail(SPIKE_TIMES, "spike times in seconds: numbers", f"{np.asarray(values).dtype} values")


def _cell(contents: FileContents, n_trials: int, n_neurons: int | None) -> np.ndarray:
    """The spike-time vectors as an object array (cells, scalars-only cells, or the flat form)."""
    if SPIKE_TIMES in contents.cells:
        return np.vectorize(lambda v: _as_times(contents, v), otypes=[object])(contents.cells[SPIKE_TIMES])
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
        return np.vectorize(lambda v: _as_times(contents, v), otypes=[object])(values)  # one spike per cell
    times = _as_times(contents, values)
    units = _indices(contents, FLAT_UNITS, len(times), n_neurons, "neuron")
    trials = (
        _indices(contents, FLAT_TRIALS, len(times), n_trials, "trial") if FLAT_TRIALS in contents.variables else None
    )
    n_units = max(int(units.max()) + 1 if len(units) else 0, n_neurons or 0)
    shape = (n_units,) if trials is None else (n_trials, n_units)
    key = units if trials is None else trials * n_units + units
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(np.prod(shape) + 1))
    cell = np.empty(int(np.prod(shape)), dtype=object)
    for index in range(len(cell)):
        cell[index] = times[order[bounds[index] : bounds[index + 1]]]
    return cell.reshape(shape)


def _indices(contents: FileContents, name: str, n_spikes: int, n_expected: int | None, what: str) -> np.ndarray:
    """The 0-based `what` index of each spike of the flat form, checked against the number of
    spikes and of neurons/trials; a 1-based export (indices from 1) is named as such."""
    values = _numbers(contents, name, f"the 0-based {what} index of each spike")
    if len(values) != n_spikes:
        contents.fail(name, f"one {what} index per spike ({n_spikes}, the length of '{SPIKE_TIMES}')", f"{len(values)}")
    whole = np.isfinite(values) & (values == np.round(values)) & (values >= 0)
    if not whole.all():
        bad = int(np.flatnonzero(~whole)[0])
        contents.fail(name, f"0-based {what} indices (whole numbers >= 0)", f"{values[bad]:g} at spike {bad}")
    indices = values.astype(np.int64)
    if not len(indices):
        return indices
    one_based = " (1-based indices? subtract 1)" if indices.min() >= 1 else ""
    if n_expected is not None and indices.max() >= n_expected:
        size = "the length of 'conditions'" if what == "trial" else "the length of 'neuron_ids'"
        contents.fail(name, f"0-based {what} indices below {n_expected} ({size})", f"index {indices.max()}{one_based}")
    if n_expected is None and one_based:
        contents.fail(
            name,
            f"0-based {what} indices, from 0 (or give 'neuron_ids' when neuron 0 never fires)",
            f"indices from {indices.min()}{one_based}",
        )
    return indices


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
    window = parse_window_ms(window_ms, source) or _file_window(contents)
    in_file = _file_bin_ms(contents, names)
    bin_source = "settings" if bin_ms else "file" if in_file else "default for spike times; --bin-ms to change"
    bin_ms = bin_ms or in_file or DEFAULT_SPIKE_BIN_MS
    n_bins = bins_in_window(window, bin_ms, source)
    n_neurons = len(_vector(contents, names["neuron_ids"])) if "neuron_ids" in names else None
    cell, spike_problems = _cleaned_cell(_cell(contents, n_trials, n_neurons))
    zero_name = align or TRIAL_TIMES
    if zero_name in contents.variables:
        zero = _trial_times(contents, zero_name, n_trials)
        _check_session_clock(contents, list(cell.ravel()), zero, zero_name, window)
        counts = bin_spike_trains(list(cell.ravel()), zero + window[0] / 1000.0, n_bins, bin_ms / 1000.0)
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
        _check_relative_times(contents, list(cell.ravel()))
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
            "spike_time_problems": spike_problems,
            "source_variables": {"inputs": names["inputs"]} if file_inputs is not None else {},
        },
    )


def _file_window(contents: FileContents) -> tuple[float, float]:
    """The file's `window_ms` variable, checked; refused when there is none (and no --window-ms)."""
    if "window_ms" not in contents.variables:
        contents.fail(
            "window_ms",
            "the window [start, stop] in ms around each trial's time zero (or --window-ms START,STOP)",
            f"none; variables present: {contents.listing()}",
        )
    values = contents.variables["window_ms"].ravel()
    try:
        start, stop = (float(value) for value in values)
    except (TypeError, ValueError):
        start, stop = np.nan, np.nan
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        contents.fail("window_ms", "[start, stop] in ms around each trial's time zero, start < stop", f"{values!r}")
    return start, stop


def _cleaned_cell(cell: np.ndarray) -> tuple[np.ndarray, str]:
    """The cell of spike-time vectors through `cleaned_trains`, and what was removed."""
    trains, problems = cleaned_trains(list(cell.ravel()))
    cleaned = np.empty(cell.shape, dtype=object)
    for index, train in zip(np.ndindex(cell.shape), trains):
        cleaned[index] = train
    return cleaned, problems


def _trial_times(contents: FileContents, name: str, n_trials: int) -> np.ndarray:
    """Each trial's time zero on the session clock (s): one finite number per trial."""
    zero = _numbers(contents, name, "each trial's time zero (s)")
    if len(zero) != n_trials:
        contents.fail(name, f"{n_trials} trial times (one per condition entry)", f"{len(zero)}")
    if not np.isfinite(zero).all():
        contents.fail(name, "finite trial times (s)", f"{int((~np.isfinite(zero)).sum())} NaN or inf")
    return zero


def _check_session_clock(
    contents: FileContents, trains: list[np.ndarray], zero: np.ndarray, zero_name: str, window: tuple[float, float]
) -> None:
    """Spike times and trial times in one unit (seconds): refuse ms beside s either way."""
    problem = time_unit_problem(trains, zero, float(zero.max()) + window[1] / 1000.0)
    if problem and problem[0] == "spikes":
        contents.fail(
            SPIKE_TIMES, f"spike times in seconds on the clock of '{zero_name}'", f"neuron {problem[1]}: {problem[2]}"
        )
    if problem:
        contents.fail(zero_name, "trial times in seconds on the clock of the spike times", problem[2])


def _check_relative_times(contents: FileContents, trains: list[np.ndarray]) -> None:
    """Spike times relative to each trial's time zero are seconds: trials last seconds, not minutes."""
    spikes = np.concatenate([train for train in trains if len(train)] or [np.zeros(0)])
    if len(spikes) and np.median(np.abs(spikes)) > MAX_RELATIVE_SPIKE_TIME_S:
        contents.fail(
            SPIKE_TIMES,
            "spike times in seconds relative to each trial's time zero",
            f"a median |time| of {np.median(np.abs(spikes)):g} s (spike times in ms?)",
        )


def _file_bin_ms(contents: FileContents, names: dict[str, str]) -> float | None:
    if "bin_ms" in names:
        return _positive_number(contents, names["bin_ms"], "the bin size in ms")
    if "bin_s" in names:
        return 1000.0 * _positive_number(contents, names["bin_s"], "the bin size in s")
    return None
