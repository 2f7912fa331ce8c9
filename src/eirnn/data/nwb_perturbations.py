"""Perturbation (optogenetic) trials of an NWB file: trials columns, epochs, power traces (docs/data-format.md).

The ways labs store them, the first the file has taken (a code map given by the user first):

* columns named ``perturbation_target`` ("E", "I", unit ids "3,7,9", or empty for a control
  trial), ``perturbation_kind``, ``perturbation_onset_time`` / ``perturbation_offset_time``
  (seconds on the session clock, as every NWB ``*_time`` column) and ``perturbation_power``
  (the strength), with an optional ``perturbation_label``: one value per trial, or ragged
  (indexed) columns with an entry per perturbation of the trial (none for a control trial);
* an intervals table of perturbation epochs (any but the trials table with a
  ``perturbation_target`` column): a row per perturbation from its start_time to its stop_time,
  matched to the trials it overlaps;
* the runs of light of the file's `OptogeneticSeries` (`eirnn.data.nwb_optogenetics`);
* a coded column whose meaning the file only gives in words (DANDI 000221's
  ``PhotostimulationType``), decoded by the user's map
  ``COLUMN:CODE=TARGET/KIND/STRENGTH/ONSET_MS/OFFSET_MS;CODE=control`` with the window in ms on
  the trial's time axis (around the alignment event).

A window is cut to the analysed window (a stimulation may outlast it); one that covers no bin of
it is left out and counted. The file's `OptogeneticStimulusSite`s and `OptogeneticSeries` are
named in the data facts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .nwb_optogenetics import IGNORE, SERIES_SOURCE, SessionWindow, optogenetic_windows, windows_in_trials
from .nwb_optogenetics import SETTING as SITES_SETTING
from .nwb_trials import interval_tables, numbers
from .perturbations import KINDS, TARGETS

COLUMNS = {
    "target": "perturbation_target",
    "kind": "perturbation_kind",
    "onset": "perturbation_onset_time",
    "offset": "perturbation_offset_time",
    "strength": "perturbation_power",
}
CONTROL_WORDS = ("", "none", "control", "nan")


def read_perturbations(
    reader: Any, trials: Any, settings: tuple[str, str], cut: Any, time_ms: np.ndarray, units: Any
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(table columns for `NeuralDataset(perturbations=...)` or None, facts for the data's meta);
    `settings`: (`perturbations`, `optogenetic_sites`)."""
    facts = _optogenetics_facts(reader.file)
    found = _rows_and_source(reader, trials, settings, cut, np.asarray(units.id.data[:]))
    sites = settings[1].strip()
    if sites and sites.lower() != IGNORE and (found is None or not found[1].startswith(SERIES_SOURCE)):
        where = f"perturbations from {found[1]}" if found else "no OptogeneticSeries in the file"
        reader.fail(SITES_SETTING, "an OptogeneticSeries to read the perturbations from", where)
    if found is None:
        return None, facts
    kept, dropped = _cut_to_window(found[0], time_ms, cut.window_ms)
    facts.update(perturbations_from=found[1], n_perturbations_outside_window=str(dropped))
    if not kept:
        return None, facts
    columns = {name: np.array([row[name] for row in kept]) for name in kept[0] if name != "neurons"}
    columns["neurons"] = np.array([row["neurons"] for row in kept])
    return columns, facts


def _rows_and_source(
    reader: Any, trials: Any, settings: tuple[str, str], cut: Any, unit_ids: np.ndarray
) -> tuple[list[dict[str, Any]], str] | None:
    """The perturbations' rows from the first way the file stores them, and which it is."""
    spec, sites = settings
    if spec:
        source = f"trials column {spec.split(':')[0]} (codes as given)"
        return _decoded_rows(reader, trials, spec, cut, len(unit_ids)), source
    if COLUMNS["target"] in trials.colnames:
        return _column_rows(reader, trials, cut, unit_ids), "trials columns perturbation_*"
    if epochs := _epoch_tables(reader, trials):
        where = f"column '{COLUMNS['target']}' of {', '.join(epochs)}"
        rows = _session_rows(reader, trials, _epoch_windows(reader, epochs, cut), cut, unit_ids, where)
        return rows, f"intervals table {', '.join(epochs)}"
    if (light := optogenetic_windows(reader, sites, cut)) is not None:
        where = f"the target of an optogenetic site (its description or the {SITES_SETTING})"
        return _session_rows(reader, trials, light[0], cut, unit_ids, where), light[1]
    return None


def _optogenetics_facts(nwbfile: Any) -> dict[str, str]:
    facts = {}
    sites = getattr(nwbfile, "ogen_sites", {}) or {}
    if sites:
        facts["optogenetic_sites"] = "; ".join(
            f"{name} ({getattr(site.device, 'name', '?')}, {site.location}, {site.excitation_lambda:g} nm)"
            for name, site in sites.items()
        )
    series = [
        name
        for group in (nwbfile.acquisition, nwbfile.stimulus)
        for name, item in group.items()
        if type(item).__name__ == "OptogeneticSeries"
    ]
    if series:
        facts["optogenetic_series"] = ", ".join(series)
    return facts


def _row(trial_id: Any, target: str, neurons: np.ndarray, kind: str, strength: float, onset: float, offset: float):
    return dict(
        trial=trial_id, target=target, neurons=neurons, kind=kind, strength=strength, onset_ms=onset, offset_ms=offset
    )


def _entries(values: np.ndarray | list, trial: int) -> list[Any]:
    """One trial's entries of a column: a ragged column's row, or a plain column's one value."""
    return list(values[trial]) if isinstance(values, list) else [values[trial]]


def _column_rows(reader: Any, trials: Any, cut: Any, unit_ids: np.ndarray) -> list[dict[str, Any]]:
    """The rows of the perturbation_* columns: one value per trial, or ragged columns with an
    entry per perturbation of the trial (all of a trial's entries in step across the columns)."""
    names = dict(COLUMNS, **({"label": "perturbation_label"} if "perturbation_label" in trials.colnames else {}))
    values = {key: reader.column(trials, name, f"the perturbations' {key}") for key, name in names.items()}
    bounds = [np.asarray(reader.column(trials, name, ""), dtype=float) for name in ("start_time", "stop_time")]
    ids = np.asarray(trials.id.data[:])
    rows = []
    for trial in np.flatnonzero(cut.keep):
        entries = {key: _entries(column, trial) for key, column in values.items()}
        for key, found in entries.items():
            if len(found) != len(entries["target"]):
                reader.fail(
                    f"table 'trials', column '{names[key]}'",
                    f"{len(entries['target'])} entries in trial {ids[trial]} (one per perturbation, as "
                    f"{COLUMNS['target']})",
                    f"{len(found)}",
                )
        for entry in range(len(entries["target"])):
            row = {key: found[entry] for key, found in entries.items()}
            target = str(row["target"]).strip()
            if target.lower() in CONTROL_WORDS:
                continue
            onset, offset = _window_s(reader, row, ids[trial], (bounds[0][trial], bounds[1][trial]))
            where = f"table 'trials', column '{COLUMNS['target']}'"
            target, neurons = _target(reader, target, unit_ids, where, f"in trial {ids[trial]}")
            zero = cut.zero_s[trial]
            rows.append(
                _row(
                    ids[trial],
                    target,
                    neurons,
                    str(row["kind"]).strip(),
                    float(row["strength"]),
                    (onset - zero) * 1000.0,
                    (offset - zero) * 1000.0,
                )
            )
            if "label" in row:
                rows[-1]["label"] = str(row["label"])
    return rows


def _target(reader: Any, target: str, unit_ids: np.ndarray, where: str, context: str) -> tuple[str, np.ndarray]:
    """("E" or "I", no neurons) or ("neurons", the mask of the listed unit ids)."""
    if target in ("E", "I"):
        return target, np.zeros(len(unit_ids), dtype=bool)
    wanted = [item.strip() for item in target.split(",")]
    known = np.isin(unit_ids.astype(str), wanted)
    if known.sum() != len(wanted):
        found = f"{target!r} {context}".strip()
        reader.fail(where, "E, I, unit ids of the units table (e.g. '3,7') or empty", found)
    return "neurons", known


def _session_rows(
    reader: Any, trials: Any, windows: list[SessionWindow], cut: Any, unit_ids: np.ndarray, where: str
) -> list[dict[str, Any]]:
    """The rows of perturbations on the session clock, on each trial's time axis; `where` names
    the source of their targets for the error."""
    ids = np.asarray(trials.id.data[:])
    rows = []
    for window in windows:
        target, neurons = _target(reader, window.target, unit_ids, where, "")
        zero = cut.zero_s[window.trial]
        onset, offset = ((time - zero) * 1000.0 for time in (window.onset_s, window.offset_s))
        rows.append(_row(ids[window.trial], target, neurons, window.kind, window.strength, onset, offset))
        if window.label:
            rows[-1]["label"] = window.label
    return rows


def _epoch_tables(reader: Any, trials: Any) -> dict[str, Any]:
    """path -> every intervals table other than the trials table with a perturbation_target column."""
    return {
        path: table
        for path, table in interval_tables(reader.file).items()
        if table is not trials and COLUMNS["target"] in table.colnames
    }


def _epoch_windows(reader: Any, tables: dict[str, Any], cut: Any) -> list[SessionWindow]:
    """Each row of the epochs tables (a perturbation from start_time to stop_time, s), once per
    kept trial it overlaps."""
    windows = []
    for table in tables.values():
        names = {key: COLUMNS[key] for key in ("target", "kind", "strength")}
        names.update({"label": "perturbation_label"} if "perturbation_label" in table.colnames else {})
        values = {key: reader.column(table, name, f"the perturbations' {key}") for key, name in names.items()}
        bounds = [numbers(reader, table, name, "times (s)") for name in ("start_time", "stop_time")]
        for row in range(len(table)):
            target = str(values["target"][row]).strip()
            if target.lower() in CONTROL_WORDS:
                continue
            if not (np.isfinite(bounds[0][row]) and bounds[1][row] > bounds[0][row]):
                reader.fail(
                    f"table '{table.name}', columns 'start_time'/'stop_time'",
                    "finite times (s), stop_time after start_time",
                    f"{bounds[0][row]:g}..{bounds[1][row]:g} in row {row}",
                )
            meaning = dict(
                target=target, kind=str(values["kind"][row]).strip(), strength=float(values["strength"][row])
            )
            label = str(values["label"][row]) if "label" in values else ""
            windows += windows_in_trials(cut, bounds[0][row], bounds[1][row], label=label, **meaning)
    return windows


def _window_s(reader: Any, row: dict[str, Any], trial_id: Any, trial_s: tuple[float, float]) -> tuple[float, float]:
    """A perturbation's onset and offset (s), refused when not numbers ending after they start or
    when outside its own trial (times on another clock or in ms)."""
    where = f"table 'trials', column '{COLUMNS['onset']}'/'{COLUMNS['offset']}'"
    try:
        onset, offset = float(row["onset"]), float(row["offset"])
    except (TypeError, ValueError):
        reader.fail(where, "times in s", f"{row['onset']!r}..{row['offset']!r} in trial {trial_id}")
    if not (np.isfinite(onset) and np.isfinite(offset) and offset > onset):
        reader.fail(where, "finite times in s, offset after onset", f"{onset:g}..{offset:g} s in trial {trial_id}")
    if offset <= trial_s[0] or onset >= trial_s[1]:
        reader.fail(
            where,
            f"a window overlapping its trial ({trial_s[0]:g}..{trial_s[1]:g} s, session clock)",
            f"{onset:g}..{offset:g} s in trial {trial_id}",
        )
    return onset, offset


def _parse_codes(reader: Any, spec: str) -> tuple[str, dict[str, tuple | None]]:
    where = "setting 'perturbations' (--perturbations)"
    expected = (
        "COLUMN:CODE=TARGET/KIND/STRENGTH/ONSET_MS/OFFSET_MS;CODE=control, TARGET E or I, KIND one of "
        + "/".join(KINDS)
    )
    column, _, text = spec.partition(":")
    codes: dict[str, tuple | None] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        code, _, meaning = item.partition("=")
        parts = meaning.strip().split("/")
        if meaning.strip().lower() == "control":
            codes[code.strip()] = None
            continue
        try:
            target, kind, strength, onset, offset = parts
            parsed = (target.strip(), kind.strip(), float(strength), float(onset), float(offset))
        except ValueError:
            reader.fail(where, expected, repr(item))
        if parsed[0] not in TARGETS[:2] or parsed[1] not in KINDS:
            reader.fail(where, expected, repr(item))
        codes[code.strip()] = parsed
    if not column or not codes:
        reader.fail(where, expected, repr(spec))
    return column.strip(), codes


def _code_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _decoded_rows(reader: Any, trials: Any, spec: str, cut: Any, n_units: int) -> list[dict[str, Any]]:
    column, codes = _parse_codes(reader, spec)
    values = reader.column(trials, column, "a column of perturbation codes")
    ids = np.asarray(trials.id.data[:])
    rows = []
    for trial in np.flatnonzero(cut.keep):
        code = _code_text(values[trial])
        if code not in codes:
            reader.fail(
                f"table 'trials', column '{column}'",
                f"codes given in --perturbations ({', '.join(codes)})",
                f"code {code!r} in trial {ids[trial]}",
            )
        if codes[code] is not None:
            target, kind, strength, onset, offset = codes[code]
            row = _row(ids[trial], target, np.zeros(n_units, dtype=bool), kind, strength, onset, offset)
            row["label"] = f"{column}={code}"
            rows.append(row)
    return rows


def _cut_to_window(
    rows: list[dict[str, Any]], time_ms: np.ndarray, window_ms: tuple[float, float]
) -> tuple[list[dict], int]:
    """Rows with their windows cut to the analysed window; those covering no bin are left out."""
    first, end = float(window_ms[0]), float(window_ms[1])
    kept = []
    for row in rows:
        onset, offset = max(row["onset_ms"], first), min(row["offset_ms"], end)
        if ((time_ms >= onset) & (time_ms < offset)).any():
            kept.append(dict(row, onset_ms=onset, offset_ms=offset))
    labelled = [row for row in kept if "label" in row]
    if labelled and len(labelled) != len(kept):
        for row in kept:
            row.setdefault("label", f"{row['target']} {row['kind']}")
    return kept, len(rows) - len(kept)
