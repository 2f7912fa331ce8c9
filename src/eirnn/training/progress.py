"""The training progress line on the terminal (or in CI logs)."""

from __future__ import annotations

import math
import sys
import time

from eirnn.training.validation_scores import higher_is_better

BAR_WIDTH = 24
LINES_WHEN_PIPED = 20  # about this many plain lines over a full run when the output is not a terminal


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressDisplay:
    """On a terminal, one bar redrawn in place: epoch, loss, the validation selection score and
    its best so far, ETA. Piped (CI logs, `| tee`), the same facts as a plain line every
    `every_epochs` epochs (default: a twentieth of max_epochs), on the first and on the last epoch."""

    def __init__(
        self,
        max_epochs: int,
        start_epoch: int = 0,
        stream=None,
        every_epochs: int | None = None,
        selection_metric: str = "cond_psth_corr",
    ) -> None:
        self.selection_metric = selection_metric
        self.sign = 1.0 if higher_is_better(selection_metric) else -1.0
        self.max_epochs = max_epochs
        self.start_epoch = start_epoch
        # sys.stderr as it is now, not as it was at import: test runners and notebooks swap it
        self.stream = sys.stderr if stream is None else stream
        self.interactive = self.stream.isatty()
        self.every_epochs = every_epochs or max(1, max_epochs // LINES_WHEN_PIPED)
        self.started = time.perf_counter()
        self.best = -math.inf
        self.drawn = False

    def line(self, epoch: int, metrics: dict[str, float]) -> str:
        done = epoch + 1
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(done - self.start_epoch, 1) * (self.max_epochs - done)
        return (
            f"epoch {done}/{self.max_epochs}  loss {metrics['train_loss']:.4f}  "
            f"val {self.selection_metric} {metrics['selection_score']:.3f}  best {self.sign * self.best:.3f}  "
            f"elapsed {_duration(elapsed)}  ETA {_duration(eta)} (at most)"
        )

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        value = self.sign * metrics["selection_score"]
        self.best = max(self.best, value) if math.isfinite(value) else self.best
        done = epoch + 1
        if self.interactive:
            filled = round(BAR_WIDTH * done / self.max_epochs)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {self.line(epoch, metrics)}\033[K")
            self.stream.flush()
            self.drawn = True
        elif done == self.start_epoch + 1 or done % self.every_epochs == 0 or done == self.max_epochs:
            self.stream.write(self.line(epoch, metrics) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
