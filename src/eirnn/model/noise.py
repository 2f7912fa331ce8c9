"""The state noise of the recurrence, drawn the same way by the fused path and the reference."""

from __future__ import annotations

import functools

import numpy as np
import torch

from eirnn.model.cpu_threads import run_in_threads

NOISE_BLOCKS = 8
QUANTILE_BITS = 16


@functools.cache
def standard_normal_quantiles(dtype: torch.dtype) -> torch.Tensor:
    """The 2**16 equally likely values that CPU noise draws stand in for N(0, 1) with: the normal
    quantile at the middle of each of 2**16 equal-probability bins, rescaled to variance 1.

    Their distribution function is within 1 / 2**16 of the normal one everywhere; the mean is 0
    and the variance 1 exactly; the tails stop at 4.3 s.d. (the normal puts 1.5e-5 beyond).

    Examples
    --------
    >>> import torch
    >>> values = standard_normal_quantiles(torch.float64)
    >>> len(values), round(float(values.mean()), 12), round(float(values.var(correction=0)), 12)
    (65536, 0.0, 1.0)
    """
    probabilities = (torch.arange(2**QUANTILE_BITS, dtype=torch.float64) + 0.5) / 2**QUANTILE_BITS
    quantiles = torch.special.ndtri(probabilities)
    return (quantiles / quantiles.pow(2).mean().sqrt()).to(dtype)


def _fill_from_quantiles(block: torch.Tensor, values: torch.Tensor, seed: int) -> None:
    # a 16-bit index per number from PCG64's raw 64-bit words, then one table gather: cheaper than
    # torch's normal_, whose serial generator was the largest single item of an epoch
    # (benchmarks/README.md)
    n_words = -(-block.numel() * QUANTILE_BITS // 64)
    words = np.random.PCG64(seed).random_raw(n_words)
    index = np.empty(block.numel(), dtype=np.int32)
    np.copyto(index, words.view(np.uint16)[: block.numel()], casting="safe")
    torch.index_select(values, 0, torch.from_numpy(index), out=block)


def fill_standard_normal(buffer: torch.Tensor, generator: torch.Generator | None, std: float = 1.0) -> torch.Tensor:
    """Fill a contiguous buffer with standard normal noise, times `std`.

    Both the fused path and the reference draw their noise through this function into a
    time-major [T, B, N] block, so the same generator state gives them the same noise. On CPU
    the numbers come from `standard_normal_quantiles` (N(0, 1) to within 1 / 2**16 in
    distribution, exact mean and variance), drawn in NOISE_BLOCKS blocks, each from its own
    PCG64 stream seeded from `generator`, spread over the torch threads; the block count is
    fixed so that the noise does not depend on the number of threads. On other devices it is
    torch's `normal_`.
    """
    if buffer.device.type != "cpu":
        return buffer.normal_(0.0, std, generator=generator)
    seeds = torch.randint(0, 2**62, (NOISE_BLOCKS,), generator=generator).tolist()
    values = standard_normal_quantiles(buffer.dtype) * std
    blocks = list(zip(buffer.view(-1).tensor_split(NOISE_BLOCKS), seeds))
    n_parts = min(torch.get_num_threads(), NOISE_BLOCKS)

    def draw_part(part: int) -> None:
        for block, seed in blocks[part::n_parts]:
            _fill_from_quantiles(block, values, seed)

    run_in_threads(draw_part, n_parts)
    return buffer
