"""Seconds per training epoch: the package's model against the plain reference, side by side.

On the built-in recording at its default size (835 training trials x 219 bins, 41 E + 13 I
recorded, 65 units, 14 inputs), one epoch = `eirnn.training.train_epoch`, as `fit` runs it:
forward with process noise, normalised MSE plus the behaviour readout loss, backward, gradient
clipping and an Adam step over every training trial. Both models
share hyper-parameters, weights, inputs and the epoch loop; each timing is the median of
`--epochs` epochs after `--warmup` epochs. A second part measures MLflow tracking overhead: the
wall time per epoch of `fit` with and without the per-epoch MLflow logger.

    python benchmarks/bench_epoch.py                      # the full table (about 15 minutes)
    python benchmarks/bench_epoch.py --device cuda --skip-tracking
"""

from __future__ import annotations

import os

from eirnn.runtime import configure_for_training

# the process settings of the `eirnn` command (large pages, freed memory kept), before torch loads
configure_for_training()

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from eirnn.config import TrainConfig  # noqa: E402
from eirnn.data.synthetic import make_recording  # noqa: E402
from eirnn.losses import NormalizedMSE  # noqa: E402
from eirnn.model import create_model_for_dataset  # noqa: E402
from eirnn.model.reference import ReferenceEIRNN  # noqa: E402
from eirnn.pipeline import split  # noqa: E402
from eirnn.training import fit, make_targets, train_epoch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def epoch_seconds(model, inputs, targets, batch_size: int, epochs: int, warmup: int) -> float:
    """Median seconds of one training epoch (`eirnn.training.train_epoch` with the default
    settings: gradient clipping, behaviour loss) over `epochs` epochs after `warmup` epochs."""
    defaults = TrainConfig()
    loss_fn = NormalizedMSE(targets.rates_hz)
    optimizer = torch.optim.Adam(model.parameters(), lr=defaults.learning_rate)
    device = targets.rates_hz.device
    generator = torch.Generator(device=device).manual_seed(0)
    n_trials = targets.rates_hz.shape[0]
    times = []
    for _ in range(warmup + epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        train_epoch(
            model,
            inputs,
            targets,
            loss_fn,
            optimizer,
            generator,
            batch_size=batch_size or n_trials,
            grad_clip=defaults.grad_clip,
            behavior_weight=defaults.behavior_weight if targets.behavior is not None else 0.0,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times[warmup:])


def compare_models(train, args) -> list[dict]:
    device = torch.device(args.device)
    inputs = torch.as_tensor(train.inputs, device=device)
    targets = make_targets(train, device)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for embedding in args.embeddings:
            for batch_size in args.batch_sizes:
                row = {"threads": threads, "embedding": embedding, "batch_size": batch_size or "full"}
                for name, kind in (("package", None), ("reference", ReferenceEIRNN)):
                    if name == "reference" and args.skip_reference:
                        continue
                    model = create_model_for_dataset(train, input_embed_type=embedding, device=args.device, seed=0)
                    if kind is not None:
                        reference = kind(**model.hparams)
                        reference.load_state_dict(model.state_dict())
                        model = reference
                    row[name] = epoch_seconds(
                        model, model.prepare_inputs(inputs), targets, batch_size, args.epochs, args.warmup
                    )
                if "reference" in row:
                    row["speedup"] = row["reference"] / row["package"]
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    text = f"{row['threads']:>7} {row['embedding']:>9} {row['batch_size']!s:>6} {row['package']:>11.3f}"
    if "reference" in row:
        text += f" {row['reference']:>13.3f} {row['speedup']:>8.1f}x"
    return text


class _EpochClock:
    """Wall time between consecutive epoch ends, callbacks included."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_epoch_end(self, epoch, metrics) -> None:
        self.stamps.append(time.perf_counter())

    def mean_epoch(self, warmup: int) -> float:
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])][warmup:]
        return sum(gaps) / len(gaps)


class _TimedCallback:
    """Wraps a callback and adds up the seconds spent inside it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = 0.0

    def on_epoch_end(self, epoch, metrics):
        started = time.perf_counter()
        try:
            return self.inner.on_epoch_end(epoch, metrics)
        finally:
            self.seconds += time.perf_counter() - started


def tracking_overhead(dataset, train, val, args) -> dict:
    """Mean wall seconds per `fit` epoch with and without MLflow per-epoch logging (SQLite store),
    and, less noisy on a shared machine, the seconds spent inside the logger itself (its batched
    `log_batch` calls included, the final flush added)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from eirnn.tracking.logger import EpochMetricLogger

    torch.set_num_threads(max(args.threads))
    config = TrainConfig(max_epochs=args.tracking_epochs, patience=10**6, checkpoint_every=0, seed=0)
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        client = MlflowClient()
        experiment = client.create_experiment("bench", artifact_location=f"{folder}/mlruns")
        logger_share = []
        for tracked in (False, True, False, True):
            model = create_model_for_dataset(dataset, device=args.device, seed=0)
            clock = _EpochClock()
            callbacks = [clock]
            if tracked:
                run = client.create_run(experiment)
                logger = _TimedCallback(EpochMetricLogger(run.info.run_id, client))
                callbacks.insert(0, logger)
            started = time.perf_counter()
            fit(model, train, val, config, callbacks, progress=False)
            if tracked:
                flush_started = time.perf_counter()
                logger.inner.flush()
                logger.seconds += time.perf_counter() - flush_started
                logger_share.append(100 * logger.seconds / (time.perf_counter() - started))
            result.setdefault("tracking_on" if tracked else "tracking_off", []).append(clock.mean_epoch(args.warmup))
    on, off = min(result["tracking_on"]), min(result["tracking_off"])
    return {
        "epochs": args.tracking_epochs,
        "seconds_tracking_off": off,
        "seconds_tracking_on": on,
        "overhead_percent": 100 * (on - off) / off,
        "logger_share_percent": max(logger_share),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per cell (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--embeddings", nargs="+", default=["attention", "linear", "mlp"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[0, 128], help="0 = full batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-tracking", action="store_true")
    parser.add_argument("--skip-models", action="store_true", help="only the tracking measurement")
    parser.add_argument("--tracking-epochs", type=int, default=40)
    parser.add_argument("--out", default=str(RESULTS / "bench_epoch.json"))
    args = parser.parse_args()

    dataset, _ = make_recording(seed=0)
    train, val = split(dataset, TrainConfig())
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"{train.n_trials} training trials x {train.n_bins} bins, device {device_name}, torch {torch.__version__}")
    print(f"{'threads':>7} {'embedding':>9} {'batch':>6} {'package s':>11} {'reference s':>13} {'speedup':>9}")
    report = {
        "date": date.today().isoformat(),
        "machine": {
            "device": device_name,
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "shape": {
            "train_trials": train.n_trials,
            "bins": train.n_bins,
            "neurons": dataset.n_neurons,
            "inputs": dataset.n_inputs,
        },
        "epochs": args.epochs,
        "warmup": args.warmup,
        "models": [] if args.skip_models else compare_models(train, args),
    }
    if not args.skip_tracking:
        report["tracking"] = tracking_overhead(dataset, train, val, args)
        t = report["tracking"]
        print(
            f"tracking: {t['seconds_tracking_off']:.3f} s/epoch off, {t['seconds_tracking_on']:.3f} s/epoch on "
            f"({t['overhead_percent']:+.1f}%); time inside the MLflow logger: {t['logger_share_percent']:.2f}%"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
