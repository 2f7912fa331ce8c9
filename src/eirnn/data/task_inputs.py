"""Task inputs built from the task, for recordings that store none (NWB files rarely do).

- ``condition-onehot``: one channel per condition, on over the whole window of its trials;
- ``cue-go``: one cue channel per condition, on from the cue event until the go event, then a
  ``go`` pulse of ``GO_PULSE_MS`` from the go event;
- a path to a ``.npy``/``.npz`` array [trials, time, n_inputs] (or [time, n_inputs], the same
  for every trial).

Event times are in ms on the dataset's ``time_ms`` axis (0 = the alignment event); an input is
on in a bin when its time lies in [on, off).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DatasetError, NeuralDataset

INPUT_KINDS = ("condition-onehot", "cue-go")
GO_PULSE_MS = 100.0
#: (setting name, its text) -> the event's time in each trial, ms on the time_ms axis
EventTimes = Callable[[str, str], np.ndarray]


def condition_onehot(codes: np.ndarray, labels: Sequence[Any], n_bins: int) -> tuple[np.ndarray, list[str]]:
    """[trials, n_bins, n_conditions]: each trial's condition channel on throughout."""
    inputs = np.zeros((len(codes), n_bins, len(labels)), dtype=np.float32)
    inputs[np.arange(len(codes)), :, codes] = 1.0
    return inputs, [f"condition_{label}" for label in labels]


def cue_go(
    time_ms: np.ndarray,
    codes: np.ndarray,
    labels: Sequence[Any],
    cue_on_ms: np.ndarray | float,
    cue_off_ms: np.ndarray | float,
    go_on_ms: np.ndarray | float,
    go_off_ms: np.ndarray | float,
) -> tuple[np.ndarray, list[str]]:
    """[trials, time, n_conditions + 1]: ``cue_<label>`` one-hot by condition while
    cue_on <= t < cue_off, then ``go`` while go_on <= t < go_off (times per trial or shared)."""
    n_trials = len(codes)

    def per_trial(times: np.ndarray | float) -> np.ndarray:
        return np.broadcast_to(np.asarray(times, dtype=np.float64), (n_trials,))[:, None]

    t = np.asarray(time_ms, dtype=np.float64)[None, :]
    inputs = np.zeros((n_trials, t.shape[1], len(labels) + 1), dtype=np.float32)
    inputs[np.arange(n_trials), :, codes] = (t >= per_trial(cue_on_ms)) & (t < per_trial(cue_off_ms))
    inputs[:, :, -1] = (t >= per_trial(go_on_ms)) & (t < per_trial(go_off_ms))
    return inputs, [*(f"cue_{label}" for label in labels), "go"]


def inputs_from_array(path: str | Path, n_trials: int, n_bins: int, source: str) -> tuple[np.ndarray, list[str]]:
    """Inputs from a .npy array or a .npz holding ``inputs`` (and optionally ``input_names``)."""
    path = Path(path)
    names = None
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"{path}: setting 'inputs' (--inputs): expected a .npy or .npz array; found {error}"
        ) from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if "inputs" not in loaded.files:
                raise DatasetError(
                    f"{path}: variable 'inputs': expected task inputs [trials, time, n_inputs]; "
                    f"found only {', '.join(loaded.files) or 'nothing'}"
                )
            array = loaded["inputs"]
            names = [str(name) for name in loaded["input_names"]] if "input_names" in loaded.files else None
    else:
        array = loaded
    if array.ndim == 2:
        array = np.broadcast_to(array, (n_trials, *array.shape))
    if array.ndim != 3 or array.shape[:2] != (n_trials, n_bins):
        raise DatasetError(
            f"{path}: variable 'inputs': expected [{n_trials} trials, {n_bins} bins, n_inputs] (or [{n_bins}, "
            f"n_inputs]) to match {source}; found shape {'x'.join(map(str, array.shape))}"
        )
    return np.array(array, dtype=np.float32), names or [f"input_{k}" for k in range(array.shape[2])]


def numeric_event_times(source: str) -> EventTimes:
    """Event resolver for files without a trials table: events are times in ms."""

    def resolve(setting: str, text: str) -> np.ndarray:
        try:
            return np.array(float(text))
        except ValueError:
            raise DatasetError(
                f"{source}: setting '{setting}' (--{setting.replace('_', '-')}): expected a time in ms on the "
                f"data's time axis (this file has no trials table to name a column of); found {text!r}"
            ) from None

    return resolve


def _event_text(text: str) -> str:
    try:
        return f"{float(text):g} ms"
    except ValueError:
        return text


@dataclass(frozen=True)
class TaskTrials:
    """What inputs are built from: each trial's condition code, the labels, the time axis (ms)."""

    codes: np.ndarray
    labels: Sequence[Any]
    time_ms: np.ndarray
    source: str

    @classmethod
    def of(cls, dataset: NeuralDataset) -> TaskTrials:
        time_ms = dataset.time_ms if dataset.time_ms is not None else (np.arange(dataset.n_bins) + 0.5) * dataset.bin_ms
        return cls(dataset.conditions, dataset.condition_labels, time_ms, dataset.source)


def build_task_inputs(
    spec: str,
    trials: TaskTrials,
    *,
    cue_event: str = "",
    go_event: str = "",
    event_times: EventTimes | None = None,
) -> tuple[np.ndarray, list[str], str]:
    """(inputs [trials, time, n], names, how they were built) for `spec` (module docstring).
    `cue_event` empty = the cue is on from the window's start."""
    source, n_bins = trials.source, len(trials.time_ms)
    if spec == "condition-onehot":
        inputs, names = condition_onehot(trials.codes, trials.labels, n_bins)
        return inputs, names, "condition one-hot over the whole window"
    if spec == "cue-go":
        resolve = event_times or numeric_event_times(source)
        if not go_event:
            raise DatasetError(
                f"{source}: setting 'go_event' (--go-event): expected the go event for --inputs cue-go "
                "(a trials-table column or a time in ms); found none"
            )
        cue_on = resolve("cue_event", cue_event) if cue_event else np.array(-np.inf)
        go_on = resolve("go_event", go_event)
        go_off = go_on + GO_PULSE_MS
        inputs, names = cue_go(trials.time_ms, trials.codes, trials.labels, cue_on, go_on, go_on, go_off)
        cue_text = _event_text(cue_event) or "the window start"
        return (
            inputs,
            names,
            f"cue one-hot from {cue_text} until {_event_text(go_event)}, go pulse of {GO_PULSE_MS:g} ms",
        )
    if not Path(spec).is_file():
        raise DatasetError(
            f"{source}: setting 'inputs' (--inputs): expected {' or '.join(INPUT_KINDS)} or an existing "
            f".npy/.npz file; found {spec!r}"
        )
    inputs, names = inputs_from_array(spec, len(trials.codes), n_bins, source)
    return inputs, names, f"from {spec}"


def with_task_inputs(dataset: NeuralDataset, spec: str, **events: Any) -> NeuralDataset:
    """`dataset` with inputs built from `spec` (`build_task_inputs`); ``meta["inputs"]`` says
    how. An empty `spec` keeps the dataset's own inputs."""
    if not spec:
        return dataset
    inputs, names, description = build_task_inputs(spec, TaskTrials.of(dataset), **events)
    meta = {**dataset.meta, "inputs": description}
    return dataclasses.replace(dataset, inputs=inputs, input_names=names, meta=meta)
