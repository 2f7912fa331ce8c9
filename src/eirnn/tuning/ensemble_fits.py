"""The fits of an ensemble as Optuna trials: each fit's settings (index, model seed, bootstrap
seed, E:I ratio) are enqueued as a waiting trial when the ensemble starts, so that the study
machinery runs them: any worker takes the next waiting fit, heartbeats (RDB storage) let any
process of the ensemble fail a fit whose worker died, end its child run FAILED and queue the
same fit again (`eirnn.tuning.dead_trials.RetryDeadTrial`); a worker stopped by SIGTERM (a
scheduler's wall time, `scancel`) queues its fit again itself. Each fit trains through
`train_and_log` as a child run `fit-N` of the ensemble's parent run and logs its circuit
answers (`eirnn.circuit_answers`) as `ensemble/answers.npz`; on data with a ground truth also
those of its block-shuffled null, `ensemble/null_answers.npz`, which the calibration compares
with (asked here, in parallel across workers, rather than by the lead after the last fit)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from eirnn.circuit_answers import ask_circuit, save_answers
from eirnn.config import TrainConfig
from eirnn.ensemble_report import null_answers
from eirnn.logged_names import ENSEMBLE_TAG, FIT_TAG, TRIAL_STATE_TAG, TRIAL_TAG
from eirnn.tracking.mlflow_run import train_and_log
from eirnn.tuning.claims import ClaimWatch, check_claim, going_on_after_a_lost_claim
from eirnn.tuning.dead_trials import fail_dead_trials, recording_trial_failure, retried_trial_numbers
from eirnn.tuning.settings import MODEL_URI_ATTR, PARENT_RUN_ATTR, RUN_ATTR
from eirnn.tuning.storage import open_storage

FIT_ATTR = "eirnn.ensemble.fit"  # trial user attribute: the fit's settings
ANSWERS_DIR = "ensemble"
ANSWERS_FILE = "answers.npz"
NULL_ANSWERS_FILE = "null_answers.npz"
POLL_S = 2.0
FIXED_POINT_STARTS = 32


def fit_settings(config: TrainConfig, n_fits: int, bootstrap_trials: bool, ei_ratios: tuple[float, ...]) -> list[dict]:
    """What varies between the fits: the model seed always (`config.seed + index`), the bootstrap
    resample of the training trials when asked (seed `1000 * config.seed + index`), and the E:I
    ratio that sets the hidden units, cycling through `ei_ratios` when given."""
    return [
        {
            "fit_index": index,
            "seed": config.seed + index,
            "bootstrap_seed": 1000 * config.seed + index if bootstrap_trials else -1,
            "ei_ratio": ei_ratios[index % len(ei_ratios)] if ei_ratios else config.ei_ratio,
        }
        for index in range(n_fits)
    ]


def enqueue_fits(study: optuna.Study, fits: list[dict], parent_run_id: str) -> None:
    for fit in fits:
        study.enqueue_trial({}, user_attrs={FIT_ATTR: fit, PARENT_RUN_ATTR: parent_run_id}, skip_if_exists=False)


def _fit_trials(study: optuna.Study, parent_run_id: str) -> list[FrozenTrial]:
    return [
        trial
        for trial in study.get_trials(deepcopy=False)
        if trial.user_attrs.get(PARENT_RUN_ATTR) == parent_run_id and FIT_ATTR in trial.user_attrs
    ]


def unfinished_fits(study: optuna.Study, parent_run_id: str) -> set[int]:
    """Fit indices of this parent with no finished trial yet (a failed trial that is queued again
    is not finished)."""
    trials = _fit_trials(study, parent_run_id)
    retried = retried_trial_numbers(study.get_trials(deepcopy=False))
    indices = {trial.user_attrs[FIT_ATTR]["fit_index"] for trial in trials}
    finished = {
        trial.user_attrs[FIT_ATTR]["fit_index"]
        for trial in trials
        if trial.state == TrialState.COMPLETE or (trial.state == TrialState.FAIL and trial.number not in retried)
    }
    return indices - finished


def completed_fits(study: optuna.Study, parent_run_id: str) -> list[FrozenTrial]:
    """The completed trial of each fit index, in index order."""
    done = {
        trial.user_attrs[FIT_ATTR]["fit_index"]: trial
        for trial in _fit_trials(study, parent_run_id)
        if trial.state == TrialState.COMPLETE
    }
    return [done[index] for index in sorted(done)]


@dataclass
class FitObjective:
    """Trains one waiting fit as a child run of the parent and logs its answers (and its null's,
    with `asks_null`: the data has a ground truth); returns its best validation selection score."""

    base: TrainConfig
    dataset: Any
    parent_run_id: str
    ensemble_name: str
    asks_null: bool
    heartbeat_s: float  # how often training checks that the fit is still this worker's

    def __call__(self, trial: optuna.Trial) -> float:
        fit = trial.user_attrs.get(FIT_ATTR)
        if fit is None:  # two workers saw the last waiting fit; the one that lost got a fresh trial
            raise optuna.TrialPruned("no fit was waiting")
        config = self.base.replace(
            seed=fit["seed"],
            # every fit on the ensemble's one split: the fits differ in what the ensemble varies, and
            # the data's facts (noise ceilings, the true network's answers) are the same for all
            split_seed=self.base.data_split_seed,
            bootstrap_seed=fit["bootstrap_seed"],
            ei_ratio=fit["ei_ratio"],
            run_name=f"fit-{fit['fit_index']}",
        )
        client = MlflowClient()
        tags = {ENSEMBLE_TAG: self.ensemble_name, TRIAL_TAG: str(trial.number), FIT_TAG: str(fit["fit_index"])}
        with recording_trial_failure(trial, self.parent_run_id):
            watch = ClaimWatch(trial, self.heartbeat_s)
            outcome = train_and_log(
                config,
                dataset=self.dataset,
                parent_run_id=self.parent_run_id,
                register=False,
                tags=tags,
                callbacks=[watch],
            )
            check_claim(trial)  # before asking the answers of a fit that is no longer this worker's
            self._log_answers(client, outcome, fit["fit_index"])
            # the first write to the trial: it raises if another process has failed the trial meanwhile
            trial.set_user_attr(RUN_ATTR, outcome.run_id)
            trial.set_user_attr(MODEL_URI_ATTR, outcome.model_uri)
        client.set_tag(outcome.run_id, TRIAL_STATE_TAG, TrialState.COMPLETE.name)
        return outcome.fit.best_selection_score

    def _log_answers(self, client: MlflowClient, outcome: Any, fit_index: int) -> None:
        # the fixed-point starts and perturbed groups are the ensemble's, the same for every fit
        model, val = outcome.prepared.model, outcome.prepared.val
        answers = {ANSWERS_FILE: ask_circuit(model, val, group_seed=self.base.seed, seed=self.base.seed)}
        if self.asks_null:
            answers[NULL_ANSWERS_FILE] = null_answers(model, val, self.base.seed, fit_index)
        with tempfile.TemporaryDirectory(prefix="eirnn-fit-") as scratch:
            for name, asked in answers.items():
                save_answers(asked, Path(scratch) / name)
            client.log_artifacts(outcome.run_id, scratch, ANSWERS_DIR)


@dataclass
class EnsembleJob:
    """Everything one worker process needs; picklable, since local workers are spawned."""

    ensemble_name: str
    storage: str
    config: TrainConfig
    parent_run_id: str
    dataset: Any
    tracking_uri: str
    heartbeat_s: int
    asks_null: bool = False  # the data has a ground truth: each fit's null is asked too


def run_fits(job: EnsembleJob) -> None:
    """Take waiting fits of the ensemble one at a time until none is left unfinished; while other
    workers hold the last fits, keep watching them, so that a fit whose worker died is queued
    again (after the heartbeat grace period) and run here. A fit this worker lost meanwhile
    (paused past the grace: `eirnn.tuning.claims`) is abandoned and the worker goes on."""
    mlflow.set_tracking_uri(job.tracking_uri)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its "best trial" lines mean nothing here
    study = optuna.load_study(study_name=job.ensemble_name, storage=open_storage(job.storage, job.heartbeat_s))
    objective = FitObjective(
        job.config, job.dataset, job.parent_run_id, job.ensemble_name, job.asks_null, job.heartbeat_s
    )
    while unfinished_fits(study, job.parent_run_id):
        fail_dead_trials(study)
        if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            with going_on_after_a_lost_claim():
                study.optimize(objective, n_trials=1, catch=(Exception,))
        else:
            time.sleep(POLL_S)
