"""Trials whose worker died (SIGKILL, a lost machine): with an RDB storage every running trial
sends heartbeats, and whichever process of the study next finds one silent for longer than the
grace period fails it (Optuna), ends its MLflow child run FAILED with the reason, and queues the
same settings again as a new trial (Optuna's RetryHeartbeatStaleTrialCallback). A worker asked to stop
by SIGTERM (a scheduler's wall time, `scancel`) queues its trial again itself, at once. A worker
that was alive after all (paused, starved of CPU) abandons its trial when it wakes up
(`eirnn.tuning.claims`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import warnings
from collections.abc import Iterator

import optuna
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from eirnn.logged_names import ERROR_TAG, TRIAL_STATE_TAG, TRIAL_TAG
from eirnn.training import TrainingInterrupted
from eirnn.tuning.claims import ClaimLost, end_abandoned_run, frozen_trial, lost_claim_reason
from eirnn.tuning.settings import PARENT_RUN_ATTR, RUN_ATTR, WORKER_ATTR

MAX_RETRIES = 3


def trial_run_id(client: MlflowClient, parent_run_id: str, trial_number: int) -> str | None:
    """The child run a trial started, if it got that far."""
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial_number}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def retried_trial_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that a later trial re-runs."""
    with warnings.catch_warnings():  # retry_history is marked experimental since Optuna 3.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {number for trial in trials for number in RetryHeartbeatStaleTrialCallback.retry_history(trial)}


def fail_dead_trials(study: optuna.Study) -> None:
    """Fail (and, through the storage's callback, queue again) the running trials whose
    heartbeats stopped; any process of the study may call it."""
    with warnings.catch_warnings():  # fail_stale_trials is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def requeue_stopped_trial(trial: optuna.Trial, parent_run_id: str) -> None:
    """Queue the settings of a trial whose worker was stopped by SIGTERM again as a new trial,
    and say so on its child run (which training ended KILLED)."""
    client = MlflowClient()
    run_id = trial_run_id(client, parent_run_id, trial.number)
    if run_id:
        reason = f"worker stopped by SIGTERM: trial {trial.number}'s settings are queued again as a new trial"
        client.set_tag(run_id, ERROR_TAG, reason)
        client.set_tag(run_id, TRIAL_STATE_TAG, TrialState.FAIL.name)
    _queue_again(trial.study, frozen_trial(trial))


def _queue_again(study: optuna.Study, trial: FrozenTrial) -> None:
    """A new trial with the failed `trial`'s settings and its retry history (at most MAX_RETRIES)."""
    with warnings.catch_warnings():  # the callback class is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(study, trial)


@contextlib.contextmanager
def recording_trial_failure(trial: optuna.Trial, parent_run_id: str) -> Iterator[None]:
    """Around a trial's training (a study's trial, an ensemble's fit): a worker stopped by
    SIGTERM (a scheduler's wall time, `scancel`) queues the trial's settings again at once, so
    that nothing is lost; a worker that lost its claim on the trial (`eirnn.tuning.claims`: it
    finds the trial finished when it checks or writes to it) ends the child run KILLED and raises
    ClaimLost; any other error marks the trial's child run, if it started, FAIL."""
    try:
        yield
    except TrainingInterrupted as stopped:
        if stopped.signum == signal.SIGTERM:
            requeue_stopped_trial(trial, parent_run_id)
        raise
    except ClaimLost as lost:
        _end_abandoned_trial_run(parent_run_id, lost)
        raise
    except optuna.exceptions.UpdateFinishedTrialError as error:  # a write to a trial another process finished
        lost = ClaimLost(trial.number, frozen_trial(trial).state)
        _end_abandoned_trial_run(parent_run_id, lost)
        raise lost from error
    except Exception:
        client = MlflowClient()
        run_id = trial_run_id(client, parent_run_id, trial.number)
        if run_id:
            trial.set_user_attr(RUN_ATTR, run_id)
            client.set_tag(run_id, TRIAL_STATE_TAG, TrialState.FAIL.name)
        raise


def _end_abandoned_trial_run(parent_run_id: str, lost: ClaimLost) -> None:
    client = MlflowClient()
    run_id = trial_run_id(client, parent_run_id, lost.trial_number)
    if run_id:
        end_abandoned_run(client, run_id, str(lost), lost.state)


def worker_identity(pid: int | None = None) -> str:
    """ "host:pid" of this process, or of its child process `pid` (`WORKER_ATTR`)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def requeue_trials_of_dead_worker(study: optuna.Study, worker: str, how: str) -> int:
    """Fail the RUNNING trials that the dead process `worker` ("host:pid") was running, end their
    child runs FAILED saying `how` it died, and queue their settings again as new trials, as
    heartbeats would (a journal file has none). Returns how many were queued again."""
    dead = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if trial.user_attrs.get(WORKER_ATTR) == worker
    ]
    for trial in dead:
        study.tell(trial.number, state=TrialState.FAIL)
        _end_dead_trial_run(trial, f"worker lost: its process was {how} during trial {trial.number}")
        _queue_again(study, trial)
    return len(dead)


def _end_dead_trial_run(trial: FrozenTrial, reason: str) -> None:
    """End the trial's child run FAILED with `reason`, if it started and is still RUNNING."""
    parent_run_id = trial.user_attrs.get(PARENT_RUN_ATTR)
    if not parent_run_id:
        return
    client = MlflowClient()
    run_id = trial_run_id(client, parent_run_id, trial.number)
    if run_id and client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, ERROR_TAG, f"{reason}; its settings are queued again as a new trial")
        client.set_tag(run_id, TRIAL_STATE_TAG, TrialState.FAIL.name)
        client.set_terminated(run_id, "FAILED")


class RetryDeadTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's heartbeat-stale-trial callback of the study's storage, run by whoever notices the
    dead trial."""

    def __init__(self, grace_period_s: int) -> None:
        super().__init__(max_retry=MAX_RETRIES)
        self.grace_period_s = grace_period_s

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        _end_dead_trial_run(
            trial, f"worker lost: trial {trial.number} sent no heartbeat for over {self.grace_period_s} s"
        )
        super().__call__(study, trial)


def end_runs_of_requeued_trials(client: MlflowClient, study: optuna.Study, parent_run_id: str) -> None:
    """The lead, before its summary: end KILLED every FINISHED child run of the parent whose
    trial was failed and queued again (its worker lost its claim on the trial after its last
    check), so that the settings of every trial keep one finished run, the re-run's."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    finished = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'FINISHED'",
    )
    retried = retried_trial_numbers(study.get_trials(deepcopy=False))
    for run in finished:
        number = int(run.data.tags.get(TRIAL_TAG, -1))
        if number in retried:
            reason = f"{lost_claim_reason(number, TrialState.FAIL)} (the lead ended this run, which had finished)"
            end_abandoned_run(client, run.info.run_id, reason, TrialState.FAIL)
