"""Nothing a run logs needs pickle to load: the checkpoint loads with `weights_only=True`, the
logged model with MLflow's pickle deserialisation switched off, through `eirnn.load_model`
and `mlflow.pyfunc.load_model` alike."""

from pathlib import Path

import mlflow
import numpy as np
import torch
from conftest import small_config

import eirnn
from eirnn.evaluation import predict_rates
from eirnn.tracking.mlflow_run import train_and_log


def test_checkpoint_and_logged_model_load_with_pickle_disabled(tracking_store, tiny_recording_file, monkeypatch):
    config = small_config(data=str(tiny_recording_file), max_epochs=3, checkpoint_every=2)
    outcome = train_and_log(config)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")

    checkpoint = mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="checkpoints/last.ckpt")
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] == 2 and [entry["epoch"] for entry in saved["history"]] == [0, 1, 2]

    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/eirnn@champion"))
    assert not [path.name for path in model_dir.rglob("*.pkl")]  # no pickled python_model

    model = eirnn.load_model("eirnn")
    inputs = np.random.default_rng(0).normal(size=(2, 9, model.n_inputs)).astype(np.float32)
    expected = predict_rates(model, inputs).rates.numpy()
    served = mlflow.pyfunc.load_model("models:/eirnn@champion").predict(inputs)
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    assert model.train_config == config.replace(data=str(tiny_recording_file))
