"""What `eirnn tune` adds to a TrainConfig (study, pruner), what it returns, and the trial
attributes it writes (its tags are in `eirnn.logged_names`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna

from eirnn.config import ConfigError
from eirnn.logged_names import SELECTION_METRIC
from eirnn.tuning.launcher import SlurmSettings
from eirnn.tuning.search_space import SearchSpace
from eirnn.tuning.tune_options import HEARTBEAT_S, PRUNERS

# per epoch, the validation score of TrainConfig.selection_metric; a trial's value is its best
OBJECTIVE_METRIC = "selection_score"
# the study's objective, named as the MLflow metric it equals (shown in optuna-dashboard)
OBJECTIVE_NAME = SELECTION_METRIC

PARENT_RUN_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
MODEL_URI_ATTR = "model_uri"
# the process that runs a trial, "host:pid": a lead whose local worker was killed finds its trial by it
WORKER_ATTR = "eirnn.worker"

ARTIFACT_DIR = "tuning"
HALVING_FACTOR = 3  # successive halving keeps a third of the trials at each rung
#: study user attribute: the settings every worker of the study must share
FIXED_SETTINGS_ATTR = "eirnn.fixed_settings"


@dataclass
class PrunerSettings:
    """`kind`: halving, median, hyperband or none.

    Halving (asynchronous successive halving) lets a trial past epoch `warmup_epochs` x 3^k only
    if its correlation there is in the top third of the trials that got that far: with the
    default rungs at 50, 150, 450 and 1350 of 2000 epochs most trials stop at 50 epochs, and
    the few promising ones train to their early stop. Hyperband runs such halving brackets at
    several starting rungs (safer for slow starters, more epochs). Median prunes a trial whose
    correlation at an epoch is below the median of earlier trials at that epoch, once
    `startup_trials` trials have finished and from epoch `warmup_epochs` on. `warmup_epochs`
    None means max_epochs / 40 for halving and hyperband, max_epochs / 10 for median."""

    kind: str = "halving"
    startup_trials: int = 5
    warmup_epochs: int | None = None

    def first_rung(self, max_epochs: int) -> int:
        if self.warmup_epochs is not None:
            return max(1, self.warmup_epochs)
        return max(1, max_epochs // (10 if self.kind == "median" else 40))

    def build(self, max_epochs: int) -> optuna.pruners.BasePruner:
        first_rung = self.first_rung(max_epochs)
        if self.kind == "halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung, reduction_factor=HALVING_FACTOR)
        if self.kind == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=first_rung)
        if self.kind == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=first_rung, max_resource=max_epochs, reduction_factor=HALVING_FACTOR
            )
        if self.kind == "none":
            return optuna.pruners.NopPruner()
        raise ConfigError(f"pruner: expected one of {', '.join(PRUNERS)}, found {self.kind!r}")


@dataclass
class StudySettings:
    """What `eirnn tune` adds to a TrainConfig. `n_trials` counts the trials of this invocation,
    shared across its `n_workers` local processes (SLURM jobs with launcher "slurm"); `storage` is an RDB URL (postgresql://...,
    sqlite:///...) or a journal file path (empty: see `resolve_storage`)."""

    study_name: str = "eirnn"
    n_trials: int = 20
    n_workers: int = 1
    storage: str = ""
    search_space: SearchSpace | None = None
    pruner: PrunerSettings = field(default_factory=PrunerSettings)
    first_trial: str = "given"  # trial 0 of a new study: the given settings, or sampled (eirnn.tuning.first_trial)
    parent_run_id: str = ""
    heartbeat_s: int = HEARTBEAT_S
    launcher: str = "local"  # local processes, or SLURM jobs of `slurm` (eirnn.tuning.slurm_workers)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)


@dataclass
class StudyOutcome:
    study_name: str
    parent_run_id: str
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    champion_version: str | None = None
    best_validation_scores: dict[str, float] = field(default_factory=dict)
    best_test_scores: dict[str, float] = field(default_factory=dict)  # the honest estimate: unseen by selection
