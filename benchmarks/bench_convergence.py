"""Learning rate, schedule and early stopping across data sets of different shapes.

For each data set and each candidate (learning rate x `lr_schedule`), one fit with the given
patience (`--patience`, early stopping on the default selection score, validation
cond_psth_corr) records: the epochs run, the best epoch, the best validation score, and the
wall and CPU seconds; the curve is kept, so that a shorter patience can be replayed on it
(exact for the schedules that do not depend on patience: constant and warmup_cosine). One
seed per fit (`--seed`); torch threads as given (default 1).

    python benchmarks/bench_convergence.py --datasets small large m1      # minutes
    python benchmarks/bench_convergence.py --datasets builtin --max-epochs 600
    python benchmarks/bench_convergence.py --datasets nwb --last-candidate 2 --replay 50 75 100 150
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import eirnn  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, load_average

from eirnn.config import TrainConfig
from eirnn.data.nwb_write import write_nwb
from eirnn.data.synthetic import make_recording
from eirnn.pipeline import prepare
from eirnn.training import EarlyStopping, fit

RESULTS = Path(__file__).resolve().parent / "results"
M1_FILE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "hatsopoulos2007_m1" / "m1_reach_condition_averaged.npz"
)
M1_SETTINGS = dict(inputs="cue-go", go_event="-300", data_keys="behavior=hand_velocity", validate_on_train=True)
CANDIDATES = [
    (1e-3, "constant"),
    (5e-3, "constant"),
    (5e-3, "warmup"),
    (5e-3, "plateau"),
    (5e-3, "warmup_cosine"),
    (1e-2, "plateau"),
]


def load(name: str, seed: int):
    """(dataset or None, extra settings): teachers of three sizes, the real M1 example, and an NWB
    session of a fourth teacher shaped like NLB's MC_Maze (many conditions, 8 trials each, 10 ms
    bins over 700 ms), read back from spike times as a lab's file is."""
    if name == "nwb":
        dataset, _ = make_recording(
            seed=seed, n_e=60, n_i=15, n_conditions=27, n_inputs=30, n_trials=216, n_bins=70, bin_ms=10.0
        )
        path = write_nwb(dataset, Path(tempfile.mkdtemp()) / "session.nwb")
        return None, dict(data=str(path), bin_ms=10.0)
    sizes = {
        "builtin": {},  # the built-in recording: 1044 trials x 219 bins, 54 recorded of 65 units
        "small": dict(n_e=16, n_i=4, n_trials=200, n_bins=80),
        "large": dict(n_e=120, n_i=30, n_trials=240, n_bins=100),
    }
    if name == "m1":
        return None, dict(M1_SETTINGS, data=str(M1_FILE))
    dataset, _ = make_recording(seed=seed, **sizes[name])
    return dataset, {}


def replay_patience(history: list[dict], patience: int, min_delta: float) -> tuple[int, int, float]:
    """(epochs run, best epoch, best score) had early stopping used `patience` on this curve."""
    stopping = EarlyStopping(patience, 0.0, True, min_delta)
    for entry in history:
        stopping.update(int(entry["epoch"]), entry["selection_score"])
        if stopping.exhausted(int(entry["epoch"])):
            break
    epoch = int(entry["epoch"])
    return epoch + 1, stopping.best_epoch + 1, history[stopping.best_epoch]["selection_score"]


def run(name: str, args: argparse.Namespace) -> list[dict]:
    dataset, settings = load(name, args.seed)
    rows = []
    for learning_rate, schedule in CANDIDATES[args.first_candidate : args.last_candidate]:
        config = TrainConfig(
            **settings,
            learning_rate=learning_rate,
            lr_schedule=schedule,
            max_epochs=args.max_epochs,
            patience=args.patience,
            seed=args.seed,
            threads=args.threads,
            checkpoint_every=0,
            checkpoint_seconds=0,
        )
        prepared = prepare(config, dataset=dataset)
        wall, cpu = time.perf_counter(), time.process_time()
        result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
        row = {
            "dataset": name,
            "shape": f"{prepared.train.n_trials}+{prepared.val.n_trials} trials x {prepared.train.n_bins} bins x "
            f"{prepared.train.n_neurons} neurons",
            "learning_rate": learning_rate,
            "lr_schedule": schedule,
            "epochs": result.total_epochs,
            "best_epoch": result.best_epoch + 1,
            "best_score": result.best_selection_score,
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
            "stop": result.stop_reason,
            "load": load_average(),
        }
        for patience in args.replay:
            epochs, best_epoch, best = replay_patience(result.history, patience, config.min_delta)
            row[f"patience{patience}"] = {"epochs": epochs, "best_epoch": best_epoch, "best_score": best}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["small", "large", "m1", "builtin"])
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--patience", type=int, default=200)
    parser.add_argument("--replay", type=int, nargs="*", default=[50, 100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-candidate", type=int, default=0, help="index into CANDIDATES")
    parser.add_argument("--last-candidate", type=int, default=len(CANDIDATES), help="index into CANDIDATES, exclusive")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    rows = [row for name in args.datasets for row in run(name, args)]
    out = Path(args.out) if args.out else RESULTS / f"bench_convergence_{'_'.join(args.datasets)}.json"
    out.write_text(json.dumps({"machine": describe_machine(), "args": vars(args), "rows": rows}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
