"""Shared test settings.

Tests run on a 2-core machine, often beside other processes: torch with two threads slows down
50-100x as soon as another process holds a core, so every test process uses one thread.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
