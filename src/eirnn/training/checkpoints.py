"""Checkpoint files of a fit: best and final weights, and the resumable training state.

``model_best.pt`` / ``model_final.pt`` are plain state dicts, loadable with
``model.load_state_dict(torch.load(path, weights_only=True))``. ``last.ckpt`` (and a numbered
copy per save) holds everything a fit needs to continue exactly where it stopped: model,
optimiser, random generator, early-stopping state, history, best weights and the epoch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

RESUME_FILE = "last.ckpt"
BEST_WEIGHTS_FILE = "model_best.pt"
FINAL_WEIGHTS_FILE = "model_final.pt"


def periodic_checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch + 1:06d}.ckpt"


def state_on_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


def resumable_state(training: Any, epoch: int) -> dict[str, Any]:
    """What ``last.ckpt`` holds after ``epoch`` of ``training`` (a fit's mutable state)."""
    return {
        "model": training.model.state_dict(),
        "optimizer": training.optimizer.state_dict(),
        "generator": training.generator.get_state(),
        "early_stopping": training.stopping.state(),
        "history": training.history,
        "best_state": training.best_state,
        "epoch": epoch,
    }


def restore_resumable_state(training: Any, path: str | Path) -> None:
    """Load a ``last.ckpt`` into ``training``, which then continues after the saved epoch."""
    device = training.device
    # tensors and plain values only: a checkpoint downloaded from a shared store cannot run code
    saved = torch.load(path, map_location=device, weights_only=True)
    training.model.load_state_dict(saved["model"])
    training.optimizer.load_state_dict(saved["optimizer"])
    training.generator.set_state(saved["generator"].to(training.generator.get_state().device))
    training.stopping.load(saved["early_stopping"])
    training.history, training.best_state = saved["history"], saved["best_state"]
    training.start_epoch = saved["epoch"] + 1


class CheckpointWriter:
    """Writes a fit's checkpoint files into ``directory``; does nothing when it is None.

    ``last.ckpt`` is refreshed every ``every`` epochs (with a numbered copy) and also whenever
    ``every_s`` seconds have passed since the last save, so that a kill loses at most that much
    training however long an epoch takes. Callbacks with an ``on_checkpoint(directory, epoch)``
    method hear of each resumable save. The best weights so far (``model_best.pt``) are written
    with each resumable save and at the end of the fit.
    """

    def __init__(
        self, directory: str | Path | None, every: int, callbacks: Sequence[Any] = (), every_s: float = 0.0
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.every = every
        self.every_s = every_s
        self.callbacks = callbacks
        self.last_saved_epoch: int | None = None
        self._last_saved_at = time.monotonic()
        self._unsaved_best: dict[str, torch.Tensor] | None = None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def numbered_due(self, epoch: int) -> bool:
        """Whether ``epoch`` gets a numbered checkpoint (every ``every`` epochs)."""
        return self.every > 0 and (epoch + 1) % self.every == 0

    def due(self, epoch: int) -> bool:
        """Whether a resumable checkpoint is written after ``epoch``."""
        timed = self.every_s > 0 and time.monotonic() - self._last_saved_at >= self.every_s
        return self.numbered_due(epoch) or timed

    def save_best(self, best_state: dict[str, torch.Tensor]) -> None:
        """Keep the new best weights for the next resumable save or the end of the fit: written
        on every improvement, the file cost a disk write almost every epoch of a rising fit."""
        self._unsaved_best = best_state

    def _write_best(self) -> None:
        if self.directory is not None and self._unsaved_best is not None:
            torch.save(self._unsaved_best, self.directory / BEST_WEIGHTS_FILE)
        self._unsaved_best = None

    def save_final(self, training: Any, epoch: int) -> None:
        """The final weights and a resumable checkpoint of the last epoch."""
        if self.directory is not None:
            torch.save(state_on_cpu(training.model), self.directory / FINAL_WEIGHTS_FILE)
            self.save_resumable(training, epoch)

    def save_resumable(self, training: Any, epoch: int) -> None:
        if self.directory is None:
            return
        self._write_best()  # before the callbacks, which upload it with the checkpoint
        state = resumable_state(training, epoch)
        if self.numbered_due(epoch):
            torch.save(state, self.directory / periodic_checkpoint_name(epoch))
        # write-then-rename: a kill during the write never leaves a truncated last.ckpt
        tmp = self.directory / (RESUME_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.directory / RESUME_FILE)
        self.last_saved_epoch, self._last_saved_at = epoch, time.monotonic()
        for callback in self.callbacks:
            if hasattr(callback, "on_checkpoint"):
                callback.on_checkpoint(self.directory, epoch)
