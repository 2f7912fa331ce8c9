"""Wall time and best score of Optuna studies on the built-in recording, and each trial's overhead.

`study` runs seeded studies with the default search space and `eirnn tune`'s defaults
(max_epochs 2000, early stopping on, a 15% test split, trial 0 = the given settings unless
`--first-trial sampled`), one per `--pruners` entry, on `--workers` local worker processes of one
torch thread each, into a temporary tracking store, and prints every trial and, per study: trials
complete / pruned / failed, epochs trained, wall time, the CPU seconds of the lead and its
workers, the data's noise ceiling and the best trial's selection score
(`eirnn.tuning.settings.OBJECTIVE_METRIC`), against the best of a `--reference` study (an
earlier run's JSON, e.g. a long one without pruning). `overhead` times the parts of one trial
that are not epochs (evaluation, run folder, figures and report, model logging, the rest of the
run's bookkeeping), wall and CPU seconds, in this process with one epoch. `layout` measures the
machine's epochs per second of a trial's training loop with one worker on every core against
one single-threaded worker per core, started together.

    python benchmarks/bench_tuning.py study --trials 20 --workers 2 --pruners halving
    python benchmarks/bench_tuning.py study --pruners none --out bench_tuning_reference.json
    python benchmarks/bench_tuning.py study --reference benchmarks/results/bench_tuning_reference.json
    python benchmarks/bench_tuning.py overhead
    python benchmarks/bench_tuning.py layout      # 1 worker x 2 threads against 2 workers x 1 thread
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import mlflow
import optuna
import torch

import eirnn.tracking.run as tracking_run
import eirnn.training_run as training_run
from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.logged_names import epoch_metric
from eirnn.tuning.options import TUNE_DEFAULTS
from eirnn.tuning.settings import OBJECTIVE_METRIC, PrunerSettings, StudySettings
from eirnn.tuning.storage import open_storage
from eirnn.tuning.study import run_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, load_average

RESULTS = Path(__file__).resolve().parent / "results"


def temporary_store(folder: str) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    # artifacts default to ./mlruns of the working folder: keep them in the temporary one
    mlflow.tracking.MlflowClient().create_experiment("bench", artifact_location=f"{folder}/artifacts")


def cpu_seconds_so_far() -> float:
    """User and system CPU seconds of this process and of its finished worker processes: the
    work a study did, which a busy machine stretches in wall time but not in CPU time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_study(dataset, pruner: str, args: argparse.Namespace) -> dict:
    n_workers, max_epochs = args.workers, args.max_epochs
    with contextlib.ExitStack() as stack:
        folder = args.keep_in or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tuning-"))
        Path(folder).mkdir(parents=True, exist_ok=True)
        temporary_store(folder)
        config = TrainConfig(**TUNE_DEFAULTS, threads=1, seed=args.seed, experiment_name="bench", max_epochs=max_epochs)
        settings = StudySettings(
            study_name=f"bench-{pruner}",
            n_trials=args.trials,
            n_workers=n_workers,
            pruner=PrunerSettings(pruner),
            first_trial=args.first_trial,
        )
        load_before = load_average()
        started_at = datetime.now()
        started, cpu_started = time.perf_counter(), cpu_seconds_so_far()
        outcome = run_study(config, settings, dataset=dataset)
        wall_s, cpu_s = time.perf_counter() - started, cpu_seconds_so_far() - cpu_started
        trials = optuna.load_study(study_name=settings.study_name, storage=open_storage("")).trials
        client = mlflow.tracking.MlflowClient()
        run_ids = [trial.user_attrs["mlflow_run_id"] for trial in trials if "mlflow_run_id" in trial.user_attrs]
        epoch_seconds_name = epoch_metric("epoch_seconds")
        epoch_seconds = [
            metric.value for run_id in run_ids for metric in client.get_metric_history(run_id, epoch_seconds_name)
        ]
    states = [trial.state.name for trial in trials]
    return {
        "trial_table": [_trial_row(trial, started_at) for trial in trials],
        "pruner": pruner,
        "first_trial": args.first_trial,
        "workers": n_workers,
        "threads_per_worker": 1,
        "max_epochs": max_epochs,
        "trials": len(trials),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "epochs_trained": len(epoch_seconds),
        "median_epoch_s": statistics.median(epoch_seconds) if epoch_seconds else float("nan"),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "best_value": outcome.best_value,
        "best_params": outcome.best_params,
        "best_validation_scores": outcome.best_validation_scores,
        "best_test_scores": outcome.best_test_scores,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def _trial_row(trial, study_started: datetime) -> dict:
    """One trial as the study left it: state, epochs trained, best score, when it ran (seconds
    after the study started) and its sampled settings."""
    ended = trial.datetime_complete or datetime.now()
    return {
        "number": trial.number,
        "state": trial.state.name,
        "epochs": (trial.last_step + 1) if trial.last_step is not None else 0,
        "value": trial.value if trial.value is not None else trial.intermediate_values.get(trial.last_step),
        "start_s": (trial.datetime_start - study_started).total_seconds() if trial.datetime_start else None,
        "end_s": (ended - study_started).total_seconds(),
        "params": trial.params,
    }


class _Stopwatch:
    """Wall and CPU seconds spent inside wrapped functions, by name."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def wrap(self, module, name: str, label: str) -> None:
        inner = getattr(module, name)

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - wall
                self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - cpu

        setattr(module, name, timed)


def measure_overhead(dataset, repeats: int) -> dict:
    """The parts of `train_and_log` around the epochs, for a one-epoch trial as a study runs it."""
    watch = _Stopwatch()
    for module, name, label in (
        (training_run, "fit", "training (1 epoch + validation)"),
        (training_run, "evaluate", "evaluation (metrics, noise ceiling)"),
        (training_run, "write_run_folder", "run folder (weights, outputs, arrays)"),
        (training_run, "write_figures_and_report", "figures (off in studies) and report"),
        (tracking_run, "_log_model", "model logging (mlflow.pytorch)"),
    ):
        watch.wrap(module, name, label)
    config = TrainConfig(max_epochs=1, threads=1, log_figures=False, experiment_name="bench")
    totals_wall, totals_cpu = 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as folder:
        temporary_store(folder)
        tracking_run.train_and_log(config, dataset=dataset, register=False)  # imports, first-call costs
        watch.wall.clear()
        watch.cpu.clear()
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            tracking_run.train_and_log(config, dataset=dataset, register=False)
            totals_wall += time.perf_counter() - wall
            totals_cpu += time.process_time() - cpu
    parts = {label: (watch.wall[label] / repeats, watch.cpu[label] / repeats) for label in watch.wall}
    parts["run bookkeeping (params, tags, metrics, end)"] = (
        totals_wall / repeats - sum(wall for wall, _ in parts.values()),
        totals_cpu / repeats - sum(cpu for _, cpu in parts.values()),
    )
    parts["whole trial"] = (totals_wall / repeats, totals_cpu / repeats)
    return {label: {"wall_s": wall, "cpu_s": cpu} for label, (wall, cpu) in parts.items()}


def _fit_epochs(threads: int, epochs: int) -> float:
    """Seconds for `epochs` epochs of a trial's training loop (epoch, validation, early-stopping
    bookkeeping; no tracking) on the built-in recording with `threads` torch threads."""
    from eirnn.pipeline import prepare
    from eirnn.training import fit

    config = TrainConfig(**TUNE_DEFAULTS, threads=threads, max_epochs=epochs, patience=epochs)
    prepared = prepare(config)
    started = time.perf_counter()
    fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    return time.perf_counter() - started


def measure_layout(epochs: int, rounds: int, cores: int) -> list[dict]:
    """Epochs per second of the whole machine: one process on `cores` threads against `cores`
    processes on one thread each, started together; the two layouts alternate `rounds` times."""
    rows = []
    for round_number in range(rounds):
        for workers in (1, cores):
            threads = cores // workers
            command = [sys.executable, __file__, "fit-epochs", "--threads", str(threads), "--epochs", str(epochs)]
            started = time.perf_counter()
            processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
            seconds = [float(process.communicate()[0].split()[-1]) for process in processes]
            wall = time.perf_counter() - started
            rows.append(
                {
                    "round": round_number,
                    "workers": workers,
                    "threads_per_worker": threads,
                    "fit_seconds": seconds,
                    "epochs_per_second": workers * epochs / max(seconds),
                    "wall_s_with_start": wall,
                }
            )
    return rows


def _reference_best(path: str) -> float | None:
    if not path:
        return None
    rows = json.loads(Path(path).read_text())["results"]
    values = [row["best_value"] for row in rows if row["best_value"] is not None]
    return max(values) if values else None


def _print_trials(row: dict) -> None:
    print(f"\n{row['pruner']}: trial, state, epochs, best score, start and end (s after the study began)")
    for trial in row["trial_table"]:
        value = "-" if trial["value"] is None else f"{trial['value']:.4f}"
        settings = ", ".join(
            f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in trial["params"].items()
        )
        print(
            f"  {trial['number']:>3} {trial['state']:<8} {trial['epochs']:>5} {value:>7} "
            f"{trial['start_s']:>6.0f} {trial['end_s']:>6.0f}  {settings}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["study", "overhead", "layout", "fit-epochs"])
    parser.add_argument("--epochs", type=int, default=60, help="epochs per process for `layout`")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two layouts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of `fit-epochs` (internal)")
    parser.add_argument("--trials", type=int, default=20, help="trials per study")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (one torch thread each)")
    parser.add_argument("--pruners", nargs="+", default=["halving"], help="one study per pruner")
    parser.add_argument("--max-epochs", type=int, default=TrainConfig().max_epochs)
    parser.add_argument("--first-trial", default="given", choices=["given", "sampled"], help="as eirnn tune's")
    parser.add_argument(
        "--reference", default="", help="JSON written by an earlier `study` run (a long one): its best is the reference"
    )
    parser.add_argument("--out", default="", help="name of the JSON in results/ (default: bench_tuning_PART.json)")
    parser.add_argument("--repeats", type=int, default=3, help="trials timed by `overhead`")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-in", default="", help="folder for the studies' stores (default: temporary)")
    args = parser.parse_args()
    if args.part == "fit-epochs":  # one process of `layout`
        print(_fit_epochs(args.threads, args.epochs))
        return
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    machine = describe_machine()
    dataset, _ = make_recording(seed=0)
    print(f"CPU {machine['cpu']}, {machine['cpu_count']} cores, load {load_average()}; built-in recording")

    if args.part == "layout":
        cores = machine["cpu_count"]
        rows = measure_layout(args.epochs, args.rounds, cores)
        print(f"\n{args.epochs} epochs per process (epoch + validation, no tracking), {args.rounds} rounds")
        print(f"{'layout':<22} {'epochs/s of the machine (each round)':<40} median")
        for workers in (1, cores):
            rates = [row["epochs_per_second"] for row in rows if row["workers"] == workers]
            layout = f"{workers} x {cores // workers} thread(s)"
            shown = ", ".join(f"{rate:.2f}" for rate in rates)
            print(f"{layout:<22} {shown:<40} {statistics.median(rates):.2f}")
        report = {"machine": machine, "epochs": args.epochs, "rows": rows}
    elif args.part == "overhead":
        parts = measure_overhead(dataset, args.repeats)
        print(f"\none trial of 1 epoch, mean of {args.repeats}: {'wall s':>8} {'CPU s':>8}")
        for label, seconds in parts.items():
            print(f"  {label:<46} {seconds['wall_s']:>8.2f} {seconds['cpu_s']:>8.2f}")
        report = {"machine": machine, "repeats": args.repeats, "parts": parts}
    else:
        reference = _reference_best(args.reference)
        rows = []
        for pruner in args.pruners:
            row = measure_study(dataset, pruner, args)
            if reference is not None and row["best_value"] is not None:
                row["below_reference"] = reference - row["best_value"]
            rows.append(row)
            _print_trials(row)
        print(f"\n{args.trials} trials, {args.workers} workers x 1 thread, default search space, first trial")
        print(f"{args.first_trial}, objective {OBJECTIVE_METRIC} (cond_psth_corr); max_epochs {args.max_epochs}")
        print(
            f"{'pruner':<9} {'done':>5} {'pruned':>6} {'failed':>6} {'epochs':>6} {'s/epoch':>8} {'wall s':>7} "
            f"{'CPU s':>7} {'ceiling':>7} best"
        )
        for row in rows:
            best = "none" if row["best_value"] is None else f"{row['best_value']:.4f}"
            if "below_reference" in row:
                best += f" ({row['below_reference']:+.4f} below the reference {reference:.4f})"
            ceiling = row["best_validation_scores"].get("cond_noise_ceiling", float("nan"))
            print(
                f"{row['pruner']:<9} {row['complete']:>5} {row['pruned']:>6} {row['failed']:>6} "
                f"{row['epochs_trained']:>6} {row['median_epoch_s']:>8.3f} {row['wall_s']:>7.0f} {row['cpu_s']:>7.0f} "
                f"{ceiling:>7.4f} {best}"
            )
        report = {"machine": machine, "settings": vars(args), "objective": OBJECTIVE_METRIC, "results": rows}
    report["date"] = datetime.now().isoformat(timespec="minutes")
    out = RESULTS / (args.out or f"bench_tuning_{args.part}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
