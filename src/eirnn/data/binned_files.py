"""Read and write recordings in the documented schema (docs/data-format.md).

Formats are recognised by content: ``.npz`` (zip), MATLAB v5/v7 (scipy), MATLAB v7.3 (HDF5 behind
a MATLAB header, read with h5py) and plain HDF5. MATLAB files are presented in MATLAB's own axis
order (v7.3 stores arrays transposed, so they are transposed back), which makes a ``layout`` mean
the same for v5 and v7.3; plain HDF5 arrays are taken as stored (numpy order).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DatasetError, NeuralDataset
from .layout import CANONICAL_AXES, MATLAB_LAYOUT, infer_layout
from .perturbations import columns_from_variables, file_fingerprint, variables_to_write

#: schema name -> names accepted in a file, in lookup order
SCHEMA_NAMES: dict[str, tuple[str, ...]] = {
    "spikes": ("spikes", "counts"),
    "rates": ("rates",),
    "inputs": ("inputs",),
    "input_names": ("input_names",),
    "ei_labels": ("ei_labels", "cell_type", "neuron_type", "is_interneuron"),
    "conditions": ("conditions", "condition", "trial_condition"),
    "bin_ms": ("bin_ms", "bin_size_ms"),
    "bin_s": ("bin_s",),
    "behavior": ("behavior",),
    "behavior_names": ("behavior_names",),
    "time_ms": ("time_ms",),
    "neuron_ids": ("neuron_ids",),
    "trial_ids": ("trial_ids",),
    "subject": ("subject",),
    "session": ("session",),
    "area": ("area",),
}
KEY_ALIASES = {"counts": "spikes"}
META_FIELDS = ("subject", "session", "area")
#: schema name of each 3-d array -> NeuralDataset field
ARRAY_FIELDS = {"spikes": "counts", "rates": "rates", "inputs": "inputs", "behavior": "behavior"}
VECTOR_FIELDS = ("ei_labels", "conditions", "time_ms", "neuron_ids", "trial_ids", "input_names", "behavior_names")

AXIS_NAMES = {
    "trials": "trials",
    "trial": "trials",
    "time": "time",
    "bins": "time",
    "bin": "time",
    "neurons": "neurons",
    "neuron": "neurons",
    "units": "neurons",
    "cells": "neurons",
}

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FORMAT_NAMES = {
    "npz": ".npz (numpy)",
    "mat5": "MATLAB v5/v7 .mat",
    "mat73": "MATLAB v7.3 (HDF5) .mat",
    "hdf5": "HDF5",
}


# ---------------------------------------------------------------------- option parsing
def parse_keys(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"spikes=psth_counts,inputs=u"`` -> ``{"spikes": "psth_counts", "inputs": "u"}``, checked."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        pairs = list(text.items())
    else:
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            schema_name, sep, file_name = (piece.strip() for piece in item.partition("="))
            if not sep or not schema_name or not file_name:
                raise DatasetError(f"keys (--data-keys): expected SCHEMA_NAME=FILE_NAME pairs; found {item!r}")
            pairs.append((schema_name, file_name))
    keys = {}
    for schema_name, file_name in pairs:
        schema_name = KEY_ALIASES.get(schema_name, schema_name)
        if schema_name not in SCHEMA_NAMES:
            raise DatasetError(f"keys (--data-keys): expected one of {', '.join(SCHEMA_NAMES)}; found {schema_name!r}")
        keys[schema_name] = str(file_name)
    return keys


def parse_layout(text: str | Iterable[str]) -> tuple[str, str, str]:
    """``"neurons,time,trials"`` -> the file's axis order as canonical names (any order)."""
    tokens = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    axes = tuple(AXIS_NAMES.get(str(token).strip().lower(), str(token)) for token in tokens)
    if sorted(axes) != sorted(CANONICAL_AXES):
        raise DatasetError(
            "layout (--data-layout): expected the axes trials, time, neurons in file order, e.g. "
            f"'neurons,time,trials'; found {text!r}"
        )
    return axes  # type: ignore[return-value]


# ---------------------------------------------------------------------- reading raw variables
@dataclass
class FileContents:
    """Every variable of one file, as numpy arrays in the file's axis order."""

    path: Path
    format: str
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    cells: dict[str, np.ndarray] = field(default_factory=dict)  # cell arrays of arrays (spike times)

    def listing(self) -> str:
        shown = [f"{name} {_shape(value)} {value.dtype}" for name, value in self.variables.items()]
        shown += [f"{name} ({kind}, not read)" for name, kind in self.unreadable.items()]
        return ", ".join(shown) if shown else "none"

    def fail(self, variable: str, expected: str, found: str) -> None:
        raise DatasetError(f"{self.path}: variable '{variable}': expected {expected}; found {found}")


def _shape(value: np.ndarray) -> str:
    return "(" + "x".join(str(size) for size in value.shape) + ")"


def arrays_sha256(dataset: Any) -> str:
    """sha256 of a data set's arrays (name, dtype, shape and bytes, in a fixed order): the hash
    of data that has no file, such as the built-in recording, or of one split of a file."""
    digest = hashlib.sha256()
    for name in ("counts", "rates", "inputs", "ei_labels", "conditions", "behavior", "time_ms", "trial_ids"):
        value = getattr(dataset, name, None)
        if value is None:
            continue
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
    digest.update(file_fingerprint(dataset))  # nothing without perturbations: the hash is as before
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_format(path: str | Path) -> str:
    """'npz', 'mat5', 'mat73' or 'hdf5', from the file's first bytes (the extension only breaks ties)."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(2056)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    if head.startswith(b"MATLAB 7.3"):
        return "mat73"
    if any(head[at : at + 8] == HDF5_SIGNATURE for at in (0, 512, 1024, 2048)):
        return "hdf5"
    if head.startswith(b"MATLAB") or head[126:128] in (b"IM", b"MI"):
        return "mat5"
    if head.startswith(b"\x93NUMPY"):
        raise DatasetError(f"{path}: expected several named variables (.npz or .mat); found a single .npy array")
    if path.suffix.lower() == ".mat" and head:
        return "mat5"  # MATLAB v4 files have no header text; scipy reads them
    found = "an empty file" if not head else f"first bytes {head[:16]!r}"
    raise DatasetError(f"{path}: expected .npz, MATLAB v5/v7 or v7.3 (HDF5) content; found {found}")


def read_variables(path: str | Path) -> FileContents:
    """All variables of a .npz / .mat file; damaged files raise DatasetError."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: expected a data file; found no such file")
    file_format = detect_format(path)
    contents = FileContents(path, file_format)
    reader = {"npz": _read_npz, "mat5": _read_mat5, "mat73": _read_hdf5, "hdf5": _read_hdf5}[file_format]
    try:
        reader(contents)
    except DatasetError:
        raise
    except Exception as exc:  # scipy and h5py raise many exception types for damaged files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DatasetError(
            f"{path}: expected a readable {FORMAT_NAMES[file_format]} file; found a corrupt or truncated file "
            f"({type(exc).__name__}: {reason})"
        ) from exc
    return contents


def _read_npz(contents: FileContents) -> None:
    with np.load(contents.path, allow_pickle=False) as archive:
        for name in archive.files:
            try:
                contents.variables[name] = archive[name]
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise
                contents.unreadable[name] = "object array needing pickle"


def _read_mat5(contents: FileContents) -> None:
    import scipy.io  # deferred: importing scipy.io costs a noticeable part of CLI start-up

    loaded = scipy.io.loadmat(contents.path, squeeze_me=False, chars_as_strings=True)
    for name, value in loaded.items():
        if name.startswith("__"):
            continue
        if not isinstance(value, np.ndarray) or value.dtype.names:
            contents.unreadable[name] = "struct" if isinstance(value, np.ndarray) else type(value).__name__
        elif value.dtype == object:
            _store_cell(contents, name, value)
        else:
            contents.variables[name] = value


def _read_hdf5(contents: FileContents) -> None:
    import h5py  # deferred with scipy.io, for start-up time

    from_matlab = contents.format == "mat73"
    with h5py.File(contents.path, "r") as handle:
        for name, item in handle.items():
            if name.startswith("#"):  # '#refs#' holds cell contents, '#subsystem#' MATLAB objects
                continue
            if not isinstance(item, h5py.Dataset):
                contents.unreadable[name] = _attribute_text(item.attrs.get("MATLAB_class", b"group"))
                continue
            value = _hdf5_value(handle, item, from_matlab)
            if value.dtype == object:
                _store_cell(contents, name, value)
            elif value.dtype.names:
                contents.unreadable[name] = "complex or compound"
            else:
                contents.variables[name] = value


def _attribute_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hdf5_value(handle: Any, dataset: Any, from_matlab: bool) -> np.ndarray:
    """One HDF5 variable; from MATLAB in MATLAB axis order, cells as object arrays."""
    data = np.asarray(dataset[()])
    if not from_matlab:
        if data.dtype.kind in "SO":  # h5py returns stored text as bytes
            text = [item.decode() if isinstance(item, bytes) else str(item) for item in np.ravel(data)]
            return np.array(text).reshape(np.shape(data))
        return np.asarray(data)
    matlab_class = _attribute_text(dataset.attrs.get("MATLAB_class", b""))
    if dataset.attrs.get("MATLAB_empty", 0):
        return np.array([""]) if matlab_class == "char" else np.zeros((0,))
    if matlab_class == "cell":
        cell = np.empty(data.shape, dtype=object)
        for index, reference in np.ndenumerate(data):
            cell[index] = _hdf5_value(handle, handle[reference], from_matlab)
        return cell.T
    if matlab_class == "char":
        rows = np.atleast_2d(np.asarray(data, dtype=np.uint16).T)
        return np.array(["".join(map(chr, row)) for row in rows])
    if matlab_class == "logical":
        return np.asarray(data).T.astype(bool)
    return np.asarray(data).T


def _store_cell(contents: FileContents, name: str, cell: np.ndarray) -> None:
    """A cell array of strings or of numbers becomes a plain array of the cell's shape."""
    elements = []
    for element in cell.ravel():
        element = np.asarray(element)
        if element.dtype.kind == "U" and element.size <= 1:
            elements.append(str(element.item()) if element.size else "")
        elif element.dtype.kind in "biuf" and element.size == 1:
            elements.append(element.item())
        else:
            contents.unreadable[name] = "cell array of arrays"
            contents.cells[name] = cell
            return
    if len({isinstance(element, str) for element in elements}) > 1:
        contents.unreadable[name] = "cell array mixing text and numbers"
        return
    contents.variables[name] = np.array(elements).reshape(cell.shape)


# ---------------------------------------------------------------------- schema mapping
def _file_names(contents: FileContents, keys: dict[str, str]) -> dict[str, str]:
    """schema name -> the file variable that provides it."""
    names = {}
    for schema_name, accepted in SCHEMA_NAMES.items():
        if schema_name in keys:
            if keys[schema_name] not in contents.variables:
                contents.fail(
                    keys[schema_name],
                    f"a variable for '{schema_name}' (from keys)",
                    f"no such variable; variables present: {contents.listing()}",
                )
            names[schema_name] = keys[schema_name]
            continue
        present = [name for name in accepted if name in contents.variables]
        unread = [name for name in accepted if name in contents.unreadable]
        if unread and not present:  # dropping it would be silent: E/I labels lost make every neuron E
            contents.fail(
                unread[0],
                f"numbers or text for '{schema_name}' (e.g. np.array(values, dtype=str); MATLAB: a cellstr)",
                f"{contents.unreadable[unread[0]]}, which is not read; variables present: {contents.listing()}",
            )
        if len(present) > 1:
            contents.fail(
                present[0],
                f"one variable for '{schema_name}'",
                f"{' and '.join(present)}; choose one with keys={{'{schema_name}': NAME}} "
                f"(--data-keys {schema_name}=NAME)",
            )
        if present:
            names[schema_name] = present[0]
    return names


def _fail_missing(contents: FileContents, schema_name: str, expected: str) -> None:
    contents.fail(
        schema_name,
        f"{expected} (or map another name: keys={{'{schema_name}': NAME}}, --data-keys {schema_name}=NAME)",
        f"no such variable; variables present: {contents.listing()}",
    )


def _vector(contents: FileContents, name: str) -> np.ndarray:
    value = contents.variables[name]
    if sum(size > 1 for size in value.shape) > 1:
        contents.fail(name, "a vector (one entry per trial, bin, neuron or channel)", f"shape {_shape(value)}")
    return value.reshape(-1)


def _scalar(contents: FileContents, name: str) -> Any:
    value = contents.variables[name]
    if value.size != 1:
        contents.fail(name, "a single value", f"shape {_shape(value)}")
    item = value.reshape(-1)[0].item()
    return item.strip() if isinstance(item, str) else item


def _numbers(contents: FileContents, name: str, expected: str) -> np.ndarray:
    """A vector of numbers as floats; text or another type is refused naming the variable."""
    value = _vector(contents, name)
    if value.dtype.kind in "biuf":
        return value.astype(float)
    try:
        return value.astype(float)
    except (TypeError, ValueError):
        contents.fail(name, f"{expected}: numbers", f"values of type {value.dtype}, e.g. {value[0]!r}")


def _positive_number(contents: FileContents, name: str, expected: str) -> float:
    """One finite number > 0 (a bin size); text such as '25ms' is refused naming the variable."""
    item = _scalar(contents, name)
    try:
        value = float(item)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        contents.fail(name, f"{expected}: a number > 0", f"{item!r}")
    return value


def _three_d(contents: FileContents, name: str) -> np.ndarray:
    value = contents.variables[name]
    if contents.format != "npz" and value.ndim < 3:
        value = value.reshape(value.shape + (1,) * (3 - value.ndim))  # MATLAB drops trailing singleton axes
    if value.ndim != 3:
        expected = "a 3-d array (trials, time and neurons or channels, in any order)"
        contents.fail(name, expected, f"shape {_shape(value)}")
    return value


def load_binned(
    contents: FileContents,
    *,
    layout: str | Iterable[str] | None = None,
    keys: Mapping[str, str] | str | None = None,
    bin_ms: float | None = None,
    build_inputs: bool = False,
) -> NeuralDataset:
    """A recording of binned arrays (.npz, MATLAB v5/v7/v7.3) in the documented schema.

    layout : file axis order of the 3-d arrays, e.g. "neurons,time,trials"; inferred when the
        other variables make it unambiguous, refused otherwise.
    keys : schema name -> file variable name, e.g. {"spikes": "psth_counts"} (or "spikes=psth_counts").
    bin_ms : bin size, for files without bin_ms / bin_s.
    build_inputs : the caller builds the task inputs; a one-channel placeholder stands in.
    """
    keys = parse_keys(keys)
    file_axes = None if layout is None else parse_layout(layout)
    names = _file_names(contents, keys)

    if "spikes" not in names and "rates" not in names:
        expected = "spike counts 'spikes' (or 'counts') and/or 'rates' [trials, time, neurons]"
        _fail_missing(contents, "spikes", expected)
    required = {"inputs": "task inputs [trials, time, n_inputs] (or --inputs cue-go | condition-onehot)"}
    for schema_name, expected in {**required, "conditions": "one condition per trial"}.items():
        if schema_name not in names and not (build_inputs and schema_name == "inputs"):
            _fail_missing(contents, schema_name, expected)

    arrays = {schema: _three_d(contents, names[schema]) for schema in ARRAY_FIELDS if schema in names}
    vectors = {schema: _vector(contents, names[schema]) for schema in VECTOR_FIELDS if schema in names}
    order = file_axes or infer_layout(contents, arrays, {name: len(v) for name, v in vectors.items()}, names)
    to_canonical = [order.index(axis) for axis in CANONICAL_AXES]

    source_variables = {ARRAY_FIELDS.get(schema, schema): names[schema] for schema in names}
    meta: dict[str, Any] = {
        "source_file": str(contents.path),
        "format": contents.format,
        "layout": ",".join(order),
        "source_variables": source_variables,
    }
    meta.update({name: _scalar(contents, names[name]) for name in META_FIELDS if name in names})
    fields = {ARRAY_FIELDS[schema]: np.transpose(array, to_canonical) for schema, array in arrays.items()}
    if build_inputs:
        fields["inputs"] = np.zeros((*fields.get("counts", fields.get("rates")).shape[:2], 1))
        vectors.pop("input_names", None)
    dataset = NeuralDataset(
        **fields,
        **vectors,
        bin_ms=_bin_ms(contents, names, bin_ms),
        perturbations=columns_from_variables(contents.variables),
        meta=meta,
    )
    dataset.meta["sha256"] = file_sha256(contents.path)
    return dataset


def _bin_ms(contents: FileContents, names: dict[str, str], argument: float | None) -> float:
    if "bin_ms" in names and "bin_s" in names:
        found = f"both '{names['bin_ms']}' and '{names['bin_s']}'"
        contents.fail(names["bin_ms"], "one bin size (bin_ms or bin_s)", found)
    if "bin_ms" in names:
        in_file = _positive_number(contents, names["bin_ms"], "the bin size in ms")
    elif "bin_s" in names:
        in_file = 1000.0 * _positive_number(contents, names["bin_s"], "the bin size in s")
    elif argument is None:
        _fail_missing(contents, "bin_ms", "the bin size in ms (or 'bin_s' in seconds, or pass bin_ms=)")
    else:
        return float(argument)
    if argument is not None and not np.isclose(float(argument), in_file):
        name = names.get("bin_ms", names.get("bin_s"))
        contents.fail(name, f"bin_ms={argument:g} as passed", f"{in_file:g} ms in the file")
    return in_file


# ---------------------------------------------------------------------- writing
def write_dataset(dataset: NeuralDataset, path: str | Path) -> Path:
    """Write the documented schema: ``.npz`` as trials x time x neurons, ``.mat`` (v5) as
    neurons x time x trials (inputs n_inputs x time x trials), MATLAB's usual habit."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mat", ".npz"):
        raise DatasetError(f"{path}: expected a file name ending in .mat or .npz; found {suffix or 'no suffix'!r}")
    as_matlab = suffix == ".mat"
    order = MATLAB_LAYOUT if as_matlab else CANONICAL_AXES
    from_canonical = [CANONICAL_AXES.index(axis) for axis in order]

    def text(values: Iterable[Any]) -> np.ndarray:
        strings = [str(value) for value in values]
        # a cell array of strings is MATLAB's list of text; a char matrix would pad the rows
        return np.array(strings, dtype=object) if as_matlab else np.array(strings)

    def labels(values: list[Any]) -> np.ndarray:
        return text(values) if any(isinstance(value, str) for value in values) else np.array(values)

    variables: dict[str, Any] = {
        "inputs": np.transpose(dataset.inputs, from_canonical),
        "input_names": text(dataset.input_names),
        "conditions": labels([dataset.condition_labels[code] for code in dataset.conditions]),
        "bin_ms": float(dataset.bin_ms),
        "neuron_ids": labels(dataset.neuron_ids.tolist()),
        "trial_ids": labels(dataset.trial_ids.tolist()),
    }
    if dataset.counts is not None:
        smallest = np.min_scalar_type(int(dataset.counts.max()))
        variables["spikes"] = np.transpose(dataset.counts, from_canonical).astype(smallest)
    if dataset.rates is not None:
        variables["rates"] = np.transpose(dataset.rates, from_canonical)
    if dataset.ei_labels is not None:
        variables["ei_labels"] = text(np.array(["E", "I"])[dataset.ei_labels])
    if dataset.behavior is not None:
        variables["behavior"] = np.transpose(dataset.behavior, from_canonical)
        variables["behavior_names"] = text(dataset.behavior_names)
    if dataset.time_ms is not None:
        variables["time_ms"] = dataset.time_ms
    variables.update({name: str(dataset.meta[name]) for name in META_FIELDS if dataset.meta.get(name) is not None})
    variables.update(variables_to_write(dataset, text))

    if as_matlab:
        import scipy.io  # deferred, see _read_mat5

        scipy.io.savemat(path, variables, oned_as="column")
    else:
        np.savez(path, **variables)
    return path
