"""The workers of a study: each runs its share of trials, every trial a child MLflow run of the
study's parent run, reporting its validation correlation to the pruner every epoch."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import mlflow
import numpy as np
import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from eirnn.config import TrainConfig
from eirnn.logged_names import ERROR_TAG, STUDY_TAG, TRIAL_STATE_TAG, TRIAL_TAG
from eirnn.tracking.mlflow_run import train_and_log
from eirnn.tracking.run_records import record_error
from eirnn.training import EarlyStopping
from eirnn.training.validation_scores import higher_is_better
from eirnn.tuning.claims import ClaimWatch, going_on_after_a_lost_claim
from eirnn.tuning.dead_trials import (
    recording_trial_failure,
    requeue_trials_of_dead_worker,
    retried_trial_numbers,
    worker_identity,
)
from eirnn.tuning.search_space import SearchSpace, suggest_settings
from eirnn.tuning.settings import (
    MODEL_URI_ATTR,
    OBJECTIVE_METRIC,
    PARENT_RUN_ATTR,
    RUN_ATTR,
    WORKER_ATTR,
    PrunerSettings,
    StudySettings,
)
from eirnn.tuning.storage import open_storage


def split_trials(n_trials: int, n_workers: int) -> list[int]:
    """Trials per worker, summing to exactly `n_trials`; workers with nothing to do are left out."""
    shares = [n_trials // n_workers + (index < n_trials % n_workers) for index in range(n_workers)]
    return [share for share in shares if share > 0]


class PruningReporter:
    """Training callback: reports the trial's best validation selection score so far (chosen as
    training chooses its best epoch) and asks training to stop when the pruner says so. A pruned
    trial's value in Optuna (its last report) is then its run's best_selection_score."""

    def __init__(self, trial: optuna.Trial, config: TrainConfig) -> None:
        self.trial = trial
        self.pruned_at_epoch: int | None = None
        higher = higher_is_better(config.selection_metric)
        self.stopping = EarlyStopping(config.patience, config.smoothing, higher, config.min_delta)
        self.worst = -1.0 if higher else math.inf
        self.best = self.worst

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        value = metrics[OBJECTIVE_METRIC]
        if self.stopping.update(epoch, value):
            # an undefined score counts as the worst one, as in early stopping
            self.best = value if math.isfinite(value) else self.worst
        self.trial.report(self.best, epoch)
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
    heartbeat_s: float  # how often training checks that the trial is still this worker's

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(PARENT_RUN_ATTR, self.parent_run_id)
        trial.set_user_attr(WORKER_ATTR, worker_identity())
        settings = self.base.replace(**suggest_settings(trial, self.space, self.base))
        # short names fit the runs table; the searched settings are the run's params
        config = settings.replace(run_name=f"trial-{trial.number}")
        reporter = PruningReporter(trial, config)
        client = MlflowClient()
        with recording_trial_failure(trial, self.parent_run_id):
            outcome = train_and_log(
                config,
                dataset=self.dataset,
                parent_run_id=self.parent_run_id,
                # the claim first: a trial another process has failed takes no report
                callbacks=[ClaimWatch(trial, self.heartbeat_s), reporter],
                register=False,
                tags={STUDY_TAG: self.study_name, TRIAL_TAG: str(trial.number)},
                status_when_stopped_by_callback="KILLED",
            )
            # the first write to the trial after training: it raises if another process failed the trial meanwhile
            trial.set_user_attr(RUN_ATTR, outcome.run_id)
            trial.set_user_attr(MODEL_URI_ATTR, outcome.model_uri)
        value = outcome.fit.best_selection_score
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
    heartbeat_s: int


def run_trials(job: WorkerJob, slots: Any = None) -> None:
    """Run `job.n_trials` trials of an existing study; a trial that raises fails alone.

    `slots`, a shared counter of the trials this invocation has left, replaces the fixed share
    when several local processes run one invocation: each process claims one trial at a time,
    so one that drew short (pruned) trials takes over from one stuck in a long trial instead of
    idling, and together they run exactly the invocation's trials."""
    mlflow.set_tracking_uri(job.tracking_uri)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=open_storage(job.storage, job.heartbeat_s),
        # constant_liar keeps concurrent workers from sampling the same point
        sampler=optuna.samplers.TPESampler(seed=job.sampler_seed, constant_liar=True),
        pruner=job.pruner.build(job.config.max_epochs),
    )
    objective = TrialObjective(job.config, job.space, job.dataset, job.parent_run_id, job.study_name, job.heartbeat_s)
    target = parent_trial_target(job)
    finished_here = 0

    def after_each_trial(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        nonlocal finished_here
        finished_here += 1
        # the parent's trials may be run by several workers, a restarted one among them
        if count_finished_trials(study, job.parent_run_id) >= target or not _claim(slots):
            study.stop()

    if not _claim(slots):
        return
    while True:
        n_trials = job.n_trials - finished_here if slots is None else None
        with going_on_after_a_lost_claim() as lost:
            study.optimize(objective, n_trials=n_trials, catch=(Exception,), callbacks=[after_each_trial])
        # a trial lost to another worker (eirnn.tuning.claims) used none of this worker's share or
        # slot: its settings run again as a new trial, here or elsewhere, and the share goes on
        if not lost or count_finished_trials(study, job.parent_run_id) >= target:
            return


def sampler_seeds(seed: int, study: optuna.Study, n_workers: int) -> list[int | None]:
    """Samplers' seeds, distinct per worker and per invocation (keyed on the study's trial count),
    so that a resumed study, or a lead taking over from a dead worker, does not replay a random
    start already drawn."""
    sequence = np.random.SeedSequence([seed, len(study.trials)])
    return [int(child.generate_state(1)[0]) for child in sequence.spawn(n_workers)]


def parent_trial_target(job: WorkerJob) -> int:
    """How many finished trials the parent run asks for, whichever workers run them."""
    return int(float(MlflowClient().get_run(job.parent_run_id).data.params.get("n_trials", job.n_trials)))


def _claim(slots: Any) -> bool:
    """Take one trial from the shared count (always granted without one)."""
    if slots is None:
        return True
    with slots.get_lock():
        if slots.value <= 0:
            return False
        slots.value -= 1
        return True


def count_finished_trials(study: optuna.Study, parent_run_id: str) -> int:
    """Finished trials of this parent; a failed trial that is re-run counts through its re-run."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_trial_numbers(trials)
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(
        trial.state in finished
        and trial.number not in retried
        and trial.user_attrs.get(PARENT_RUN_ATTR) == parent_run_id
        for trial in trials
    )


def _run_local_workers(jobs: list[WorkerJob]) -> None:
    if not jobs:
        return
    if len(jobs) == 1:
        run_trials(jobs[0])
        return
    # spawn, not fork: torch and the database connections do not survive a fork
    context = multiprocessing.get_context("spawn")
    slots = context.Value("i", sum(job.n_trials for job in jobs))
    workers = [
        # each trial's run applies eirnn.memory_allocator's settings in its worker before its first tensor
        context.Process(target=run_trials, args=(job, slots), name=f"eirnn-tune-{n}")
        for n, job in enumerate(jobs)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [worker.name for worker in workers if worker.exitcode and worker.exitcode > 0]
    if failed:
        raise RuntimeError(f"tuning workers {', '.join(failed)} exited with an error (see their output above)")
    killed = [worker for worker in workers if worker.exitcode and worker.exitcode < 0]
    if killed:
        _take_over_from_killed_workers(killed, jobs[0])


def _take_over_from_killed_workers(killed: list[Any], job: WorkerJob) -> None:
    """A local worker killed by a signal (the kernel's out-of-memory killer, a `kill -9`) sends
    no heartbeat from a journal file and may hold a trial RUNNING: fail that trial, queue its
    settings again, and run what is left of the parent's trials in this process."""
    study = optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage, job.heartbeat_s))
    for worker in killed:
        how = f"killed by {signal.Signals(-worker.exitcode).name}"
        requeued = requeue_trials_of_dead_worker(study, worker_identity(worker.pid), how)
        print(f"tuning worker {worker.name} was {how}; {requeued} trial(s) queued again, run here", flush=True)
    left = parent_trial_target(job) - count_finished_trials(study, job.parent_run_id)
    if left > 0:
        # a sampler of its own (a copy of a dead worker's seed would draw its first points again)
        seed = None if job.sampler_seed is None else sampler_seeds(job.config.seed, study, 1)[0]
        run_trials(replace(job, n_trials=left, sampler_seed=seed))


@contextlib.contextmanager
def ending_parent_on_error(client: MlflowClient, parent_run_id: str, leading: bool) -> Iterator[None]:
    """The lead's parent run ends KILLED (Ctrl-C) or FAILED, with the error in its tag, when
    anything raises; workers leave the parent to the lead."""
    try:
        yield
    except BaseException as error:
        if leading:
            record_error(client, parent_run_id, error, with_traceback=False)
            client.set_terminated(parent_run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise


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
            heartbeat_s=settings.heartbeat_s,
        )
        for share, seed in zip(shares, seeds)
    ]
