"""`NeuralDataset`: a validated recording (spike counts or rates, task inputs, E/I labels)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .perturbations import (
    CONTROL,
    PERTURBATION_FACTS,
    PerturbationTable,
    checked_table,
    perturbation_summary,
    same_tables,
    trial_types,
)
from .value_checks import (
    EXCITATORY_NAMES,
    INHIBITORY_NAMES,
    as_text,
    label_key,
    magnitude_problem,
    normalised_ids,
    plain_object_array,
    same_array,
    whole_numbers_or_none,
)
from .value_checks import first_index_text as _first_index_text

#: axis names of the three-dimensional arrays, per array, in canonical (storage) order
ARRAY_AXES = {
    "counts": ("trial", "bin", "neuron"),
    "rates": ("trial", "bin", "neuron"),
    "inputs": ("trial", "bin", "input"),
    "behavior": ("trial", "bin", "output"),
}


CONDITIONS_SHOWN = 12
#: how the data was read from its file, logged with the data facts when known
SOURCE_FACTS = (
    "format",
    "trials_table",
    "trial_filters",
    "align",
    "window_ms",
    "n_trials_dropped",
    "dropped_trials",
    "conditions_from",
    "ei_source",
    "behavior_series",
    "inputs",
    "silent_units",
    "spike_time_problems",
    *PERTURBATION_FACTS,
)
MAX_FACT_LENGTH = 500
NO_VALIDATION_TEXT = (
    "none: one (pseudo-)trial per condition, so the training trials are scored; single-trial metrics "
    "(Fano factor, noise ceiling, bits/spike) are not available"
)


class DatasetError(ValueError):
    """A recording that cannot be used; the one-line message names file, variable, expected, found."""


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(size) for size in shape) if len(shape) else "scalar"


def _fact(value: Any) -> str | int | float:
    return value if isinstance(value, (int, float)) else str(value)[:MAX_FACT_LENGTH]


@dataclass(kw_only=True, eq=False)
class NeuralDataset:
    """Trials x time x neurons recording with its task inputs; validated at construction.

    Arrays are trials-first. ``conditions`` may be given as per-trial labels (ints or strings)
    or as integer codes together with ``condition_labels``; it is stored as int64 codes.
    ``ei_labels`` accepts 0/1, booleans (True = inhibitory) or names such as "E"/"I",
    "classic"/"interneuron". Equality (``==``) compares the data, not ``meta``.

    Examples
    --------
    >>> from eirnn.data.synthetic import make_recording
    >>> dataset, _ = make_recording(seed=0, n_e=6, n_i=2, n_trials=8, n_bins=20, n_conditions=2, n_inputs=4)
    >>> part = dataset.subset([0, 1, 2])  # psths: [conditions, time, neurons]
    >>> part.n_trials, part.condition_psths().shape, part.facts()["n_neurons"], part.summary().splitlines()[3]
    (3, (2, 20, 8), 8, '| Neurons | 8 (6 E, 2 I) |')
    """

    inputs: np.ndarray
    conditions: Sequence[Any] | np.ndarray
    bin_ms: float
    counts: np.ndarray | None = None
    rates: np.ndarray | None = None
    ei_labels: Sequence[Any] | np.ndarray | None = None
    condition_labels: list[Any] | None = None
    input_names: list[str] | None = None
    behavior: np.ndarray | None = None
    behavior_names: list[str] | None = None
    time_ms: np.ndarray | None = None
    neuron_ids: np.ndarray | None = None
    trial_ids: np.ndarray | None = None
    perturbations: PerturbationTable | dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.meta = dict(self.meta)
        self.bin_ms = self._checked_bin_ms()
        if self.counts is None and self.rates is None:
            self._fail("counts", "spike counts or rates [trials, time, neurons]", "neither")
        if self.counts is not None:
            self.counts = self._checked_counts(self.counts)
        if self.rates is not None:
            self.rates = self._checked_float_array("rates", self.rates, np.float64, non_negative=True)
        if self.counts is not None and self.rates is not None:
            self._check_same_sizes("rates", self.rates, "counts", self.counts, ("trials", "time bins", "neurons"))
        reference_name = "counts" if self.counts is not None else "rates"
        reference = self.counts if self.counts is not None else self.rates
        self.inputs = self._checked_float_array("inputs", self.inputs, np.float32)
        self._check_same_sizes("inputs", self.inputs, reference_name, reference, ("trials", "time bins"))
        if self.behavior is not None:
            self.behavior = self._checked_float_array("behavior", self.behavior, np.float64)
            self._check_same_sizes("behavior", self.behavior, reference_name, reference, ("trials", "time bins"))
        for name in ("counts", "rates", "inputs", "behavior"):
            values = getattr(self, name)
            problem = None if values is None else magnitude_problem(name, values, ARRAY_AXES[name], self.bin_ms)
            if problem:
                self._fail(name, *problem)
        self.input_names = self._checked_names("input_names", self.input_names, self.n_inputs, "input")
        self.behavior_names = (
            None
            if self.behavior is None
            else self._checked_names("behavior_names", self.behavior_names, self.behavior.shape[2], "behavior")
        )
        self.ei_labels = None if self.ei_labels is None else self._checked_ei_labels(self.ei_labels)
        self.conditions, self.condition_labels = self._checked_conditions()
        self.time_ms = self._checked_vector("time_ms", self.time_ms, self.n_bins, "time bins")
        if self.time_ms is not None and self.time_ms.dtype.kind not in "biuf":
            self._fail("time_ms", "bin times in ms: numbers", f"dtype {self.time_ms.dtype}")
        if self.time_ms is not None:
            self.time_ms = self.time_ms.astype(np.float64)
        self.neuron_ids = self._checked_ids("neuron_ids", self.neuron_ids, self.n_neurons, "neurons")
        self.trial_ids = self._checked_ids("trial_ids", self.trial_ids, self.n_trials, "trials")
        self.perturbations = checked_table(self.perturbations, self, fail=self._fail)

    # ------------------------------------------------------------------ validation
    @property
    def source(self) -> str:
        """The file this dataset came from, for messages."""
        return str(self.meta.get("source_file") or "<in-memory dataset>")

    def _fail(self, variable: str, expected: str, found: str) -> None:
        file_name = self.meta.get("source_variables", {}).get(variable)
        shown = f"'{file_name}' ({variable})" if file_name and file_name != variable else f"'{variable}'"
        raise DatasetError(f"{self.source}: variable {shown}: expected {expected}; found {found}")

    def _checked_bin_ms(self) -> float:
        try:
            value = float(np.asarray(self.bin_ms).item())
        except (TypeError, ValueError):
            self._fail("bin_ms", "one positive number (bin size in ms)", repr(self.bin_ms))
        if not np.isfinite(value) or value <= 0:
            self._fail("bin_ms", "a bin size > 0 ms", f"{value:g}")
        return value

    def _checked_three_d(self, name: str, values: Any) -> np.ndarray:
        array = np.asarray(values)
        if array.ndim != 3:
            self._fail(name, f"a 3-d array {list(ARRAY_AXES[name])}", f"shape {_shape_text(array.shape)}")
        if array.size == 0:
            self._fail(name, "a non-empty array", f"shape {_shape_text(array.shape)}")
        if array.dtype.kind not in "biuf":
            self._fail(name, "numbers", f"dtype {array.dtype}")
        return array

    def _check_finite(self, name: str, array: np.ndarray) -> None:
        if array.dtype.kind != "f":
            return
        bad = ~np.isfinite(array)
        if bad.any():
            n_nan = int(np.isnan(array).sum())
            self._fail(
                name,
                "finite values",
                f"{n_nan} NaN and {int(bad.sum()) - n_nan} Inf, first at {_first_index_text(bad, ARRAY_AXES[name])}",
            )

    def _checked_counts(self, values: Any) -> np.ndarray:
        counts = self._checked_three_d("counts", values)
        self._check_finite("counts", counts)
        if counts.dtype.kind == "f":
            fractional = counts != np.round(counts)
            if fractional.any():
                first = _first_index_text(fractional, ARRAY_AXES["counts"])
                self._fail(
                    "counts",
                    "whole-number spike counts (rates belong in 'rates')",
                    f"{int(fractional.sum())} non-integer values, first {counts[fractional][0]:g} at {first}",
                )
        negative = counts < 0
        if negative.any():
            first = _first_index_text(negative, ARRAY_AXES["counts"])
            found = f"{int(negative.sum())} negative values, first {counts[negative][0]:g} at {first}"
            self._fail("counts", "counts >= 0", found)
        return counts.astype(np.int64, copy=False)

    def _checked_float_array(self, name: str, values: Any, dtype: type, non_negative: bool = False) -> np.ndarray:
        array = self._checked_three_d(name, values)
        self._check_finite(name, array)
        if non_negative:
            negative = array < 0
            if negative.any():
                first = _first_index_text(negative, ARRAY_AXES[name])
                self._fail(name, "values >= 0", f"{int(negative.sum())} negative values, first at {first}")
        return array.astype(dtype)

    def _check_same_sizes(
        self, name: str, array: np.ndarray, reference_name: str, reference: np.ndarray, axes: Sequence[str]
    ) -> None:
        for axis, (size, expected) in enumerate(zip(array.shape, reference.shape[: len(axes)])):
            if size != expected:
                self._fail(
                    name,
                    f"{expected} {axes[axis]} (axis {axis}, as in '{reference_name}' {_shape_text(reference.shape)})",
                    f"{size} (shape {_shape_text(array.shape)})",
                )

    def _checked_vector(self, name: str, values: Any, length: int, what: str) -> np.ndarray | None:
        if values is None:
            return None
        vector = np.asarray(values)
        if vector.ndim != 1:
            expected = f"a vector of {length} entries (one per {what[:-1]})"
            self._fail(name, expected, f"shape {_shape_text(vector.shape)}")
        if len(vector) != length:
            self._fail(name, f"{length} entries (one per {what[:-1]})", f"{len(vector)}")
        if vector.dtype.kind == "f" and not np.all(np.isfinite(vector)):
            self._fail(name, "finite values", f"{int((~np.isfinite(vector)).sum())} NaN/Inf")
        return vector

    def _checked_ids(self, name: str, values: Any, length: int, what: str) -> np.ndarray:
        vector = self._checked_vector(name, values, length, what)
        return np.arange(length) if vector is None else normalised_ids(vector)

    def _checked_names(self, name: str, names: Sequence[str] | None, length: int, prefix: str) -> list[str]:
        if names is None:
            return [f"{prefix}_{k}" for k in range(length)]
        names = [str(item).strip() for item in np.asarray(names).ravel()]
        if len(names) != length:
            self._fail(name, f"{length} names (one per channel)", f"{len(names)}")
        return names

    def _checked_ei_labels(self, values: Any) -> np.ndarray:
        labels = plain_object_array(np.asarray(values))
        if labels.ndim != 1:
            self._fail("ei_labels", f"a vector of {self.n_neurons} labels", f"shape {_shape_text(labels.shape)}")
        if len(labels) != self.n_neurons:
            self._fail("ei_labels", f"{self.n_neurons} labels (one per neuron)", f"{len(labels)}")
        codes = np.empty(len(labels), dtype=np.int8)
        for index, label in enumerate(labels.tolist()):
            label = as_text(label)
            key = label_key(label)
            if key in EXCITATORY_NAMES:
                codes[index] = 0
            elif key in INHIBITORY_NAMES:
                codes[index] = 1
            else:
                self._fail(
                    "ei_labels",
                    "0/E/exc/classic/pyramidal/RS/False (excitatory) or "
                    "1/I/inh/interneuron/fast-spiking/FS/True (inhibitory)",
                    f"{label!r} for neuron {index}",
                )
        return codes

    def _checked_conditions(self) -> tuple[np.ndarray, list[Any]]:
        values = self._checked_vector("conditions", self.conditions, self.n_trials, "trials")
        if values is None:
            self._fail("conditions", f"{self.n_trials} condition labels (one per trial)", "None")
        values = plain_object_array(values)
        if self.condition_labels is not None:
            codes = whole_numbers_or_none(values)
            n_labels = len(self.condition_labels)
            if codes is None or codes.min() < 0 or codes.max() >= n_labels:
                self._fail("conditions", f"integer codes 0..{n_labels - 1} into condition_labels", f"{values[:5]}...")
            return codes, list(self.condition_labels)
        if values.dtype.kind in "US":
            labels, codes = np.unique(np.char.strip(values.astype(str)), return_inverse=True)
            return codes.astype(np.int64), [str(label) for label in labels]
        whole = whole_numbers_or_none(values)
        if whole is None:
            self._fail("conditions", "integer or string labels, one per trial", f"dtype {values.dtype}")
        labels, codes = np.unique(whole, return_inverse=True)
        return codes.astype(np.int64), [int(label) for label in labels]

    # ------------------------------------------------------------------ sizes
    @property
    def n_trials(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def n_bins(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def n_inputs(self) -> int:
        return int(self.inputs.shape[2])

    @property
    def n_neurons(self) -> int:
        return int((self.counts if self.counts is not None else self.rates).shape[2])

    @property
    def n_i(self) -> int:
        """Inhibitory neurons; 0 for unlabeled data."""
        return 0 if self.ei_labels is None else int(self.ei_labels.sum())

    @property
    def n_e(self) -> int:
        """Excitatory neurons; every neuron when unlabeled (treated as E)."""
        return self.n_neurons - self.n_i

    @property
    def n_conditions(self) -> int:
        return len(self.condition_labels)

    @property
    def n_outputs(self) -> int:
        return 0 if self.behavior is None else int(self.behavior.shape[2])

    @property
    def bin_s(self) -> float:
        return self.bin_ms / 1000.0

    @property
    def has_counts(self) -> bool:
        """Whether count-based quantities (Fano factor, bits/spike...) can be computed."""
        return self.counts is not None

    @property
    def is_labeled(self) -> bool:
        return self.ei_labels is not None

    @property
    def rates_hz(self) -> np.ndarray:
        return self.rates if self.rates is not None else self.counts / self.bin_s

    @property
    def trials_per_condition(self) -> np.ndarray:
        return np.bincount(self.conditions, minlength=self.n_conditions)

    @property
    def name(self) -> str:
        if self.meta.get("name"):
            return str(self.meta["name"])
        source = self.meta.get("source_file")
        return Path(str(source)).stem if source else "dataset"

    # ------------------------------------------------------------------ derived data
    def condition_psths(self, values: np.ndarray | None = None) -> np.ndarray:
        """Mean over the trials of each condition: [n_conditions, time, channels].

        ``values`` defaults to ``rates_hz``; pass model rates [trials, time, neurons] to average
        them the same way. Conditions without trials in this dataset give NaN rows.
        """
        values = self.rates_hz if values is None else np.asarray(values)
        one_hot = np.zeros((self.n_conditions, self.n_trials))
        one_hot[self.conditions, np.arange(self.n_trials)] = 1.0
        sums = (one_hot @ values.reshape(self.n_trials, -1)).reshape((self.n_conditions, *values.shape[1:]))
        per_condition = self.trials_per_condition.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / per_condition.reshape(-1, *([1] * (values.ndim - 1)))

    def subset(self, trial_index: Sequence[int] | np.ndarray | slice) -> NeuralDataset:
        """The given trials (indices, boolean mask or slice); condition codes keep their meaning."""
        index = np.atleast_1d(np.arange(self.n_trials)[trial_index])

        def take(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[index]

        return dataclasses.replace(
            self,
            inputs=self.inputs[index],
            counts=take(self.counts),
            rates=take(self.rates),
            behavior=take(self.behavior),
            conditions=self.conditions[index],
            trial_ids=self.trial_ids[index],
            perturbations=None if self.perturbations is None else self.perturbations.take(index, self.n_trials),
        )

    # ------------------------------------------------------------------ reporting
    def summary(self) -> str:
        """Markdown table of what the data is (the "Data Configuration" of a report)."""
        neurons = (
            f"{self.n_neurons} ({self.n_e} E, {self.n_i} I)"
            if self.is_labeled
            else f"{self.n_neurons} (unlabeled: all treated as E)"
        )
        signal = "spike counts" if self.has_counts else "firing rates (Hz); no spike counts"
        rows = [
            ("File", str(self.meta.get("source_file") or self.name)),
            ("Neurons", neurons),
            ("Inputs", str(self.n_inputs)),
            ("Trials", f"{self.n_trials} ({self.n_conditions} conditions)"),
            ("Time bins", f"{self.n_bins} ({self.n_bins * self.bin_ms:g} ms)"),
            ("Bin size", f"{self.bin_ms:g} ms"),
            ("Signal", signal),
            ("Behavior", f"{self.n_outputs} ({', '.join(self.behavior_names)})" if self.n_outputs else "none"),
            ("Perturbation trials", perturbation_summary(trial_types(self))),
            *self._source_rows(),
        ]
        return "\n".join(["| Data | Value |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)])

    def _source_rows(self) -> list[tuple[str, str]]:
        """How the data was cut from its file (NWB, spike times) and what it allows."""
        meta = self.meta
        rows = []
        if meta.get("window_ms"):
            start, stop = meta["window_ms"].split(",")
            rows.append(("Window", f"{start}..{stop} ms around {meta.get('align', 'time 0')}"))
        if meta.get("bin_ms_source"):
            rows.append(("Bin size from", str(meta["bin_ms_source"])))
        if "n_trials_dropped" in meta:
            found = meta.get("n_trials_in_file", self.n_trials + int(meta["n_trials_dropped"]))
            rows.append(("Trials dropped", f"{meta['n_trials_dropped']} of {found} ({meta.get('dropped_trials')})"))
        counts = self.trials_per_condition
        shown = [f"{label} ({count})" for label, count in zip(self.condition_labels, counts)]
        more = f", ... {len(shown) - CONDITIONS_SHOWN} more" if len(shown) > CONDITIONS_SHOWN else ""
        rows.append(("Conditions (trials)", ", ".join(shown[:CONDITIONS_SHOWN]) + more))
        for key, title in (("conditions_from", "Conditions from"), ("ei_source", "E/I labels from")):
            if meta.get(key):
                rows.append((title, str(meta[key])))
        if meta.get("inputs"):
            rows.append(("Inputs from", f"{meta['inputs']} ({', '.join(self.input_names)})"))
        for key, title in (
            ("silent_units", "Units without spikes"),
            ("spike_time_problems", "Spike times removed"),
            ("trials_table", "Trials table"),
            ("trial_filters", "Trial filters"),
            ("interval_tables", "Interval tables in the file"),
        ):
            if meta.get(key):
                rows.append((title, str(meta[key])))
        if counts.max() < 2:
            rows.append(("Validation", NO_VALIDATION_TEXT))
        return rows

    def facts(self) -> dict[str, str | int | float]:
        """Flat description for logging as run parameters."""
        return {
            "data_file": str(self.meta.get("source_file") or self.name),
            "data_sha256": str(self.meta.get("sha256", "")),
            "data_signal": "counts" if self.has_counts else "rates",
            "ei_labels": "labeled" if self.is_labeled else "unlabeled",
            "n_neurons": self.n_neurons,
            "n_silent_dropped": int(self.meta.get("n_silent_dropped", 0)),
            "n_e": self.n_e,
            "n_i": self.n_i,
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "n_bins": self.n_bins,
            "bin_ms": self.bin_ms,
            "n_trials": self.n_trials,
            "n_conditions": self.n_conditions,
            "n_perturbed_trials": int((trial_types(self) != CONTROL).sum()),
            **{key: _fact(self.meta[key]) for key in SOURCE_FACTS if key in self.meta},
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NeuralDataset):
            return NotImplemented
        arrays = ("counts", "rates", "inputs", "ei_labels", "conditions", "behavior", "time_ms", "neuron_ids")
        arrays += ("trial_ids",)
        lists = ("condition_labels", "input_names", "behavior_names")
        return (
            self.bin_ms == other.bin_ms
            and same_tables(self.perturbations, other.perturbations)
            and all(same_array(getattr(self, name), getattr(other, name)) for name in arrays)
            and all(getattr(self, name) == getattr(other, name) for name in lists)
        )

    def __repr__(self) -> str:
        labels = f"{self.n_e} E, {self.n_i} I" if self.is_labeled else "unlabeled"
        return (
            f"NeuralDataset({self.name!r}: {self.n_trials} trials x {self.n_bins} bins of {self.bin_ms:g} ms x "
            f"{self.n_neurons} neurons ({labels}), {self.n_inputs} inputs, {self.n_conditions} conditions)"
        )
