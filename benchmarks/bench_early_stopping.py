"""How early stopping should be set: record full validation curves once, replay stopping rules offline.

`record` trains one model with patience = max_epochs (stopping never fires) and saves every
epoch's validation scores to JSON; `replay` applies candidate (smoothing, patience) rules to the
saved curves and prints, for each, the epoch it stops at and the score of the best checkpoint it
keeps, against the best score of the whole curve. Training is deterministic per seed, so replaying
a rule on a saved curve gives exactly what a run with that rule would have done.

    python benchmarks/bench_early_stopping.py record --dataset builtin --out results/curve_builtin.json
    python benchmarks/bench_early_stopping.py replay results/curve_*.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.pipeline import prepare
from eirnn.training import EarlyStopping, fit

DATASETS = {
    "builtin": {"seed": 0},
    # another teacher network: other seed, shape, trial count and bin size
    "teacher2": {"seed": 7, "n_e": 30, "n_i": 10, "n_bins": 160, "n_trials": 640, "n_conditions": 6, "bin_ms": 20.0},
}
SCORES = ("val_cond_psth_corr", "val_psth_corr", "val_loss")
SMOOTHINGS = (0.0, 0.9)
PATIENCES = (100, 200, 300)
MIN_DELTAS = (0.0, 0.0005, 0.001, 0.002)


def record(dataset_name: str, out: Path, max_epochs: int, seed: int) -> None:
    torch.set_num_threads(1)
    dataset, _ = make_recording(**DATASETS[dataset_name])
    config = TrainConfig(max_epochs=max_epochs, patience=max_epochs, threads=1, seed=seed)
    prepared = prepare(config, dataset)
    started = time.perf_counter()
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    curve = {score: [h[score] for h in result.history] for score in SCORES if score in result.history[0]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "dataset": dataset_name,
                "dataset_settings": DATASETS[dataset_name],
                "config": config.to_dict(),
                "training_seconds": time.perf_counter() - started,
                "curves": curve,
            }
        )
    )


def replay_rule(
    values: list[float], smoothing: float, patience: int, higher_is_better: bool, min_delta: float = 0.0
) -> tuple[int, int]:
    """(stop epoch, best epoch) of the rule on one curve, as `eirnn.training.EarlyStopping` applies it."""
    stopping = EarlyStopping(patience, smoothing, higher_is_better, min_delta)
    for epoch, value in enumerate(values):
        stopping.update(epoch, value)
        if stopping.exhausted(epoch):
            return epoch, stopping.best_epoch
    return len(values) - 1, stopping.best_epoch


def replay(paths: list[Path], score: str) -> list[dict]:
    rows = []
    for path in paths:
        saved = json.loads(path.read_text())
        values = saved["curves"][score]
        higher = score != "val_loss"
        top = max(values) if higher else min(values)
        for smoothing, patience, min_delta in itertools.product(SMOOTHINGS, PATIENCES, MIN_DELTAS):
            stop, best_epoch = replay_rule(values, smoothing, patience, higher, min_delta)
            rows.append(
                {
                    "dataset": saved["dataset"],
                    "score": score,
                    "smoothing": smoothing,
                    "patience": patience,
                    "min_delta": min_delta,
                    "stop_epoch": stop + 1,
                    "best_epoch": best_epoch + 1,
                    "kept": values[best_epoch],
                    "curve_best": top,
                    "epoch_of_curve_best": values.index(top) + 1,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record")
    rec.add_argument("--dataset", choices=sorted(DATASETS), default="builtin")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--max-epochs", type=int, default=2000)
    rec.add_argument("--seed", type=int, default=0)
    rep = commands.add_parser("replay")
    rep.add_argument("curves", type=Path, nargs="+")
    rep.add_argument("--score", default="val_cond_psth_corr", choices=SCORES)
    rep.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.command == "record":
        record(args.dataset, args.out, args.max_epochs, args.seed)
        return
    rows = replay(args.curves, args.score)
    print("| data | smoothing | patience | min_delta | stops at | best epoch | kept score | curve best (epoch) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['smoothing']} | {r['patience']} | {r['min_delta']} | {r['stop_epoch']} | "
            f"{r['best_epoch']} | "
            f"{r['kept']:.4f} | {r['curve_best']:.4f} ({r['epoch_of_curve_best']}) |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
