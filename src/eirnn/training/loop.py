"""Fit a model to a training set with Adam and early stopping on a validation selection score.

Everything outside (MLflow logging, Optuna pruning, the progress display) listens through
callbacks: `on_epoch_end(epoch, metrics)` returning True asks training to stop.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from eirnn.choices import LOSSES, OBJECTIVES, RECURRENT_INITS
from eirnn.config import ConfigError
from eirnn.config_sections import FitSettings
from eirnn.data.perturbations import perturbation_steps
from eirnn.losses import Targets, behavior_mse, time_major
from eirnn.model.encoder import encoder_spikes
from eirnn.training.checkpoints import CheckpointWriter, restore_resumable_state, state_on_cpu
from eirnn.training.early_stopping import EarlyStopping
from eirnn.training.errors import TrainingDivergedError, TrainingInterrupted
from eirnn.training.interrupts import StopRequest
from eirnn.training.next_step import single_trial_rates
from eirnn.training.progress import ProgressDisplay
from eirnn.training.schedules import epoch_learning_rate
from eirnn.training.teacher_forcing import teacher_forced_loss
from eirnn.training.validation_scores import (
    ValidationScorer,
    check_selection_metric,
    higher_is_better,
    selection_score,
    validation_metrics,
)


class Callback(Protocol):
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool | None:
        """Called after each epoch's validation; return True to stop training."""


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_val_psth_corr: float  # val_psth_corr at the best epoch (the seed's score, kept for reference)
    final_val_psth_corr: float
    early_stopped: bool
    stop_reason: str  # "patience", "max_epochs" or "callback"
    training_seconds: float
    best_state: dict[str, torch.Tensor] = field(repr=False)
    selection_metric: str = "cond_psth_corr"
    best_selection_score: float = float("nan")  # the selection score at the best epoch (the kept weights)
    final_selection_score: float = float("nan")
    stop_detail: str = ""  # why training stopped, in words

    @property
    def total_epochs(self) -> int:
        return len(self.history)


def make_targets(dataset: Any, device: torch.device, single_trial_smoothing_bins: float | None = None) -> Targets:
    """The data set's targets as float32 tensors, time-major in memory like the model's outputs;
    with `single_trial_smoothing_bins`, also the smoothed single-trial rates."""

    def tensor(array: np.ndarray | None) -> torch.Tensor | None:
        return (
            None if array is None else time_major(torch.as_tensor(np.asarray(array, dtype=np.float32), device=device))
        )

    smoothed = None if single_trial_smoothing_bins is None else single_trial_rates(dataset, single_trial_smoothing_bins)
    return Targets(tensor(dataset.rates_hz), tensor(dataset.counts), tensor(dataset.behavior), tensor(smoothed))


def prepared_trials(model: torch.nn.Module, dataset: Any, device: torch.device) -> Any:
    """The data set's inputs as the model takes them, with its spikes for an inferred-state model
    and its trials' perturbations."""
    inputs = torch.as_tensor(dataset.inputs, device=device)
    spikes = encoder_spikes(dataset, device) if getattr(model, "infers_initial_state", False) else None
    return model.prepare_inputs(inputs, spikes, perturbation=perturbation_steps(dataset))


def make_loss(settings: FitSettings, train: Any, targets: Targets):
    """The training loss named by `settings.loss` (`eirnn.choices.LOSSES`) for these targets."""
    loss_class = LOSSES[settings.loss]
    if loss_class.needs_counts and targets.counts is None:
        raise ConfigError(f"loss: {settings.loss!r} needs spike counts, but the data has rates only; use loss=mse")
    return loss_class.for_training(targets, train.bin_s)


def train_epoch(
    model: torch.nn.Module,
    inputs: Any,
    targets: Targets,
    loss_fn,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    *,
    batch_size: int,
    grad_clip: float = 0.0,
    behavior_weight: float = 0.0,
    teacher_forcing_weight: float = 0.0,
    epoch: int = 0,
    initial_state_penalty: float = 0.0,
) -> float:
    """One pass over the training trials (`inputs` as prepared by the model): minibatches in a
    fresh random order, or the full batch as it is; returns the mean loss. With
    `teacher_forcing_weight` > 0 (targets with single-trial rates), the loss adds that times the
    teacher-forced term; an inferred-state model's loss adds `initial_state_penalty` x the mean
    squared offset of the trials' x[0] from the shared h0. Raises TrainingDivergedError, before
    any update, when a loss is NaN or Inf."""
    model.train()
    n_trials = targets.rates_hz.shape[0]
    device = targets.rates_hz.device
    order = torch.randperm(n_trials, generator=generator, device=device) if batch_size < n_trials else None
    losses = []
    for first in range(0, n_trials, batch_size):
        index = None if order is None else order[first : first + batch_size]
        batch_inputs = inputs if index is None else inputs.select(index)
        batch_targets = targets if index is None else targets.select(index)
        output = model(batch_inputs, noise=True, generator=generator)
        loss = loss_fn(output.rates, batch_targets)
        if behavior_weight > 0:
            loss = loss + behavior_weight * behavior_mse(output.behavior, batch_targets)
        if output.initial_state_offset is not None and initial_state_penalty > 0:
            loss = loss + initial_state_penalty * output.initial_state_offset.pow(2).mean()
        if teacher_forcing_weight > 0:
            single_trial = batch_targets.single_trial_rates_hz
            loss = loss + teacher_forcing_weight * teacher_forced_loss(model, batch_inputs, single_trial, output.units)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise TrainingDivergedError(epoch, loss_value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        losses.append(loss_value)
    return float(np.mean(losses))


def hold_recurrence_at_zero(model: torch.nn.Module) -> None:
    """The recurrence-ablated control: W_rec zero and frozen, so only inputs, h0 and the gains
    are fitted (`TrainConfig.recurrent` false)."""
    with torch.no_grad():
        model.recurrent_weight_raw.zero_()
    model.recurrent_weight_raw.requires_grad_(False)


class _Training:
    """What one fit prepares once and mutates every epoch: the model, its prepared inputs and
    targets, the optimiser, the random generator, early stopping, the history and the best weights."""

    def __init__(self, model: torch.nn.Module, train: Any, val: Any, settings: FitSettings) -> None:
        self.model, self.settings = model, settings
        self.device = device = next(model.parameters()).device
        self.train_inputs, self.val_inputs = (prepared_trials(model, part, device) for part in (train, val))
        self.teacher_forcing_weight = OBJECTIVES[settings.objective](settings)
        smoothing = settings.single_trial_smoothing_bins if self.teacher_forcing_weight > 0 else None
        self.train_targets, self.val_targets = make_targets(train, device, smoothing), make_targets(val, device)
        if not settings.recurrent:
            hold_recurrence_at_zero(model)
        self.loss_fn = make_loss(settings, train, self.train_targets)
        hparams = getattr(model, "hparams", {})
        check_selection_metric(settings.selection_metric, val, hparams.get("heldout_neurons"))
        self.scorer = ValidationScorer(val, device, hparams.get("heldout_neurons"), hparams.get("forward_bins", 0))
        use_behavior = self.train_targets.behavior is not None and getattr(model, "n_outputs", 0) > 0
        self.behavior_weight = settings.behavior_weight if use_behavior else 0.0
        n_train = self.train_targets.rates_hz.shape[0]
        self.batch_size = settings.batch_size if 0 < settings.batch_size < n_train else n_train
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        self.generator = torch.Generator(device=device).manual_seed(settings.seed)
        self.stopping = EarlyStopping(
            settings.patience, settings.smoothing, higher_is_better(settings.selection_metric), settings.min_delta
        )
        self.history: list[dict[str, float]] = []
        self.best_state = state_on_cpu(model)
        self.start_epoch = 0

    def start(self, train: Any, resume_from: str | Path | None) -> None:
        """Continue from a resumable checkpoint, or start fresh with the data's mean rates."""
        if resume_from is not None:
            restore_resumable_state(self, resume_from)
        else:
            self.model.set_rate_scale(torch.as_tensor(train.rates_hz.mean(axis=(0, 1)), dtype=torch.float32))
            if self.settings.recurrent:
                initialise = RECURRENT_INITS[self.settings.recurrent_init]
                initialise(self.model, train, self.settings.single_trial_smoothing_bins)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """One training pass and the validation scores; appended to the history."""
        epoch_started = time.perf_counter()
        rate = epoch_learning_rate(
            self.settings.lr_schedule, self.settings, epoch, self.history, self.stopping.reference_epoch
        )
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        train_loss = train_epoch(
            self.model,
            self.train_inputs,
            self.train_targets,
            self.loss_fn,
            self.optimizer,
            self.generator,
            batch_size=self.batch_size,
            grad_clip=self.settings.grad_clip,
            behavior_weight=self.behavior_weight,
            teacher_forcing_weight=self.teacher_forcing_weight,
            epoch=epoch,
            initial_state_penalty=self.settings.initial_state_penalty,
        )
        metrics = {"train_loss": train_loss}
        metrics.update(validation_metrics(self.model, self.val_inputs, self.val_targets, self.loss_fn, self.scorer))
        metrics["selection_score"] = selection_score(metrics, self.settings.selection_metric)
        metrics["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        metrics["epoch_seconds"] = time.perf_counter() - epoch_started
        self.history.append(dict(metrics, epoch=epoch))
        return metrics

    def improved(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Feed early stopping; on a new best, keep the weights. True on a new best."""
        if not self.stopping.update(epoch, metrics["selection_score"]):
            return False
        self.best_state = state_on_cpu(self.model)
        return True

    def result(self, stop_reason: str, seconds: float) -> FitResult:
        previous_seconds = sum(h["epoch_seconds"] for h in self.history[: self.start_epoch])
        history = self.history
        nothing = {"val_psth_corr": float("nan"), "selection_score": float("nan")}
        best = history[self.stopping.best_epoch] if history else nothing
        final = history[-1] if history else nothing
        return FitResult(
            history=history,
            best_epoch=self.stopping.best_epoch,
            best_val_psth_corr=best["val_psth_corr"],
            final_val_psth_corr=final["val_psth_corr"],
            early_stopped=stop_reason == "patience",
            stop_reason=stop_reason,
            training_seconds=previous_seconds + seconds,
            best_state=copy.deepcopy(self.best_state),
            selection_metric=self.settings.selection_metric,
            best_selection_score=best["selection_score"],
            final_selection_score=final["selection_score"],
            stop_detail=self.stop_detail(stop_reason, len(history)),
        )

    def stop_detail(self, stop_reason: str, epochs: int) -> str:
        settings = self.settings
        smoothed = f"smoothed ({settings.smoothing:g}) " if settings.smoothing > 0 else ""
        return {
            "patience": (
                f"the {smoothed}validation {settings.selection_metric} rose by less than {settings.min_delta:g} in "
                f"{settings.patience} epochs after epoch {self.stopping.reference_epoch + 1}; stopped after epoch "
                f"{epochs}, best epoch {self.stopping.best_epoch + 1}"
            ),
            "max_epochs": f"reached max_epochs={settings.max_epochs} (the score was still improving within patience)",
            "callback": f"stopped by a callback (e.g. the Optuna pruner) after epoch {epochs}",
        }[stop_reason]


def fit(
    model: torch.nn.Module,
    train: Any,
    val: Any,
    settings: FitSettings,
    callbacks: Sequence[Callback] = (),
    *,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    progress: bool = True,
) -> FitResult:
    """Train `model` on `train`, early-stopping on `val`'s `settings.selection_metric`.

    `settings` are the fit's settings only, ``config.section("training")`` (`FitSettings`).
    With `checkpoint_dir`, writes model_best.pt and model_final.pt (state dicts, loadable with
    `model.load_state_dict(torch.load(path, weights_only=True))`) and a resumable `last.ckpt`
    (model, optimiser, epoch, random generator, early-stopping state and history) every
    `settings.checkpoint_every` epochs (plus a numbered copy) and every `settings.checkpoint_seconds`.
    `resume_from` continues from such a file exactly where it stopped.

    SIGTERM or SIGINT end the current epoch, write `last.ckpt` and raise TrainingInterrupted.
    Resumed from the epoch where patience ran out, `fit` trains no further epoch.

    Examples
    --------
    >>> from eirnn.config import TrainConfig
    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.pipeline import prepare
    >>> from eirnn.training import fit
    >>> config = TrainConfig(max_epochs=2, input_embed_dim=8, attention_heads=2, threads=1)
    >>> dataset, _ = make_recording(seed=0, n_e=4, n_i=2, n_trials=20, n_bins=10)
    >>> prepared = prepare(config, dataset=dataset)
    >>> result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    >>> result.total_epochs, result.stop_reason
    (2, 'max_epochs')
    """
    if not isinstance(settings, FitSettings):
        raise TypeError(f"fit takes the fit settings, config.section('training'), found {type(settings).__name__}")
    training = _Training(model, train, val, settings)
    training.start(train, resume_from)
    checkpoints = CheckpointWriter(checkpoint_dir, settings.checkpoint_every, callbacks, settings.checkpoint_seconds)
    display = (
        ProgressDisplay(settings.max_epochs, training.start_epoch, selection_metric=settings.selection_metric)
        if progress
        else None
    )
    listeners: list[Any] = [*([display] if display else []), *callbacks]
    stop_reason, epoch, started = "max_epochs", training.start_epoch - 1, time.perf_counter()
    first_epoch = training.start_epoch
    # resumed from the epoch where patience ran out (stopped on the way out or while evaluated):
    # the uninterrupted fit trained no further epoch either
    if resume_from is not None and training.stopping.exhausted(epoch):
        stop_reason, first_epoch = "patience", settings.max_epochs
    with StopRequest().installed() as stop_signal:
        for epoch in range(first_epoch, settings.max_epochs):
            try:
                metrics = training.run_epoch(epoch)
            except TrainingDivergedError as error:
                raise TrainingDivergedError(error.epoch, error.loss, checkpoints.last_saved_epoch) from None
            if training.improved(epoch, metrics):
                checkpoints.save_best(training.best_state)
            stop_requested = any([bool(listener.on_epoch_end(epoch, metrics)) for listener in listeners])
            if checkpoints.due(epoch) or stop_signal.signum is not None:
                checkpoints.save_resumable(training, epoch)
            if stop_signal.signum is not None:
                if display:
                    display.close()
                raise TrainingInterrupted(stop_signal.signum, checkpoints.last_saved_epoch)
            if stop_requested or training.stopping.exhausted(epoch):
                stop_reason = "callback" if stop_requested else "patience"
                break
        if display:
            display.close()
        checkpoints.save_final(training, epoch)
        if stop_signal.signum is not None:  # it came while the final checkpoint was written
            raise TrainingInterrupted(stop_signal.signum, checkpoints.last_saved_epoch)
    return training.result(stop_reason, time.perf_counter() - started)
