"""Command-line options of `eirnn tune`; kept free of optuna so that `eirnn --help` stays fast."""

from __future__ import annotations

import argparse

from eirnn.config import add_config_arguments
from eirnn.tuning.launcher import add_launcher_arguments

PRUNERS = ("halving", "median", "hyperband", "none")
FIRST_TRIAL_CHOICES = ("given", "sampled")
HEARTBEAT_S = 60  # a trial silent for twice this long is taken as dead
# settings whose tune default differs from training's: trials skip figures to keep studies light, and
# a study holds out a test split, since picking the best of many trials inflates its validation score
TUNE_DEFAULTS = {"log_figures": False, "test_fraction": 0.15}


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    tuning = parser.add_argument_group("tuning settings")
    tuning.add_argument("--study-name", default="eirnn", help="Optuna study; re-running a name resumes it")
    tuning.add_argument("--n-trials", type=int, default=20, help="trials to run in this invocation (all workers)")
    tuning.add_argument(
        "--n-workers",
        type=int,
        default=1,
        help="worker processes on one study (local, or SLURM jobs with --launcher slurm)",
    )
    tuning.add_argument(
        "--storage",
        default="",
        help="Optuna storage: a database URL (postgresql://... for several machines) or a journal file; "
        "empty = optuna.journal beside the tracking store",
    )
    tuning.add_argument("--search-space", default="", help="YAML file overriding the default search space")
    tuning.add_argument(
        "--pruner",
        default="halving",
        choices=PRUNERS,
        help="trial pruner: successive halving (keeps the top third at epochs 50, 150, 450, ...), "
        "median, hyperband or none",
    )
    tuning.add_argument(
        "--first-trial",
        default="given",
        choices=FIRST_TRIAL_CHOICES,
        help="trial 0 of a new study: given = the settings of these flags (TrainConfig defaults where not "
        "given), moved into the search space where they lie outside it; sampled = drawn like the rest",
    )
    tuning.add_argument("--pruner-startup-trials", type=int, default=5, help="trials before the median pruner prunes")
    tuning.add_argument(
        "--pruner-warmup-epochs",
        type=int,
        default=None,
        help="epochs before a trial can be pruned: the first rung of halving and hyperband "
        "(default: max_epochs / 40), the warm-up of median (default: max_epochs / 10)",
    )
    tuning.add_argument(
        "--heartbeat-seconds",
        type=int,
        default=HEARTBEAT_S,
        help="database storage: a trial silent for twice this long is taken as dead, failed and re-run",
    )
    tuning.add_argument("--parent-run-id", default="", help="attach trials to this MLflow parent run")
    for action in tuning._group_actions:
        if "(default" not in action.help:
            action.help += ' (default: "")' if action.default == "" else " (default: %(default)s)"
    add_launcher_arguments(parser)
    add_config_arguments(parser, defaults=TUNE_DEFAULTS)
