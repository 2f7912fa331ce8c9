"""The MLflow project end to end, against a real SQLite tracking store in a temp folder."""

import subprocess
import sys

import mlflow
import numpy as np
import pytest
from conftest import REPO, small_project_parameters, small_settings
from mlflow.tracking import MlflowClient

from eirnn.config import TrainConfig
from eirnn.logged_names import EPOCH_METRICS, FIT_TAGS, HELDOUT_EPOCH_METRICS, final_metric, fit_tag
from eirnn.tracking.model_registry import CHAMPION

SMALL_MODEL = small_settings()

RUN_ARTIFACTS = [
    *(f"weights/{n}.npy" for n in ("W_rec", "W_in", "W_out", "h0", "attention_weights", "E_mask", "I_mask")),
    *(
        f"outputs/{n}.npy"
        for n in ("val_model_rates", "val_target_rates", "val_model_psth", "val_target_psth", "val_trial_conditions")
    ),
    *(
        f"metrics/{n}"
        for n in (
            "per_neuron_correlation.npy",
            "per_neuron_mean_rate_model.npy",
            "per_neuron_mean_rate_target.npy",
            "per_neuron_variance_model.npy",
            "per_neuron_variance_target.npy",
            "per_neuron_fano_model.npy",
            "per_neuron_fano_target.npy",
            "neuron_ei_labels.npy",
            "per_neuron_metrics.csv",
        )
    ),
    *(f"population/{n}.npy" for n in ("pca_real", "pca_model", "pca_components", "pca_explained_variance")),
    "checkpoints/model_best.pt",
    "checkpoints/model_final.pt",
    "checkpoints/last.ckpt",
    "training_log.json",
    "config.json",
    "report.md",
]

FINAL_METRICS = [
    "best_selection_score",
    "noise_ceiling_sem",
    "cond_noise_ceiling",
    "best_val_psth_corr",
    "final_val_psth_corr",
    "psth_corr",
    "psth_corr_E",
    "psth_corr_I",
    "cond_psth_corr",
    "psth_r2",
    "bits_per_spike",
    "fano_model",
    "fano_data",
    "noise_ceiling",
    "normalized_psth_corr",
]


def _artifact_paths(client, run_id, path=""):
    found = []
    for item in client.list_artifacts(run_id, path):
        found.extend(_artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return found


def test_mlflow_project_run_logs_everything(tracking_store, tiny_recording_file):
    submitted = mlflow.projects.run(
        str(REPO),
        entry_point="main",
        parameters=small_project_parameters(data=str(tiny_recording_file), max_epochs=5, checkpoint_every=2),
        env_manager="local",
        synchronous=True,
    )
    client = MlflowClient()
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["max_epochs"] == "5" and params["tau"] == "50.0" and params["loss"] == "mse"
    assert params["data.n_e"] == "8" and params["data.n_i"] == "3" and params["data.bin_ms"] == "25.0"
    assert int(params["data.n_train_trials"]) + int(params["data.n_val_trials"]) == 96
    for key in (name for key, name in EPOCH_METRICS.items() if key not in HELDOUT_EPOCH_METRICS):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == list(range(5)), key
    for key in FINAL_METRICS:
        assert final_metric(key) in run.data.metrics, key
    for key in FIT_TAGS:
        assert fit_tag(key) in run.data.tags, key
    assert run.data.tags[fit_tag("total_epochs")] == "5"
    assert run.data.tags["eirnn.data"] == "tiny.npz"
    assert run.data.params["selection_metric"] == "cond_psth_corr"
    assert run.data.tags["eirnn.fit.stop_reason"] == "max_epochs"
    assert "max_epochs=5" in run.data.tags["eirnn.fit.stop_detail"]
    paths = set(_artifact_paths(client, run.info.run_id))
    missing = [p for p in RUN_ARTIFACTS if p not in paths]
    assert not missing

    version = client.get_model_version_by_alias("eirnn", CHAMPION)
    assert version.run_id == run.info.run_id

    import eirnn

    model = eirnn.load_model("eirnn")
    assert not model.training and model.train_config.max_epochs == 5
    inputs = np.load(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="outputs/val_model_rates.npy")
    )
    from eirnn.data import load_dataset
    from eirnn.pipeline import split

    _, val = split(load_dataset(tiny_recording_file), model.train_config)
    from eirnn.evaluation import predict_rates

    reproduced = predict_rates(model, val.inputs).rates.numpy()
    np.testing.assert_allclose(reproduced, inputs, rtol=1e-5, atol=1e-5)

    served = mlflow.pyfunc.load_model("models:/eirnn@champion").predict(val.inputs.astype(np.float32))
    np.testing.assert_allclose(served, inputs, rtol=1e-5, atol=1e-5)


def _train(config_changes, data_file):
    from eirnn.tracking.mlflow_run import train_and_log

    config = TrainConfig(data=str(data_file), patience=100, **SMALL_MODEL, **config_changes)
    return train_and_log(config)


@pytest.mark.parametrize("better_first", [True, False])
def test_champion_is_the_better_run_in_either_order(tracking_store, tiny_recording_file, better_first):
    better = dict(max_epochs=12, learning_rate=0.01)
    worse = dict(max_epochs=1, learning_rate=1e-5)
    first, second = (better, worse) if better_first else (worse, better)
    outcomes = [_train(first, tiny_recording_file), _train(second, tiny_recording_file)]
    scores = [o.fit.best_selection_score for o in outcomes]
    best_run = outcomes[int(np.argmax(scores))].run_id
    assert scores[0] != scores[1]
    champion = MlflowClient().get_model_version_by_alias("eirnn", CHAMPION)
    assert champion.run_id == best_run


@pytest.mark.parametrize("content", [None, b"MATLAB 5.0 MAT-file, truncated"])
def test_missing_or_malformed_data_fails_the_run(tracking_store, content):
    data = tracking_store / "broken.mat"
    if content is not None:
        data.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "eirnn.cli", "train", "--data", str(data), "--max-epochs", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "broken.mat" in result.stderr
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("eirnn").experiment_id])
    assert run.info.status == "FAILED"
    assert "broken.mat" in run.data.tags["eirnn.error"]
