"""Validation's share of a fit epoch, and an A/B of the validation code against a git revision.

Built-in recording (835 training / 208 validation trials x 219 bins), default settings. Each
epoch runs one training epoch, then the validation pass (`validation_metrics`: forward without
noise, loss, every score) of this checkout (B) and of `--baseline` (A, `eirnn/training/
validation.py` as of that revision, loaded beside it), in alternating order, on the same model.
CPU seconds of this process (`time.process_time`), so that other jobs on a shared machine slow
the clock less than wall time; use one torch thread. Medians of `--epochs` after 2 warm-up epochs.

    python benchmarks/bench_validation.py --baseline 488b56f
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import eirnn  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine

from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.model import create_model_for_dataset
from eirnn.pipeline import split
from eirnn.training import train_epoch
from eirnn.training import validation as current
from eirnn.training.loop import make_loss, make_targets

VALIDATION_FILE = "src/eirnn/training/validation.py"


def baseline_module(revision: str):
    source = subprocess.run(
        ["git", "show", f"{revision}:{VALIDATION_FILE}"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_validation.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_validation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision whose validation code is A")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TrainConfig()
    dataset, _ = make_recording(seed=0)
    train, val = split(dataset, config)
    model = create_model_for_dataset(train, **config.model_kwargs())
    model.set_rate_scale(torch.as_tensor(train.rates_hz.mean(axis=(0, 1)), dtype=torch.float32))
    train_inputs, val_inputs = (model.prepare_inputs(torch.as_tensor(d.inputs)) for d in (train, val))
    train_targets, val_targets = make_targets(train, torch.device("cpu")), make_targets(val, torch.device("cpu"))
    loss_fn = make_loss(config.section("training"), train, train_targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(0)
    scorers = {"A": baseline_module(args.baseline).ValidationScorer(val, torch.device("cpu"))}
    scorers["B"] = current.ValidationScorer(val, torch.device("cpu"))
    times: dict[str, list[float]] = {"train_epoch": [], "A": [], "B": []}
    largest_difference = 0.0
    for epoch in range(args.epochs + 2):
        started = time.process_time()
        train_epoch(model, train_inputs, train_targets, loss_fn, optimizer, generator, batch_size=train.n_trials)
        elapsed = {"train_epoch": time.process_time() - started}
        scores = {}
        for name in ("A", "B") if epoch % 2 else ("B", "A"):
            started = time.process_time()
            scores[name] = current.validation_metrics(model, val_inputs, val_targets, loss_fn, scorers[name])
            elapsed[name] = time.process_time() - started
        largest_difference = max(largest_difference, *(abs(scores["A"][k] - scores["B"][k]) for k in scores["A"]))
        if epoch >= 2:
            for name, seconds in elapsed.items():
                times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(describe_machine())
    print(f"largest |A - B| over the validation metrics: {largest_difference:.2e}")
    for name, label in (("A", f"baseline {args.baseline}"), ("B", "this checkout")):
        share = medians[name] / (medians["train_epoch"] + medians[name])
        print(f"validation, {label}: {1000 * medians[name]:.1f} ms CPU, {100 * share:.1f}% of a fit epoch")
    print(f"training epoch: {1000 * medians['train_epoch']:.1f} ms CPU")


if __name__ == "__main__":
    main()
