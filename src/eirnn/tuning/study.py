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
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from eirnn.config import ConfigError, TrainConfig, config_from_args, mlproject_default
from eirnn.pipeline import load_configured_data
from eirnn.runtime import configure_for_training
from eirnn.tracking.metric_names import SELECTION_METRIC, study_metric
from eirnn.tracking.registry import update_champion
from eirnn.tracking.run import (
    ERROR_TAG,
    MAX_TAG_LENGTH,
    experiment_id_for,
    log_new_params,
    register_model,
    train_and_log,
)
from eirnn.tracking.summary import NOTE_TAG as DESCRIPTION_TAG
from eirnn.tracking.summary import run_url
from eirnn.tuning.search_space import (
    SearchSpace,
    default_search_space,
    dump_search_space,
    load_search_space,
    suggest_settings,
    validate_search_space,
)

DEFAULT_JOURNAL_FILE = "optuna.journal"
OBJECTIVE_METRIC = "val_psth_corr"  # reported each epoch to the pruner (a history key)
# the study's objective, named as the MLflow metric it equals (shown in optuna-dashboard)
OBJECTIVE_NAME = SELECTION_METRIC

STUDY_TAG = "eirnn.tuning.study"
STORAGE_TAG = "eirnn.tuning.storage"
TRIAL_TAG = "eirnn.tuning.trial"
TRIAL_STATE_TAG = "eirnn.tuning.trial_state"
NOTE_TAG = "eirnn.tuning.note"

PARENT_RUN_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
MODEL_URI_ATTR = "model_uri"

ARTIFACT_DIR = "tuning"
POLL_S = 5.0
HEARTBEAT_S = 60


@dataclass
class PrunerSettings:
    """`kind`: median, hyperband or none. Median prunes a trial whose correlation at an epoch is
    below the median of earlier trials at that epoch, once `startup_trials` trials have finished
    and from epoch `warmup_epochs` on (None: a tenth of max_epochs). Hyperband starts each trial
    with at least `warmup_epochs` epochs."""

    kind: str = "median"
    startup_trials: int = 5
    warmup_epochs: int | None = None

    def build(self, max_epochs: int) -> optuna.pruners.BasePruner:
        warmup = self.warmup_epochs if self.warmup_epochs is not None else max(1, max_epochs // 10)
        if self.kind == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=warmup)
        if self.kind == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=max_epochs)
        if self.kind == "none":
            return optuna.pruners.NopPruner()
        raise ConfigError(f"pruner: expected median, hyperband or none, found {self.kind!r}")


@dataclass
class StudySettings:
    """What `eirnn tune` adds to a TrainConfig. `n_trials` counts the trials of this invocation,
    shared across its `n_workers` local processes; `storage` is an RDB URL (postgresql://...,
    sqlite:///...) or a journal file path (empty: see `resolve_storage`)."""

    study_name: str = "eirnn"
    n_trials: int = 20
    n_workers: int = 1
    storage: str = ""
    search_space: SearchSpace | None = None
    pruner: PrunerSettings = field(default_factory=PrunerSettings)
    parent_run_id: str = ""


@dataclass
class StudyOutcome:
    study_name: str
    parent_run_id: str
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    champion_version: str | None = None


def resolve_storage(spec: str) -> str:
    """An RDB URL or journal file as given; empty: optuna.journal beside a local SQLite tracking
    store (`mlflow run` starts the study in the project folder, not where the store is), or in
    the working folder for any other store."""
    if spec:
        return spec
    uri = mlflow.get_tracking_uri()
    database = make_url(uri).database if uri.startswith("sqlite:") else None
    folder = Path(database).resolve().parent if database and database != ":memory:" else Path.cwd()
    return str(folder / DEFAULT_JOURNAL_FILE)


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    spec = resolve_storage(spec)
    if "://" in spec:
        # heartbeats let the next trial fail the RUNNING trials of a machine that died
        return optuna.storages.RDBStorage(spec, heartbeat_interval=HEARTBEAT_S)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(spec))


def storage_kind(spec: str) -> str:
    return re.split(r"[+:]", spec, maxsplit=1)[0] if "://" in spec else "journal"


def split_trials(n_trials: int, n_workers: int) -> list[int]:
    """Trials per worker, summing to exactly `n_trials`; workers with nothing to do are left out."""
    shares = [n_trials // n_workers + (index < n_trials % n_workers) for index in range(n_workers)]
    return [share for share in shares if share > 0]


class PruningReporter:
    """Training callback: reports the epoch's validation correlation to the trial and asks
    training to stop when the pruner says so."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.pruned_at_epoch: int | None = None

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        value = metrics[OBJECTIVE_METRIC]
        # an undefined correlation counts as the worst one, as in early stopping
        self.trial.report(value if math.isfinite(value) else -1.0, epoch)
        if self.trial.should_prune():
            self.pruned_at_epoch = epoch
            return True
        return False


@dataclass
class TrialObjective:
    """Trains one trial's settings as a child run of the parent; returns its best validation
    PSTH correlation."""

    base: TrainConfig
    space: SearchSpace
    dataset: Any
    parent_run_id: str
    study_name: str

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(PARENT_RUN_ATTR, self.parent_run_id)
        settings = self.base.replace(**suggest_settings(trial, self.space, self.base))
        # short names fit the runs table; the searched settings are the run's params
        config = settings.replace(run_name=f"trial-{trial.number}")
        reporter = PruningReporter(trial)
        client = MlflowClient()
        try:
            outcome = train_and_log(
                config,
                dataset=self.dataset,
                parent_run_id=self.parent_run_id,
                callbacks=[reporter],
                register=False,
                tags={STUDY_TAG: self.study_name, TRIAL_TAG: str(trial.number)},
                status_when_stopped_by_callback="KILLED",
            )
        except Exception:
            run_id = self._child_run_id(client, trial.number)
            if run_id:
                trial.set_user_attr(RUN_ATTR, run_id)
                client.set_tag(run_id, TRIAL_STATE_TAG, TrialState.FAIL.name)
            raise
        trial.set_user_attr(RUN_ATTR, outcome.run_id)
        trial.set_user_attr(MODEL_URI_ATTR, outcome.model_uri)
        value = outcome.fit.best_val_psth_corr
        state = TrialState.PRUNED if reporter.pruned_at_epoch is not None else TrialState.COMPLETE
        if state == TrialState.COMPLETE and not math.isfinite(value):
            state = TrialState.FAIL
        client.set_tag(outcome.run_id, TRIAL_STATE_TAG, state.name)
        if state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"pruned at epoch {reporter.pruned_at_epoch}")
        if state == TrialState.FAIL:
            message = f"trial {trial.number}: best {OBJECTIVE_METRIC} is {value}"
            client.set_tag(outcome.run_id, ERROR_TAG, message)
            client.set_terminated(outcome.run_id, "FAILED")
            raise ValueError(message)
        return value

    def _child_run_id(self, client: MlflowClient, trial_number: int) -> str | None:
        """The run a failed trial started, if it got that far (train_and_log raises without it)."""
        parent = client.get_run(self.parent_run_id)
        runs = client.search_runs(
            [parent.info.experiment_id],
            filter_string=(
                f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial_number}'"
            ),
            max_results=1,
        )
        return runs[0].info.run_id if runs else None


@dataclass
class WorkerJob:
    """Everything one worker process needs; picklable, since local workers are spawned."""

    study_name: str
    storage: str
    n_trials: int
    config: TrainConfig
    space: SearchSpace
    pruner: PrunerSettings
    parent_run_id: str
    sampler_seed: int | None
    dataset: Any
    tracking_uri: str


def run_trials(job: WorkerJob) -> None:
    """Run `job.n_trials` trials of an existing study; a trial that raises fails alone."""
    mlflow.set_tracking_uri(job.tracking_uri)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=open_storage(job.storage),
        # constant_liar keeps concurrent workers from sampling the same point
        sampler=optuna.samplers.TPESampler(seed=job.sampler_seed, constant_liar=True),
        pruner=job.pruner.build(job.config.max_epochs),
    )
    objective = TrialObjective(job.config, job.space, job.dataset, job.parent_run_id, job.study_name)
    study.optimize(objective, n_trials=job.n_trials, catch=(Exception,))


def _worker_process(job: WorkerJob) -> None:
    configure_for_training()
    run_trials(job)


def _run_local_workers(jobs: list[WorkerJob]) -> None:
    if not jobs:
        return
    if len(jobs) == 1:
        run_trials(jobs[0])
        return
    # spawn, not fork: torch and the database connections do not survive a fork
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker_process, args=(job,), name=f"eirnn-tune-{n}") for n, job in enumerate(jobs)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [worker.name for worker in workers if worker.exitcode != 0]
    if failed:
        raise RuntimeError(f"tuning workers {', '.join(failed)} exited with an error (see their output above)")


@contextlib.contextmanager
def _trial_environment() -> Iterator[None]:
    """Trials must not attach to `mlflow run`'s launcher run, which MLflow's start_run takes
    from MLFLOW_RUN_ID whatever parent it is given."""
    launcher_run = os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        yield
    finally:
        if launcher_run is not None:
            os.environ["MLFLOW_RUN_ID"] = launcher_run


def _open_parent_run(client: MlflowClient, config: TrainConfig, settings: StudySettings, space: SearchSpace) -> str:
    """The launcher run of `mlflow run -e tune`, or a new run in the configured experiment."""
    run_id = os.environ.get("MLFLOW_RUN_ID") or client.create_run(experiment_id_for(config)).info.run_id
    for key, value in {
        "mlflow.runName": settings.study_name,
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


def _check_parent_is_running(client: MlflowClient, parent_run_id: str) -> None:
    status = client.get_run(parent_run_id).info.status
    if status != "RUNNING":
        raise ConfigError(
            f"parent-run-id: run {parent_run_id} is {status}, its summary is written; start a new study invocation"
        )


def _count_finished_trials(study: optuna.Study, parent_run_id: str) -> int:
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(
        trial.user_attrs.get(PARENT_RUN_ATTR) == parent_run_id
        for trial in study.get_trials(deepcopy=False, states=finished)
    )


def _wait_for_trials(study: optuna.Study, parent_run_id: str, n_trials: int) -> None:
    """Wait until `n_trials` trials of this parent have finished, whichever workers run them."""
    shown = -1
    try:
        while (finished := _count_finished_trials(study, parent_run_id)) < n_trials:
            if finished != shown:
                print(f"waiting: {finished} of {n_trials} trials of this parent have finished", flush=True)
                shown = finished
            # a machine that died leaves RUNNING trials; with heartbeats (RDB storage) they fail here
            optuna.storages.fail_stale_trials(study)
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        print("stopped waiting: the summary covers the trials finished so far")


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


def _register_best(client: MlflowClient, best: FrozenTrial, model_name: str) -> tuple[str | None, str | None]:
    """Register the best trial's model once: a resumed study may find the same best trial again."""
    run_id, model_uri = best.user_attrs.get(RUN_ATTR), best.user_attrs.get(MODEL_URI_ATTR)
    if not run_id or not model_uri:
        return None, None
    existing = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    if existing:
        return existing[0].version, update_champion(model_name, client)
    return register_model(model_uri, run_id, model_name, client)


def summarize_study(
    client: MlflowClient, study: optuna.Study, parent_run_id: str, registered_model_name: str
) -> StudyOutcome:
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
        client.set_tag(parent_run_id, NOTE_TAG, "no trial completed: nothing to register")
        return outcome
    best = study.best_trial
    metrics[study_metric("best_value")] = best.value
    client.log_batch(
        parent_run_id,
        metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        params=[Param(f"best.{name}", mlproject_default(value)) for name, value in best.params.items()],
        tags=[
            RunTag("eirnn.tuning.best_trial", str(best.number)),
            RunTag("eirnn.tuning.best_run_id", best.user_attrs.get(RUN_ATTR, "")),
        ],
    )
    version, champion = _register_best(client, best, registered_model_name)
    client.set_tag(parent_run_id, DESCRIPTION_TAG, _study_note(client, study, best, parent_run_id, version, champion))
    return StudyOutcome(study.study_name, parent_run_id, best.number, best.value, dict(best.params), version, champion)


def _study_note(
    client: MlflowClient,
    study: optuna.Study,
    best: FrozenTrial,
    parent_run_id: str,
    version: str | None,
    champion: str | None,
) -> str:
    """The parent run's description: the best trial and what it did to the registry."""
    counts = {state: sum(t.state == state for t in study.trials) for state in TrialState}
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    best_run = best.user_attrs.get(RUN_ATTR, "")
    registry = (
        "not registered"
        if not version
        else f"version {version}, {'now the champion' if champion == version else f'champion stays version {champion}'}"
    )
    settings = ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}" for name, value in best.params.items()
    )
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


def _worker_jobs(
    config: TrainConfig,
    settings: StudySettings,
    storage_spec: str,
    space: SearchSpace,
    parent_run_id: str,
    seeds: list[int | None],
    dataset: Any,
) -> list[WorkerJob]:
    shares = split_trials(settings.n_trials, settings.n_workers) if settings.n_workers else []
    # each worker takes its share of the cores unless the threads are set
    threads = config.threads or max(1, (os.cpu_count() or 1) // max(1, settings.n_workers))
    return [
        WorkerJob(
            study_name=settings.study_name,
            storage=storage_spec,
            n_trials=share,
            config=config.replace(threads=threads),
            space=space,
            pruner=settings.pruner,
            parent_run_id=parent_run_id,
            sampler_seed=seed,
            dataset=dataset,
            tracking_uri=mlflow.get_tracking_uri(),
        )
        for share, seed in zip(shares, seeds)
    ]


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
    if config.resume:
        raise ConfigError("resume: trials cannot resume a run; re-run the study name to resume a study")
    dataset = dataset if dataset is not None else load_configured_data(config)
    space = validate_search_space(settings.search_space or default_search_space(dataset), config, dataset)
    storage_spec = resolve_storage(settings.storage)
    storage = open_storage(storage_spec)
    client = MlflowClient()
    if leading:
        study = optuna.create_study(
            study_name=settings.study_name, storage=storage, direction="maximize", load_if_exists=True
        )
        study.set_metric_names([OBJECTIVE_NAME])
        parent_run_id = _open_parent_run(client, config, settings, space)
        # distinct per worker and per invocation, so that a resumed study does not replay its random start
        sequence = np.random.SeedSequence([config.seed, len(study.trials)])
        seeds: list[int | None] = [int(child.generate_state(1)[0]) for child in sequence.spawn(settings.n_workers)]
    else:
        if settings.study_name not in optuna.study.get_all_study_names(storage):
            raise ConfigError(f"study-name: no study {settings.study_name!r} in the storage; start the lead first")
        _check_parent_is_running(client, settings.parent_run_id)
        study = optuna.load_study(study_name=settings.study_name, storage=storage)
        parent_run_id, seeds = settings.parent_run_id, [None] * settings.n_workers
    jobs = _worker_jobs(config, settings, storage_spec, space, parent_run_id, seeds, dataset)
    experiment_name = client.get_experiment(client.get_run(parent_run_id).info.experiment_id).name
    print(
        f"study {settings.study_name!r} ({storage_kind(storage_spec)} storage), parent run {parent_run_id} "
        f"in experiment {experiment_name!r}: {settings.n_trials} trials on {len(jobs)} local worker(s)",
        flush=True,
    )
    if leading and not jobs:
        print(
            f"start workers with: eirnn tune --parent-run-id {parent_run_id} --study-name {settings.study_name} "
            f"--storage URL --n-trials N (the same settings; their N add up to {settings.n_trials})",
            flush=True,
        )
    try:
        with _trial_environment():
            _run_local_workers(jobs)
        if not leading:
            return None
        _wait_for_trials(study, parent_run_id, settings.n_trials)
        outcome = summarize_study(client, study, parent_run_id, config.registered_model_name)
        client.set_terminated(parent_run_id, "FINISHED")
        return outcome
    except BaseException as error:
        if leading:
            client.set_tag(parent_run_id, ERROR_TAG, f"{type(error).__name__}: {error}"[:MAX_TAG_LENGTH])
            client.set_terminated(parent_run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise


def run_study_from_args(args: Any) -> StudyOutcome | None:
    """`eirnn tune`: the tune flags (eirnn.tuning.options) into StudySettings, the rest into a TrainConfig."""
    settings = StudySettings(
        study_name=args.study_name,
        n_trials=args.n_trials,
        n_workers=args.n_workers,
        storage=args.storage,
        search_space=load_search_space(args.search_space) if args.search_space else None,
        pruner=PrunerSettings(
            kind=args.pruner, startup_trials=args.pruner_startup_trials, warmup_epochs=args.pruner_warmup_epochs
        ),
        parent_run_id=args.parent_run_id,
    )
    outcome = run_study(config_from_args(args), settings)
    if outcome is None:
        print(f"trials done; the lead of parent run {settings.parent_run_id} writes the summary")
    elif outcome.best_trial is None:
        print(f"study {outcome.study_name!r}: no trial completed (parent run {outcome.parent_run_id})")
    else:
        print(
            f"study {outcome.study_name!r}: best trial {outcome.best_trial}, {OBJECTIVE_NAME} {outcome.best_value:.4f}"
        )
        for name, value in outcome.best_params.items():
            print(f"  {name} = {value}")
        print(f"registered version {outcome.model_version}; champion is version {outcome.champion_version}")
    return outcome
