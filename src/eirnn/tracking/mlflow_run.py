"""One MLflow run per training: attach or create the run, and follow a `TrainingRun` (the
science, `eirnn.training_run`) as its `MlflowSink`: params and tags, per-epoch metrics, the run
folder, the model, and the registry's champion alias on the best version.

Internal: the public entry point is `eirnn.train` (eirnn.api); the `eirnn train` command and
the tuning workers call `train_and_log` directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient

from eirnn.config import TrainConfig
from eirnn.evaluation import Evaluation, trial_spikes
from eirnn.logged_names import (
    CONTINUED_IN_TAG,
    DATA_TAG,
    FIT_TAGS,
    NOTE_TAG,
    RESUME_TAG,
    RUN_NAME_TAG,
    final_metric,
    fit_tag,
)
from eirnn.metrics import NOISE_CEILING_OF
from eirnn.pipeline import Prepared, dataset_sha256, load_configured_data_and_truth
from eirnn.tracking.lineage import code_tags, data_name, log_datasets, package_version
from eirnn.tracking.logger import EpochMetricLogger, TrackingUnavailableError
from eirnn.tracking.model_registry import register_model, standing, version_of_run
from eirnn.tracking.resume import (
    check_same_data,
    resumable_run,
    resume_command,
    resume_point,
    resumed_config,
)
from eirnn.tracking.run_records import experiment_id_for, log_new_params, record_error
from eirnn.tracking.run_summary import RunSummary
from eirnn.tracking.serving import predict_input
from eirnn.training import FitResult, TrainingInterrupted
from eirnn.training.interrupts import raising_on_signals
from eirnn.training_run import CHECKPOINT_FOLDER, RunResult, TrainingRun, readable_run_name

MODEL_ARTIFACT = "model"
LOGGER_DRAIN_ON_ERROR_S = 60.0


@dataclass
class TrainingOutcome:
    """What one tracked training produced; `eirnn.api.TrainingResult` is its public face."""

    run_id: str
    fit: FitResult
    evaluation: Evaluation
    model_uri: str
    model_version: str | None
    champion_version: str | None
    config: TrainConfig  # as trained (a resumed run's own settings)
    prepared: Prepared  # data, split, and the model with its best weights
    final_metrics: dict[str, float]  # final scalar metrics by core name (logged as final/NAME, counts as tags)
    summary: RunSummary | None = None
    result: RunResult | None = None  # the core's result (run folder, extra scores, recovery)


def _start_run(config: TrainConfig, parent_run_id: str | None, tags: dict[str, str]) -> str:
    launcher_run = os.environ.get("MLFLOW_RUN_ID")
    if config.resume:
        if launcher_run and launcher_run != config.resume:
            # `mlflow run -P resume=ID` without `--run-id ID` created a fresh run: say where the work went
            MlflowClient().set_tag(launcher_run, CONTINUED_IN_TAG, config.resume)
        return mlflow.start_run(run_id=config.resume).info.run_id
    if launcher_run and parent_run_id is None:
        return mlflow.start_run(run_id=launcher_run).info.run_id
    run_name = config.run_name or readable_run_name(config)
    experiment_id = experiment_id_for(config, parent_run_id)
    return mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, parent_run_id=parent_run_id, tags=tags
    ).info.run_id


def _log_model(model: Any, val_inputs: np.ndarray, folder: Path) -> str:
    """Log the network as an MLflow pyfunc model (no registration): its state dict and
    constructor arguments as artifacts, `RatePredictor` as code; returns its model URI."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from eirnn.tracking.serving import MODEL_CODE, perturbation_params_schema, pyfunc_artifacts

    n_inputs, n_neurons = val_inputs.shape[-1], int(model.recorded_units.numel())
    # -1 on trials and time: the signature accepts any number of trials and bins
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, n_inputs))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, n_neurons))]),
        params=perturbation_params_schema(),
    )
    with _without_mlflow_chatter():
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(MODEL_CODE),
            artifacts=pyfunc_artifacts(model.cpu(), folder),
            signature=signature,
            input_example=np.asarray(val_inputs[:1, : 10 + model.hparams.get("forward_bins", 0)], dtype=np.float32),
            # listing requirements skips MLflow's inference, which imports the model in a subprocess
            pip_requirements=[
                f"eirnn=={package_version()}",
                f"torch=={_torch_version()}",
                f"mlflow=={mlflow.__version__}",
            ],
        )
    return info.model_uri


@contextlib.contextmanager
def _without_mlflow_chatter() -> Iterator[None]:
    """MLflow checks the input example by loading the logged model back, and says so with an INFO
    line and two download progress bars: noise on every run's console, twenty times in a study."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    progress_bar = MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name
    logger = logging.getLogger("mlflow.pyfunc")
    level, bar = logger.level, os.environ.get(progress_bar)
    logger.setLevel(logging.WARNING)
    os.environ[progress_bar] = "false"
    try:
        yield
    finally:
        logger.setLevel(level)
        if bar is None:
            os.environ.pop(progress_bar, None)
        else:
            os.environ[progress_bar] = bar


def _torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


class MlflowSink:
    """MLflow tracking as a sink of a `TrainingRun`: params and tags when it starts, the data's
    facts and dataset inputs once prepared, per-epoch metrics and checkpoints through its
    `EpochMetricLogger`, then the run folder, the checkpoints, the final metrics, the model, its
    registration and the run's description."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        *,
        register: bool,
        tags: dict[str, str],
        logged_steps: dict[str, int],
        resume_from: Path | None,
    ) -> None:
        self.client, self.run_id, self.register, self.tags = client, run_id, register, tags
        self.logged_steps, self.resume_from = logged_steps, resume_from
        self.logger: EpochMetricLogger | None = None
        self.outcome: TrainingOutcome | None = None
        self.data_path = ""

    def on_start(self, config: TrainConfig) -> None:
        client, run_id, self.data_path = self.client, self.run_id, config.data
        # bin_ms=0 means "from the file": logged once the data says what the bin is
        log_new_params(client, run_id, {k: v for k, v in config.to_dict().items() if k != "bin_ms" or v})
        client.set_tag(run_id, RUN_NAME_TAG, config.run_name or readable_run_name(config))
        for key, value in {**self.tags, **code_tags()}.items():
            client.set_tag(run_id, key, value)

    def on_prepared(self, prepared: Prepared, facts: dict[str, Any]) -> None:
        """The data facts as `data.*` params (a bin size read from the file replaces bin_ms=0)
        and the two splits as MLflow dataset inputs."""
        client, run_id, data = self.client, self.run_id, self.data_path
        client.set_tag(run_id, DATA_TAG, data_name(data, prepared.dataset))
        log_new_params(client, run_id, {"bin_ms": prepared.dataset.bin_ms})
        log_new_params(client, run_id, {f"data.{key.removeprefix('data_')}": value for key, value in facts.items()})
        splits = {"training": prepared.train, **({"validation": prepared.val} if prepared.held_out else {})}
        log_datasets(client, run_id, data, prepared.dataset, splits)

    def epoch_callbacks(self) -> list[EpochMetricLogger]:
        """The epoch logger; a resumed run first gets the epochs of its checkpoint it lacks."""
        self.logger = EpochMetricLogger(self.run_id, self.client, logged_steps=self.logged_steps)
        if self.resume_from is not None:
            self.logger.log_history(torch.load(self.resume_from, weights_only=True)["history"])
        return [self.logger]

    def on_fit_end(self, failed: bool) -> None:
        if self.logger is None:
            return
        if not failed:
            self.logger.close()
            return
        # what training logged reaches the run even when training failed (bounded: the run must end)
        with contextlib.suppress(TrackingUnavailableError):
            self.logger.close(timeout_s=LOGGER_DRAIN_ON_ERROR_S)

    def on_finished(self, result: RunResult) -> None:
        client, run_id, config, model = self.client, self.run_id, result.config, result.prepared.model
        client.log_artifacts(run_id, str(result.folder))
        client.log_artifacts(run_id, str(result.checkpoint_dir), CHECKPOINT_FOLDER)
        # the fit facts as they are (integers stay integers in their tags)
        _log_final_metrics(client, run_id, result.final_values)
        val = result.prepared.val
        serving_input = predict_input(model, val.inputs, trial_spikes(model, val))
        # a run stopped after it registered its model has it logged already: resumed, it keeps that one
        earlier = (
            version_of_run(client, config.registered_model_name, run_id)
            if self.register and self.resume_from is not None
            else None
        )
        model_uri = (
            earlier.source if earlier else _log_model(model, serving_input, result.folder.parent / MODEL_ARTIFACT)
        )
        version = champion = None
        if self.register:
            version, champion = register_model(
                model_uri, run_id, config.registered_model_name, config.selection_metric, client
            )
        summary = _summarize(client, run_id, config, result.prepared, result.fit, result.evaluation, version, champion)
        client.set_tag(run_id, NOTE_TAG, summary.note_markdown())
        self.outcome = TrainingOutcome(
            run_id,
            result.fit,
            result.evaluation,
            model_uri,
            version,
            champion,
            config,
            result.prepared,
            result.final_metrics,
            summary,
            result,
        )


def train_and_log(
    config: TrainConfig,
    *,
    dataset: Any = None,
    truth: Any = None,
    parent_run_id: str | None = None,
    callbacks: Sequence[Any] = (),
    register: bool = True,
    tags: dict[str, str] | None = None,
    status_when_stopped_by_callback: str = "FINISHED",
    sinks: Sequence[Any] = (),
) -> TrainingOutcome:
    """Train under one MLflow run: a `TrainingRun` with an `MlflowSink` (before `sinks`, the
    caller's own: the CLI prints its data summary from one). Any exception ends the run FAILED
    with the message in the `eirnn.error` tag, then propagates (the CLI exits non-zero).
    SIGTERM/SIGINT end it KILLED after a resumable checkpoint, with the command that continues
    it in the `eirnn.resume` tag.

    With `config.resume`, the run's status, settings and data hash are checked before it is
    reopened. `truth`: the circuit that generated `dataset`, when known (the built-in recording
    brings its own), for the gt_* metrics."""
    client = MlflowClient()
    if config.resume:
        run = resumable_run(client, config.resume)
        config = resumed_config(config, run)
        if dataset is None:  # the built-in recording brings its circuit back too, for the gt_* metrics
            dataset, truth = load_configured_data_and_truth(config)
        check_same_data(run, dataset, dataset_sha256(dataset))
    with raising_on_signals():
        run_id = _start_run(config, parent_run_id, dict(tags or {}))
        try:
            with tempfile.TemporaryDirectory(prefix="eirnn-run-") as scratch:
                workdir = Path(scratch)
                resume_from, logged_steps = None, {}
                if config.resume:
                    resume_from, logged_steps = resume_point(client, run_id, workdir)
                sink = MlflowSink(
                    client,
                    run_id,
                    register=register,
                    tags=tags or {},
                    logged_steps=logged_steps,
                    resume_from=resume_from,
                )
                run = TrainingRun(config, dataset, truth, [sink, *sinks], callbacks, resume_from, run_id)
                run.execute(workdir / "run", workdir / CHECKPOINT_FOLDER)
            outcome = sink.outcome
            stopped = outcome.fit.stop_reason == "callback"
            mlflow.end_run(status_when_stopped_by_callback if stopped else "FINISHED")
            return outcome
        except BaseException as error:
            interrupted = isinstance(error, (KeyboardInterrupt, TrainingInterrupted))
            try:
                try:
                    record_error(client, run_id, error)
                    if interrupted and getattr(error, "checkpoint_epoch", None) is not None:
                        client.set_tag(run_id, RESUME_TAG, resume_command(run_id))
                finally:  # off this process's stack of active runs even when the store does not answer
                    mlflow.end_run("KILLED" if interrupted else "FAILED")
            except Exception as unanswered:  # the error that ended the run is what propagates
                print(f"eirnn: {_unreachable_at_the_end(run_id, unanswered)}", file=sys.stderr, flush=True)
            raise


def _unreachable_at_the_end(run_id: str, unanswered: Exception) -> str:
    """What to do when the store did not answer as a run ended (an outage after the fit meets the
    uploads of its results, which, unlike the epochs' metrics and checkpoints, are not queued)."""
    first_line = str(unanswered).strip().splitlines()[0] if str(unanswered).strip() else type(unanswered).__name__
    return (
        f"the tracking server did not answer as run {run_id} ended ({first_line}); the run stays RUNNING "
        f"there. Once the server answers, `{resume_command(run_id)}` continues it from its last checkpoint "
        "(a fit that had finished is only evaluated and its results uploaded)"
    )


def _log_final_metrics(client: MlflowClient, run_id: str, values: dict[str, Any]) -> None:
    """Scores once each (step 0) under `final/`; the fit facts (epochs, flags, seconds, stop
    reason) as `eirnn.fit.*` tags (see metric_names)."""
    now = mlflow.utils.time.get_current_time_millis()
    metrics = [
        mlflow.entities.Metric(final_metric(key), float(value), now, 0)
        for key, value in values.items()
        if key not in FIT_TAGS
    ]
    tags = [mlflow.entities.RunTag(fit_tag(key), _tag_text(values[key])) for key in FIT_TAGS if key in values]
    client.log_batch(run_id, metrics=metrics, tags=tags)


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _summarize(
    client: MlflowClient,
    run_id: str,
    config: TrainConfig,
    prepared: Prepared,
    result: FitResult,
    evaluation: Evaluation,
    version: str | None,
    champion: str | None,
) -> RunSummary:
    run = client.get_run(run_id)
    scalars = evaluation.scalar_metrics()
    dataset = prepared.dataset
    experiment_name = client.get_experiment(run.info.experiment_id).name
    hint = (
        f"logged to experiment {experiment_name!r}, not {config.experiment_name!r}: `mlflow run` picks its "
        f"experiment before eirnn starts; pass `--experiment-name {config.experiment_name}` to `mlflow run`"
        # MLflow's Default experiment has id 0: where `mlflow run` puts runs unless told otherwise
        if run.info.experiment_id == "0" and experiment_name != config.experiment_name and not parent_of(run)
        else ""
    )
    return RunSummary(
        run_id=run_id,
        run_name=run.info.run_name,
        experiment_id=run.info.experiment_id,
        experiment_name=experiment_name,
        score_name=config.selection_metric,
        score=result.best_selection_score,
        ceiling=scalars.get(NOISE_CEILING_OF[config.selection_metric])
        if config.selection_metric in NOISE_CEILING_OF
        else None,
        pooled_score=result.best_val_psth_corr,
        best_epoch=result.best_epoch,
        total_epochs=result.total_epochs,
        max_epochs=config.max_epochs,
        stop_reason=result.stop_reason,
        data_name=data_name(config.data, dataset),
        data_sha256=dataset_sha256(dataset),
        data_shape=f"{dataset.n_neurons} neurons, {dataset.n_trials} trials, {dataset.n_bins} bins of "
        f"{dataset.bin_ms:g} ms",
        model_name=config.registered_model_name if version else None,
        model_version=version,
        champion_version=champion,
        experiment_hint=hint,
        standing=standing(client, config.registered_model_name, version) if version else None,
    )


def parent_of(run: Any) -> str | None:
    return run.data.tags.get("mlflow.parentRunId")
