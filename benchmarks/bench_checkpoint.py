"""Cost of a resumable checkpoint against an epoch (default model, built-in recording, one
thread), measured alternately in one process: `python benchmarks/bench_checkpoint.py`."""

import tempfile
import time
from pathlib import Path

import torch

from eirnn.config import TrainConfig
from eirnn.pipeline import prepare
from eirnn.training.checkpoints import CheckpointWriter
from eirnn.training.loop import _Training

torch.set_num_threads(1)
config = TrainConfig(threads=1)
prepared = prepare(config)
training = _Training(prepared.model, prepared.train, prepared.val, config.section("training"))
training.start(prepared.train, None)
epochs, saves = [], []
with tempfile.TemporaryDirectory() as d:
    writer = CheckpointWriter(d, every=1)
    for epoch in range(6):  # an epoch, then a save (last.ckpt + numbered copy), alternately
        started = time.perf_counter()
        training.run_epoch(epoch)
        epochs.append(time.perf_counter() - started)
        started = time.perf_counter()
        writer.save_resumable(training, epoch)
        saves.append(time.perf_counter() - started)
    size = (Path(d) / "last.ckpt").stat().st_size
print(
    f"epoch median {sorted(epochs)[3] * 1000:.0f} ms; save (last.ckpt + numbered copy) median "
    f"{sorted(saves)[3] * 1000:.1f} ms; last.ckpt {size / 1e6:.2f} MB"
)
