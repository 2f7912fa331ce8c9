"""Command-line options of `eirnn ensemble`; kept free of optuna so that `eirnn --help` stays fast."""

from __future__ import annotations

import argparse

from eirnn.config import ConfigError, add_config_arguments, parse_bool
from eirnn.tuning.launcher import add_launcher_arguments

# fits skip figures to keep the ensemble light (the parent's report shows what they agree on)
ENSEMBLE_DEFAULTS = {"log_figures": False}
# shorter than a study's (eirnn.tuning.tune_options.HEARTBEAT_S): the ensemble's answer waits for
# every fit, while a study goes on with its other trials
ENSEMBLE_HEARTBEAT_S = 30


def parse_ratios(text: str) -> tuple[float, ...]:
    """'4,3,5' -> (4.0, 3.0, 5.0); empty -> ()."""
    try:
        ratios = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"ei-ratios: expected numbers separated by commas, found {text!r}") from None
    if any(ratio <= 0 for ratio in ratios):
        raise ConfigError(f"ei-ratios: expected ratios > 0, found {text!r}")
    return ratios


def add_ensemble_arguments(parser: argparse.ArgumentParser) -> None:
    ensemble = parser.add_argument_group("ensemble settings")
    ensemble.add_argument("--n-fits", type=int, default=8, help="fits in the ensemble (model seeds seed, seed+1, ...)")
    ensemble.add_argument(
        "--n-workers",
        type=int,
        default=1,
        help="worker processes: local, one thread each; or SLURM jobs with --launcher slurm",
    )
    ensemble.add_argument(
        "--bootstrap-trials",
        type=parse_bool,
        default=False,
        help="each fit trains on its own resample of the training trials (validation trials fixed)",
    )
    ensemble.add_argument(
        "--ei-ratios",
        default="",
        help="E:I ratios the fits cycle through, e.g. '4,3,5': the hidden-unit count varies with them "
        "(empty = --ei-ratio for every fit)",
    )
    ensemble.add_argument(
        "--storage",
        default="",
        help="Optuna RDB storage URL of the fits (postgresql://... for several machines); "
        "empty = eirnn-ensembles.db (SQLite) beside the tracking store",
    )
    ensemble.add_argument(
        "--heartbeat-seconds",
        type=int,
        default=ENSEMBLE_HEARTBEAT_S,
        help="a fit silent for twice this long is taken as dead and re-run",
    )
    ensemble.add_argument(
        "--parent-run-id", default="", help="run fits of the ensemble with this parent run (a worker elsewhere)"
    )
    for action in ensemble._group_actions:
        if "(default" not in action.help:
            action.help += ' (default: "")' if action.default == "" else " (default: %(default)s)"
    add_launcher_arguments(parser)
    add_config_arguments(parser, defaults=ENSEMBLE_DEFAULTS)
