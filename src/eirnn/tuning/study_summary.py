"""The summary of a finished study on its parent run: counts, best trial, trials table,
Optuna's plots, and the best model registered under the champion rule."""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from eirnn.config import TrainConfig, mlproject_default
from eirnn.logged_names import BEST_RUN_ID_TAG, BEST_TRIAL_TAG, NOTE_TAG, STUDY_NOTE_TAG, final_metric, study_metric
from eirnn.tracking.model_registry import register_model
from eirnn.tracking.run_summary import run_url
from eirnn.tuning.settings import ARTIFACT_DIR, MODEL_URI_ATTR, OBJECTIVE_NAME, RUN_ATTR, StudyOutcome

# the scores of the best trial shown on the parent run, on validation and on the test trials
BEST_TRIAL_SCORES = ("cond_psth_corr", "psth_corr", "bits_per_spike", "noise_ceiling", "cond_noise_ceiling")


def _plot_skip_reason(plot: str, completed: list[FrozenTrial]) -> str | None:
    if not completed:
        return "no completed trial"
    if plot == "param_importances":
        varying = [name for name in completed[0].params if len({str(t.params.get(name)) for t in completed}) > 1]
        if len(completed) < 2 or not varying:
            return "needs at least 2 completed trials whose parameters differ"
    return None


def _write_plots(study: optuna.Study, completed: list[FrozenTrial], folder: Path) -> list[str]:
    """Optuna's plots as PNG files; returns a note for each plot left out."""
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    plots = {
        "optimization_history": optuna_plots.plot_optimization_history,
        "param_importances": optuna_plots.plot_param_importances,
        "parallel_coordinate": optuna_plots.plot_parallel_coordinate,
    }
    notes = []
    for name, plot in plots.items():
        reason = _plot_skip_reason(name, completed)
        if reason is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    axes = plot(study)
                if name == "parallel_coordinate":
                    _spread_axis_names(axes, len(completed[0].params))
                axes.figure.savefig(folder / f"{name}.png", dpi=120, bbox_inches="tight")
                plt.close(axes.figure)
            except (ValueError, RuntimeError) as error:
                reason = str(error)
        if reason is not None:
            notes.append(f"{name}: skipped, {reason}")
    return notes


def _spread_axis_names(axes: Any, n_params: int) -> None:
    """Optuna draws one axis per parameter at its default figure width: the names overlap."""
    import matplotlib.pyplot as plt

    axes.figure.set_size_inches(max(8.0, 1.8 * (n_params + 1)), 5.5)
    plt.setp(axes.get_xticklabels(), rotation=25, ha="right", rotation_mode="anchor")
    axes.set_title(f"Parallel coordinates: {OBJECTIVE_NAME} by searched setting")


def _register_best(client: MlflowClient, best: FrozenTrial, config: TrainConfig) -> tuple[str | None, str | None]:
    """Register the best trial's model (once: a resumed study may find the same best trial again)."""
    run_id, model_uri = best.user_attrs.get(RUN_ATTR), best.user_attrs.get(MODEL_URI_ATTR)
    if not run_id or not model_uri:
        return None, None
    return register_model(model_uri, run_id, config.registered_model_name, config.selection_metric, client)


def best_trial_scores(client: MlflowClient, best: FrozenTrial) -> tuple[dict[str, float], dict[str, float]]:
    """(validation, test) scores of the best trial's run, by metric name without prefix. The
    validation scores are inflated by selecting the best of many trials on them; the test trials
    were seen by no trial's training, early stopping or pruning."""
    run_id = best.user_attrs.get(RUN_ATTR)
    metrics = client.get_run(run_id).data.metrics if run_id else {}
    validation = {name: metrics[final_metric(name)] for name in BEST_TRIAL_SCORES if final_metric(name) in metrics}
    test = {
        name: metrics[final_metric(f"test_{name}")]
        for name in BEST_TRIAL_SCORES
        if final_metric(f"test_{name}") in metrics
    }
    return validation, test


def _scores_note(config: TrainConfig, validation: dict[str, float], test: dict[str, float]) -> str:
    lines = [
        f"# Best trial: validation vs held-out test (selected on validation {config.selection_metric})",
        "",
        "| score | validation (used for selection) | test (never seen by selection) |",
        "| --- | --- | --- |",
    ]
    for name, value in validation.items():
        tested = f"{test[name]:.4f}" if name in test else "no test split (test_fraction=0)"
        lines.append(f"| {name} | {value:.4f} | {tested} |")
    return "\n".join(lines) + "\n"


def summarize_study(client: MlflowClient, study: optuna.Study, parent_run_id: str, config: TrainConfig) -> StudyOutcome:
    """Write the whole study's results on the parent run and register its best model."""
    trials = study.get_trials(deepcopy=False)
    completed = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    metrics = {
        study_metric(f"trials_{state.name.lower()}"): sum(trial.state == state for trial in trials)
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    with tempfile.TemporaryDirectory(prefix="eirnn-tune-") as scratch:
        folder = Path(scratch)
        study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
        notes = _write_plots(study, completed, folder)
        if notes:
            (folder / "notes.txt").write_text("\n".join(notes) + "\n")
            print("\n".join(notes))
        client.log_artifacts(parent_run_id, str(folder), ARTIFACT_DIR)
    outcome = StudyOutcome(study.study_name, parent_run_id)
    now = int(time.time() * 1000)
    if not completed:
        client.log_batch(parent_run_id, metrics=[Metric(key, value, now, 0) for key, value in metrics.items()])
        client.set_tag(parent_run_id, STUDY_NOTE_TAG, "no trial completed: nothing to register")
        return outcome
    best = study.best_trial
    metrics[study_metric("best_value")] = best.value
    validation, test = best_trial_scores(client, best)
    metrics.update({study_metric(f"best_trial_val_{name}"): value for name, value in validation.items()})
    metrics.update({study_metric(f"best_trial_test_{name}"): value for name, value in test.items()})
    client.log_text(parent_run_id, _scores_note(config, validation, test), f"{ARTIFACT_DIR}/best_trial_scores.md")
    client.log_batch(
        parent_run_id,
        metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        params=[Param(f"best.{name}", mlproject_default(value)) for name, value in best.params.items()],
        tags=[
            RunTag(BEST_TRIAL_TAG, str(best.number)),
            RunTag(BEST_RUN_ID_TAG, best.user_attrs.get(RUN_ATTR, "")),
        ],
    )
    version, champion = _register_best(client, best, config)
    client.set_tag(parent_run_id, NOTE_TAG, _study_note(client, study, best, parent_run_id, version, champion))
    return StudyOutcome(
        study.study_name, parent_run_id, best.number, best.value, dict(best.params), version, champion, validation, test
    )


def _study_note(
    client: MlflowClient,
    study: optuna.Study,
    best: FrozenTrial,
    parent_run_id: str,
    version: str | None,
    champion: str | None,
) -> str:
    """The parent run's description in the MLflow UI: the best trial and the registry outcome."""
    counts = {state: sum(t.state == state for t in study.trials) for state in TrialState}
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    registry = "not registered"
    if version:
        registry = f"version {version}, " + (
            "now the champion" if champion == version else f"champion stays version {champion}"
        )
    settings = ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}" for name, value in best.params.items()
    )
    best_run = best.user_attrs.get(RUN_ATTR, "")
    return "\n".join(
        [
            f"**best trial {best.number}: {OBJECTIVE_NAME} {best.value:.3f}** ({settings})",
            "",
            f"- Trials: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
            f"{counts[TrialState.FAIL]} failed",
            f"- Best run: [trial-{best.number}]({run_url(experiment_id, best_run)})",
            f"- Registry: {registry}",
            "- Plots: artifacts `tuning/` (optimization history, parameter importances, parallel coordinates)",
        ]
    )
