"""The names a run is recorded under: the one table from the science core's metric names to
the logged metric names, and every tag name a run, a study or a registered version carries.

The core's history and summaries say `train_loss`, `val_psth_corr`, `psth_corr`, ... MLflow's UI
groups a run's charts by the prefix before `/` and lists the groups alphabetically, so the
logged names carry a prefix chosen for that order: `final/` (the scores of the best weights, one
value each) before `train/` and `val/` (per-epoch curves, step = epoch).
Everything that writes or reads metrics or tags in MLflow (the epoch logger, the final metrics,
the registry's champion rule, study summaries, reports, notebooks) takes the names from here; the
module imports nothing, so the core's report can print the logged names without MLflow.
"""

from __future__ import annotations

FINAL_PREFIX = "final/"
STUDY_PREFIX = "study/"
ENSEMBLE_PREFIX = "ensemble/"

# per-epoch history key -> logged name (the learning rate per epoch: `lr_schedule` changes it)
EPOCH_METRICS = {
    "train_loss": "train/loss",
    "epoch_seconds": "train/epoch_seconds",
    "learning_rate": "train/learning_rate",
    "val_loss": "val/loss",
    "val_psth_corr": "val/psth_corr",
    "val_psth_corr_E": "val/psth_corr_E",
    "val_psth_corr_I": "val/psth_corr_I",
    "val_cond_psth_corr": "val/cond_psth_corr",
    "val_bits_per_spike": "val/bits_per_spike",
    "val_co_bps": "val/co_bps",
    "selection_score": "val/selection_score",
}
# logged only by runs with held-out neurons (`heldout_neurons`), every epoch of those
HELDOUT_EPOCH_METRICS = frozenset({"val_co_bps"})


def epoch_metric(key: str) -> str:
    """The logged name of a per-epoch history key."""
    return EPOCH_METRICS[key]


def final_metric(key: str) -> str:
    """The logged name of a one-value result: an evaluation scalar or a fit fact."""
    return FINAL_PREFIX + key


def study_metric(key: str) -> str:
    """The logged name of a study summary value on the study's parent run."""
    return STUDY_PREFIX + key


def ensemble_metric(key: str) -> str:
    """The logged name of an ensemble summary value on the ensemble's parent run (coverage,
    calibration against a ground truth: docs/metrics.md, "Ensembles")."""
    return ENSEMBLE_PREFIX + key


# fit facts that are counts, flags or durations: run tags `eirnn.fit.<key>`, not metrics, so that
# they read as numbers on the run page instead of drawing a one-bar chart each
FIT_TAGS = ("best_epoch", "total_epochs", "early_stopped", "training_seconds", "stop_reason", "stop_detail")
FIT_TAG_PREFIX = "eirnn.fit."


def fit_tag(key: str) -> str:
    return FIT_TAG_PREFIX + key


# the champion rule: the best epoch's validation score of the run's `selection_metric`
SELECTION_METRIC = final_metric("best_selection_score")

# tags of a training run
ERROR_TAG = "eirnn.error"  # the error that ended a run FAILED (or KILLED)
TRACEBACK_TAG = "eirnn.traceback"
RESUME_TAG = "eirnn.resume"  # the command that continues an interrupted run
CONTINUED_IN_TAG = "eirnn.continued_in"  # on a launcher's run whose work went to the resumed one
DATA_TAG = "eirnn.data"  # the data's file name
VERSION_TAG = "eirnn.version"
GIT_COMMIT_TAG = "eirnn.git_commit"
RUN_NAME_TAG = "mlflow.runName"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI
GIT_SOURCE_TAG = "mlflow.source.git.commit"  # what the UI's Source column shows
SHA256_INPUT_TAG = "eirnn.sha256"  # on a dataset input: the whole file's sha256
STOP_REASON_TAG = fit_tag("stop_reason")

# tags of a study's parent run and its trials
STUDY_TAG = "eirnn.tuning.study"
STORAGE_TAG = "eirnn.tuning.storage"
TRIAL_TAG = "eirnn.tuning.trial"
TRIAL_STATE_TAG = "eirnn.tuning.trial_state"
# on a trial's child run ended KILLED because its worker, alive but paused or starved of CPU past
# the heartbeat grace, lost the trial to another worker (eirnn.tuning.claims): why
ABANDONED_TAG = "eirnn.tuning.abandoned"
STUDY_NOTE_TAG = "eirnn.tuning.note"
BEST_TRIAL_TAG = "eirnn.tuning.best_trial"
BEST_RUN_ID_TAG = "eirnn.tuning.best_run_id"
ENSEMBLE_TAG = "eirnn.ensemble"  # on an ensemble's parent and every fit: the ensemble's name
FIT_TAG = "eirnn.ensemble.fit"  # on a fit's child run: its fit index
ENSEMBLE_VERSION_TAG = "eirnn.ensemble.n_fits"  # on a registered model version that is an ensemble

# tags of a registered model version: what the champion rule compares
SELECTION_METRIC_TAG = "selection_metric"
DATA_SHA256_TAG = "data_sha256"
SCORE_TAG = "selection_score"

# the scores of perturbation trials (docs/perturbations.md), one value each, logged as final/<key>:
# evaluation's control/perturbed scores and the true circuit's trained/held-out perturbation types
PERTURBATION_METRICS = (
    "control_cond_psth_corr",
    "perturbed_cond_psth_corr",
    "gt_heldout_perturbation_corr",
    "gt_heldout_perturbation_sign_agreement",
    "gt_trained_perturbation_corr",
    "gt_trained_perturbation_sign_agreement",
    "gt_null_heldout_perturbation_corr",
    "gt_null_trained_perturbation_corr",
)
