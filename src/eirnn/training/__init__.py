"""Fit a model to a training set with Adam and early stopping on validation PSTH correlation.

Modules (this package re-exports their public names):

* ``loop``: :func:`fit` (the epoch loop), :func:`train_epoch`, :class:`FitResult`,
  :func:`make_targets`, :func:`make_loss`, the :class:`Callback` protocol.
* ``checkpoints``: best/final weights and the resumable ``last.ckpt`` (file names, save, resume).
* ``early_stopping``: :class:`EarlyStopping` on the smoothed validation correlation.
* ``validation``: :class:`ValidationScorer`, :func:`validation_metrics`.
* ``progress``: :class:`ProgressDisplay`.
* ``errors``: :class:`TrainingDivergedError`, :class:`TrainingInterrupted`.
* ``interrupts``: SIGTERM/SIGINT as stop requests.

Everything outside (MLflow logging, Optuna pruning, the progress display) listens through
callbacks: ``on_epoch_end(epoch, metrics)`` returning True asks training to stop.
"""

from eirnn.training.checkpoints import (
    BEST_WEIGHTS_FILE,
    FINAL_WEIGHTS_FILE,
    RESUME_FILE,
    CheckpointWriter,
    periodic_checkpoint_name,
)
from eirnn.training.early_stopping import EarlyStopping
from eirnn.training.errors import TrainingDivergedError, TrainingInterrupted
from eirnn.training.loop import Callback, FitResult, fit, make_loss, make_targets, train_epoch
from eirnn.training.progress import ProgressDisplay
from eirnn.training.validation_scores import ValidationScorer, validation_metrics

__all__ = [
    "BEST_WEIGHTS_FILE",
    "FINAL_WEIGHTS_FILE",
    "RESUME_FILE",
    "Callback",
    "CheckpointWriter",
    "EarlyStopping",
    "FitResult",
    "ProgressDisplay",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "ValidationScorer",
    "fit",
    "make_loss",
    "make_targets",
    "periodic_checkpoint_name",
    "train_epoch",
    "validation_metrics",
]
