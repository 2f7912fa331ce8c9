"""Process-wide memory settings that make training faster, applied by the programs that train
(the `eirnn` command, its tuning workers, the benchmarks), never silently by the library.

A full-batch epoch allocates and frees the same few hundred MB of tensors every time. By default
glibc hands each freed block of more than 32 MB back to the kernel, and the next epoch faults it
in again, page by page and zeroed: thousands of page faults and a large share of the epoch spent
in the kernel (benchmarks/README.md has the measurement). Two settings remove that:

- `THP_MEM_ALLOC_ENABLE=1`: torch places its large CPU buffers on 2 MB transparent huge pages
  (read once, when torch first allocates, so it must be set before torch is imported);
- glibc's malloc keeps freed memory and serves large requests from its heap (`mallopt`), so the
  next epoch reuses the same pages: no faults, no zeroing. The process then keeps its peak
  memory until it exits, which is what a training process wants.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_UP_TO_BYTES = 2**30


def configure_for_training() -> bool:
    """Apply both settings to this process; True when glibc's malloc took them (False on other
    C libraries and systems, where nothing changes). Call it first thing in a training script:
    the large-page setting only counts if torch has not been imported yet."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_UP_TO_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO_BYTES))
