"""Fit a model to a training set with Adam and early stopping on validation PSTH correlation.

Everything outside (MLflow logging, Optuna pruning, the progress display) listens through
callbacks: `on_epoch_end(epoch, metrics)` returning True asks training to stop.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from eirnn.config import ConfigError, TrainConfig
from eirnn.losses import NormalizedMSE, PoissonNLL, Targets, behavior_mse, time_major
from eirnn.metrics import condition_psths, correlation_of_psths, to_float

RESUME_FILE = "last.ckpt"
BEST_WEIGHTS_FILE = "model_best.pt"
FINAL_WEIGHTS_FILE = "model_final.pt"


def periodic_checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch + 1:06d}.ckpt"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or Inf; the checkpoints written before that epoch are kept."""

    def __init__(self, epoch: int, loss: float) -> None:
        super().__init__(f"training diverged at epoch {epoch}: loss is {loss}; the last good checkpoint is kept")
        self.epoch = epoch


class Callback(Protocol):
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool | None:
        """Called after each epoch's validation; return True to stop training."""


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_val_psth_corr: float
    final_val_psth_corr: float
    early_stopped: bool
    stop_reason: str  # "patience", "max_epochs" or "callback"
    training_seconds: float
    best_state: dict[str, torch.Tensor] = field(repr=False)

    @property
    def total_epochs(self) -> int:
        return len(self.history)


def make_targets(dataset: Any, device: torch.device) -> Targets:
    """The data set's targets as float32 tensors, time-major in memory like the model's outputs."""

    def tensor(array: np.ndarray | None) -> torch.Tensor | None:
        return (
            None if array is None else time_major(torch.as_tensor(np.asarray(array, dtype=np.float32), device=device))
        )

    return Targets(tensor(dataset.rates_hz), tensor(dataset.counts), tensor(dataset.behavior))


def make_loss(config: TrainConfig, train: Any, targets: Targets):
    if config.loss == "poisson":
        if targets.counts is None:
            raise ConfigError("loss: 'poisson' needs spike counts, but the data has rates only; use loss=mse")
        return PoissonNLL(train.bin_s)
    return NormalizedMSE(targets.rates_hz)


class _EarlyStopping:
    """Tracks the (optionally exponentially smoothed) validation correlation."""

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


class ValidationScorer:
    """Scores noise-free predictions on the validation trials, every epoch, as the report
    scores them (`eirnn.metrics.correlation_of_psths`). The target PSTHs are fixed, so they are
    averaged once; the model's are averaged on the model's device, and only those small
    arrays reach numpy."""

    def __init__(self, val: Any, device: torch.device) -> None:
        codes, code_of_trial = np.unique(val.conditions, return_inverse=True)
        rates = np.asarray(val.rates_hz, dtype=np.float64)
        self.labels = val.ei_labels
        self.target_psth = rates.mean(axis=0)
        self.target_condition_psth = condition_psths(rates, val.conditions, codes).reshape(-1, rates.shape[-1])
        averaging = np.zeros((len(codes), len(code_of_trial)))
        averaging[code_of_trial, np.arange(len(code_of_trial))] = 1.0
        averaging /= averaging.sum(axis=1, keepdims=True)
        self.condition_averaging = torch.as_tensor(averaging, dtype=torch.float32, device=device)

    def __call__(self, model_rates: torch.Tensor) -> dict[str, float]:
        # averaging in float32 on the device; correlations in float64 like the final metrics
        psth = model_rates.mean(dim=0).double().cpu().numpy()
        condition_psth = torch.einsum("cb,btn->ctn", self.condition_averaging, model_rates).double().cpu().numpy()
        overall = correlation_of_psths(psth, self.target_psth, self.labels)
        by_condition = correlation_of_psths(
            condition_psth.reshape(-1, psth.shape[-1]), self.target_condition_psth, self.labels
        )
        return {
            "val_psth_corr": to_float(overall.mean),
            "val_psth_corr_E": to_float(overall.mean_e),
            "val_psth_corr_I": to_float(overall.mean_i),
            "val_cond_psth_corr": to_float(by_condition.mean),
        }


def validation_metrics(
    model: torch.nn.Module, prepared: Any, targets: Targets, loss_fn, scorer: ValidationScorer
) -> dict[str, float]:
    """Noise-free predictions on the validation trials: loss and PSTH correlations."""
    model.eval()
    with torch.no_grad():
        output = model(prepared, noise=False)
        loss = loss_fn(output.rates, targets)
    return {"val_loss": float(loss), **scorer(output.rates)}


class ProgressDisplay:
    """A one-line progress bar on a terminal; a plain line every `interval_s` elsewhere (CI logs)."""

    def __init__(self, max_epochs: int, start_epoch: int = 0, stream=sys.stderr, interval_s: float = 15.0) -> None:
        self.max_epochs = max_epochs
        self.start_epoch = start_epoch
        self.stream = stream
        self.interactive = stream.isatty()
        self.interval_s = interval_s
        self.started = time.perf_counter()
        self.last_line = -math.inf
        self.best = -math.inf

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.best = max(self.best, metrics["val_psth_corr"])
        elapsed = time.perf_counter() - self.started
        done = epoch + 1
        eta = elapsed / max(done - self.start_epoch, 1) * (self.max_epochs - done)
        line = (
            f"epoch {done}/{self.max_epochs}  loss {metrics['train_loss']:.4f}  "
            f"val r {metrics['val_psth_corr']:.3f}  best {self.best:.3f}  ETA {eta / 60:.1f} min"
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
    epoch: int = 0,
) -> float:
    """One pass over the training trials (`inputs` as prepared by the model): minibatches in a
    fresh random order, or the full batch as it is; returns the mean loss. Raises
    TrainingDivergedError, before any update, when a loss is NaN or Inf."""
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


def _state_on_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


def fit(
    model: torch.nn.Module,
    train: Any,
    val: Any,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    *,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    progress: bool = True,
) -> FitResult:
    """Train `model` on `train`, early-stopping on `val`'s PSTH correlation.

    With `checkpoint_dir`, writes model_best.pt and model_final.pt (state dicts, loadable with
    `model.load_state_dict(torch.load(path, weights_only=True))`) and, every
    `config.checkpoint_every` epochs, a resumable `last.ckpt` (model, optimiser, epoch, random
    generator, early-stopping state and history) plus a numbered copy. `resume_from` continues
    from such a file exactly where it stopped.
    """
    device = next(model.parameters()).device
    train_inputs = model.prepare_inputs(torch.as_tensor(train.inputs, device=device))
    val_inputs = model.prepare_inputs(torch.as_tensor(val.inputs, device=device))
    train_targets, val_targets = make_targets(train, device), make_targets(val, device)
    loss_fn = make_loss(config, train, train_targets)
    scorer = ValidationScorer(val, device)
    use_behavior = train_targets.behavior is not None and getattr(model, "n_outputs", 0) > 0

    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    stopping = _EarlyStopping(config.patience, config.smoothing)
    history: list[dict[str, float]] = []
    best_state = _state_on_cpu(model)
    start_epoch = 0
    if resume_from is not None:
        saved = torch.load(resume_from, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"].to(generator.get_state().device))
        stopping.load(saved["early_stopping"])
        history, best_state, start_epoch = saved["history"], saved["best_state"], saved["epoch"] + 1
    else:
        model.set_rate_scale(torch.as_tensor(train.rates_hz.mean(axis=(0, 1)), dtype=torch.float32))

    checkpoint_path = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if checkpoint_path is not None:
        checkpoint_path.mkdir(parents=True, exist_ok=True)

    def save_resumable(epoch: int) -> None:
        if checkpoint_path is None:
            return
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "early_stopping": stopping.state(),
            "history": history,
            "best_state": best_state,
            "epoch": epoch,
        }
        torch.save(state, checkpoint_path / periodic_checkpoint_name(epoch))
        # write-then-rename: a kill during the write never leaves a truncated last.ckpt
        tmp = checkpoint_path / (RESUME_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(checkpoint_path / RESUME_FILE)
        for callback in callbacks:
            if hasattr(callback, "on_checkpoint"):
                callback.on_checkpoint(checkpoint_path, epoch)

    display = ProgressDisplay(config.max_epochs, start_epoch) if progress else None
    listeners: list[Any] = [*([display] if display else []), *callbacks]
    n_train = train_targets.rates_hz.shape[0]
    batch_size = config.batch_size if 0 < config.batch_size < n_train else n_train
    stop_reason = "max_epochs"
    started = time.perf_counter()
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.max_epochs):
        epoch_started = time.perf_counter()
        train_loss = train_epoch(
            model,
            train_inputs,
            train_targets,
            loss_fn,
            optimizer,
            generator,
            batch_size=batch_size,
            grad_clip=config.grad_clip,
            behavior_weight=config.behavior_weight if use_behavior else 0.0,
            epoch=epoch,
        )
        metrics = {"train_loss": train_loss}
        metrics.update(validation_metrics(model, val_inputs, val_targets, loss_fn, scorer))
        metrics["learning_rate"] = optimizer.param_groups[0]["lr"]
        metrics["epoch_seconds"] = time.perf_counter() - epoch_started
        history.append(dict(metrics, epoch=epoch))
        if stopping.update(epoch, metrics["val_psth_corr"]):
            best_state = _state_on_cpu(model)
            if checkpoint_path is not None:
                torch.save(best_state, checkpoint_path / BEST_WEIGHTS_FILE)
        stop_requested = any([bool(listener.on_epoch_end(epoch, metrics)) for listener in listeners])
        if config.checkpoint_every > 0 and (epoch + 1) % config.checkpoint_every == 0:
            save_resumable(epoch)
        if stop_requested:
            stop_reason = "callback"
            break
        if stopping.exhausted(epoch):
            stop_reason = "patience"
            break
    if display:
        display.close()
    if checkpoint_path is not None:
        torch.save(_state_on_cpu(model), checkpoint_path / FINAL_WEIGHTS_FILE)
        save_resumable(epoch)
    previous_seconds = sum(h["epoch_seconds"] for h in history[:start_epoch])
    best = history[stopping.best_epoch] if history else {"val_psth_corr": float("nan")}
    return FitResult(
        history=history,
        best_epoch=stopping.best_epoch,
        best_val_psth_corr=best["val_psth_corr"],
        final_val_psth_corr=history[-1]["val_psth_corr"] if history else float("nan"),
        early_stopped=stop_reason == "patience",
        stop_reason=stop_reason,
        training_seconds=previous_seconds + time.perf_counter() - started,
        best_state=copy.deepcopy(best_state),
    )
