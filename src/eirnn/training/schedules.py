"""The learning rate of each epoch (`TrainConfig.lr_schedule`), from the base rate, the epoch
and what the fit has recorded so far, so that a resumed fit continues the same schedule:

- constant: the base rate throughout.
- warmup_cosine: a linear rise over the first WARMUP_EPOCHS epochs, then a cosine decay to
  FLOOR x the base rate at the last epoch (max_epochs).
- plateau: the rate halves whenever the early-stopping score has not risen by min_delta for
  patience / PLATEAU_PARTS epochs since its last rise or the last halving (never below FLOOR x
  the base rate), so that a fit gets PLATEAU_PARTS - 1 halvings before patience stops it.
"""

from __future__ import annotations

import math
from typing import Any

WARMUP_EPOCHS = 10
FLOOR = 0.01
PLATEAU_PARTS = 4


def epoch_learning_rate(
    schedule: str, config: Any, epoch: int, history: list[dict[str, float]], last_rise_epoch: int
) -> float:
    """The learning rate for `epoch` (0-based); `history` holds the epochs before it (each with
    its `learning_rate`), `last_rise_epoch` is early stopping's last epoch with a rise (-1: none)."""
    base = config.learning_rate
    if schedule == "constant":
        return base
    if schedule == "warmup_cosine":
        if epoch < WARMUP_EPOCHS:
            return base * (epoch + 1) / WARMUP_EPOCHS
        progress = (epoch - WARMUP_EPOCHS) / max(1, config.max_epochs - 1 - WARMUP_EPOCHS)
        return base * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
    if schedule == "plateau":
        if not history:
            return base
        rate = history[-1]["learning_rate"]
        last_change = next(
            (
                h["epoch"]
                for h, before in zip(reversed(history), reversed(history[:-1]))
                if h["learning_rate"] != before["learning_rate"]
            ),
            -1,
        )
        wait = max(1, config.patience // PLATEAU_PARTS)
        if epoch - max(last_rise_epoch, last_change) > wait:
            return max(rate * 0.5, base * FLOOR)
        return rate
    raise ValueError(f"lr_schedule must be constant, warmup_cosine or plateau, got {schedule!r}")
