"""One training run as an object of the science core: load and validate -> split -> fit ->
evaluate -> test split and recovery -> run folder -> figures and report.md.

`TrainingRun.execute` does the science and tells its sinks what happened, in this order (see
`RunSink`): the settings at the start, the prepared data, the epochs (through the sinks' epoch
callbacks), the end of fitting, and the finished `RunResult` with its run folder. It never
imports mlflow: MLflow tracking is one sink (`eirnn.tracking.mlflow_run.MlflowSink`: params and tags
at the start, the epoch logger, then the folder, the model and the registration), a plain
folder another (`FolderSink`, what `eirnn.train(..., tracking=False)` and
`eirnn train --no-tracking` use).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eirnn.artifacts import write_run_folder
from eirnn.config import TrainConfig
from eirnn.data import NeuralDataset
from eirnn.data.dataset import NO_VALIDATION_TEXT
from eirnn.evaluation import Evaluation, evaluate
from eirnn.memory_allocator import configure_unless_opted_out
from eirnn.metrics import Metric, to_float
from eirnn.pipeline import Prepared, dataset_sha256, prepare
from eirnn.training import FitResult, TrainingInterrupted, fit

SPLIT_FILE = "split.json"  # trial ids of train, val and test: what no selection step may touch
MODEL_FOLDER = "model"
CHECKPOINT_FOLDER = "checkpoints"
# the fit facts in words: metrics.json keeps them, final metrics (floats) leave them out
FIT_WORDS = ("stop_reason", "stop_detail")
# each process meets its fonts and caches afresh (benchmarks/README.md): a few suffice for ~17 figures
FIGURE_PROCESSES = 4


def readable_run_name(config: TrainConfig) -> str:
    """The name a run gets when `config.run_name` is empty: its main settings and seed."""
    tau = f"{config.tau:g}"
    return (
        f"tau{tau}-{config.input_embed_type}{config.input_embed_dim}-noise{config.noise_scale:g}"
        f"-lr{config.learning_rate:g}-{config.loss}-seed{config.seed}"
    )


def fit_summary(result: FitResult) -> dict[str, Any]:
    """The fit's facts as metrics.json's "fit" section holds them (scores, epochs, stop reason)."""
    return {
        "best_selection_score": result.best_selection_score,
        "final_selection_score": result.final_selection_score,
        "best_val_psth_corr": result.best_val_psth_corr,
        "best_epoch": result.best_epoch,
        "final_val_psth_corr": result.final_val_psth_corr,
        "total_epochs": result.total_epochs,
        "training_seconds": result.training_seconds,
        "early_stopped": result.early_stopped,
        "stop_reason": result.stop_reason,
        "stop_detail": result.stop_detail,
    }


def data_facts(prepared: Prepared) -> dict[str, Any]:
    """The data and its split as data.json holds them (and a tracked run logs as `data.*` params)."""
    return {
        **prepared.dataset.facts(),
        "data_sha256": dataset_sha256(prepared.dataset),
        "n_train_trials": prepared.train.n_trials,
        "n_val_trials": prepared.val.n_trials,
        "n_test_trials": prepared.test.n_trials if prepared.test is not None else 0,
        "validation": "held-out trials" if prepared.held_out else f"training trials: {NO_VALIDATION_TEXT}",
    }


def held_out_and_recovery_scores(model: Any, prepared: Prepared, config: TrainConfig) -> tuple[dict[str, Metric], Any]:
    """The test split's scores (`test_*`, when the run holds one out; NotAvailable with its reason
    where the test trials cannot support one) and, for data with a known circuit, what the fit
    recovers of it (`gt_*`, `eirnn.recovery`), with the Recovery itself."""
    scores: dict[str, Metric] = {}
    if prepared.test is not None:
        test = evaluate(
            model, prepared.test, seed=config.seed, ceiling_seed=config.data_split_seed, train=prepared.train
        )
        scores.update({f"test_{name}": value for name, value in test.metric_values().items()})
    recovery = None
    if prepared.truth is not None:
        from eirnn.data.perturbations import perturbation_labels
        from eirnn.recovery import recover

        trained = perturbation_labels(prepared.train)
        recovery = recover(model, prepared.truth, prepared.val, seed=config.data_split_seed, trained_types=trained)
        scores.update(recovery.metrics)
    return scores, recovery


def write_figures_and_report(folder: Path, config: TrainConfig, run_id: str | None) -> None:
    """figures/ (unless `config.log_figures` is off), report.md and report.html in the run folder,
    from the folder alone (as `eirnn report` redraws them). The figures are drawn by as many
    processes as the run has cores (`config.threads`, 0 = all), at most FIGURE_PROCESSES."""
    from eirnn.artifacts import RunArtifacts
    from eirnn.figures import FigureSet, write_figures
    from eirnn.report import write_report

    artifacts = RunArtifacts.load(folder)
    processes = min(config.threads or os.cpu_count() or 1, FIGURE_PROCESSES)
    figures = (
        write_figures(artifacts, folder / "figures", processes=processes)
        if config.log_figures
        else FigureSet.empty("figures are off for this run (log_figures=false)")
    )
    write_report(artifacts, figures, folder / "report.md", run_id=run_id, model_name=config.registered_model_name)


@dataclass
class RunResult:
    """What a run produced: the settings, data and model (best weights), the fit, the
    evaluation on the validation trials, the extra scores (test_*, gt_*) and the folder."""

    config: TrainConfig
    prepared: Prepared  # data, split, and the model with its best weights
    fit: FitResult
    evaluation: Evaluation
    extra_metrics: dict[str, Metric]
    recovery: Any  # eirnn.recovery.Recovery for data with a known circuit, else None
    folder: Path  # the run folder: weights, outputs, metrics, figures, report.md, split.json
    checkpoint_dir: Path
    facts: dict[str, Any] = field(default_factory=dict)  # data.json

    @property
    def final_values(self) -> dict[str, Any]:
        """Every final number by core name: evaluation scalars, extra scores and the fit's facts
        (integers, flags and the stop reason as they are)."""
        return {
            **self.evaluation.scalar_metrics(),
            **{name: to_float(value) for name, value in self.extra_metrics.items()},
            **fit_summary(self.fit),
        }

    @property
    def final_metrics(self) -> dict[str, float]:
        """`final_values` as floats, without the stop reason and its words."""
        return {key: float(value) for key, value in self.final_values.items() if key not in FIT_WORDS}


class RunSink:
    """What a run tells its sinks, in this order. Every method is optional for a sink (a run
    calls those it finds); this class documents them and does nothing."""

    def on_start(self, config: TrainConfig) -> None:
        """The settings, before any data is read."""

    def on_prepared(self, prepared: Prepared, facts: dict[str, Any]) -> None:
        """The loaded, validated and split data and the built model, before fitting."""

    def epoch_callbacks(self) -> Sequence[Any]:
        """Callbacks `fit` calls after each epoch (`on_epoch_end`, optional `on_checkpoint`)."""
        return ()

    def on_fit_end(self, failed: bool) -> None:
        """Fitting ended (`failed`: by an error or an interruption, which then propagates). A
        stop that interrupts the `failed=False` call is followed by a `failed=True` call."""

    def on_finished(self, result: RunResult) -> None:
        """The run folder is written (figures, report.md and split.json included)."""


@dataclass
class TrainingRun:
    """One run: `config` on `dataset` (None: what `config.data` names, or the built-in
    recording, which brings its circuit as `truth`), told to `sinks`; `callbacks` see every
    epoch after the sinks' own. `resume_from`: a resumable checkpoint to continue from.
    `run_id`: what the report calls the run (a tracking run's id; None for a plain folder)."""

    config: TrainConfig
    dataset: NeuralDataset | None = None
    truth: Any = None
    sinks: Sequence[Any] = ()
    callbacks: Sequence[Any] = ()
    resume_from: Path | None = None
    run_id: str | None = None

    def execute(self, folder: Path, checkpoint_dir: Path) -> RunResult:
        """Run every step; the run folder goes to `folder`, checkpoints to `checkpoint_dir`."""
        # where a run starts, before its first tensor: the allocator settings (eirnn.memory_allocator)
        configure_unless_opted_out()
        self._tell("on_start", self.config)
        prepared = prepare(self.config, self.dataset, self.truth)
        if not prepared.held_out:
            logging.getLogger("eirnn").warning("validation: %s", NO_VALIDATION_TEXT)
        facts = data_facts(prepared)
        self._tell("on_prepared", prepared, facts)
        result = self._fit(prepared, checkpoint_dir)
        try:
            finished = self._evaluate_and_write(prepared, result, facts, Path(folder), Path(checkpoint_dir))
            self._tell("on_finished", finished)
        except TrainingInterrupted as stopped:
            raise _after_the_fit(stopped, result) from None
        return finished

    def _tell(self, event: str, *args: Any) -> None:
        for sink in self.sinks:
            method = getattr(sink, event, None)
            if method is not None:
                method(*args)

    def _fit(self, prepared: Prepared, checkpoint_dir: Path) -> FitResult:
        try:
            callbacks = [
                *(callback for sink in self.sinks for callback in getattr(sink, "epoch_callbacks", tuple)()),
                *self.callbacks,
            ]
            result = fit(
                prepared.model,
                prepared.train,
                prepared.val,
                self.config.section("training"),
                callbacks,
                checkpoint_dir=checkpoint_dir,
                resume_from=self.resume_from,
            )
        except BaseException:
            self._tell("on_fit_end", True)
            raise
        try:
            self._tell("on_fit_end", False)
        except TrainingInterrupted as stopped:
            # the sinks still hold the final checkpoint; they get the bounded wait of a stopped fit
            self._tell("on_fit_end", True)
            raise _after_the_fit(stopped, result) from None
        return result

    def _evaluate_and_write(
        self, prepared: Prepared, result: FitResult, facts: dict[str, Any], folder: Path, checkpoint_dir: Path
    ) -> RunResult:
        config, model = self.config, prepared.model
        model.load_state_dict(result.best_state)
        evaluation = evaluate(
            model, prepared.val, seed=config.seed, ceiling_seed=config.data_split_seed, train=prepared.train
        )
        extra_metrics, recovery = held_out_and_recovery_scores(model, prepared, config)
        write_run_folder(
            folder,
            model=model,
            evaluation=evaluation,
            val_inputs=prepared.val.inputs,
            history=result.history,
            fit_summary=fit_summary(result),
            config=config.to_dict(),
            data_facts=facts,
            input_names=prepared.dataset.input_names,
            behavior_names=prepared.dataset.behavior_names,
            extra_metrics=extra_metrics,
            recovery=recovery,
        )
        write_figures_and_report(folder, config, self.run_id)
        # after the report, which lists the files it describes
        (folder / SPLIT_FILE).write_text(json.dumps(prepared.trial_ids(), indent=2))
        return RunResult(config, prepared, result, evaluation, extra_metrics, recovery, folder, checkpoint_dir, facts)


def _after_the_fit(stopped: TrainingInterrupted, result: FitResult) -> TrainingInterrupted:
    """A stop that came after the fit: its final checkpoint makes the run resumable, and a run
    resumed from it trains nothing more (it only evaluates)."""
    return TrainingInterrupted(stopped.signum, result.total_epochs - 1)


class FolderSink(RunSink):
    """Keeps a run in a plain folder: the run folder's files at its top, checkpoints/ and the
    network's two files in model/ (`eirnn.model.network_files`)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)

    def on_finished(self, result: RunResult) -> None:
        from eirnn.model.network_files import save_network_files

        save_network_files(result.prepared.model, self.out / MODEL_FOLDER)


def default_run_folder(config: TrainConfig) -> Path:
    """`eirnn-runs/NAME-YYYYmmdd-HHMMSS` under the working folder, NAME the run's name."""
    name = config.run_name or readable_run_name(config)
    return Path("eirnn-runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_into_folder(
    config: TrainConfig,
    out: str | Path | None = None,
    *,
    dataset: NeuralDataset | None = None,
    truth: Any = None,
    callbacks: Sequence[Any] = (),
    sinks: Sequence[Any] = (),
) -> RunResult:
    """A whole run into the folder `out` (default `default_run_folder(config)`), with no tracking
    store: the run folder's files, checkpoints/ and model/. SIGTERM/SIGINT end it with
    TrainingInterrupted after a resumable checkpoint in `out/checkpoints`.

    Examples
    --------
    A two-epoch fit of a small synthetic recording; with its ground truth, the run also scores
    recovery:

    >>> import tempfile
    >>> from eirnn.config import TrainConfig
    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.training_run import train_into_folder
    >>> dataset, truth = make_recording(seed=0, n_e=6, n_i=2, n_trials=16, n_bins=20, n_conditions=2, n_inputs=4)
    >>> config = TrainConfig(max_epochs=2, input_embed_dim=8, attention_heads=2, threads=1, log_figures=False)
    >>> result = train_into_folder(config, tempfile.mkdtemp(), dataset=dataset, truth=truth)  # progress on stderr
    >>> result.fit.total_epochs, (result.folder / "report.md").is_file(), (result.folder / "metrics.json").is_file()
    (2, True, True)
    """
    from eirnn.training.interrupts import raising_on_signals

    out = Path(out) if out else default_run_folder(config)
    out.mkdir(parents=True, exist_ok=True)
    run = TrainingRun(config, dataset, truth, sinks=[*sinks, FolderSink(out)], callbacks=callbacks)
    with raising_on_signals():
        return run.execute(out, out / CHECKPOINT_FOLDER)
