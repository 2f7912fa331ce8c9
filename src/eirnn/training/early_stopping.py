"""Early stopping on the (optionally exponentially smoothed) validation selection score."""

from __future__ import annotations

import math


class EarlyStopping:
    """Tracks the (optionally exponentially smoothed) validation selection score.

    ``smoothing`` in [0, 1): the smoothed value is ``smoothing * previous + (1 - smoothing) * value``;
    a non-finite value counts as the worst (-1 for a correlation, +inf for a loss). Training stops
    ``patience`` epochs after the smoothed value last improved by at least ``min_delta`` (the best
    checkpoint still follows every improvement). Scores where lower is better (a loss) are
    tracked negated.
    """

    def __init__(self, patience: int, smoothing: float, higher_is_better: bool = True, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.smoothing = smoothing
        self.sign = 1.0 if higher_is_better else -1.0
        self.min_delta = min_delta
        self.smoothed: float | None = None
        self.best_smoothed = -math.inf
        self.best_epoch = -1
        # the last value that beat its predecessor by min_delta: patience counts from there
        self.reference = -math.inf
        self.reference_epoch = -1

    def update(self, epoch: int, value: float) -> bool:
        """Record one epoch; True when it is the new best."""
        value = self.sign * value if math.isfinite(value) else (-1.0 if self.sign > 0 else -math.inf)
        if self.smoothed is None or not math.isfinite(self.smoothed):
            self.smoothed = value  # nothing finite to smooth with yet
        else:
            self.smoothed = self.smoothing * self.smoothed + (1 - self.smoothing) * value
        rise = self.smoothed - self.reference
        if not math.isfinite(self.reference) or (rise > 0 and rise >= self.min_delta):
            self.reference, self.reference_epoch = self.smoothed, epoch
        if self.smoothed > self.best_smoothed:
            self.best_smoothed, self.best_epoch = self.smoothed, epoch
            return True
        return False

    def exhausted(self, epoch: int) -> bool:
        """True once `patience` epochs passed without an improvement of at least `min_delta`."""
        return epoch - self.reference_epoch >= self.patience

    def state(self) -> dict[str, float]:
        return {
            "smoothed": self.smoothed,
            "best_smoothed": self.best_smoothed,
            "best_epoch": self.best_epoch,
            "reference": self.reference,
            "reference_epoch": self.reference_epoch,
        }

    def load(self, state: dict[str, float]) -> None:
        self.smoothed, self.best_smoothed, self.best_epoch = (
            state["smoothed"],
            state["best_smoothed"],
            state["best_epoch"],
        )
        # checkpoints written before min_delta existed: patience counted from the best epoch
        self.reference = state.get("reference", self.best_smoothed)
        self.reference_epoch = state.get("reference_epoch", self.best_epoch)
