"""Early stopping on the (optionally exponentially smoothed) validation PSTH correlation."""

from __future__ import annotations

import math


class EarlyStopping:
    """Tracks the (optionally exponentially smoothed) validation correlation.

    ``smoothing`` in [0, 1): the smoothed value is ``smoothing * previous + (1 - smoothing) * value``;
    a non-finite value counts as -1. Training stops ``patience`` epochs after the best smoothed value.
    """

    def __init__(self, patience: int, smoothing: float) -> None:
        self.patience = patience
        self.smoothing = smoothing
        self.smoothed: float | None = None
        self.best_smoothed = -math.inf
        self.best_epoch = -1

    def update(self, epoch: int, value: float) -> bool:
        """Record one epoch; True when it is the new best."""
        value = value if math.isfinite(value) else -1.0
        self.smoothed = (
            value if self.smoothed is None else self.smoothing * self.smoothed + (1 - self.smoothing) * value
        )
        if self.smoothed > self.best_smoothed:
            self.best_smoothed, self.best_epoch = self.smoothed, epoch
            return True
        return False

    def exhausted(self, epoch: int) -> bool:
        return epoch - self.best_epoch >= self.patience

    def state(self) -> dict[str, float]:
        return {"smoothed": self.smoothed, "best_smoothed": self.best_smoothed, "best_epoch": self.best_epoch}

    def load(self, state: dict[str, float]) -> None:
        self.smoothed, self.best_smoothed, self.best_epoch = (
            state["smoothed"],
            state["best_smoothed"],
            state["best_epoch"],
        )
