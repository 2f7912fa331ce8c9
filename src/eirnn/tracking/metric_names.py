"""The one table from the science core's metric names to the names logged in MLflow.

The core's history and summaries say `train_loss`, `val_psth_corr`, `psth_corr`, ... MLflow's UI
groups a run's charts by the prefix before `/` and lists the groups alphabetically, so the
logged names carry a prefix chosen for that order: `final/` (the scores of the best weights, one
value each) before `train/` and `val/` (per-epoch curves, step = epoch).
Everything that writes or reads metrics in MLflow (the epoch logger, the final metrics, the
registry's champion rule, study summaries, reports, notebooks) goes through this table.
"""

from __future__ import annotations

FINAL_PREFIX = "final/"
STUDY_PREFIX = "study/"

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
    "selection_score": "val/selection_score",
}


def epoch_metric(key: str) -> str:
    """The logged name of a per-epoch history key."""
    return EPOCH_METRICS[key]


def final_metric(key: str) -> str:
    """The logged name of a one-value result: an evaluation scalar or a fit fact."""
    return FINAL_PREFIX + key


def study_metric(key: str) -> str:
    """The logged name of a study summary value on the study's parent run."""
    return STUDY_PREFIX + key


# fit facts that are counts, flags or durations: run tags `eirnn.fit.<key>`, not metrics, so that
# they read as numbers on the run page instead of drawing a one-bar chart each
FIT_TAGS = ("best_epoch", "total_epochs", "early_stopped", "training_seconds", "stop_reason", "stop_detail")
FIT_TAG_PREFIX = "eirnn.fit."


def fit_tag(key: str) -> str:
    return FIT_TAG_PREFIX + key


# the champion rule: the best epoch's validation score of the run's `selection_metric`
SELECTION_METRIC = final_metric("best_selection_score")
CEILING_METRIC = final_metric("noise_ceiling")
