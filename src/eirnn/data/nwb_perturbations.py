"""Perturbation (optogenetic) trials of an NWB file, from its trials table (docs/data-format.md).

Two ways, as labs store them:

* columns named ``perturbation_target`` ("E", "I", unit ids "3,7,9", or empty for a control
  trial), ``perturbation_kind``, ``perturbation_onset_time`` / ``perturbation_offset_time``
  (seconds on the session clock, as every NWB ``*_time`` column) and ``perturbation_power``
  (the strength), with an optional ``perturbation_label``;
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
    reader: Any, trials: Any, spec: str, cut: Any, time_ms: np.ndarray, units: Any
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(table columns for `NeuralDataset(perturbations=...)` or None, facts for the data's meta)."""
    unit_ids = np.asarray(units.id.data[:])
    facts = _optogenetics_facts(reader.file)
    if spec:
        rows = _decoded_rows(reader, trials, spec, cut, len(unit_ids))
        source = f"trials column {spec.split(':')[0]} (codes as given)"
    elif COLUMNS["target"] in trials.colnames:
        rows, source = _column_rows(reader, trials, cut, unit_ids), "trials columns perturbation_*"
    else:
        return None, facts
    kept, dropped = _cut_to_window(rows, time_ms, cut.window_ms)
    facts.update(perturbations_from=source, n_perturbations_outside_window=str(dropped))
    if not kept:
        return None, facts
    columns = {name: np.array([row[name] for row in kept]) for name in kept[0] if name != "neurons"}
    columns["neurons"] = np.array([row["neurons"] for row in kept])
    return columns, facts


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


def _column_rows(reader: Any, trials: Any, cut: Any, unit_ids: np.ndarray) -> list[dict[str, Any]]:
    values = {key: reader.column(trials, name, f"the perturbations' {key}") for key, name in COLUMNS.items()}
    labels = reader.column(trials, "perturbation_label", "") if "perturbation_label" in trials.colnames else None
    ids = np.asarray(trials.id.data[:])
    rows = []
    for trial in np.flatnonzero(cut.keep):
        target = str(values["target"][trial]).strip()
        if target.lower() in CONTROL_WORDS:
            continue
        neurons = np.zeros(len(unit_ids), dtype=bool)
        if target not in ("E", "I"):
            wanted = [item.strip() for item in target.split(",")]
            known = np.isin(unit_ids.astype(str), wanted)
            if known.sum() != len(wanted):
                reader.fail(
                    f"table 'trials', column '{COLUMNS['target']}'",
                    "E, I, unit ids of the units table (e.g. '3,7') or empty",
                    f"{target!r} in trial {ids[trial]}",
                )
            neurons, target = known, "neurons"
        zero = cut.zero_s[trial]
        onset, offset = ((float(values[key][trial]) - zero) * 1000.0 for key in ("onset", "offset"))
        row = _row(
            ids[trial],
            target,
            neurons,
            str(values["kind"][trial]).strip(),
            float(values["strength"][trial]),
            onset,
            offset,
        )
        if labels is not None:
            row["label"] = str(labels[trial])
        rows.append(row)
    return rows


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
