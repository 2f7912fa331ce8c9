"""What training raises when it cannot go on."""

from __future__ import annotations

import signal


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or Inf; says which resumable checkpoint, if any, was written before."""

    def __init__(self, epoch: int, loss: float, checkpoint_epoch: int | None = None) -> None:
        kept = (
            "no checkpoint was written before it"
            if checkpoint_epoch is None
            else f"the last resumable checkpoint (after epoch {checkpoint_epoch}) is kept"
        )
        # Adam's first steps move every weight by about the learning rate, whatever its gradient;
        # on a large network that can throw the recurrence out of its stable range at once
        advice = " (a warm-up, --lr-schedule warmup, or a lower --learning-rate avoids that)" if epoch < 20 else ""
        super().__init__(f"training diverged at epoch {epoch}: loss is {loss}; {kept}{advice}")
        self.epoch, self.loss, self.checkpoint_epoch = epoch, loss, checkpoint_epoch


class TrainingInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT stopped training; `checkpoint_epoch` is the epoch the resumable
    checkpoint written on the way out covers (None when none could be written). A
    KeyboardInterrupt, so that nothing that catches errors (an Optuna study going on to its
    next trial) swallows a request to stop."""

    def __init__(self, signum: int, checkpoint_epoch: int | None = None) -> None:
        self.signum, self.checkpoint_epoch = signum, checkpoint_epoch
        where = "before the first epoch" if checkpoint_epoch is None else f"after epoch {checkpoint_epoch}"
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by the signal
