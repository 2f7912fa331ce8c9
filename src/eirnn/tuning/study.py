"""Optuna studies whose trials are nested MLflow runs.

One invocation of `eirnn tune` (or `run_study`) is one parent MLflow run, named after the study.
Each trial trains through `train_and_log` as a child run of that parent, reports its validation
PSTH correlation every epoch to the pruner, and ends FINISHED, KILLED (pruned) or FAILED, with
its Optuna state in the `eirnn.tuning.trial_state` tag.

The invocation that opens the parent (the lead) creates the study before any worker starts,
runs its `n_trials` on `n_workers` local processes (spawned, one study, exact per-worker
counts), then writes the summary on the parent (best params and value, the trials table,
Optuna's plots) and registers the best trial's model under the champion rule. For several
machines the lead runs with n_workers=0: it waits until `n_trials` trials of its parent have
finished, run by workers started elsewhere with `--parent-run-id`.

Modules: ``settings`` (StudySettings, PrunerSettings, StudyOutcome, tag names), ``storage``
(where the study lives), ``workers`` (trials as child runs, local worker processes), ``study_summary``
(results on the parent run, registration of the best model); this one drives a study.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient

from eirnn.config import ConfigError, TrainConfig, config_from_args
from eirnn.logged_names import RUN_NAME_TAG, STORAGE_TAG, STUDY_TAG
from eirnn.pipeline import load_configured_data
from eirnn.tracking.run_records import experiment_id_for, log_new_params
from eirnn.tracking.run_summary import run_url
from eirnn.training.validation_scores import higher_is_better
from eirnn.tuning.dead_trials import end_runs_of_requeued_trials, fail_dead_trials
from eirnn.tuning.first_trial import FIRST_TRIAL_ATTR, given_point
from eirnn.tuning.launcher import SlurmWorkers, slurm_settings_from_args
from eirnn.tuning.search_space import (
    SearchSpace,
    default_search_space,
    dump_search_space,
    load_search_space,
    validate_search_space,
)
from eirnn.tuning.settings import (
    ARTIFACT_DIR,
    FIXED_SETTINGS_ATTR,
    OBJECTIVE_NAME,
    PrunerSettings,
    StudyOutcome,
    StudySettings,
)
from eirnn.tuning.slurm_workers import check_slurm_storage, keep_workers, submit_study_workers
from eirnn.tuning.storage import open_storage, resolve_storage, storage_kind
from eirnn.tuning.study_summary import summarize_study
from eirnn.tuning.tune_options import FIRST_TRIAL_CHOICES
from eirnn.tuning.workers import (
    WorkerJob,
    _run_local_workers,
    _trial_environment,
    _worker_jobs,
    count_finished_trials,
    ending_parent_on_error,
    sampler_seeds,
)

POLL_S = 5.0


def _open_parent_run(client: MlflowClient, config: TrainConfig, settings: StudySettings, space: SearchSpace) -> str:
    """The launcher run of `mlflow run -e tune`, or a new run in the configured experiment."""
    run_id = os.environ.get("MLFLOW_RUN_ID") or client.create_run(experiment_id_for(config)).info.run_id
    for key, value in {
        RUN_NAME_TAG: settings.study_name,
        STUDY_TAG: settings.study_name,
        STORAGE_TAG: storage_kind(settings.storage),
    }.items():
        client.set_tag(run_id, key, value)
    log_new_params(
        client,
        run_id,
        {
            "study_name": settings.study_name,
            "n_trials": settings.n_trials,
            "n_workers": settings.n_workers,
            "pruner": settings.pruner.kind,
            # searched settings appear as best.<name> once the study is done
            **{name: value for name, value in config.to_dict().items() if name not in space},
        },
    )
    with tempfile.TemporaryDirectory(prefix="eirnn-tune-") as scratch:
        path = Path(scratch) / "search_space.yaml"
        path.write_text(dump_search_space(space))
        client.log_artifact(run_id, str(path), ARTIFACT_DIR)
    return run_id


def _enqueue_given_settings(study: optuna.Study, space: SearchSpace, config: TrainConfig) -> None:
    point, notes = given_point(space, config)
    study.enqueue_trial(point, user_attrs={FIRST_TRIAL_ATTR: "given"})
    shown = ", ".join(f"{name}={value}" for name, value in point.items())
    print(f"trial 0 trains the given settings: {shown}" + "".join(f"\n  {note}" for note in notes), flush=True)


def _check_parent_is_running(client: MlflowClient, parent_run_id: str) -> None:
    status = client.get_run(parent_run_id).info.status
    if status != "RUNNING":
        raise ConfigError(
            f"parent-run-id: run {parent_run_id} is {status}, its summary is written; start a new study invocation"
        )


#: settings each machine may choose for itself; every other fixed setting must match the study's
MACHINE_SETTINGS = ("data", "threads", "device", "resume", "run_name", "log_figures", "experiment_name")


def fixed_settings(config: TrainConfig, space: SearchSpace, dataset: Any) -> dict[str, Any]:
    """The settings every trial of the study shares: those not searched, and the data's hash
    (its path may differ between machines)."""
    values = {name: value for name, value in config.to_dict().items() if name not in space}
    for name in MACHINE_SETTINGS:
        values.pop(name, None)
    return {**values, "data.sha256": str(dataset.meta.get("sha256", ""))}


def check_fixed_settings(study: optuna.Study, mine: dict[str, Any]) -> None:
    """Refuse a worker whose fixed settings differ from those the lead stored with the study."""
    stored = study.user_attrs.get(FIXED_SETTINGS_ATTR)
    if stored is None:
        return
    for name in sorted(set(stored) | set(mine)):
        if stored.get(name) != mine.get(name):
            raise ConfigError(
                f"{name}: study {study.study_name!r} runs with {stored.get(name)!r}, this worker has "
                f"{mine.get(name)!r}; start workers with the lead's settings"
            )


def _wait_for_trials(
    study: optuna.Study, parent_run_id: str, n_trials: int, on_poll: Callable[[int], None] | None = None
) -> None:
    """Wait until `n_trials` trials of this parent have finished, whichever workers run them;
    `on_poll(finished)` after each look (SLURM: top up the workers)."""
    shown = -1
    try:
        while (finished := count_finished_trials(study, parent_run_id)) < n_trials:
            if finished != shown:
                print(f"waiting: {finished} of {n_trials} trials of this parent have finished", flush=True)
                shown = finished
            # a machine that died leaves RUNNING trials; with heartbeats (RDB storage) they fail here
            fail_dead_trials(study)
            if on_poll is not None:
                on_poll(finished)
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        print("stopped waiting: the summary covers the trials finished so far")


def run_study(config: TrainConfig, settings: StudySettings, dataset: Any = None) -> StudyOutcome | None:
    """Run `settings.n_trials` trials on `settings.n_workers` local processes; the fixed settings
    come from `config`.

    Without `parent_run_id` this invocation leads: it opens the parent run and the study, runs
    its trials, waits until `n_trials` trials of the parent have finished (with n_workers=0 it
    runs none and waits for workers started elsewhere with its parent run id), writes the
    summary and returns the outcome. With `parent_run_id` it is such a worker and returns None.
    """
    leading = not settings.parent_run_id
    if settings.n_trials < 0 or settings.n_workers < (0 if leading else 1):
        raise ConfigError(
            f"n_trials must be >= 0 and n_workers >= {0 if leading else 1} "
            f"(0: a lead that waits for workers elsewhere), found {settings.n_trials} and {settings.n_workers}"
        )
    if settings.first_trial not in FIRST_TRIAL_CHOICES:
        raise ConfigError(f"first-trial: expected one of {FIRST_TRIAL_CHOICES}, found {settings.first_trial!r}")
    if config.resume:
        raise ConfigError("resume: trials cannot resume a run; re-run the study name to resume a study")
    dataset = dataset if dataset is not None else load_configured_data(config)
    space = validate_search_space(settings.search_space or default_search_space(dataset), config, dataset)
    storage_spec = resolve_storage(settings.storage)
    if settings.launcher == "slurm":
        check_slurm_storage(storage_spec, leading)
    storage = open_storage(storage_spec, settings.heartbeat_s)
    client = MlflowClient()
    if leading:
        study = optuna.create_study(
            study_name=settings.study_name,
            storage=storage,
            direction=study_direction(config.selection_metric),
            load_if_exists=True,
        )
        with warnings.catch_warnings():  # set_metric_names is marked experimental since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_NAME])
        study.set_user_attr(FIXED_SETTINGS_ATTR, fixed_settings(config, space, dataset))
        if settings.first_trial == "given" and not study.trials:
            _enqueue_given_settings(study, space, config)
        parent_run_id = _open_parent_run(client, config, settings, space)
        seeds = sampler_seeds(config.seed, study, settings.n_workers)
    else:
        if settings.study_name not in optuna.study.get_all_study_names(storage):
            raise ConfigError(f"study-name: no study {settings.study_name!r} in the storage; start the lead first")
        _check_parent_is_running(client, settings.parent_run_id)
        study = optuna.load_study(study_name=settings.study_name, storage=storage)
        check_fixed_settings(study, fixed_settings(config, space, dataset))
        parent_run_id, seeds = settings.parent_run_id, [None] * settings.n_workers
    jobs = _worker_jobs(config, settings, storage_spec, space, parent_run_id, seeds, dataset)
    slurm = settings.launcher == "slurm" and jobs
    _announce(client, config, settings, storage_spec, parent_run_id, len(jobs), leading)
    workers, on_poll = None, None
    with ending_parent_on_error(client, parent_run_id, leading):
        try:
            if slurm:
                workers, on_poll = _submit_slurm_workers(study, jobs, settings, space, config.threads)
            else:
                with _trial_environment():
                    _run_local_workers(jobs)
            if not leading:
                return None
            _wait_for_trials(study, parent_run_id, settings.n_trials, on_poll)
            end_runs_of_requeued_trials(client, study, parent_run_id)
            outcome = summarize_study(client, study, parent_run_id, config)
            client.set_terminated(parent_run_id, "FINISHED")
            return outcome
        finally:
            if workers is not None:  # workers still queued once the study is done (or given up) have nothing to do
                workers.cancel()


def _submit_slurm_workers(
    study: optuna.Study, jobs: list[WorkerJob], settings: StudySettings, space: SearchSpace, threads: int
) -> tuple[SlurmWorkers, Callable[[int], None]]:
    """The lead's workers as one SLURM job array, and its check on every poll that tops them up."""
    workers, commands_for = submit_study_workers(jobs, settings, space, threads)
    print(f"{len(jobs)} worker(s) submitted to SLURM as job {workers.job_ids[0]}, output in {workers.log_dir}")
    return workers, keep_workers(study, settings.n_trials, workers, commands_for)


def study_direction(selection_metric: str) -> str:
    return "maximize" if higher_is_better(selection_metric) else "minimize"


def _announce(
    client: MlflowClient,
    config: TrainConfig,
    settings: StudySettings,
    storage_spec: str,
    parent_run_id: str,
    n_workers: int,
    leading: bool,
) -> None:
    """Where the study lives and who runs its trials; how to start workers elsewhere; a hint when
    one worker is given every core."""
    experiment_name = client.get_experiment(client.get_run(parent_run_id).info.experiment_id).name
    print(
        f"study {settings.study_name!r} ({storage_kind(storage_spec)} storage), parent run {parent_run_id} "
        f"in experiment {experiment_name!r}: {settings.n_trials} trials on {n_workers} "
        + ("SLURM worker job(s)" if settings.launcher == "slurm" else "local worker(s)"),
        flush=True,
    )
    if settings.launcher == "slurm":
        return
    cores = os.cpu_count() or 1
    if n_workers == 1 and not config.threads and cores > 1 and settings.n_trials > 1:
        print(
            f"hint: this machine has {cores} cores; --n-workers {cores} runs {cores} trials at a time on one "
            "thread each, more epochs per second than one trial on every core (benchmarks/README.md)",
            flush=True,
        )
    if leading and not n_workers:
        print(
            f"start workers with: eirnn tune --parent-run-id {parent_run_id} --study-name {settings.study_name} "
            f"--storage URL --n-trials N (the same settings; their N add up to {settings.n_trials})",
            flush=True,
        )


def run_study_from_args(args: Any, dataset: Any = None) -> StudyOutcome | None:
    """`eirnn tune`: the tune flags (eirnn.tuning.tune_options) into StudySettings, the rest into a
    TrainConfig; `dataset` when the caller has loaded it already."""
    settings = StudySettings(
        study_name=args.study_name,
        n_trials=args.n_trials,
        n_workers=args.n_workers,
        storage=args.storage,
        search_space=load_search_space(args.search_space) if args.search_space else None,
        pruner=PrunerSettings(
            kind=args.pruner, startup_trials=args.pruner_startup_trials, warmup_epochs=args.pruner_warmup_epochs
        ),
        first_trial=args.first_trial,
        parent_run_id=args.parent_run_id,
        heartbeat_s=args.heartbeat_seconds,
        launcher=args.launcher,
        slurm=slurm_settings_from_args(args),
    )
    outcome = run_study(config_from_args(args), settings, dataset=dataset)
    if outcome is None:
        print(f"trials done; the lead of parent run {settings.parent_run_id} writes the summary")
    elif outcome.best_trial is None:
        print(f"study {outcome.study_name!r}: no trial completed (parent run {outcome.parent_run_id})")
    else:
        print(
            f"study {outcome.study_name!r}: best trial {outcome.best_trial}, {OBJECTIVE_NAME} {outcome.best_value:.4f}"
        )
        for name, value in outcome.best_test_scores.items():
            print(f"  {name} = {value:.4f} (held-out test trials, never seen by selection)")
        for name, value in outcome.best_params.items():
            print(f"  {name} = {value}")
        print(f"registered version {outcome.model_version}; champion is version {outcome.champion_version}")
    if outcome is not None:
        experiment_id = MlflowClient().get_run(outcome.parent_run_id).info.experiment_id
        print(f"in the MLflow UI (eirnn ui): {run_url(experiment_id, outcome.parent_run_id)}")
    return outcome
