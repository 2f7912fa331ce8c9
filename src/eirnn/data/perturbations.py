"""Perturbation (optogenetic) trials of a recording: what was stimulated, when, how, how strongly.

A recording's perturbations are one table with a row per perturbation (a trial may have none,
one or several): its trial, its target (the labelled population "E" or "I", as with a
cell-type-specific opsin, or a list of recorded neurons, as with holographic stimulation), its
window in ms on the trial's time axis (`time_ms`), its kind and its strength. Both kinds are an
input reaching only the targeted units, in the units of the network's drive (the state x):

* activation adds ``+strength`` to the drive of each targeted unit (a depolarising opsin);
* inactivation adds ``-strength`` (a hyperpolarising opsin; with a strength of a few units the
  softplus rate of a targeted unit falls to a few percent: docs/perturbations.md).

A perturbation is on in bin t when ``onset_ms <= time_ms[t] < offset_ms``, as task inputs are.
Trials without a perturbation are control trials.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .values import as_text

TARGETS = ("E", "I", "neurons")
KINDS = ("activation", "inactivation")
#: the sign of each kind's drive
KIND_SIGNS = {"activation": 1.0, "inactivation": -1.0}
CONTROL = "control"
#: table column -> the variable that holds it in a file (docs/data-format.md)
FILE_VARIABLES = {
    "trial": "perturbation_trial",
    "target": "perturbation_target",
    "neurons": "perturbation_neurons",
    "onset_ms": "perturbation_onset_ms",
    "offset_ms": "perturbation_offset_ms",
    "kind": "perturbation_kind",
    "strength": "perturbation_strength",
    "label": "perturbation_label",
}
#: how a file's perturbations were read (NWB), logged with the data facts when known
PERTURBATION_FACTS = ("perturbations_from", "n_perturbations_outside_window", "optogenetic_sites", "optogenetic_series")
REQUIRED_COLUMNS = ("trial", "target", "onset_ms", "offset_ms", "kind", "strength")

Fail = Callable[[str, str, str], None]


@dataclass(frozen=True)
class Channel:
    """One distinct stimulation: its target (population or neuron indices) and kind."""

    target: str
    neurons: tuple[int, ...]
    kind: str

    @property
    def sign(self) -> float:
        return KIND_SIGNS[self.kind]


@dataclass(frozen=True, eq=False)
class PerturbationSteps:
    """Perturbations as the model applies them: the strength of each channel at every step.

    values [trials, time, channels] float32; zero where a channel is off (all zero on control trials).
    """

    channels: tuple[Channel, ...]
    values: np.ndarray

    def take(self, index: np.ndarray) -> PerturbationSteps:
        return PerturbationSteps(self.channels, self.values[index])


@dataclass(eq=False)
class PerturbationTable:
    """The validated table (one row per perturbation); see the module docstring.

    trial [P] int64 (index into the dataset's trials), target [P] str, neurons [P, neurons] bool
    (the targeted neurons of a "neurons" row, all False otherwise), onset_ms/offset_ms [P] float,
    kind [P] str, strength [P] float >= 0, label [P] str (the perturbation's type, e.g.
    "I activation"; trials are grouped by it for splits and scores).
    """

    trial: np.ndarray
    target: np.ndarray
    neurons: np.ndarray
    onset_ms: np.ndarray
    offset_ms: np.ndarray
    kind: np.ndarray
    strength: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.trial)

    def take(self, trial_index: np.ndarray, n_trials: int) -> PerturbationTable | None:
        """The rows of the trials `trial_index` (of `n_trials`; a trial may repeat), each
        renumbered to its new position."""
        rows_of = [np.flatnonzero(self.trial == trial) for trial in np.asarray(trial_index).tolist()]
        picked = np.concatenate([np.zeros(0, dtype=np.int64), *rows_of])
        if not len(picked):
            return None
        rows = {field.name: getattr(self, field.name)[picked] for field in dataclasses.fields(self)}
        rows["trial"] = np.repeat(np.arange(len(rows_of)), [len(found) for found in rows_of])
        return PerturbationTable(**rows)

    def keep_neurons(self, keep: np.ndarray) -> PerturbationTable | None:
        """The table for the neurons `keep` only; a neuron-list row left with no neuron is dropped."""
        neurons = self.neurons[:, keep]
        rows = (self.target != "neurons") | neurons.any(axis=1)
        if not rows.any():
            return None
        table = {field.name: getattr(self, field.name)[rows] for field in dataclasses.fields(self)}
        return PerturbationTable(**{**table, "neurons": neurons[rows]})

    def trial_types(self, n_trials: int) -> np.ndarray:
        """Each trial's perturbation type: "control", a label, or labels joined by " + "."""
        labels: list[set[str]] = [set() for _ in range(n_trials)]
        for trial, label in zip(self.trial.tolist(), self.label.tolist()):
            labels[trial].add(label)
        return np.array([" + ".join(sorted(found)) if found else CONTROL for found in labels])

    def channels(self) -> tuple[Channel, ...]:
        found: dict[Channel, None] = {}
        for row in range(len(self)):
            found.setdefault(self._channel(row))
        return tuple(found)

    def _channel(self, row: int) -> Channel:
        target = str(self.target[row])
        neurons = tuple(np.flatnonzero(self.neurons[row]).tolist()) if target == "neurons" else ()
        return Channel(target, neurons, str(self.kind[row]))

    def steps(self, n_trials: int, time_ms: np.ndarray) -> PerturbationSteps:
        """Each channel's strength per trial and step (overlapping rows of a channel add up)."""
        channels = self.channels()
        position = {channel: index for index, channel in enumerate(channels)}
        values = np.zeros((n_trials, len(time_ms), len(channels)), dtype=np.float32)
        for row in range(len(self)):
            on = (time_ms >= self.onset_ms[row]) & (time_ms < self.offset_ms[row])
            values[self.trial[row], on, position[self._channel(row)]] += self.strength[row]
        return PerturbationSteps(channels, values)

    def file_variables(self, trial_ids: np.ndarray) -> dict[str, np.ndarray]:
        """The documented `perturbation_*` variables (trials named by their trial id)."""
        variables = {
            "trial": trial_ids[self.trial],
            "target": self.target,
            "onset_ms": self.onset_ms,
            "offset_ms": self.offset_ms,
            "kind": self.kind,
            "strength": self.strength,
            "label": self.label,
        }
        if (self.target == "neurons").any():
            variables["neurons"] = self.neurons.astype(np.uint8)
        return {FILE_VARIABLES[name]: value for name, value in variables.items()}

    def same_as(self, other: PerturbationTable) -> bool:
        return all(
            np.array_equal(getattr(self, field.name), getattr(other, field.name)) for field in dataclasses.fields(self)
        )


def default_label(target: str, neurons: np.ndarray, kind: str, neuron_ids: np.ndarray) -> str:
    if target != "neurons":
        return f"{target} {kind}"
    ids = [str(neuron_id) for neuron_id in neuron_ids[neurons].tolist()]
    return f"neurons {','.join(ids)} {kind}"


def _text_column(values: Any) -> np.ndarray:
    return np.array([str(as_text(item)).strip() for item in np.asarray(values, dtype=object).ravel()], dtype=object)


def _numbers(name: str, values: Any, fail: Fail) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        fail(name, "numbers, one per perturbation", f"dtype {np.asarray(values).dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        fail(name, "finite numbers", f"{int(bad.sum())} NaN/Inf, first at perturbation {int(np.argmax(bad))}")
    return array


def _first_bad(mask: np.ndarray, values: np.ndarray) -> str:
    row = int(np.argmax(mask))
    value = values[row].item() if isinstance(values[row], np.generic) else values[row]
    return f"{value!r} at perturbation {row}"


def columns_from_variables(variables: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """The `perturbation_*` variables of a file by table column (None when it has none); MATLAB's
    column vectors read as vectors, the neuron matrix as stored [perturbations, neurons]."""
    present = {column: name for column, name in FILE_VARIABLES.items() if name in variables}
    if not present:
        return None
    return {
        column: variables[name] if column == "neurons" else np.asarray(variables[name]).reshape(-1)
        for column, name in present.items()
    }


def variables_to_write(dataset: Any, text: Callable[[Any], np.ndarray]) -> dict[str, np.ndarray]:
    """The dataset's `perturbation_*` variables as a file writer stores them (`text` for strings)."""
    if dataset.perturbations is None:
        return {}
    variables = dataset.perturbations.file_variables(dataset.trial_ids)
    return {name: text(value) if value.dtype.kind == "U" else value for name, value in variables.items()}


def file_fingerprint(dataset: Any) -> bytes:
    """The perturbations as bytes for a data hash; empty without perturbations."""
    table = getattr(dataset, "perturbations", None)
    if table is None:
        return b""
    variables = table.file_variables(np.arange(dataset.n_trials))
    return "".join(f"{name}:{np.asarray(value).tolist()!r}" for name, value in variables.items()).encode()


def time_axis_ms(dataset: Any) -> np.ndarray:
    """The trial's time axis: `time_ms`, or the bin starts 0, bin_ms, ... without time stamps."""
    return dataset.time_ms if dataset.time_ms is not None else np.arange(dataset.n_bins) * dataset.bin_ms


def trial_types(dataset: Any) -> np.ndarray:
    """Each trial's perturbation type (str [trials]): "control" or its perturbations' labels."""
    table = dataset.perturbations
    return np.full(dataset.n_trials, CONTROL) if table is None else table.trial_types(dataset.n_trials)


def perturbation_labels(dataset: Any) -> set[str]:
    """The perturbation types (labels) that some trial of `dataset` has, alone or beside another."""
    table = dataset.perturbations
    return set() if table is None else set(table.label.tolist())


def perturbation_steps(dataset: Any) -> PerturbationSteps | None:
    """The dataset's perturbations as the model applies them; None when every trial is a control."""
    table = getattr(dataset, "perturbations", None)
    return None if table is None else table.steps(dataset.n_trials, time_axis_ms(dataset))


def same_tables(first: PerturbationTable | None, second: PerturbationTable | None) -> bool:
    if first is None or second is None:
        return first is None and second is None
    return first.same_as(second)


def perturbation_summary(types: np.ndarray) -> str:
    """ "none", or the number of perturbed trials and the trials of each type."""
    labels, counts = np.unique(types[types != CONTROL], return_counts=True)
    if not len(labels):
        return "none"
    shown = ", ".join(f"{label} ({count})" for label, count in zip(labels.tolist(), counts.tolist()))
    return f"{int(counts.sum())} of {len(types)}: {shown}"


def checked_table(
    raw: PerturbationTable | Mapping[str, Any] | None, dataset: Any, fail: Fail
) -> PerturbationTable | None:
    """Validate `raw` (a table, or columns by name: `trial` holds trial ids of the dataset's
    `trial_ids`, an optional `neurons` is [P, neurons] 0/1) against `dataset` (sizes, ids, time
    axis); None for no perturbations. `fail(variable, expected, found)` raises the dataset's
    one-line error."""
    if raw is None:
        return None
    n_trials, trial_ids, neuron_ids = dataset.n_trials, dataset.trial_ids, dataset.neuron_ids
    # a table holds trial indices (a subset may repeat a trial, e.g. a bootstrap resample); a
    # file's columns name trials by their ids
    is_table = isinstance(raw, PerturbationTable)
    columns = {field.name: getattr(raw, field.name) for field in dataclasses.fields(raw)} if is_table else dict(raw)
    missing = [name for name in REQUIRED_COLUMNS if columns.get(name) is None]
    if missing:
        fail(FILE_VARIABLES[missing[0]], "one entry per perturbation (with the other perturbation_* variables)", "none")
    n_rows = len(np.asarray(columns["target"]).ravel())
    for name, values in columns.items():
        if name != "neurons" and values is not None and len(np.asarray(values).ravel()) != n_rows:
            found = f"{len(np.asarray(values).ravel())} entries"
            fail(FILE_VARIABLES[name], f"{n_rows} entries (one per perturbation, as perturbation_target)", found)
    if n_rows == 0:
        return None
    trial = (
        _indices(columns["trial"], n_trials, fail)
        if is_table
        else _trial_index(columns["trial"], trial_ids, n_trials, fail)
    )
    target = _text_column(columns["target"])
    unknown = ~np.isin(target, TARGETS)
    if unknown.any():
        fail(FILE_VARIABLES["target"], "'E', 'I' or 'neurons'", _first_bad(unknown, target))
    neurons = _neuron_mask(columns.get("neurons"), target, len(neuron_ids), fail)
    kind = _text_column(columns["kind"])
    unknown = ~np.isin(kind, KINDS)
    if unknown.any():
        fail(FILE_VARIABLES["kind"], "'activation' or 'inactivation'", _first_bad(unknown, kind))
    strength = _numbers(FILE_VARIABLES["strength"], columns["strength"], fail)
    if (strength < 0).any():
        fail(FILE_VARIABLES["strength"], "strengths >= 0 (the kind gives the sign)", _first_bad(strength < 0, strength))
    onset = _numbers(FILE_VARIABLES["onset_ms"], columns["onset_ms"], fail)
    offset = _numbers(FILE_VARIABLES["offset_ms"], columns["offset_ms"], fail)
    _check_windows(onset, offset, time_axis_ms(dataset), dataset.bin_ms, fail)
    labels = columns.get("label")
    label = (
        np.array([default_label(t, m, k, neuron_ids) for t, m, k in zip(target, neurons, kind)], dtype=object)
        if labels is None
        else _text_column(labels)
    )
    return PerturbationTable(
        trial=trial,
        target=target.astype(str),
        neurons=neurons,
        onset_ms=onset,
        offset_ms=offset,
        kind=kind.astype(str),
        strength=strength,
        label=label.astype(str),
    )


def _indices(values: Any, n_trials: int, fail: Fail) -> np.ndarray:
    trial = np.asarray(values, dtype=np.int64)
    outside = (trial < 0) | (trial >= n_trials)
    if outside.any():
        fail(FILE_VARIABLES["trial"], f"trial indices 0..{n_trials - 1}", _first_bad(outside, trial))
    return trial


def _trial_index(values: Any, trial_ids: np.ndarray, n_trials: int, fail: Fail) -> np.ndarray:
    ids = np.asarray(values).ravel()
    if ids.dtype == object:
        ids = _text_column(ids)
    if trial_ids.dtype.kind in "US":
        ids = ids.astype(str)
    elif ids.dtype.kind == "f" and np.all(ids == np.round(ids)):
        ids = ids.astype(np.int64)
    if len(np.unique(trial_ids)) != n_trials:
        fail(FILE_VARIABLES["trial"], "trials named by unique trial_ids", "repeated trial_ids")
    order = np.argsort(trial_ids, kind="stable")
    position = np.clip(np.searchsorted(trial_ids[order], ids), 0, n_trials - 1)
    found = trial_ids[order][position] == ids
    if not found.all():
        fail(FILE_VARIABLES["trial"], "trial ids of the recording (trial_ids)", _first_bad(~found, ids))
    return order[position].astype(np.int64)


def _neuron_mask(values: Any, target: np.ndarray, n_neurons: int, fail: Fail) -> np.ndarray:
    needs = target == "neurons"
    name = FILE_VARIABLES["neurons"]
    if values is None:
        if needs.any():
            fail(name, f"a [perturbations, {n_neurons}] 0/1 matrix of targeted neurons", "none")
        return np.zeros((len(target), n_neurons), dtype=bool)
    mask = np.asarray(values)
    if mask.shape != (len(target), n_neurons):
        fail(name, f"a [{len(target)}, {n_neurons}] 0/1 matrix (perturbations x neurons)", f"shape {mask.shape}")
    if not np.isin(mask, (0, 1)).all():
        fail(name, "0/1 (or booleans)", "other values")
    mask = mask.astype(bool) & needs[:, None]
    empty = needs & ~mask.any(axis=1)
    if empty.any():
        fail(
            name, "at least one targeted neuron per 'neurons' perturbation", f"none at perturbation {np.argmax(empty)}"
        )
    return mask


def _check_windows(onset: np.ndarray, offset: np.ndarray, time_ms: np.ndarray, bin_ms: float, fail: Fail) -> None:
    # a bin's stamp may be its start or its centre: the trial spans its stamps, one bin either side
    first, end = float(time_ms[0]) - bin_ms, float(time_ms[-1]) + bin_ms
    expected = f"windows inside the trial ({first:g}..{end:g} ms on its time axis)"
    before = onset < first - 1e-9
    if before.any():
        fail(FILE_VARIABLES["onset_ms"], expected, _first_bad(before, onset))
    after = (offset > end + 1e-9) | (offset <= onset)
    if after.any():
        fail(
            FILE_VARIABLES["offset_ms"],
            expected + " ending after their onset",
            _first_bad(after, offset),
        )
    covers = ((time_ms[None, :] >= onset[:, None]) & (time_ms[None, :] < offset[:, None])).any(axis=1)
    if not covers.all():
        row = int(np.argmax(~covers))
        fail(
            FILE_VARIABLES["onset_ms"],
            "a window containing at least one bin time (time_ms)",
            f"{onset[row]:g}..{offset[row]:g} ms at perturbation {row}",
        )
