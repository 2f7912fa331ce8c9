"""One MLflow run per training: attach or create the run, log params and tags, train with
per-epoch metrics, write the run folder (weights, outputs, metrics, population, figures,
report.md), log the model and keep the registry's champion alias on the best version.

Internal: the public entry point is `eirnn.train` (eirnn.api); the `eirnn train` command and
the tuning workers call `train_and_log` directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from eirnn.artifacts import write_run_folder
from eirnn.config import TrainConfig, mlproject_default
from eirnn.data.dataset import NO_VALIDATION_TEXT
from eirnn.evaluation import Evaluation, evaluate
from eirnn.metrics import NOISE_CEILING_OF, Metric, to_float
from eirnn.pipeline import Prepared, load_configured_data_and_truth, prepare
from eirnn.tracking.lineage import code_tags, data_name, dataset_sha256, log_datasets, package_version
from eirnn.tracking.logger import EpochMetricLogger, TrackingUnavailableError
from eirnn.tracking.metric_names import FIT_TAGS, final_metric, fit_tag
from eirnn.tracking.registry import ERROR_TAG, tag_version, update_champion
from eirnn.tracking.resume import (
    RESUME_TAG,
    check_same_data,
    resumable_run,
    resume_command,
    resume_point,
    resumed_config,
)
from eirnn.tracking.summary import NOTE_TAG, RunSummary
from eirnn.training import FitResult, TrainingInterrupted, fit
from eirnn.training.interrupts import raising_on_signals

MODEL_ARTIFACT = "model"
SPLIT_ARTIFACT = "split.json"  # trial ids of train, val and test: what no selection step may touch
MAX_TAG_LENGTH = 5000
MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch request
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


def readable_run_name(config: TrainConfig) -> str:
    tau = f"{config.tau:g}"
    return (
        f"tau{tau}-{config.input_embed_type}{config.input_embed_dim}-noise{config.noise_scale:g}"
        f"-lr{config.learning_rate:g}-{config.loss}-seed{config.seed}"
    )


def log_new_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    """Log params the run does not have yet. `mlflow run` logs its parameters itself, in the
    user's spelling ("50" for tau=50.0), and MLflow refuses a changed value for a logged key."""
    existing = client.get_run(run_id).data.params
    # batched: one store transaction per param was a sizeable part of a tuning trial's overhead
    new = [Param(key, mlproject_default(value)) for key, value in params.items() if key not in existing]
    for first in range(0, len(new), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=new[first : first + MAX_PARAMS_PER_BATCH])


def _start_run(config: TrainConfig, parent_run_id: str | None, tags: dict[str, str]) -> str:
    launcher_run = os.environ.get("MLFLOW_RUN_ID")
    if config.resume:
        if launcher_run and launcher_run != config.resume:
            # `mlflow run -P resume=ID` without `--run-id ID` created a fresh run: say where the work went
            MlflowClient().set_tag(launcher_run, "eirnn.continued_in", config.resume)
        return mlflow.start_run(run_id=config.resume).info.run_id
    if launcher_run and parent_run_id is None:
        return mlflow.start_run(run_id=launcher_run).info.run_id
    run_name = config.run_name or readable_run_name(config)
    experiment_id = experiment_id_for(config, parent_run_id)
    return mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, parent_run_id=parent_run_id, tags=tags
    ).info.run_id


def experiment_id_for(config: TrainConfig, parent_run_id: str | None = None) -> str:
    """A child run lives in its parent's experiment (MLflow refuses anything else); otherwise
    MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME or `config.experiment_name`, created if new.
    Passed explicitly rather than through mlflow.set_experiment, which is process-wide state."""
    client = MlflowClient()
    if parent_run_id:
        return client.get_run(parent_run_id).info.experiment_id
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or config.experiment_name
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def fit_summary(result: FitResult) -> dict[str, Any]:
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


def _log_model(model: Any, val_inputs: np.ndarray, folder: Path) -> str:
    """Log the network as an MLflow pyfunc model (no registration): its state dict and
    constructor arguments as artifacts, `RatePredictor` as code; returns its model URI."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from eirnn.tracking.serving import MODEL_CODE, save_network_files

    n_inputs, n_neurons = val_inputs.shape[-1], int(model.recorded_units.numel())
    # -1 on trials and time: the signature accepts any number of trials and bins
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, n_inputs))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, n_neurons))]),
    )
    with _without_mlflow_chatter():
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(MODEL_CODE),
            artifacts=save_network_files(model.cpu(), folder),
            signature=signature,
            input_example=np.asarray(val_inputs[:1, :10], dtype=np.float32),
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


def register_model(
    model_uri: str, run_id: str, name: str, selection_metric: str, client: MlflowClient | None = None
) -> tuple[str, str | None]:
    """Register a logged model as a new version of `name`, tag it with what the champion rule
    compares (selection metric, data hash, score) and its test scores, and apply the rule.
    Returns (version, champion version)."""
    client = client or MlflowClient()
    version = str(mlflow.register_model(model_uri, name).version)
    tag_version(client, name, version, run_id, selection_metric)
    return version, update_champion(name, client, version)


def _torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


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
    on_prepared: Callable[[Prepared], None] | None = None,
) -> TrainingOutcome:
    """Train under one MLflow run. Any exception ends the run FAILED with the message in the
    `eirnn.error` tag, then propagates (the CLI exits non-zero). SIGTERM/SIGINT end it KILLED
    after a resumable checkpoint, with the command that continues it in the `eirnn.resume` tag.
    `on_prepared` sees the loaded, split data and the built model before training starts (the
    CLI prints its data summary).

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
                outcome = _train_in_run(
                    config,
                    client,
                    run_id,
                    Path(scratch),
                    (dataset, truth),
                    callbacks,
                    register,
                    tags or {},
                    on_prepared,
                )
            stopped = outcome.fit.stop_reason == "callback"
            mlflow.end_run(status_when_stopped_by_callback if stopped else "FINISHED")
            return outcome
        except BaseException as error:
            message = f"{type(error).__name__}: {error}"
            client.set_tag(run_id, ERROR_TAG, message[:MAX_TAG_LENGTH])
            client.set_tag(run_id, "eirnn.traceback", traceback.format_exc()[-MAX_TAG_LENGTH:])
            interrupted = isinstance(error, (KeyboardInterrupt, TrainingInterrupted))
            if interrupted and getattr(error, "checkpoint_epoch", None) is not None:
                client.set_tag(run_id, RESUME_TAG, resume_command(run_id))
            mlflow.end_run("KILLED" if interrupted else "FAILED")
            raise


def _prepare_and_log_data(config: TrainConfig, client: MlflowClient, run_id: str, data: tuple[Any, Any]) -> Prepared:
    """Load, split and build; log the data facts as `data.*` params and the two splits as MLflow
    dataset inputs. A bin size read from the file replaces bin_ms=0 in the params."""
    prepared = prepare(config, *data)
    if not prepared.held_out:
        logging.getLogger("eirnn").warning("validation: %s", NO_VALIDATION_TEXT)
    facts = data_facts(prepared)
    client.set_tag(run_id, "eirnn.data", data_name(config.data, prepared.dataset))
    log_new_params(client, run_id, {"bin_ms": prepared.dataset.bin_ms})
    log_new_params(client, run_id, {f"data.{key.removeprefix('data_')}": value for key, value in facts.items()})
    splits = (
        {"training": prepared.train, "validation": prepared.val} if prepared.held_out else {"training": prepared.train}
    )
    log_datasets(client, run_id, config.data, prepared.dataset, splits)
    return prepared


def data_facts(prepared: Prepared) -> dict[str, Any]:
    return {
        **prepared.dataset.facts(),
        "data_sha256": dataset_sha256(prepared.dataset),
        "n_train_trials": prepared.train.n_trials,
        "n_val_trials": prepared.val.n_trials,
        "n_test_trials": prepared.test.n_trials if prepared.test is not None else 0,
        "validation": "held-out trials" if prepared.held_out else f"training trials: {NO_VALIDATION_TEXT}",
    }


def _train_in_run(
    config: TrainConfig,
    client: MlflowClient,
    run_id: str,
    workdir: Path,
    data: tuple[Any, Any],
    callbacks: Sequence[Any],
    register: bool,
    tags: dict[str, str],
    on_prepared: Callable[[Prepared], None] | None,
) -> TrainingOutcome:
    resume_from, logged_steps = None, {}
    if config.resume:
        resume_from, logged_steps = resume_point(client, run_id, workdir)
    # bin_ms=0 means "from the file": logged once the data says what the bin is
    log_new_params(client, run_id, {k: v for k, v in config.to_dict().items() if k != "bin_ms" or v})
    client.set_tag(run_id, "mlflow.runName", config.run_name or readable_run_name(config))
    for key, value in {**tags, **code_tags()}.items():
        client.set_tag(run_id, key, value)

    prepared = _prepare_and_log_data(config, client, run_id, data)
    if on_prepared is not None:
        on_prepared(prepared)
    result = _fit_logged(
        prepared,
        config,
        EpochMetricLogger(run_id, client, logged_steps=logged_steps),
        callbacks,
        workdir / "checkpoints",
        resume_from,
    )

    model = prepared.model
    model.load_state_dict(result.best_state)
    evaluation = evaluate(model, prepared.val, seed=config.seed, ceiling_seed=config.data_split_seed)
    extra_metrics, recovery = held_out_and_recovery_scores(model, prepared, config)
    run_folder = write_run_folder(
        workdir / "run",
        model=model,
        evaluation=evaluation,
        val_inputs=prepared.val.inputs,
        history=result.history,
        fit_summary=fit_summary(result),
        config=config.to_dict(),
        data_facts=data_facts(prepared),
        input_names=prepared.dataset.input_names,
        behavior_names=prepared.dataset.behavior_names,
        extra_metrics=extra_metrics,
        recovery=recovery,
    )
    client.log_dict(run_id, prepared.trial_ids(), SPLIT_ARTIFACT)
    _write_figures_and_report(run_folder, config, run_id)
    client.log_artifacts(run_id, str(run_folder))
    client.log_artifacts(run_id, str(workdir / "checkpoints"), "checkpoints")
    values = {
        **evaluation.scalar_metrics(),
        **{name: to_float(value) for name, value in extra_metrics.items()},
        **fit_summary(result),
    }
    final = {key: float(value) for key, value in values.items() if key not in ("stop_reason", "stop_detail")}
    # the fit facts as they are (integers stay integers in their tags)
    _log_final_metrics(client, run_id, values)

    model_uri = _log_model(model, prepared.val.inputs, workdir / "model")
    version = champion = None
    if register:
        version, champion = register_model(
            model_uri, run_id, config.registered_model_name, config.selection_metric, client
        )
    summary = _summarize(client, run_id, config, prepared, result, evaluation, version, champion)
    client.set_tag(run_id, NOTE_TAG, summary.note_markdown())
    return TrainingOutcome(run_id, result, evaluation, model_uri, version, champion, config, prepared, final, summary)


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
    )


def parent_of(run: Any) -> str | None:
    return run.data.tags.get("mlflow.parentRunId")


def held_out_and_recovery_scores(model: Any, prepared: Any, config: TrainConfig) -> tuple[dict[str, Metric], Any]:
    """The test split's scores (`test_*`, when the run holds one out; NotAvailable with its reason
    where the test trials cannot support one) and, for data with a known circuit, what the fit
    recovers of it (`gt_*`, `eirnn.recovery`), with the Recovery itself."""
    scores: dict[str, Metric] = {}
    if prepared.test is not None:
        test = evaluate(model, prepared.test, seed=config.seed, ceiling_seed=config.data_split_seed)
        scores.update({f"test_{name}": value for name, value in test.metric_values().items()})
    recovery = None
    if prepared.truth is not None:
        from eirnn.data.perturbations import trial_types
        from eirnn.recovery import recover

        trained = set(trial_types(prepared.train).tolist())
        recovery = recover(model, prepared.truth, prepared.val, seed=config.data_split_seed, trained_types=trained)
        scores.update(recovery.metrics)
    return scores, recovery


def _fit_logged(
    prepared: Prepared,
    config: TrainConfig,
    logger: EpochMetricLogger,
    callbacks: Sequence[Any],
    checkpoint_dir: Path,
    resume_from: Path | None,
) -> FitResult:
    """`fit` with per-epoch logging; a resumed run first gets the epochs of its checkpoint that
    it does not have yet."""
    try:
        if resume_from is not None:
            logger.log_history(torch.load(resume_from, weights_only=True)["history"])
        result = fit(
            prepared.model,
            prepared.train,
            prepared.val,
            config,
            [logger, *callbacks],
            checkpoint_dir=checkpoint_dir,
            resume_from=resume_from,
        )
    except BaseException:
        # what training logged reaches the run even when training failed (bounded: the run must end)
        with contextlib.suppress(TrackingUnavailableError):
            logger.close(timeout_s=LOGGER_DRAIN_ON_ERROR_S)
        raise
    logger.close()
    return result


def _write_figures_and_report(run_folder: Path, config: TrainConfig, run_id: str) -> None:
    from eirnn.artifacts import RunArtifacts
    from eirnn.figures import FigureSet, write_figures
    from eirnn.report import write_report

    artifacts = RunArtifacts.load(run_folder)
    figures = (
        write_figures(artifacts, run_folder / "figures")
        if config.log_figures
        else FigureSet.empty("figures are off for this run (log_figures=false)")
    )
    write_report(artifacts, figures, run_folder / "report.md", run_id=run_id, model_name=config.registered_model_name)
