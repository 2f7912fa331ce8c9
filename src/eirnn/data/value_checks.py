"""Value-level checks and conversions shared by the dataset's validation: object arrays (pandas
columns, MATLAB cellstr) read as text or numbers, E/I label spellings, and magnitudes no
recording can have."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: above these, values are wrong units or a corrupt file (a neuron fires at most ~1 kHz)
MAX_RATE_HZ = 5000.0
MAX_ABS_INPUT = 1e6

#: E/I label spellings, compared through `label_key`; RS/FS and wide/narrow are the putative
#: types from spike-waveform width (narrow = fast-spiking = putative inhibitory)
EXCITATORY_NAMES = frozenset(
    {"0", "e", "exc", "excitatory", "classic", "pyramidal", "false", "rs", "regular-spiking", "wide", "broad"}
)
INHIBITORY_NAMES = frozenset({"1", "i", "inh", "inhibitory", "interneuron", "fast-spiking", "true", "fs", "narrow"})


def first_index_text(mask: np.ndarray, axes: Sequence[str]) -> str:
    first = np.unravel_index(int(np.flatnonzero(mask.ravel())[0]), mask.shape)
    return "(" + ", ".join(f"{axis} {int(i)}" for axis, i in zip(axes, first)) + ")"


def as_text(item: Any) -> Any:
    """bytes (HDF5, MATLAB char exported by h5py) as str; anything else unchanged."""
    return item.decode(errors="replace") if isinstance(item, bytes) else item


def whole_numbers_or_none(values: np.ndarray) -> np.ndarray | None:
    """int64 copy of `values` when every value is a whole number (MATLAB stores ints as double)."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return None


def normalised_ids(values: np.ndarray) -> np.ndarray:
    """Neuron or trial ids: text stripped, whole numbers as int64, anything else as given."""
    if values.dtype.kind in "US":
        return np.char.strip(values.astype(str))
    whole = whole_numbers_or_none(values)
    return whole if whole is not None else values


def plain_object_array(values: np.ndarray) -> np.ndarray:
    """An object array as a text or number array when every entry is text or every entry is a
    number; unchanged otherwise (and refused by the caller)."""
    if values.dtype != object:
        return values
    items = [as_text(item) for item in values.ravel().tolist()]
    if all(isinstance(item, str) for item in items):
        return np.array(items, dtype=str).reshape(values.shape)
    if all(isinstance(item, (int, float, np.integer, np.floating)) and not isinstance(item, bool) for item in items):
        return np.array(items, dtype=np.float64).reshape(values.shape)
    return values


def magnitude_problem(name: str, array: np.ndarray, axes: Sequence[str], bin_ms: float) -> tuple[str, str] | None:
    """(expected, found) when `array` holds values no recording has: rates above MAX_RATE_HZ for
    counts and rates, |values| above MAX_ABS_INPUT for inputs and behaviour; None when fine."""
    if name in ("counts", "rates"):
        in_hz = array / (bin_ms / 1000.0) if name == "counts" else array
        bad = in_hz > MAX_RATE_HZ
        if not bad.any():
            return None
        unit = f" ({MAX_RATE_HZ * bin_ms / 1000.0:g} spikes per {bin_ms:g} ms bin)" if name == "counts" else ""
        return (
            f"rates <= {MAX_RATE_HZ:g} Hz{unit}: larger means wrong units, a wrong bin size or a corrupt file",
            f"{int(bad.sum())} values beyond, largest {float(in_hz.max()):.3g} Hz, first at "
            f"{first_index_text(bad, axes)}",
        )
    bad = np.abs(array) > MAX_ABS_INPUT
    if not bad.any():
        return None
    return (
        f"|values| <= {MAX_ABS_INPUT:g} (larger means wrong units or a corrupt file)",
        f"{int(bad.sum())} values beyond, largest {float(np.abs(array).max()):.3g}, first at "
        f"{first_index_text(bad, axes)}",
    )


def label_key(label: Any) -> str:
    """The spelling an E/I label is compared in: case-insensitive, '_' and spaces read as '-',
    whole-number floats (MATLAB's doubles) as integers."""
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label).strip().lower().replace("_", "-").replace(" ", "-")


def same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Both None, or equal shapes and values."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))
