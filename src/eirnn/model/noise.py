"""The state noise of the recurrence, drawn the same way by the fused path and the reference."""

from __future__ import annotations

import torch

from eirnn.model.cpu_threads import run_in_threads

NOISE_BLOCKS = 8


def fill_standard_normal(buffer: torch.Tensor, generator: torch.Generator | None, std: float = 1.0) -> torch.Tensor:
    """Fill a contiguous buffer with N(0, 1) noise, times `std`.

    Both the fused path and the reference draw their noise through this function into a
    time-major [T, B, N] block, so the same generator state gives them the same noise. On CPU
    one generator draws serially (the largest single item of an epoch), so the
    buffer is drawn in NOISE_BLOCKS blocks, each from its own generator seeded from `generator`,
    spread over the torch threads; the block count is fixed so that the noise does not depend
    on the number of threads.
    """
    if buffer.device.type != "cpu":
        return buffer.normal_(0.0, std, generator=generator)
    seeds = torch.randint(0, 2**62, (NOISE_BLOCKS,), generator=generator).tolist()
    blocks = list(zip(buffer.view(-1).tensor_split(NOISE_BLOCKS), seeds))
    n_parts = min(torch.get_num_threads(), NOISE_BLOCKS)

    def draw_part(part: int) -> None:
        for block, seed in blocks[part::n_parts]:
            block.normal_(0.0, std, generator=torch.Generator().manual_seed(seed))

    run_in_threads(draw_part, n_parts)
    return buffer
