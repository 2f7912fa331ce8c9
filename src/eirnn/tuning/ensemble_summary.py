"""The summary of a finished ensemble on its parent run: the fits' models and answers read back
from their child runs, what they agree on (metrics `ensemble/...`, report.md and report.html
with "What the fits agree on"), the calibration on data with a ground truth, and the ensemble
registered as one model version."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec
from optuna.trial import FrozenTrial

from eirnn.agreement import AnswerAgreement, aggregate
from eirnn.circuit_answers import CircuitAnswers, load_answers
from eirnn.config import TrainConfig
from eirnn.ensemble_report import ensemble_scores, ground_truth_calibration, null_answers, write_ensemble_report
from eirnn.logged_names import ENSEMBLE_VERSION_TAG, ensemble_metric
from eirnn.model.network_files import find_network_files, load_network
from eirnn.pipeline import split
from eirnn.tuning.ensemble_fits import ANSWERS_DIR, ANSWERS_FILE, FIT_ATTR, NULL_ANSWERS_FILE
from eirnn.tuning.settings import MODEL_URI_ATTR, RUN_ATTR

CALIBRATION_PREFIX = "gt_"


@dataclass(eq=False)
class EnsembleResult:
    """What `eirnn.ensemble` returns. `scores`: the parent's ensemble/* metrics by bare name;
    `calibration`: against the true network (built-in recording only, else None)."""

    parent_run_id: str
    fit_run_ids: list[str]
    fit_scores: list[float]
    models: list[Any]
    answers: list[CircuitAnswers]
    agreement: dict[str, AnswerAgreement]
    scores: dict[str, float]
    calibration: dict[str, float] | None
    model_uri: str | None = None
    model_version: str | None = None


def _fit_model(trial: FrozenTrial) -> Any:
    folder = mlflow.artifacts.download_artifacts(artifact_uri=trial.user_attrs[MODEL_URI_ATTR])
    return load_network(*find_network_files(folder))


def _fit_answers(trial: FrozenTrial, file: str = ANSWERS_FILE) -> CircuitAnswers:
    path = mlflow.artifacts.download_artifacts(run_id=trial.user_attrs[RUN_ATTR], artifact_path=f"{ANSWERS_DIR}/{file}")
    return load_answers(path)


def _fit_null_answers(client: MlflowClient, trial: FrozenTrial, model: Any, val: Any, seed: int) -> CircuitAnswers:
    """The null's answers its worker logged; asked here for a fit whose worker had no ground truth
    (its data loaded where the truth file beside it was missing)."""
    logged = {item.path for item in client.list_artifacts(trial.user_attrs[RUN_ATTR], ANSWERS_DIR)}
    if f"{ANSWERS_DIR}/{NULL_ANSWERS_FILE}" in logged:
        return _fit_answers(trial, NULL_ANSWERS_FILE)
    return null_answers(model, val, seed, trial.user_attrs[FIT_ATTR]["fit_index"])


def summarize_ensemble(
    client: MlflowClient,
    trials: list[FrozenTrial],
    parent_run_id: str,
    config: TrainConfig,
    dataset: Any,
    true: CircuitAnswers | None,
    n_fits_asked: int,
) -> EnsembleResult:
    """Aggregate the completed fits (`trials`, one per fit index; a fit that failed is left out
    and counted in `n_fits_failed`) and log the summary on the parent; `true`: the true
    network's answers (`eirnn.ensemble_report.true_answers`) on data with a ground truth."""
    if not trials:
        raise RuntimeError(f"ensemble {parent_run_id}: no fit completed, nothing to aggregate")
    models = [_fit_model(trial) for trial in trials]
    answers = [_fit_answers(trial) for trial in trials]
    fit_scores = [float(trial.value) for trial in trials]
    agreement = aggregate(answers)
    _, val = split(dataset, config)
    scores = {**ensemble_scores(models, val, fit_scores, agreement), "n_fits_failed": float(n_fits_asked - len(trials))}
    calibration = None
    if true is not None:
        nulls = [_fit_null_answers(client, trial, model, val, config.seed) for trial, model in zip(trials, models)]
        calibration = ground_truth_calibration(agreement, true, nulls)
    logged = {ensemble_metric(name): value for name, value in scores.items()}
    logged.update({ensemble_metric(CALIBRATION_PREFIX + name): value for name, value in (calibration or {}).items()})
    client.log_batch(
        parent_run_id, metrics=[Metric(name, value, int(time.time() * 1000), 0) for name, value in logged.items()]
    )
    model_uri, version = log_ensemble_model(client, models, parent_run_id, val, config)
    run_ids = [trial.user_attrs[RUN_ATTR] for trial in trials]
    loading = (
        f"`eirnn.load_model({config.registered_model_name!r}, version={version})` returns a `NetworkEnsemble`: "
        "`.predict(inputs)` gives the mean rates (Hz) and their spread across fits; "
        f"`mlflow.pyfunc.load_model('{model_uri}').predict(inputs)` gives them as `mean_rates_hz`, `spread_hz`."
    )
    with tempfile.TemporaryDirectory(prefix="eirnn-ensemble-") as scratch:
        fits = [
            (trial.user_attrs[FIT_ATTR]["fit_index"], run, score)
            for trial, run, score in zip(trials, run_ids, fit_scores)
        ]
        write_ensemble_report(Path(scratch), scores, agreement, answers, calibration, parent_run_id, fits, loading)
        write_run_description_files(Path(scratch), config, dataset)
        client.log_artifacts(parent_run_id, scratch)
    print(
        f"ensemble: {int(scores['n_agreed'])} of {int(scores['n_answers'])} answers agreed by {len(trials)} fits "
        f"(coverage {scores['coverage']:.2f}); ensemble-mean cond_psth_corr {scores['mean_cond_psth_corr']:.3f}",
        flush=True,
    )
    print(f"ensemble registered as {config.registered_model_name} version {version}", flush=True)
    return EnsembleResult(
        parent_run_id, run_ids, fit_scores, models, answers, agreement, scores, calibration, model_uri, version
    )


def write_run_description_files(folder: Path, config: TrainConfig, dataset: Any) -> None:
    """config.json and data.json, which `eirnn.load_model` attaches to what it loads."""
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    (folder / "data.json").write_text(json.dumps(dataset.facts(), indent=2, default=str))


def log_ensemble_model(
    client: MlflowClient, models: list[Any], parent_run_id: str, val: Any, config: TrainConfig
) -> tuple[str, str]:
    """Log the fits as one pyfunc model on the parent (predict: mean rates and their spread) and
    register it as a version of `registered_model_name`, tagged as an ensemble; the champion
    alias is left to single fits, whose scores the champion rule compares."""
    from eirnn.tracking.serving import ENSEMBLE_MODEL_CODE, save_ensemble_files

    n_inputs = val.inputs.shape[-1]
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, n_inputs))]))
    with tempfile.TemporaryDirectory(prefix="eirnn-ensemble-model-") as scratch, mlflow.start_run(run_id=parent_run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENSEMBLE_MODEL_CODE),
            artifacts=save_ensemble_files([model.cpu() for model in models], scratch),
            signature=signature,
            pip_requirements=[f"mlflow=={mlflow.__version__}", "torch", "eirnn"],
        )
    version = str(mlflow.register_model(info.model_uri, config.registered_model_name).version)
    client.set_model_version_tag(config.registered_model_name, version, ENSEMBLE_VERSION_TAG, str(len(models)))
    return info.model_uri, version
