"""Shared test settings and fixtures.

Tests run on a 2-core machine, often beside other processes: torch with two threads slows down
50-100x as soon as another process holds a core, so every test process uses one thread.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# subprocesses (`mlflow run`, `eirnn train`) must find the console scripts of this interpreter's
# environment even when pytest was started as `.venv/bin/python -m pytest` without activation
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
TINY_SIZES = dict(n_e=8, n_i=3, n_trials=96, n_bins=40)


@pytest.fixture(scope="session")
def tiny_recording_file(tmp_path_factory) -> Path:
    """A small synthetic recording written in the documented schema (.npz)."""
    from eirnn.data.loaders import write_dataset
    from eirnn.data.synthetic import make_recording

    dataset, _ = make_recording(seed=0, **TINY_SIZES)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    write_dataset(dataset, path)
    return path


@pytest.fixture
def tracking_store(tmp_path, monkeypatch) -> Path:
    """A fresh SQLite tracking store with artifacts under tmp_path, used as the working folder."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(uri)
    yield tmp_path
    while mlflow.active_run():
        mlflow.end_run()
