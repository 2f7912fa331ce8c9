"""Seconds per training epoch: the package's model against the plain reference, side by side.

On the built-in recording at its default size (835 training trials x 219 bins, 41 E + 13 I
recorded, 65 units, 14 inputs), one epoch = `eirnn.training.train_epoch`, as `fit` runs it:
forward with process noise, normalised MSE plus the behaviour readout loss, backward, gradient
clipping and an Adam step over every training trial. Both models
share hyper-parameters, weights, inputs and the epoch loop; the loops of one table row take
turns epoch by epoch in one process (a slow spell of a shared machine slows them alike), and
each timing is the median of `--epochs` epochs after `--warmup` epochs. The full-batch rows add
a user's own loop with the package model: `out = model(inputs)` on the raw [trials, time,
inputs] tensor, `F.mse_loss` on `out.rates`, `backward()`, Adam `step()`, in a process with
the run's memory settings (`eirnn.memory_allocator`).
`--breakdown` adds where a full-batch epoch's time goes: the noise draw, the rest of the forward
pass, the losses, the backward pass, clipping and Adam (wall and CPU medians per stage).
A second part measures MLflow tracking overhead: the wall time per epoch of `fit` with and
without the per-epoch MLflow logger.

    python benchmarks/bench_epoch.py                      # the full table (about 15 minutes)
    python benchmarks/bench_epoch.py --device cuda --skip-tracking
    python benchmarks/bench_epoch.py --skip-reference --skip-tracking --batch-sizes 0 --embeddings attention --breakdown
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.utils import clip_grad_norm_

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, load_average

from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.losses import NormalizedMSE, behavior_mse
from eirnn.memory_allocator import configure_unless_opted_out
from eirnn.model import create_model_for_dataset
from eirnn.model.noise import fill_standard_normal
from eirnn.model.reference import ReferenceEIRNN
from eirnn.pipeline import split
from eirnn.training import fit, make_targets, train_epoch

RESULTS = Path(__file__).resolve().parent / "results"


def train_epoch_runner(model, inputs, targets, batch_size: int) -> Callable[[], None]:
    """One training epoch per call (`eirnn.training.train_epoch` with the default settings:
    gradient clipping, behaviour loss), as `fit` runs it."""
    defaults = TrainConfig()
    loss_fn = NormalizedMSE(targets.rates_hz)
    optimizer = torch.optim.Adam(model.parameters(), lr=defaults.learning_rate)
    generator = torch.Generator(device=targets.rates_hz.device).manual_seed(0)
    n_trials = targets.rates_hz.shape[0]

    def run() -> None:
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

    return run


def own_loop_runner(model, inputs: torch.Tensor, target_rates: torch.Tensor) -> Callable[[], None]:
    """One epoch per call of the loop a user writes: the raw inputs tensor on every call, a plain
    PyTorch loss on `out.rates`, backward, a step of Adam at its own default learning rate.

    (At the package's learning rate of 0.005 this loop, without the package's gradient clipping
    and per-neuron normalisation, diverges at its second step, and the epochs timed after it ran
    on NaN weights; a diverged loop stops the benchmark.)"""
    optimizer = torch.optim.Adam(model.parameters())

    def run() -> None:
        output = model(inputs)
        loss = F.mse_loss(output.rates, target_rates)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise RuntimeError("the own loop diverged: its timings would be of NaN arithmetic")

    return run


def alternating_medians(runners: dict[str, Callable[[], None]], epochs: int, warmup: int) -> dict[str, float]:
    """Median seconds per epoch of each runner, the runners taking turns epoch by epoch, so that
    a slow spell of a shared machine slows them alike."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(warmup + epochs):
        for name, run in runners.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            started = time.perf_counter()
            run()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values[warmup:]) for name, values in times.items()}


def compare_models(train, args) -> list[dict]:
    device = torch.device(args.device)
    inputs = torch.as_tensor(train.inputs, device=device)
    targets = make_targets(train, device)
    target_rates = torch.as_tensor(train.rates_hz, dtype=torch.float32, device=device)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for embedding in args.embeddings:
            for batch_size in args.batch_sizes:
                options = dict(input_embed_type=embedding, device=args.device, seed=0)
                package = create_model_for_dataset(train, **options)
                runners = {"package": train_epoch_runner(package, package.prepare_inputs(inputs), targets, batch_size)}
                if not args.skip_reference:
                    reference = ReferenceEIRNN(**package.hparams)
                    reference.load_state_dict(package.state_dict())
                    runners["reference"] = train_epoch_runner(
                        reference, reference.prepare_inputs(inputs), targets, batch_size
                    )
                if not batch_size and not args.skip_own_loop:
                    runners["own_loop"] = own_loop_runner(
                        create_model_for_dataset(train, **options), inputs, target_rates
                    )
                row = {"threads": threads, "embedding": embedding, "batch_size": batch_size or "full"}
                row.update(alternating_medians(runners, args.epochs, args.warmup))
                if "reference" in row:
                    row["speedup"] = row["reference"] / row["package"]
                if "own_loop" in row:
                    row["own_loop_ratio"] = row["own_loop"] / row["package"]
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    text = f"{row['threads']:>7} {row['embedding']:>9} {row['batch_size']!s:>6} {row['package']:>11.3f}"
    text += f" {row['reference']:>13.3f} {row['speedup']:>8.1f}x" if "reference" in row else " " * 24
    if "own_loop" in row:
        text += f" {row['own_loop']:>10.3f} {row['own_loop_ratio']:>8.2f}x"
    return text


def epoch_breakdown(train, args) -> list[dict]:
    """Median wall and CPU milliseconds of each stage of a full-batch `train_epoch` (attention),
    per thread count: the noise draw, the rest of the forward pass, the losses, the backward pass,
    gradient clipping with the Adam step."""
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for stage, (wall_ms, cpu_ms) in _stage_medians(train, args).items():
            rows.append({"threads": threads, "stage": stage, "wall_ms": wall_ms, "cpu_ms": cpu_ms})
            print(f"{threads:>7} {stage:>20} {wall_ms:>9.1f} ms wall {cpu_ms:>9.1f} ms CPU", flush=True)
    return rows


def _stage_medians(train, args) -> dict[str, list[float]]:
    device = torch.device(args.device)
    targets = make_targets(train, device)
    defaults = TrainConfig()
    model = create_model_for_dataset(train, input_embed_type="attention", device=args.device, seed=0)
    prepared = model.prepare_inputs(torch.as_tensor(train.inputs, device=device))
    loss_fn = NormalizedMSE(targets.rates_hz)
    optimizer = torch.optim.Adam(model.parameters(), lr=defaults.learning_rate)
    generator = torch.Generator(device=device).manual_seed(0)
    noise_buffer = torch.empty(train.n_bins, train.n_trials, model.n_units, device=device)
    stages: dict[str, list[tuple[float, float]]] = {}

    def timed(stage: str, work: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        stages.setdefault(stage, []).append((time.perf_counter() - wall, time.process_time() - cpu))
        return result

    def epoch() -> None:
        timed("noise draw", lambda: fill_standard_normal(noise_buffer, generator, std=model.noise_std))
        output = timed("forward with noise", lambda: model(prepared, noise=True, generator=generator))
        loss = timed("losses", lambda: loss_fn(output.rates, targets) + behavior_mse(output.behavior, targets))
        optimizer.zero_grad(set_to_none=True)
        timed("backward", loss.backward)
        timed("clip and Adam", lambda: (clip_grad_norm_(model.parameters(), defaults.grad_clip), optimizer.step()))

    for _ in range(args.warmup + args.epochs):
        epoch()
    return {
        stage: [1e3 * statistics.median(times[i] for times in values[args.warmup :]) for i in (0, 1)]
        for stage, values in stages.items()
    }


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
            fit(model, train, val, config.section("training"), callbacks, progress=False)
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
    # before any tensor exists, as a run applies them when it starts (and a user's own loop should)
    configure_unless_opted_out()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per cell (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--embeddings", nargs="+", default=["attention", "linear", "mlp"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[0, 128], help="0 = full batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-tracking", action="store_true")
    parser.add_argument("--skip-own-loop", action="store_true", help="leave out the user's own loop")
    parser.add_argument("--skip-models", action="store_true", help="only the tracking measurement")
    parser.add_argument("--breakdown", action="store_true", help="also time each stage of a full-batch epoch")
    parser.add_argument("--tracking-epochs", type=int, default=40)
    parser.add_argument("--out", default=str(RESULTS / "bench_epoch.json"))
    args = parser.parse_args()

    dataset, _ = make_recording(seed=0)
    train, val = split(dataset, TrainConfig())
    machine = describe_machine(args.device)
    print(
        f"{train.n_trials} training trials x {train.n_bins} bins, device {machine['device']}, "
        f"{machine['cpu_count']} cores, torch {torch.__version__}, load average {machine['load_average_at_start']}"
    )
    print(
        f"{'threads':>7} {'embedding':>9} {'batch':>6} {'package s':>11} {'reference s':>13} {'speedup':>9} "
        f"{'own loop s':>10} {'own/pkg':>9}"
    )
    report = {
        "date": date.today().isoformat(),
        "machine": machine,
        "shape": {
            "train_trials": train.n_trials,
            "bins": train.n_bins,
            "neurons": dataset.n_neurons,
            "inputs": dataset.n_inputs,
        },
        "epochs": args.epochs,
        "warmup": args.warmup,
        "models": [] if args.skip_models else compare_models(train, args),
        "breakdown": epoch_breakdown(train, args) if args.breakdown else [],
    }
    report["machine"]["load_average_after_models"] = load_average()
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
