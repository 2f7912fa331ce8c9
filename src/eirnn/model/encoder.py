"""Per-trial initial states inferred from the trial's held-in spikes (`initial_state="inferred"`).

A bidirectional GRU reads log(1 + counts) of the held-in neurons over the trial's observed bins
(every bin but the last `forward_bins`, which forward prediction scores); its two final hidden
states give an offset from the shared h0, so that trial k starts from x[0] = h0 + offset_k. The
output layer starts at zero: an inferred-state model starts training exactly where the shared
one does. A penalty on the offsets (`TrainConfig.initial_state_penalty` x the mean squared
offset) can keep the trials' states around the shared one, which is what a model run without
spikes starts from; it is off by default, since every penalty tried lowered validation co-bps on
a trial-varying teacher (benchmarks/README.md, "Single-trial prediction").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


def held_in_neurons(n_recorded: int, heldout_neurons: Sequence[int] | None) -> list[int]:
    """The recorded neurons (dataset order) whose spikes the encoder reads: all but the held-out."""
    heldout = set(heldout_neurons or ())
    outside = sorted(index for index in heldout if not 0 <= index < n_recorded)
    if outside:
        raise ValueError(f"heldout_neurons: neuron indices {outside} outside 0..{n_recorded - 1}")
    held_in = [index for index in range(n_recorded) if index not in heldout]
    if not held_in:
        raise ValueError(f"heldout_neurons: all {n_recorded} neurons held out, the encoder would read none")
    return held_in


class InitialStateEncoder(nn.Module):
    """Held-in spike counts [B, T, n_recorded] -> initial-state offsets [B, n_units] (unit order).

    Reads only the columns `held_in` and the bins before the last `forward_bins`: what a trial's
    held-out neurons and its forward-prediction bins did never reaches the state.
    """

    def __init__(self, held_in: Sequence[int], n_units: int, hidden: int, forward_bins: int) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"encoder_hidden must be >= 1, got {hidden}")
        if forward_bins < 0:
            raise ValueError(f"forward_bins must be >= 0, got {forward_bins}")
        self.forward_bins = forward_bins
        self.register_buffer("held_in", torch.tensor(list(held_in), dtype=torch.long), persistent=False)
        self.gru = nn.GRU(len(held_in), hidden, batch_first=True, bidirectional=True)
        self.to_offset = nn.Linear(2 * hidden, n_units)
        nn.init.zeros_(self.to_offset.weight)
        nn.init.zeros_(self.to_offset.bias)

    def observed(self, spikes: torch.Tensor) -> torch.Tensor:
        """The counts the encoder reads: held-in neurons, observed bins, NaN padding as 0."""
        n_bins = spikes.shape[1] - self.forward_bins
        if n_bins < 1:
            raise ValueError(f"trials of {spikes.shape[1]} bins leave none before the last {self.forward_bins}")
        return torch.nan_to_num(spikes[:, :n_bins].index_select(-1, self.held_in), nan=0.0)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(torch.log1p(self.observed(spikes).clamp_min(0)))
        return self.to_offset(torch.cat([last[0], last[1]], dim=-1))


def no_encoder(held_in: Sequence[int], n_units: int, hidden: int, forward_bins: int) -> None:
    """`initial_state` "shared": no encoder, every trial starts from the network's h0 (the
    arguments are those of `InitialStateEncoder`, which "inferred" builds).

    Examples
    --------
    >>> from eirnn.choices import INITIAL_STATES
    >>> INITIAL_STATES["shared"]([0, 1], 5, 8, 0) is None
    True
    >>> type(INITIAL_STATES["inferred"]([0, 1], 5, 8, 0)).__name__
    'InitialStateEncoder'
    """
    return None


def encoder_spikes(dataset: Any, device: torch.device | str) -> torch.Tensor:
    """What an inferred-state model reads from a data set (duck-typed: counts, rates_hz, bin_s):
    its spike counts per bin, float32 [trials, time, neurons] (NaN padding kept), or, for
    rates-only data, the expected counts rates x bin width."""
    counts = dataset.counts if dataset.counts is not None else np.asarray(dataset.rates_hz) * dataset.bin_s
    return torch.as_tensor(np.asarray(counts, dtype=np.float32), device=device)
