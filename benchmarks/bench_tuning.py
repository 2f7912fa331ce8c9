"""Trials per hour of an Optuna study, with and without median pruning, on the built-in recording.

Runs the same seeded study twice (default search space, one torch thread, figures off) into a
temporary tracking store: once with the pruner off, once with median pruning. A trial at the
package default (max_epochs=2000) takes tens of minutes, so each trial here is capped at
`--max-epochs`; the table gives the measured rate at that cap and a labelled extrapolation to
`--extrapolate-epochs`, from the measured per-epoch cost, per-trial overhead and the share of
epochs pruning saved. Writes benchmarks/results/bench_tuning.json.

    python benchmarks/bench_tuning.py --trials 6 --max-epochs 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import torch

from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.tuning.study import PrunerSettings, StudySettings, open_storage, run_study

RESULTS = Path(__file__).resolve().parent / "results" / "bench_tuning.json"


def measure(dataset, pruner: PrunerSettings, n_trials: int, max_epochs: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as folder:
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        # artifacts default to ./mlruns of the working folder: keep them in the temporary one
        mlflow.tracking.MlflowClient().create_experiment("bench", artifact_location=f"{folder}/artifacts")
        config = TrainConfig(max_epochs=max_epochs, threads=1, log_figures=False, seed=seed, experiment_name="bench")
        settings = StudySettings(study_name=f"bench-{pruner.kind}", n_trials=n_trials, pruner=pruner)
        started = time.perf_counter()
        run_study(config, settings, dataset=dataset)
        wall_s = time.perf_counter() - started
        trials = optuna.load_study(study_name=settings.study_name, storage=open_storage("")).trials
        client = mlflow.tracking.MlflowClient()
        run_ids = [trial.user_attrs["mlflow_run_id"] for trial in trials if "mlflow_run_id" in trial.user_attrs]
        epoch_seconds = [
            metric.value for run_id in run_ids for metric in client.get_metric_history(run_id, "epoch_seconds")
        ]
    states = [trial.state.name for trial in trials]
    epochs = len(epoch_seconds)
    epoch_s = statistics.mean(epoch_seconds) if epoch_seconds else float("nan")
    return {
        "pruner": pruner.kind,
        "trials": len(trials),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "epochs_trained": epochs,
        "epoch_share": epochs / (len(trials) * max_epochs),
        "mean_epoch_s": epoch_s,
        "overhead_s_per_trial": (wall_s - sum(epoch_seconds)) / len(trials),
        "wall_s": wall_s,
        "trials_per_hour": 3600 * len(trials) / wall_s,
    }


def extrapolated_trials_per_hour(row: dict, epochs: int) -> float:
    """Same per-epoch cost, overhead and share of epochs trained, at `epochs` per trial."""
    return 3600 / (row["overhead_s_per_trial"] + row["epoch_share"] * epochs * row["mean_epoch_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials per study")
    parser.add_argument("--max-epochs", type=int, default=20, help="epoch cap of each trial")
    parser.add_argument("--extrapolate-epochs", type=int, default=2000, help="epoch cap to extrapolate to")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    dataset, _ = make_recording(seed=0)
    print(f"built-in recording: {dataset.n_trials} trials x {dataset.n_bins} bins x {dataset.n_neurons} neurons")
    pruners = [PrunerSettings("none"), PrunerSettings("median", startup_trials=2)]
    rows = [measure(dataset, pruner, args.trials, args.max_epochs, args.seed) for pruner in pruners]
    for row in rows:
        row[f"trials_per_hour_at_{args.extrapolate_epochs}_epochs_extrapolated"] = extrapolated_trials_per_hour(
            row, args.extrapolate_epochs
        )

    header = (
        f"{'pruner':<8} {'trials':>6} {'done':>5} {'pruned':>6} {'failed':>6} {'epochs':>6} {'s/epoch':>8} "
        f"{'overhead s':>10} {'wall s':>7} {'trials/h':>9} {'trials/h @' + str(args.extrapolate_epochs) + '*':>14}"
    )
    print(f"\n{args.trials} trials per study, max_epochs={args.max_epochs}, one torch thread, default search space")
    print(header)
    for row in rows:
        print(
            f"{row['pruner']:<8} {row['trials']:>6} {row['complete']:>5} {row['pruned']:>6} {row['failed']:>6} "
            f"{row['epochs_trained']:>6} {row['mean_epoch_s']:>8.2f} {row['overhead_s_per_trial']:>10.1f} "
            f"{row['wall_s']:>7.0f} {row['trials_per_hour']:>9.1f} "
            f"{row[f'trials_per_hour_at_{args.extrapolate_epochs}_epochs_extrapolated']:>14.2f}"
        )
    print(
        f"* extrapolated, not measured: the same s/epoch, overhead and share of epochs trained, with each trial "
        f"capped at {args.extrapolate_epochs} epochs (early stopping would shorten unpruned trials too)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "settings": vars(args),
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
