"""The `eirnn` command. Subcommands import their heavy modules (torch, MLflow, Optuna) only when
they run, so `eirnn --help` answers at once."""

from __future__ import annotations

import argparse
import difflib
import re
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


class EirnnParser(argparse.ArgumentParser):
    """No abbreviated flags (a prefix that works today breaks when a flag is added), and a
    "did you mean" for a mistyped subcommand, choice or flag."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def flags(self) -> list[str]:
        return [option for action in self._actions for option in action.option_strings]

    def error(self, message: str) -> None:  # type: ignore[override]
        invalid = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if invalid:
            choices = re.findall(r"'([^']*)'", invalid.group(2)) or invalid.group(2).split(", ")
            message += suggestion(invalid.group(1), choices)
        super().error(message)


def suggestion(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _reject_unknown(parser: EirnnParser, extras: list[str]) -> None:
    hints = [f"{extra}{suggestion(extra.split('=')[0], parser.flags())}" for extra in extras if extra.startswith("--")]
    parser.error("unrecognized arguments: " + (" ".join(hints) if hints else " ".join(extras)))


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="data file (.nwb, .npz, .mat v5 or v7.3)")
    other_settings = tuple(spec.name for spec in fields(TrainConfig) if spec.name not in DATA_SETTINGS)
    add_config_arguments(parser, skip=other_settings)


class _DataSummaryPrinter:
    """Prints the data and model summary once the run has prepared them, before training."""

    def __init__(self, config) -> None:
        self.config = config

    def on_prepared(self, prepared, _facts) -> None:
        from eirnn import console

        console.print_block(console.data_summary(prepared, self.config))


def _train(args: argparse.Namespace) -> int:
    if args.no_tracking:
        return _train_into_folder(args)
    from eirnn import console
    from eirnn.tracking.mlflow_run import train_and_log
    from eirnn.tracking.resume import resume_command
    from eirnn.training import TrainingInterrupted

    config = config_from_args(args)
    console.quiet_tracking_logs()
    try:
        outcome = train_and_log(config, sinks=[_DataSummaryPrinter(config)])
    except TrainingInterrupted as stopped:
        import mlflow

        run = mlflow.last_active_run()
        how = (
            f"; continue with: {resume_command(run.info.run_id)}"
            if run and stopped.checkpoint_epoch is not None
            else ""
        )
        print(f"eirnn train: {stopped}; the run is KILLED{how}", file=sys.stderr)
        return stopped.exit_code
    console.print_block(console.closing_block(outcome.summary))
    return 0


def _train_into_folder(args: argparse.Namespace) -> int:
    from eirnn import console
    from eirnn.training_run import train_into_folder

    config = config_from_args(args)
    if config.resume:
        raise ConfigError("--resume continues a tracked run: it needs tracking (drop --no-tracking)")
    result = train_into_folder(config, args.out or None, sinks=[_DataSummaryPrinter(config)])
    console.print_block(console.folder_closing_block(result))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from eirnn.data.binned_files import write_dataset
    from eirnn.data.nwb_write import write_nwb
    from eirnn.data.synthetic import make_recording
    from eirnn.data.truth_file import write_truth

    sizes = {name: getattr(args, name) for name in ("n_trials", "n_bins", "n_e", "n_i") if getattr(args, name)}
    teacher = {"fully_observed": args.fully_observed}
    if args.spectral_radius:
        teacher["spectral_radius"] = args.spectral_radius
    perturbations = dict(
        perturbation_fraction=args.perturbation_fraction, perturbations_per_trial=args.perturbations_per_trial
    )
    dataset, truth = make_recording(seed=args.seed, **perturbations, **sizes, **teacher)
    (write_nwb if args.out.lower().endswith(".nwb") else write_dataset)(dataset, args.out)
    print(f"wrote {args.out} and its true circuit {write_truth(truth, args.out)}")
    print(dataset.summary())
    return 0


def _summary(args: argparse.Namespace) -> int:
    from eirnn.data import load_dataset

    dataset = load_dataset(args.path, **config_from_args(args).data_options())
    print(dataset.summary())
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    if Path(args.run_id).is_dir():
        from eirnn.report import rebuild_report

        folder = Path(args.run_id)
        out = rebuild_report(folder, args.out or f"report-{folder.resolve().name}")
    else:
        from eirnn.tracking.report_from_run import rebuild_report_of_run

        out = rebuild_report_of_run(args.run_id, args.out)
    print(f"report written to {out} and {out.with_suffix('.html')}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from eirnn import console
    from eirnn.pipeline import load_configured_data
    from eirnn.tuning.study import run_study_from_args

    console.quiet_tracking_logs()
    config = config_from_args(args)
    dataset = load_configured_data(config)
    console.print_block(console.study_data_summary(dataset, config))
    run_study_from_args(args, dataset=dataset)
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from eirnn import console
    from eirnn.tuning.ensemble import run_ensemble_from_args

    console.quiet_tracking_logs()
    run_ensemble_from_args(args)
    return 0


def _ui(args: argparse.Namespace) -> int:
    from eirnn.tracking.ui import serve_ui

    return serve_ui(args.experiment_name, host=args.host, port=args.port, open_browser=args.open)


def build_parser() -> argparse.ArgumentParser:
    from eirnn.tuning.ensemble_options import add_ensemble_arguments
    from eirnn.tuning.tune_options import add_tune_arguments

    parser = EirnnParser(
        prog="eirnn", description="Fit excitatory/inhibitory (Dale's-law) RNNs to neural recordings, tracked in MLflow."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and log it to MLflow")
    add_config_arguments(train)
    tracking = next(group for group in train._action_groups if group.title == "tracking settings")
    tracking.add_argument(
        "--no-tracking",
        action="store_true",
        help="no MLflow run: write the run folder (metrics, figures, report.md, model) to --out",
    )
    tracking.add_argument(
        "--out", default="", help="with --no-tracking: the run folder (default: eirnn-runs/NAME-TIME)"
    )
    train.set_defaults(handler=_train)

    simulate = commands.add_parser("simulate", help="write the built-in synthetic recording to a file")
    simulate.add_argument("--out", required=True, help="output file, .mat (neurons x time x trials), .npz or .nwb")
    simulate.add_argument("--seed", type=int, default=0)
    for name in ("n_trials", "n_bins", "n_e", "n_i"):
        simulate.add_argument("--" + name.replace("_", "-"), type=int, default=0, help="size (0 = default)")
    simulate.add_argument(
        "--fully-observed", action="store_true", help="record every unit of the network (default: half of them)"
    )
    simulate.add_argument(
        "--spectral-radius",
        type=float,
        default=0.0,
        help="spectral radius of the true recurrent matrix, e.g. 1.5 for strong recurrence (0 = default 0.9)",
    )
    simulate.add_argument(
        "--perturbation-fraction",
        type=float,
        default=0.0,
        help="share of trials with optogenetic perturbations (docs/perturbations.md; default: none)",
    )
    simulate.add_argument(
        "--perturbations-per-trial",
        type=int,
        default=1,
        help="perturbations of different types in each perturbed trial, at once (default 1)",
    )
    simulate.set_defaults(handler=_simulate)

    summary = commands.add_parser("summary", help="load and validate a data file, print its summary")
    _add_data_arguments(summary)
    summary.set_defaults(handler=_summary)

    report = commands.add_parser("report", help="rebuild figures and report.md from a finished run")
    report.add_argument("run_id", help="an MLflow run id, or the folder of a run trained with --no-tracking")
    report.add_argument("--out", default="", help="output folder (default: report-RUN_ID or report-FOLDER)")
    report.set_defaults(handler=_report)

    tune = commands.add_parser("tune", help="run an Optuna study of nested MLflow runs")
    add_tune_arguments(tune)
    tune.set_defaults(handler=_tune)

    ensemble = commands.add_parser(
        "ensemble", help="fit the same data several times and report which circuit answers the fits agree on"
    )
    add_ensemble_arguments(ensemble)
    ensemble.set_defaults(handler=_ensemble)

    ui = commands.add_parser("ui", help="start the MLflow UI on this tracking store and print the experiment's address")
    ui.add_argument("--experiment-name", default="eirnn", help="experiment to open (default: %(default)s)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    ui.add_argument("--port", type=int, default=5000, help="port; taken: the next free one (default: %(default)s)")
    ui.add_argument("--open", action="store_true", help="open the address in the default web browser")
    ui.set_defaults(handler=_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(join_negative_values(list(sys.argv[1:] if argv is None else argv)))
    if extras:
        _reject_unknown(parser._subparsers._group_actions[0].choices[args.command], extras)
    try:
        return args.handler(args)
    except (ConfigError, ValueError) as error:
        # DatasetError and ConfigError are ValueErrors with a one-line message meant for the user
        print(f"eirnn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stopped:  # Ctrl-C, or SIGTERM during training (TrainingInterrupted)
        print(f"eirnn {args.command}: stopped{f' ({stopped})' if str(stopped) else ''}", file=sys.stderr)
        return getattr(stopped, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
