"""The `eirnn` command. Subcommands import their heavy modules (torch, MLflow, Optuna) only when
they run, so `eirnn --help` answers at once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields

from eirnn.config import (
    DATA_SETTINGS,
    ConfigError,
    TrainConfig,
    add_config_arguments,
    config_from_args,
    join_negative_values,
)
from eirnn.runtime import configure_for_training


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="data file (.nwb, .npz, .mat v5 or v7.3)")
    other_settings = tuple(spec.name for spec in fields(TrainConfig) if spec.name not in DATA_SETTINGS)
    add_config_arguments(parser, skip=other_settings)


def _train(args: argparse.Namespace) -> int:
    from eirnn.tracking.run import train_and_log

    train_and_log(config_from_args(args))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from eirnn.data.loaders import write_dataset
    from eirnn.data.synthetic import make_recording

    sizes = {name: getattr(args, name) for name in ("n_trials", "n_bins", "n_e", "n_i") if getattr(args, name)}
    dataset, _ = make_recording(seed=args.seed, **sizes)
    write_dataset(dataset, args.out)
    print(f"wrote {args.out}")
    print(dataset.summary())
    return 0


def _summary(args: argparse.Namespace) -> int:
    from eirnn.data import load_dataset

    dataset = load_dataset(args.path, **config_from_args(args).data_options())
    print(dataset.summary())
    return 0


def _report(args: argparse.Namespace) -> int:
    from eirnn.tracking.report_from_run import rebuild_report

    out = rebuild_report(args.run_id, args.out)
    print(f"report written to {out}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from eirnn.tuning.study import run_study_from_args

    run_study_from_args(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from eirnn.tuning.options import add_tune_arguments

    parser = argparse.ArgumentParser(
        prog="eirnn", description="Fit excitatory/inhibitory (Dale's-law) RNNs to neural recordings, tracked in MLflow."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and log it to MLflow")
    add_config_arguments(train)
    train.set_defaults(handler=_train)

    simulate = commands.add_parser("simulate", help="write the built-in synthetic recording to a file")
    simulate.add_argument("--out", required=True, help="output file, .mat (neurons x time x trials) or .npz")
    simulate.add_argument("--seed", type=int, default=0)
    for name in ("n_trials", "n_bins", "n_e", "n_i"):
        simulate.add_argument("--" + name.replace("_", "-"), type=int, default=0, help="size (0 = default)")
    simulate.set_defaults(handler=_simulate)

    summary = commands.add_parser("summary", help="load and validate a data file, print its summary")
    _add_data_arguments(summary)
    summary.set_defaults(handler=_summary)

    report = commands.add_parser("report", help="rebuild figures and report.md from a finished run")
    report.add_argument("run_id")
    report.add_argument("--out", default="", help="output folder (default: report-RUN_ID)")
    report.set_defaults(handler=_report)

    tune = commands.add_parser("tune", help="run an Optuna study of nested MLflow runs")
    add_tune_arguments(tune)
    tune.set_defaults(handler=_tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # before torch loads: large pages, and freed tensor memory kept for the next epoch
    configure_for_training()
    args = build_parser().parse_args(join_negative_values(list(sys.argv[1:] if argv is None else argv)))
    try:
        return args.handler(args)
    except (ConfigError, ValueError) as error:
        # DatasetError and ConfigError are ValueErrors with a one-line message meant for the user
        print(f"eirnn {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
