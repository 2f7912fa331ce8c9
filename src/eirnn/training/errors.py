"""What training raises when it cannot go on."""

from __future__ import annotations


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or Inf; the checkpoints written before that epoch are kept."""

    def __init__(self, epoch: int, loss: float) -> None:
        super().__init__(f"training diverged at epoch {epoch}: loss is {loss}; the last good checkpoint is kept")
        self.epoch = epoch
