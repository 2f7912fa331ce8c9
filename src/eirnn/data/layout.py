"""Inferring the axis order of a file's 3-d arrays from the sizes the other variables give.

Every candidate order is checked against the same list of size agreements (inputs and
behaviour share the recording's trials and time bins; conditions and trial ids have one entry
per trial, time_ms one per bin, E/I labels and neuron ids one per neuron). One order that
passes is taken; several are refused as ambiguous. When none passes, the variable that
disagrees is named: under the order with the fewest disagreements (the file format's usual
order on ties), the first check that fails.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np

CANONICAL_AXES = ("trials", "time", "neurons")
MATLAB_LAYOUT = ("neurons", "time", "trials")
AXIS_WORDS = {"trials": "trials", "time": "time bins", "neurons": "neurons"}

#: vectors with one entry per trial / bin of the recording, or per channel of an array
MAIN_AXIS_VECTORS = {"trials": ("conditions", "trial_ids"), "time": ("time_ms",)}
CHANNEL_VECTORS = {
    "spikes": ("ei_labels", "neuron_ids"),
    "rates": ("ei_labels", "neuron_ids"),
    "inputs": ("input_names",),
    "behavior": ("behavior_names",),
}


class SizeCheck(NamedTuple):
    variable: str  # schema name of the variable whose size is checked
    expected: int
    found: int
    what: str  # e.g. "trials (axis 0, as in 'spikes' 9x7x5)"


def _shape(array: np.ndarray) -> str:
    return "x".join(str(size) for size in array.shape)


def size_checks(arrays: dict[str, np.ndarray], lengths: dict[str, int], order: tuple[str, ...]) -> list[SizeCheck]:
    """Every size agreement the variables must satisfy if the 3-d arrays are stored in `order`."""
    main = "spikes" if "spikes" in arrays else "rates"
    sizes = {name: dict(zip(order, array.shape)) for name, array in arrays.items()}
    reference = f"'{main}' {_shape(arrays[main])} read as {','.join(order)}"
    checks = []
    for axis, vectors in MAIN_AXIS_VECTORS.items():
        for vector in vectors:
            if vector in lengths:
                what = f"entries, one per {AXIS_WORDS[axis][:-1]} of {reference}"
                checks.append(SizeCheck(vector, sizes[main][axis], lengths[vector], what))
    for name in arrays:
        for axis in ("trials", "time") if name != main else ():
            what = f"{AXIS_WORDS[axis]} (axis {order.index(axis)}, as in {reference}; shape {_shape(arrays[name])})"
            checks.append(SizeCheck(name, sizes[main][axis], sizes[name][axis], what))
        for vector in CHANNEL_VECTORS[name]:
            if vector in lengths:
                what = f"entries, one per channel of '{name}' {_shape(arrays[name])} read as {','.join(order)}"
                checks.append(SizeCheck(vector, sizes[name]["neurons"], lengths[vector], what))
    if "spikes" in arrays and "rates" in arrays:
        what = f"neurons (as in {reference})"
        checks.append(SizeCheck("rates", sizes["spikes"]["neurons"], sizes["rates"]["neurons"], what))
    return checks


def infer_layout(
    contents: Any, arrays: dict[str, np.ndarray], lengths: dict[str, int], file_names: dict[str, str]
) -> tuple[str, ...]:
    """The one axis order under which every size agrees; otherwise DatasetError (via
    `contents.fail`) naming the disagreeing variable, or the orders that fit equally well."""
    usual = MATLAB_LAYOUT if contents.format in ("mat5", "mat73") else CANONICAL_AXES
    orders = sorted(itertools.permutations(CANONICAL_AXES), key=lambda order: order != usual)
    failures = {order: [c for c in size_checks(arrays, lengths, order) if c.expected != c.found] for order in orders}
    fits = [order for order in orders if not failures[order]]
    if len(fits) == 1:
        return fits[0]
    main = "spikes" if "spikes" in arrays else "rates"
    if fits:
        suggestion = ",".join(fits[0])
        contents.fail(
            file_names[main],
            f"an axis order that the other variables make unambiguous; pass it: --data-layout {suggestion} "
            f"(layout='{suggestion}')",
            f"{len(fits)} axis orders fit ({'; '.join(','.join(order) for order in fits)}); "
            f"variables: {contents.listing()}",
        )
    closest = min(orders, key=lambda order: len(failures[order]))  # stable: the usual order wins ties
    first = failures[closest][0]
    contents.fail(
        file_names[first.variable],
        f"{first.expected} {first.what}",
        f"{first.found} (no axis order makes all variables agree; variables: {contents.listing()})",
    )
