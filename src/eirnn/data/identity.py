"""The identity of data not read from a file: a sha256 of its arrays (a file's identity is the
sha256 of the file, `eirnn.data.loaders.file_sha256`). The registry's champion rule compares it."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

IDENTIFYING_ARRAYS = ("counts", "rates", "inputs", "ei_labels", "conditions", "behavior")


def content_sha256(dataset: Any) -> str:
    """sha256 of the bin size and the arrays that define a recording for a model (labels included:
    the same spikes with other E/I labels are other data for an E/I fit)."""
    digest = hashlib.sha256(repr(float(dataset.bin_ms)).encode())
    for name in IDENTIFYING_ARRAYS:
        value = getattr(dataset, name)
        if value is not None:
            array = np.ascontiguousarray(value)
            digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()
