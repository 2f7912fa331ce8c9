"""Trials whose worker died (SIGKILL, a lost machine): with an RDB storage every running trial
sends heartbeats, and whichever process of the study next finds one silent for longer than the
grace period fails it (Optuna), ends its MLflow child run FAILED with the reason, and queues the
same settings again as a new trial (Optuna's RetryHeartbeatStaleTrialCallback). A worker asked to stop
by SIGTERM (a scheduler's wall time, `scancel`) queues its trial again itself, at once."""

from __future__ import annotations

import contextlib
import signal
import warnings
from collections.abc import Iterator

import optuna
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from eirnn.logged_names import ERROR_TAG, TRIAL_STATE_TAG, TRIAL_TAG
from eirnn.training import TrainingInterrupted
from eirnn.tuning.settings import PARENT_RUN_ATTR, RUN_ATTR

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
    frozen = next(past for past in trial.study.get_trials(deepcopy=False) if past.number == trial.number)
    with warnings.catch_warnings():  # the callback class is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(trial.study, frozen)


@contextlib.contextmanager
def recording_trial_failure(trial: optuna.Trial, parent_run_id: str) -> Iterator[None]:
    """Around a trial's training (a study's trial, an ensemble's fit): a worker stopped by
    SIGTERM (a scheduler's wall time, `scancel`) queues the trial's settings again at once, so
    that nothing is lost; any other error marks the trial's child run, if it started, FAIL."""
    try:
        yield
    except TrainingInterrupted as stopped:
        if stopped.signum == signal.SIGTERM:
            requeue_stopped_trial(trial, parent_run_id)
        raise
    except Exception:
        client = MlflowClient()
        run_id = trial_run_id(client, parent_run_id, trial.number)
        if run_id:
            trial.set_user_attr(RUN_ATTR, run_id)
            client.set_tag(run_id, TRIAL_STATE_TAG, TrialState.FAIL.name)
        raise


class RetryDeadTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's heartbeat-stale-trial callback of the study's storage, run by whoever notices the
    dead trial."""

    def __init__(self, grace_period_s: int) -> None:
        super().__init__(max_retry=MAX_RETRIES)
        self.grace_period_s = grace_period_s

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        parent_run_id = trial.user_attrs.get(PARENT_RUN_ATTR)
        if parent_run_id:
            client = MlflowClient()
            run_id = trial_run_id(client, parent_run_id, trial.number)
            if run_id and client.get_run(run_id).info.status == "RUNNING":
                reason = (
                    f"worker lost: trial {trial.number} sent no heartbeat for over {self.grace_period_s} s; "
                    "its settings are queued again as a new trial"
                )
                client.set_tag(run_id, ERROR_TAG, reason)
                client.set_tag(run_id, TRIAL_STATE_TAG, TrialState.FAIL.name)
                client.set_terminated(run_id, "FAILED")
        super().__call__(study, trial)
