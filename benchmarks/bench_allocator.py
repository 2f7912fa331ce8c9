"""Seconds per training epoch before and after a run's memory settings, in one process.

`import eirnn` no longer changes the process; a run applies `eirnn.memory_allocator`'s settings when it
starts. This times `train_epoch` on the built-in recording (default size, one torch thread):
`--epochs` epochs with the allocator as the process found it (B), then the call a run starts
with (`configure_unless_opted_out`), then `--epochs` epochs again (A), with each phase's minor
page faults. The large-page setting counts only before the first tensor, so in one process A
shows the malloc part; `--run-start` instead applies the settings before anything, as a run
does, and times A only (compare it with the A of the default mode).

    python benchmarks/bench_allocator.py --epochs 8
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from bench_epoch import train_epoch_runner

from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.memory_allocator import configure_unless_opted_out
from eirnn.pipeline import prepare
from eirnn.training import make_targets


def _epochs(run, n: int) -> tuple[float, int]:
    faults, times = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, []
    for _ in range(n):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--run-start", action="store_true", help="apply the settings first, as a run does")
    args = parser.parse_args()
    if args.run_start:
        configure_unless_opted_out()
    torch.set_num_threads(1)
    config = TrainConfig(threads=1)
    dataset, truth = make_recording(seed=0)
    prepared = prepare(config, dataset, truth)
    train, model = prepared.train, prepared.model
    cpu = torch.device("cpu")
    run = train_epoch_runner(model, torch.as_tensor(train.inputs), make_targets(train, cpu), batch_size=0)
    _epochs(run, 2)  # warm-up
    if not args.run_start:
        seconds, faults = _epochs(run, args.epochs)
        print(f"B (allocator as found): {seconds:.3f} s per epoch, {faults} minor faults in {args.epochs} epochs")
        configure_unless_opted_out()
        _epochs(run, 1)
    seconds, faults = _epochs(run, args.epochs)
    print(f"A (run's settings):     {seconds:.3f} s per epoch, {faults} minor faults in {args.epochs} epochs")


if __name__ == "__main__":
    main()
