"""Running the recurrence's independent trials on CPU threads.

With torch's intra-op threads every one of the ~2000 small per-step ops of an epoch ends in a
barrier of all threads, which stalls whenever another process holds a core. Trials are
independent, so separate Python threads (torch releases the GIL inside each op), each with one
torch thread, integrate separate chunks of the batch and meet only at the end.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

Result = TypeVar("Result")

# Below this many trials per thread the per-step work is too small to pay for the thread hand-off
# (benchmarks/README.md has the measurement).
MIN_TRIALS_PER_THREAD = 128

_THREAD_POOL: ThreadPoolExecutor | None = None


def batch_chunks(batch_size: int, device: torch.device) -> list[slice]:
    """Split the batch across Python threads, one per torch thread, on CPU (one chunk
    elsewhere, or when a chunk would have fewer than MIN_TRIALS_PER_THREAD trials)."""
    n_threads = torch.get_num_threads()
    n_chunks = min(n_threads, batch_size // MIN_TRIALS_PER_THREAD) if device.type == "cpu" else 1
    if n_chunks <= 1:
        return [slice(None)]
    bounds = [round(i * batch_size / n_chunks) for i in range(n_chunks + 1)]
    return [slice(start, stop) for start, stop in itertools.pairwise(bounds)]


def run_in_threads(work: Callable[[int], Result], n_parts: int) -> list[Result]:
    """[work(0), ..., work(n_parts - 1)], each part on its own thread with one torch thread."""
    global _THREAD_POOL
    if n_parts == 1:
        # ops on one chunk's [trials, units] slices are too small to gain from intra-op threads,
        # and their synchronisation costs more than the work
        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [work(0)]
        finally:
            torch.set_num_threads(threads_before)

    def work_without_autograd(part: int) -> Result:
        # OpenMP's thread count is per thread: a pool thread left at the default runs each MKL
        # matmul on every core, and two such threads oversubscribe the cores (measured: two
        # chunks' recurrent matmuls took as long in parallel as one after the other)
        torch.set_num_threads(1)
        # grad mode is per thread too: pool threads start with it on
        with torch.no_grad():
            return work(part)

    if _THREAD_POOL is None:
        _THREAD_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="eirnn-recurrence")
    # one torch thread per part: the parts already occupy every core
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        futures = [_THREAD_POOL.submit(work_without_autograd, part) for part in range(n_parts)]
        return [future.result() for future in futures]
    finally:
        torch.set_num_threads(threads_before)


def map_chunks(work: Callable[[slice], Result], chunks: list[slice]) -> list[Result]:
    return run_in_threads(lambda part: work(chunks[part]), len(chunks))
