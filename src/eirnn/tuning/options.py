"""Command-line options of `eirnn tune`; kept free of optuna so that `eirnn --help` stays fast."""
from __future__ import annotations

import argparse

from eirnn.config import add_config_arguments

PRUNERS = ("median", "hyperband", "none")


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study-name", default="eirnn", help="Optuna study; re-running a name resumes it")
    parser.add_argument("--n-trials", type=int, default=20, help="trials to run in this invocation (all workers)")
    parser.add_argument("--n-workers", type=int, default=1, help="local worker processes on one study")
    parser.add_argument(
        "--storage",
        default="",
        help="Optuna storage URL (postgresql://... for several machines); empty = a journal file beside the tracking store",
    )
    parser.add_argument("--search-space", default="", help="YAML file overriding the default search space")
    parser.add_argument("--pruner", default="median", choices=PRUNERS, help="trial pruner")
    parser.add_argument("--parent-run-id", default="", help="attach trials to this MLflow parent run")
    add_config_arguments(parser)
