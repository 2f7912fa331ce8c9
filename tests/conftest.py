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
# the `mlflow server`/`mlflow ui` processes tests start: without MLflow's GenAI job runner (two
# extra huey processes that eirnn never uses), which halves their start on a loaded 2-core machine
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
# subprocesses (`mlflow run`, `eirnn train`) must find the console scripts of this interpreter's
# environment even when pytest was started as `.venv/bin/python -m pytest` without activation
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
# the shared factory of small things: a tiny recording, a small model, quick settings
TINY_SIZES = dict(n_e=8, n_i=3, n_trials=96, n_bins=40)
SMALL_MODEL = dict(input_embed_dim=8, attention_heads=2, threads=1)


def small_settings(**overrides) -> dict:
    """TrainConfig settings for a quick training of the small model, figures off: `overrides`
    change or add settings (e.g. ``max_epochs=3``, ``log_figures=True``)."""
    return {**SMALL_MODEL, "log_figures": False, **overrides}


def small_config(**overrides):
    """`small_settings(**overrides)` as a TrainConfig."""
    from eirnn.config import TrainConfig

    return TrainConfig(**small_settings(**overrides))


def _text(value):
    return str(value).lower() if isinstance(value, bool) else value


def small_flags(**overrides) -> list[str]:
    """`small_settings(**overrides)` as command-line flags of `eirnn train`/`tune`/`ensemble`
    (``max_epochs=3`` -> ``--max-epochs 3``; booleans as ``true``/``false``)."""
    flags = []
    for name, value in small_settings(**overrides).items():
        flags += [f"--{name.replace('_', '-')}", str(_text(value))]
    return flags


def small_project_parameters(**overrides) -> dict:
    """`small_settings(**overrides)` as the parameters of an `mlflow.projects.run` of MLproject."""
    return {name: _text(value) for name, value in small_settings(**overrides).items()}


def tracking_env(uri, **variables) -> dict:
    """The environment of an `eirnn`/`mlflow run` subprocess that logs to the store `uri` (not
    to a launcher's run), with `variables` added."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": str(uri), **variables}
    env.pop("MLFLOW_RUN_ID", None)
    return env


def fit_config(config, dataset, truth=None, callbacks=(), **fit_options):
    """(Prepared, FitResult): `config`'s pipeline up to the model on `dataset`, then `fit` with
    `fit_options` (``checkpoint_dir``, ``resume_from``), no progress line."""
    from eirnn.pipeline import prepare
    from eirnn.training import fit

    prepared = prepare(config, dataset, truth)
    training = config.section("training")
    return prepared, fit(
        prepared.model, prepared.train, prepared.val, training, callbacks, progress=False, **fit_options
    )


def fit_small(dataset, callbacks=(), checkpoint_dir=None, resume_from=None, **overrides):
    """`fit_config` of `small_config(**overrides)` on `dataset`."""
    config = small_config(**overrides)
    return fit_config(config, dataset, callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume_from=resume_from)


def tiny_recording(seed: int = 0, **sizes):
    """(NeuralDataset, GroundTruth) of the built-in synthetic recording at the tiny size
    (`sizes` override TINY_SIZES)."""
    from eirnn.data.synthetic import make_recording

    return make_recording(seed=seed, **{**TINY_SIZES, **sizes})


@pytest.fixture(scope="session")
def tiny_recording_file(tmp_path_factory) -> Path:
    """A small synthetic recording written in the documented schema (.npz)."""
    from eirnn.data.binned_files import write_dataset

    dataset, _ = tiny_recording()
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
