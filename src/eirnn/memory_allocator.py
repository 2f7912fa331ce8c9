"""Process-wide memory settings that make training faster, applied where a run starts.

A full-batch epoch allocates and frees the same few hundred MB of tensors every time. By default
glibc hands each freed block of more than 32 MB back to the kernel, and the next epoch faults it
in again, page by page and zeroed: thousands of page faults and a large share of the epoch spent
in the kernel (benchmarks/README.md has the measurement). Two settings remove that:

- `THP_MEM_ALLOC_ENABLE=1`: torch places its large CPU buffers on 2 MB transparent huge pages
  (torch reads it at its first CPU tensor allocation, which `import torch` alone does not make);
- glibc's malloc keeps freed memory and serves large requests from its heap (`mallopt`), so the
  next epoch reuses the same pages: no faults, no zeroing. The process then keeps its peak
  memory until it exits, which is what a training process wants.

Both are needed: either one alone leaves most of the faults (benchmarks/README.md).
A run (`eirnn.training_run.TrainingRun`, behind `eirnn.train`, `eirnn train` and every tuning
trial) applies both when it starts, before it builds its first tensor; importing eirnn changes
nothing. A loop of your own calls `configure_for_training()` before creating tensors (the
large-page setting counts only when no torch tensor was allocated before). Set
`EIRNN_KEEP_FREED_MEMORY=0` to leave the process's allocator as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

OPT_OUT_VARIABLE = "EIRNN_KEEP_FREED_MEMORY"

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_UP_TO_BYTES = 2**30


def configure_for_training() -> bool:
    """Apply both settings to this process; True when glibc's malloc took them (False on other
    C libraries and systems, where nothing changes). Repeating the call is harmless."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_UP_TO_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO_BYTES))


def configure_unless_opted_out() -> bool:
    """`configure_for_training()` unless EIRNN_KEEP_FREED_MEMORY is 0 (what a run starts with)."""
    if os.environ.get(OPT_OUT_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return configure_for_training()
