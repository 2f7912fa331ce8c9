"""The training progress line on the terminal (or in CI logs)."""

from __future__ import annotations

import math
import sys
import time

from eirnn.training.validation import higher_is_better


class ProgressDisplay:
    """A one-line progress bar on a terminal; a plain line every `interval_s` elsewhere (CI logs)."""

    def __init__(
        self,
        max_epochs: int,
        start_epoch: int = 0,
        selection_metric: str = "cond_psth_corr",
        stream=sys.stderr,
        interval_s: float = 15.0,
    ) -> None:
        self.max_epochs = max_epochs
        self.selection_metric = selection_metric
        self.sign = 1.0 if higher_is_better(selection_metric) else -1.0
        self.start_epoch = start_epoch
        self.stream = stream
        self.interactive = stream.isatty()
        self.interval_s = interval_s
        self.started = time.perf_counter()
        self.last_line = -math.inf
        self.best = -math.inf

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.best = max(self.best, self.sign * metrics["selection_score"])
        elapsed = time.perf_counter() - self.started
        done = epoch + 1
        eta = elapsed / max(done - self.start_epoch, 1) * (self.max_epochs - done)
        line = (
            f"epoch {done}/{self.max_epochs}  loss {metrics['train_loss']:.4f}  "
            f"val {self.selection_metric} {metrics['selection_score']:.3f}  best {self.sign * self.best:.3f}  "
            f"ETA {eta / 60:.1f} min"
        )
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
            self.stream.flush()
        elif elapsed - self.last_line >= self.interval_s or done == self.max_epochs:
            self.stream.write(line + "\n")
            self.last_line = elapsed

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
