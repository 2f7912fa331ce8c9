"""Read an NWB file (pynwb) into a `NeuralDataset`: spike times of the units table binned in a
window around an event of the trials table, conditions from trials columns, E/I labels from a
units column, behaviour from a TimeSeries, task inputs built from the task (docs/data-format.md).

The trials come from the ``trials`` table or any other intervals table (`trials_table`), kept
by column values (`keep_trials`, `eirnn.data.nwb_trials`). Trials that cannot be cut (filtered
out, NaN or swapped start/stop, NaN event, a missing condition value, a window that ends after
the trial's own stop_time or lies outside the recording, the units' obs_intervals or the
behaviour series) are dropped and counted by reason in ``meta["dropped_trials"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .binning import (
    DEFAULT_SPIKE_BIN_MS,
    bin_centres_ms,
    bin_edges_s,
    bin_spike_trains,
    bins_in_window,
    cleaned_trains,
    parse_window_ms,
)
from .dataset import EXCITATORY_NAMES, INHIBITORY_NAMES, DatasetError, NeuralDataset, label_key
from .loaders import HDF5_SIGNATURE, SCHEMA_NAMES, file_sha256
from .nwb_perturbations import read_perturbations
from .nwb_trials import (
    check_event_times,
    check_time_units,
    condition_codes,
    condition_columns,
    condition_values,
    event_times,
    filter_mask,
    find_trials_table,
    is_event,
    numbers,
    object_path,
    parse_trial_filters,
    plain_label,
    tables_listing,
)
from .task_inputs import EventTimes, TaskTrials, build_task_inputs

#: units columns read as E/I labels when --ei names none
EI_COLUMNS = SCHEMA_NAMES["ei_labels"]
#: trials columns read as conditions when --condition names none
CONDITION_COLUMNS = SCHEMA_NAMES["conditions"]
AXIS_SUFFIXES = ("x", "y", "z")
#: trials of equal length may differ by this much (clock jitter); the window is cut to the shortest
EQUAL_LENGTH_TOLERANCE_S = 1e-3
#: whole trials longer than this are epochs or times in ms, not trials to bin whole
MAX_WHOLE_TRIAL_S = 600.0


def is_nwb_file(path: str | Path) -> bool:
    """A ``.nwb`` name, or HDF5 content with the NWB version attribute."""
    path = Path(path)
    if path.suffix.lower() == ".nwb":
        return True
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        if handle.read(8) != HDF5_SIGNATURE:
            return False
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return "nwb_version" in handle.attrs
    except OSError:
        return False


class _Reader:
    """One open NWB file and the messages that name it."""

    def __init__(self, path: Path, nwbfile: Any) -> None:
        self.path, self.file = path, nwbfile

    def fail(self, where: str, expected: str, found: str) -> None:
        raise DatasetError(f"{self.path}: {where}: expected {expected}; found {found}")

    def table(self, name: str, needs: str) -> Any:
        table = getattr(self.file, name)
        if table is None:
            self.fail(f"table '{name}'", f"a {name} table ({needs})", "none in this file")
        return table

    def column(self, table: Any, name: str, expected: str) -> np.ndarray | list:
        if name not in (*table.colnames, "start_time", "stop_time"):
            columns = ", ".join(table.colnames) or "none"
            self.fail(f"table '{table.name}', column '{name}'", expected, f"no such column; columns: {columns}")
        column = table[name]
        if type(column).__name__ == "VectorIndex":  # a ragged column: one array per row
            return [np.asarray(column[row]) for row in range(len(table))]
        values = np.asarray(column.data[:])
        if values.dtype.kind in "OS":
            values = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
        return values


def load_nwb(
    path: str | Path,
    *,
    align: str = "",
    window_ms: str | Sequence[float] | None = None,
    condition: str = "",
    ei: str = "",
    behavior: str = "",
    bin_ms: float | None = None,
    inputs: str = "",
    cue_event: str = "",
    go_event: str = "",
    trials_table: str = "",
    keep_trials: str = "",
    perturbations: str = "",
    optogenetic_sites: str = "",
) -> NeuralDataset:
    """See the module docstring; `inputs` defaults to ``condition-onehot`` (NWB files rarely store
    task inputs); `perturbations`, `optogenetic_sites`: `eirnn.data.nwb_perturbations`, `nwb_optogenetics`."""
    path = Path(path)
    filters = parse_trial_filters(keep_trials, str(path))
    with _open(path) as io:
        nwbfile = io.read()
        reader = _Reader(path, nwbfile)
        bin_source = "settings" if bin_ms else "default for spike times; --bin-ms to change"
        bin_ms = float(bin_ms) if bin_ms else DEFAULT_SPIKE_BIN_MS
        trials, trials_path = find_trials_table(reader, trials_table)
        units = reader.table("units", "spike_times per unit")
        trains, spike_problems = _spike_trains(reader, units)
        window = parse_window_ms(window_ms, str(path))
        events = (cue_event, go_event) if inputs == "cue-go" else ()
        cut = _kept_trials(reader, (trials, units, trains), filters, align, window, bin_ms, events)
        series = _behavior(reader, behavior, cut) if behavior else None
        codes, labels, condition_source = _conditions(reader, trials, condition, cut)
        ei_labels, ei_source = _ei_labels(reader, units, ei)
        counts = bin_spike_trains(trains, cut.starts_s[cut.keep], cut.n_bins, cut.bin_s)
        silent = np.asarray(units.id.data[:])[counts.sum(axis=(0, 1)) == 0]
        meta = {
            "source_file": str(path),
            "format": "nwb",
            "session": str(nwbfile.identifier),
            "trials_table": trials_path,
            "interval_tables": tables_listing(nwbfile),
            "trial_filters": "; ".join(str(f) for f in filters) or "none",
            "subject": getattr(nwbfile.subject, "subject_id", None),
            "align": cut.align,
            "window_ms": f"{cut.window_ms[0]:g},{cut.window_ms[1]:g}",
            "bin_ms_source": bin_source,
            "n_trials_in_file": len(cut.keep),
            "n_trials_dropped": int((~cut.keep).sum()),
            "dropped_trials": "; ".join(f"{n} {reason}" for reason, n in cut.reasons.items()) or "none",
            "conditions_from": condition_source,
            "ei_source": ei_source,
            "behavior_series": behavior or "none",
            "silent_units": ",".join(str(unit) for unit in silent.tolist()) or "none",
            "spike_time_problems": spike_problems,
        }
        time_ms = bin_centres_ms(cut.window_ms, cut.n_bins, bin_ms)
        table, opto_facts = read_perturbations(reader, trials, (perturbations, optogenetic_sites), cut, time_ms, units)
        task = TaskTrials(codes, labels, time_ms, str(path))
        events = dict(cue_event=cue_event, go_event=go_event, event_times=_event_times(reader, trials, cut))
        inputs, input_names, meta["inputs"] = build_task_inputs(inputs or "condition-onehot", task, **events)
        dataset = NeuralDataset(
            counts=counts,
            inputs=inputs,
            input_names=input_names,
            conditions=codes,
            condition_labels=labels,
            bin_ms=bin_ms,
            ei_labels=ei_labels,
            behavior=None if series is None else series[0][cut.keep],
            behavior_names=None if series is None else series[1],
            time_ms=time_ms,
            neuron_ids=np.asarray(units.id.data[:]),
            trial_ids=np.asarray(trials.id.data[:])[cut.keep],
            perturbations=table,
            meta={**meta, **opto_facts},
        )
        dataset.meta["sha256"] = file_sha256(path)
        return dataset


def _open(path: Path) -> Any:
    """An open pynwb reader of `path` (close it), or a DatasetError that says why not."""
    import pynwb  # deferred: importing pynwb takes about a second

    if not path.is_file():
        raise DatasetError(f"{path}: expected an NWB file; found no such file")
    io = None
    try:
        io = pynwb.NWBHDF5IO(str(path), "r")
        io.read()
    except Exception as exc:  # h5py and hdmf raise many types for damaged or foreign files
        if io is not None:  # opened but not readable: leave no handle open on the file
            io.close()
        reason = (str(exc).strip().splitlines() or [""])[0]
        builder = getattr(exc.args[0], "path", None) if len(exc.args) == 2 else None
        if isinstance(builder, str):  # hdmf's ConstructError: (the object's builder, why it failed)
            reason = f"{builder.removeprefix('root/')}: {exc.args[1]}"
        raise DatasetError(f"{path}: expected a readable NWB file; found {type(exc).__name__}: {reason}") from exc
    return io


def _event_times(reader: _Reader, trials: Any, cut: _Cut) -> EventTimes:
    """Cue/go events: a trials column (s, taken relative to each kept trial's time zero, in ms)
    or a number of ms."""

    def resolve(setting: str, text: str) -> np.ndarray:
        if is_event(trials, text):
            times = event_times(reader, trials, text, f"event times (s) ({setting})")[cut.keep]
            return (times - cut.zero_s[cut.keep]) * 1000.0
        try:
            return np.array(float(text))
        except ValueError:
            reader.fail(
                f"table '{trials.name}', column '{text}' ({setting})",
                "an event column (s) or a time in ms",
                f"no such column; columns: {', '.join(trials.colnames)}",
            )

    return resolve


class _Cut:
    """Which trials survive, with the reasons, and each kept trial's window (absolute seconds)."""

    def __init__(self, n_trials: int) -> None:
        self.keep = np.ones(n_trials, dtype=bool)
        self.reasons: dict[str, int] = {}

    def drop(self, mask: np.ndarray, reason: str) -> None:
        newly = np.asarray(mask, dtype=bool) & self.keep
        if newly.any():
            self.reasons[reason] = self.reasons.get(reason, 0) + int(newly.sum())
            self.keep &= ~newly

    def set_window(self, align: str, zero_s: np.ndarray, window_ms: tuple[float, float], n_bins: int) -> None:
        self.align, self.zero_s, self.window_ms, self.n_bins = align, zero_s, window_ms, n_bins
        self.bin_s = (window_ms[1] - window_ms[0]) / 1000.0 / n_bins
        self.starts_s = zero_s + window_ms[0] / 1000.0
        self.stops_s = zero_s + window_ms[1] / 1000.0
        self.drop(~np.isfinite(zero_s), f"NaN {align}")

    def require_some(self, reader: _Reader, table: Any) -> None:
        if not self.keep.any():
            reasons = "; ".join(f"{n} {reason}" for reason, n in self.reasons.items())
            reader.fail(
                f"table '{table.name}'", "at least one trial left to fit", f"all {len(self.keep)} dropped ({reasons})"
            )


def _kept_trials(
    reader: _Reader,
    tables: tuple[Any, Any, list[np.ndarray]],
    filters: list,
    align: str,
    window_ms: tuple[float, float] | None,
    bin_ms: float,
    events: tuple[str, ...],
) -> _Cut:
    """The trials the filters keep, each cut around `align`, with trial and spike times checked to
    be in one unit, and without a NaN in the `events` columns the inputs are built from."""
    trials, units, trains = tables
    cut = _Cut(len(trials))
    for trial_filter in filters:
        cut.drop(~filter_mask(reader, trials, trial_filter), f"not {trial_filter}")
    bounds = _trial_bounds(reader, cut, trials)
    check_time_units(reader, trials, units, trains, *bounds)
    _cut_trials(reader, cut, (trials, units), bounds, align, window_ms, bin_ms)
    for event in events:
        if is_event(trials, event):
            cut.drop(~np.isfinite(event_times(reader, trials, event, "event times (s)")), f"NaN {event}")
    cut.require_some(reader, trials)
    return cut


def _trial_bounds(reader: _Reader, cut: _Cut, trials: Any) -> tuple[np.ndarray, np.ndarray]:
    """start_time and stop_time (s); trials without both, or ending before they start, dropped."""
    starts = numbers(reader, trials, "start_time", "trial start times (s)")
    stops = numbers(reader, trials, "stop_time", "trial stop times (s)")
    cut.drop(~(np.isfinite(starts) & np.isfinite(stops)), "NaN start_time/stop_time")
    cut.drop(stops <= starts, "stop_time not after start_time")
    cut.require_some(reader, trials)
    return starts, stops


def _cut_trials(
    reader: _Reader,
    cut: _Cut,
    tables: tuple[Any, Any],
    bounds: tuple[np.ndarray, np.ndarray],
    align: str,
    window_ms: tuple[float, float] | None,
    bin_ms: float,
) -> None:
    """Each kept trial's window: `window_ms` around `align` (or from start_time), dropping the trials
    whose window ends after their own stop_time or lies outside the recording or obs_intervals."""
    (trials, units), (starts, stops) = tables, bounds
    lengths_ms = (stops - starts)[cut.keep] * 1000.0
    if align:
        zero = event_times(reader, trials, align, "an alignment column of event times (s)")
        check_event_times(reader, trials, align, zero, starts, stops)
        if window_ms is None:
            reader.fail(
                "setting 'window_ms' (--window-ms)", f"START,STOP in ms around '{align}', e.g. -250,450", "none"
            )
    else:
        zero = starts
        if window_ms is None:
            if np.ptp(lengths_ms) > EQUAL_LENGTH_TOLERANCE_S * 1000.0 or lengths_ms.min() > MAX_WHOLE_TRIAL_S * 1000:
                reader.fail(
                    f"table '{trials.name}', columns 'start_time'/'stop_time'",
                    f"trials of equal length, at most {MAX_WHOLE_TRIAL_S:g} s, to cut whole (or pass --window-ms "
                    "START,STOP, with --align COLUMN or from start_time)",
                    f"lengths {lengths_ms.min():g}..{lengths_ms.max():g} ms"
                    + (" (times in ms?)" if lengths_ms.min() > MAX_WHOLE_TRIAL_S * 1000 else ""),
                )
            window_ms = (0.0, np.floor(lengths_ms.min() / bin_ms + 1e-9) * bin_ms)
    cut.set_window(align or "start_time", zero, window_ms, bins_in_window(window_ms, bin_ms, str(reader.path)))
    cut.drop(cut.stops_s > stops + 1e-9, "window ends after stop_time")
    if not cut.keep.any() and np.isfinite(zero).any():
        reader.fail(
            f"table '{trials.name}', columns 'start_time'/'stop_time'",
            f"trials at least as long as the window ({window_ms[1]:g} ms from {cut.align}; windows may not run "
            "past their trial's stop_time)",
            f"trials of {lengths_ms.min():g}..{lengths_ms.max():g} ms",
        )
    first, last = np.nanmin(starts), np.nanmax(stops)
    cut.drop((cut.starts_s < first) | (cut.stops_s > last), f"window outside the recording ({first:g}..{last:g} s)")
    if "obs_intervals" in units.colnames:
        for intervals in reader.column(units, "obs_intervals", ""):
            intervals = np.asarray(intervals, dtype=float).reshape(-1, 2)
            inside = (intervals[:, 0] <= cut.starts_s[:, None]) & (cut.stops_s[:, None] <= intervals[:, 1])
            cut.drop(~inside.any(axis=1), "window outside a unit's obs_intervals")
    cut.require_some(reader, trials)


def _spike_trains(reader: _Reader, units: Any) -> tuple[list[np.ndarray], str]:
    """One sorted train per unit (s) and what was removed from them: non-finite times and exact
    repeats (a unit cannot fire twice at one instant; repeats are a train written twice)."""
    if len(units) == 0:
        reader.fail("table 'units'", "at least one unit", "an empty table")
    if "spike_times" not in units.colnames:
        reader.fail(
            "table 'units', column 'spike_times'",
            "spike times (s) per unit",
            f"no such column; columns: {', '.join(units.colnames) or 'none'}",
        )
    index = units["spike_times"]
    flat = np.asarray(index.target.data[:])
    if flat.dtype.kind not in "biuf":
        reader.fail("table 'units', column 'spike_times'", "spike times (s): numbers", f"values of type {flat.dtype}")
    trains, problems = cleaned_trains(np.split(flat.astype(float), np.asarray(index.data[:])[:-1]))
    if not any(len(train) for train in trains):
        reader.fail("table 'units', column 'spike_times'", "spike times (s) per unit", "no spike in any unit")
    return trains, problems


def _conditions(reader: _Reader, trials: Any, condition: str, cut: _Cut) -> tuple[np.ndarray, list, str]:
    """Codes per kept trial, labels (original values; 'a, b' for column combinations), source;
    trials whose condition value is missing (NaN, None, empty) are dropped."""
    columns = condition_columns(trials, condition, CONDITION_COLUMNS)
    if not columns:
        return np.zeros(int(cut.keep.sum()), dtype=np.int64), ["all"], "none: one condition (--condition COLUMN)"
    labels, missing = condition_values(reader, trials, columns)
    cut.drop(missing, f"no value in condition column{'s' if len(columns) > 1 else ''} {', '.join(columns)}")
    cut.require_some(reader, trials)
    codes, ordered = condition_codes([label for label, kept in zip(labels, cut.keep) if kept])
    return codes, ordered, f"trials column{'s' if len(columns) > 1 else ''} {', '.join(columns)}"


def _parse_ei_mapping(reader: _Reader, text: str) -> dict[str, int]:
    mapping = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        side, sep, values = (piece.strip() for piece in part.partition("="))
        if not sep or side.upper() not in ("E", "I") or not values:
            reader.fail("setting 'ei' (--ei)", "COLUMN or COLUMN:E=value,value;I=value", f"{text!r}")
        for value in values.split(","):
            mapping[label_key(value)] = 0 if side.upper() == "E" else 1
    return mapping


def _ei_labels(reader: _Reader, units: Any, ei: str) -> tuple[np.ndarray | None, str]:
    column, _, mapping_text = (piece.strip() for piece in ei.partition(":"))
    if not column:
        found = [name for name in EI_COLUMNS if name in units.colnames]
        if not found:
            return None, "none: all units treated as E (--ei COLUMN to label them)"
        column = found[0]
    values = reader.column(units, column, "a units column of E/I labels")
    if mapping_text:
        mapping, shown = _parse_ei_mapping(reader, mapping_text), f"E/I as given: {mapping_text}"
    else:
        mapping = {**dict.fromkeys(EXCITATORY_NAMES, 0), **dict.fromkeys(INHIBITORY_NAMES, 1)}
        shown = "the default E/I names (docs/data-format.md)"
    raw = [plain_label(np.asarray(value)) for value in values]
    unknown = [index for index, value in enumerate(raw) if label_key(value) not in mapping]
    if unknown:
        ids, first = np.asarray(units.id.data[:]), raw[unknown[0]]
        n_same = sum(raw[index] == first for index in unknown)
        reader.fail(
            f"table 'units', column '{column}'",
            f"values mapped to E or I by {shown}",
            f"{first!r} for {n_same} unit(s) (first: unit id {ids[unknown[0]]}); map it: --ei '{column}:E=...;I=...'",
        )
    source = f"units column '{column}' ({'mapping ' + mapping_text if mapping_text else 'default mapping'})"
    return np.array([mapping[label_key(value)] for value in raw], dtype=np.int8), source


def _find_series(reader: _Reader, spec: str) -> Any:
    from pynwb import TimeSeries

    everything = {
        object_path(obj, "acquisition"): obj for obj in reader.file.objects.values() if isinstance(obj, TimeSeries)
    }
    wanted = spec.strip().strip("/")
    matches = [name for name in everything if name == wanted or name.endswith("/" + wanted)]
    if len(matches) != 1:
        listing = ", ".join(sorted(everything)) or "none"
        found = f"{'none' if not matches else ' and '.join(matches)}; TimeSeries in the file: {listing}"
        reader.fail(f"TimeSeries '{spec}' (--behavior)", "exactly one TimeSeries of that name or path", found)
    return everything[matches[0]]


def _behavior(reader: _Reader, behavior: str, cut: _Cut) -> tuple[np.ndarray, list[str]]:
    """Every named series, averaged over the samples in each bin ([start, stop)); a bin without
    samples (a series slower than the bins) takes the value interpolated at its centre."""
    arrays, names = [], []
    edges = bin_edges_s(np.where(cut.keep, cut.starts_s, 0.0), cut.n_bins, cut.bin_s)
    centres = 0.5 * (edges[:, 1:] + edges[:, :-1])
    for spec in filter(None, (piece.strip() for piece in behavior.split(","))):
        series = _find_series(reader, spec)
        values = np.asarray(series.data[:], dtype=float) * series.conversion + getattr(series, "offset", 0.0)
        values = values.reshape(len(values), -1)
        times = np.asarray(series.get_timestamps(), dtype=float)
        samples = np.searchsorted(times, edges, side="left")
        missing = np.isnan(values)
        sums = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(np.where(missing, 0.0, values), axis=0)])
        nans = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(missing, axis=0)])
        n = np.diff(samples, axis=1)[..., None]
        with np.errstate(invalid="ignore", divide="ignore"):
            binned = (sums[samples[:, 1:]] - sums[samples[:, :-1]]) / n
        empty = n[..., 0] == 0
        for channel in range(values.shape[1]):
            binned[..., channel][empty] = np.interp(centres[empty], times, values[:, channel])
        cut.drop((cut.starts_s < times[0]) | (cut.stops_s > times[-1]), f"window outside TimeSeries '{spec}'")
        has_nan = (nans[samples[:, 1:]] - nans[samples[:, :-1]]).sum(axis=(1, 2)) > 0
        cut.drop(has_nan | ~np.isfinite(binned).all(axis=(1, 2)), f"NaN in TimeSeries '{spec}'")
        arrays.append(binned)
        width = values.shape[1]
        suffixes = AXIS_SUFFIXES if width <= len(AXIS_SUFFIXES) else [str(k) for k in range(width)]
        names += [series.name] if width == 1 else [f"{series.name}_{suffix}" for suffix in suffixes[:width]]
    return np.concatenate(arrays, axis=2), names
