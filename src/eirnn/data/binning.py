"""Spike times -> spike counts in time bins, shared by the NWB and the spike-time file readers.

Bins are half-open, ``[start + k * bin, start + (k + 1) * bin)``, in seconds, so a spike on an
edge belongs to the later bin and no spike is counted twice. "On an edge" allows for float
rounding (`EDGE_TOLERANCE_S`): events and samples often lie on the same clock grid as the
edges, and 48.75 + 0.02 * k need not equal 48770 * 0.001 to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dataset import DatasetError

#: bin size used for spike times when neither the file nor the settings give one
DEFAULT_SPIKE_BIN_MS = 10.0
#: far below any sampling period (30 kHz: 33 us), far above float rounding of session times
EDGE_TOLERANCE_S = 1e-9
#: a train whose median spike time lies this many times beyond the last trial is in another unit
#: than the trials (ms read as s: ~1000x)
UNIT_MISMATCH_FACTOR = 100.0
#: spike times relative to each trial's time zero with a median |t| above this are not seconds
MAX_RELATIVE_SPIKE_TIME_S = 20.0


def parse_window_ms(text: str | Sequence[float] | None, source: str) -> tuple[float, float] | None:
    """``"-250,450"`` (or ``(-250, 450)``) -> (-250.0, 450.0) ms; empty -> None."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    parts = text.replace(":", ",").split(",") if isinstance(text, str) else list(text)
    try:
        start, stop = (float(part) for part in parts)
    except (TypeError, ValueError):
        raise DatasetError(
            f"{source}: setting 'window_ms' (--window-ms): expected START,STOP in ms, e.g. '-250,450'; found {text!r}"
        ) from None
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        raise DatasetError(
            f"{source}: setting 'window_ms' (--window-ms): expected START < STOP (finite, in ms); found {text!r}"
        )
    return start, stop


def bins_in_window(window_ms: tuple[float, float], bin_ms: float, source: str) -> int:
    """Whole bins of `bin_ms` that tile the window exactly; anything else is refused."""
    length = window_ms[1] - window_ms[0]
    n_bins = round(length / bin_ms)
    if n_bins < 1 or not np.isclose(n_bins * bin_ms, length, rtol=0, atol=1e-6 * max(bin_ms, 1.0)):
        raise DatasetError(
            f"{source}: setting 'window_ms' (--window-ms): expected a window length that is a whole number of "
            f"{bin_ms:g} ms bins; found {window_ms[0]:g}..{window_ms[1]:g} ms ({length:g} ms)"
        )
    return n_bins


def bin_centres_ms(window_ms: tuple[float, float], n_bins: int, bin_ms: float) -> np.ndarray:
    """Time of each bin's centre in ms, relative to the alignment event (the `time_ms` axis)."""
    return window_ms[0] + (np.arange(n_bins) + 0.5) * bin_ms


def bin_edges_s(window_starts_s: np.ndarray, n_bins: int, bin_s: float) -> np.ndarray:
    """[trials, n_bins + 1] bin edges in seconds, one row per trial's window, each lowered by
    `EDGE_TOLERANCE_S` so that a time on an edge up to rounding falls in the later bin."""
    starts = np.asarray(window_starts_s, dtype=np.float64)[:, None]
    return starts + np.arange(n_bins + 1) * bin_s - EDGE_TOLERANCE_S


def count_spikes(spike_times_s: np.ndarray, edges_s: np.ndarray) -> np.ndarray:
    """Spikes of one train in each bin of each row of `edges_s` -> [rows, n_bins] counts."""
    times = np.asarray(spike_times_s, dtype=np.float64).ravel()
    if np.any(times[1:] < times[:-1]):  # NWB stores sorted trains; others may not
        times = np.sort(times)
    return np.diff(np.searchsorted(times, edges_s, side="left"), axis=-1)


def bin_spike_trains(
    spike_times_s: Sequence[np.ndarray], window_starts_s: np.ndarray, n_bins: int, bin_s: float
) -> np.ndarray:
    """Counts [trials, n_bins, units] from one spike train per unit (absolute times, seconds)
    and each trial's window start (absolute, seconds)."""
    edges = bin_edges_s(window_starts_s, n_bins, bin_s)
    counts = np.empty((len(edges), n_bins, len(spike_times_s)), dtype=np.int64)
    for unit, times in enumerate(spike_times_s):
        counts[:, :, unit] = count_spikes(times, edges)
    return counts


def bin_trial_spike_trains(spike_times_s: np.ndarray, window_start_s: float, n_bins: int, bin_s: float) -> np.ndarray:
    """Counts [trials, n_bins, units] from a trials x units array of spike-time vectors, each
    relative to its trial's time zero (seconds); the window starts at `window_start_s`."""
    edges = bin_edges_s(np.array([window_start_s]), n_bins, bin_s)[0]
    n_trials, n_units = spike_times_s.shape
    counts = np.empty((n_trials, n_bins, n_units), dtype=np.int64)
    for (trial, unit), times in np.ndenumerate(spike_times_s):
        counts[trial, :, unit] = count_spikes(times, edges)
    return counts


def cleaned_trains(trains: Sequence[np.ndarray]) -> tuple[list[np.ndarray], str]:
    """Each train sorted, without non-finite times (MATLAB cells pad with NaN) and without exact
    repeats (a unit cannot fire twice at one instant: a repeat is a train written twice), and
    what was removed, e.g. '3 non-finite (units 0, 2); 40 repeated (unit 1)', or 'none'."""
    cleaned, removed = [], {"non-finite": {}, "repeated": {}}
    for unit, train in enumerate(trains):
        train = np.asarray(train, dtype=np.float64).ravel()
        finite = train[np.isfinite(train)]
        unique = np.unique(finite)  # sorted
        for kind, n in (("non-finite", len(train) - len(finite)), ("repeated", len(finite) - len(unique))):
            if n:
                removed[kind][unit] = n
        cleaned.append(unique)
    parts = []
    for kind, by_unit in removed.items():
        if by_unit:
            units = ", ".join(str(unit) for unit in list(by_unit)[:10]) + (", ..." if len(by_unit) > 10 else "")
            parts.append(f"{sum(by_unit.values())} {kind} spike times removed (unit index {units})")
    return cleaned, "; ".join(parts) or "none"


def time_unit_problem(
    trains: Sequence[np.ndarray], trial_times_s: np.ndarray, last_trial_s: float
) -> tuple[str, int, str] | None:
    """Spike times and trial times in different units: ("spikes", unit, found) when a train's median
    lies `UNIT_MISMATCH_FACTOR` times beyond the last trial (spike times in ms beside trial times in
    s), ("trials", -1, found) when the median trial time lies that far beyond the last spike (trial
    times in ms); None when they agree."""
    limit = UNIT_MISMATCH_FACTOR * max(last_trial_s, 1.0)
    for unit, train in enumerate(trains):
        if len(train) and np.median(train) > limit:
            found = f"median spike time {np.median(train):g} s, while the last trial ends at {last_trial_s:g} s"
            return "spikes", unit, found + " (spike times in samples, or in ms?)"
    last_spike = max((float(train.max()) for train in trains if len(train)), default=None)
    if last_spike is not None and np.nanmedian(trial_times_s) > UNIT_MISMATCH_FACTOR * max(last_spike, 1.0):
        found = f"a median trial time of {np.nanmedian(trial_times_s):g} s, while the last spike is at {last_spike:g} s"
        return "trials", -1, found + " (trial times in ms?)"
    return None
