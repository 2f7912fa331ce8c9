"""A worker's claim on its trial (a study's trial, an ensemble's fit): the trial is the worker's
while it is RUNNING in the study's storage. A worker that is alive but paused or starved of CPU
for longer than the heartbeat grace loses it: another process fails the trial as stale and
queues its settings again (`eirnn.tuning.dead_trials.RetryDeadTrial`). When such a worker wakes
up it must not finish the trial too, or the trial's settings would end with two finished child
runs: it checks its claim at the end of each epoch once a heartbeat interval has passed, and
again when it writes its result to the trial; on losing it, it abandons the fit, ends the child
run KILLED with the reason in `ABANDONED_TAG`, and tells Optuna nothing (the trial is finished
already). The lead ends the same way a finished run that slipped through between the last check
and the end of its run (`eirnn.tuning.dead_trials.end_runs_of_requeued_trials`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from eirnn.logged_names import ABANDONED_TAG, ERROR_TAG, TRIAL_STATE_TAG


class ClaimLost(BaseException):
    """This worker's trial is no longer RUNNING in the study's storage. A BaseException, not an
    Exception, so that Optuna's `optimize` neither tells the trial (it is finished already, and
    telling it raises) nor counts it as this trial's failure, and the worker can go on."""

    def __init__(self, trial_number: int, state: TrialState) -> None:
        self.trial_number, self.state = trial_number, state
        super().__init__(lost_claim_reason(trial_number, state))


def lost_claim_reason(trial_number: int, state: TrialState) -> str:
    return (
        f"trial {trial_number} is {state.name} in the study's storage: another process failed it as stale while "
        "its worker was paused or starved of CPU for longer than the heartbeat grace, and queued its settings "
        "again; its worker abandoned it and this run's results are not used"
    )


def frozen_trial(trial: optuna.Trial) -> FrozenTrial:
    """The trial as the study's storage has it now."""
    return next(past for past in trial.study.get_trials(deepcopy=False) if past.number == trial.number)


def check_claim(trial: optuna.Trial) -> None:
    """Raise ClaimLost unless the trial is still RUNNING in the study's storage."""
    state = frozen_trial(trial).state
    if state != TrialState.RUNNING:
        raise ClaimLost(trial.number, state)


class ClaimWatch:
    """Training callback: at the end of an epoch, once `interval_s` has passed since its last
    look (the heartbeat interval: a worker woken from a pause longer than the grace looks at
    once), checks that the trial is still this worker's; raises ClaimLost when it is not."""

    def __init__(self, trial: optuna.Trial, interval_s: float) -> None:
        self.trial, self.interval_s = trial, interval_s
        self.looked_at = time.monotonic()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        if time.monotonic() - self.looked_at >= self.interval_s:
            check_claim(self.trial)
            self.looked_at = time.monotonic()
        return False


def end_abandoned_run(client: MlflowClient, run_id: str, reason: str, state: TrialState) -> None:
    """End a child run whose trial its worker lost KILLED, saying why and what the trial became."""
    for tag, value in ((ABANDONED_TAG, reason), (ERROR_TAG, reason), (TRIAL_STATE_TAG, state.name)):
        client.set_tag(run_id, tag, value)
    client.set_terminated(run_id, "KILLED")


@contextlib.contextmanager
def going_on_after_a_lost_claim() -> Iterator[list[ClaimLost]]:
    """Around a worker's `study.optimize`: a lost claim ends that call, not the worker; the
    list it yields holds the ClaimLost, if one was raised."""
    lost: list[ClaimLost] = []
    try:
        yield lost
    except ClaimLost as error:
        print(error, flush=True)
        lost.append(error)
