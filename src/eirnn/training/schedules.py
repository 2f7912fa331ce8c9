"""The learning rate of each epoch (`TrainConfig.lr_schedule`), from the base rate, the epoch
and what the fit has recorded so far, so that a resumed fit continues the same schedule:

- constant: the base rate throughout.
- warmup: a linear rise over the first WARMUP_EPOCHS epochs, then the base rate.
- warmup_cosine: a linear rise over the first WARMUP_EPOCHS epochs, then a cosine decay to
  FLOOR x the base rate at the last epoch (max_epochs).
- plateau: the rate halves whenever the early-stopping score has not risen by min_delta for
  patience / PLATEAU_PARTS epochs since its last rise or the last halving (never below FLOOR x
  the base rate), so that a fit gets PLATEAU_PARTS - 1 halvings before patience stops it.
"""

from __future__ import annotations

import math
from typing import Any

from eirnn.choices import LR_SCHEDULES

WARMUP_EPOCHS = 10
FLOOR = 0.01
PLATEAU_PARTS = 4


def epoch_learning_rate(
    schedule: str, settings: Any, epoch: int, history: list[dict[str, float]], last_rise_epoch: int
) -> float:
    """The learning rate for `epoch` (0-based) under the schedule named `schedule`
    (`eirnn.choices.LR_SCHEDULES`); `settings` give learning_rate, max_epochs and patience,
    `history` holds the epochs before it (each with its `learning_rate`), `last_rise_epoch` is
    early stopping's last epoch with a rise (-1: none).

    Examples
    --------
    >>> from eirnn.config import TrainConfig
    >>> from eirnn.training.schedules import epoch_learning_rate
    >>> settings = TrainConfig(learning_rate=0.01, max_epochs=100)
    >>> [round(epoch_learning_rate("warmup_cosine", settings, epoch, [], -1), 4) for epoch in (0, 9, 99)]
    [0.001, 0.01, 0.0001]
    """
    return LR_SCHEDULES[schedule](settings, epoch, history, last_rise_epoch)


def constant_rate(settings: Any, epoch: int, history: list[dict[str, float]], last_rise_epoch: int) -> float:
    """`lr_schedule` "constant": the base rate throughout."""
    return settings.learning_rate


def warmup_rate(settings: Any, epoch: int, history: list[dict[str, float]], last_rise_epoch: int) -> float:
    """`lr_schedule` "warmup": up over WARMUP_EPOCHS, then the base rate."""
    base = settings.learning_rate
    return base * (epoch + 1) / WARMUP_EPOCHS if epoch < WARMUP_EPOCHS else base


def warmup_cosine_rate(settings: Any, epoch: int, history: list[dict[str, float]], last_rise_epoch: int) -> float:
    """`lr_schedule` "warmup_cosine": up over WARMUP_EPOCHS, then a cosine down to FLOOR x base."""
    if epoch < WARMUP_EPOCHS:
        return warmup_rate(settings, epoch, history, last_rise_epoch)
    base = settings.learning_rate
    progress = (epoch - WARMUP_EPOCHS) / max(1, settings.max_epochs - 1 - WARMUP_EPOCHS)
    return base * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def plateau_rate(settings: Any, epoch: int, history: list[dict[str, float]], last_rise_epoch: int) -> float:
    """`lr_schedule` "plateau": halved after patience / PLATEAU_PARTS epochs without a rise or a halving."""
    base = settings.learning_rate
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
    wait = max(1, settings.patience // PLATEAU_PARTS)
    if epoch - max(last_rise_epoch, last_change) > wait:
        return max(rate * 0.5, base * FLOOR)
    return rate
