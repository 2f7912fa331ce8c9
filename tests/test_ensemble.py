"""`eirnn ensemble` end to end: fits as child runs of one parent, a worker killed mid-fit, the
summary on the parent."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient

from eirnn.logged_names import ENSEMBLE_TAG, EPOCH_METRICS, FIT_TAG, ensemble_metric
from eirnn.tracking.ui import stop_server

RUN_TIMEOUT_S = 600
TINY_FIT = ("--input-embed-type", "linear", "--input-embed-dim", "8", "--threads", "1", "--patience", "5000")


def _children(client: MlflowClient, parent_run_id: str) -> list:
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def _parent_run_id(client: MlflowClient, deadline: float) -> str:
    while time.monotonic() < deadline:
        experiment = client.get_experiment_by_name("ensemble-test")
        runs = (
            client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{ENSEMBLE_TAG}` = 'ensemble' and attributes.run_name = 'ensemble'",
            )
            if experiment
            else []
        )
        if runs:
            return runs[0].info.run_id
        time.sleep(0.5)
    raise AssertionError("no ensemble parent run appeared")


def _fit_workers(lead: subprocess.Popen) -> list[psutil.Process]:
    children = psutil.Process(lead.pid).children(recursive=True)
    return [child for child in children if "spawn_main" in " ".join(child.cmdline())]


@pytest.mark.slow
def test_a_worker_killed_mid_fit_gets_its_fit_retried_and_no_child_is_left_running(tracking_store, tiny_recording_file):
    command = [
        sys.executable,
        "-m",
        "eirnn.cli",
        "ensemble",
        "--data",
        str(tiny_recording_file),
        "--n-fits",
        "3",
        "--n-workers",
        "2",
        "--heartbeat-seconds",
        "1",
        "--max-epochs",
        "300",  # long enough for both workers to be mid-fit at once; each epoch logs, so no longer
        "--experiment-name",
        "ensemble-test",
        *TINY_FIT,
    ]
    log = tracking_store / "lead.log"
    client = MlflowClient()
    with open(log, "w") as out:
        lead = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        parent_run_id = _parent_run_id(client, deadline)
        # both workers mid-fit: two child runs running with epochs logged; then SIGKILL one worker
        while time.monotonic() < deadline:
            running = [run for run in _children(client, parent_run_id) if run.info.status == "RUNNING"]
            logged = [run for run in running if client.get_metric_history(run.info.run_id, EPOCH_METRICS["train_loss"])]
            if len(logged) == 2:
                break
            assert lead.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
        workers = _fit_workers(lead)
        assert len(workers) == 2, [worker.cmdline() for worker in workers]
        workers[0].send_signal(signal.SIGKILL)
        assert lead.wait(timeout=RUN_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        stop_server(lead)

    children = _children(client, parent_run_id)
    assert not [run for run in children if run.info.status == "RUNNING"]
    finished = [run for run in children if run.info.status == "FINISHED"]
    assert sorted(run.data.tags[FIT_TAG] for run in finished) == ["0", "1", "2"]
    assert sorted(run.info.run_name for run in finished) == ["fit-0", "fit-1", "fit-2"]
    failed = [run for run in children if run.info.status == "FAILED"]
    assert len(failed) == 1 and "worker lost" in failed[0].data.tags["eirnn.error"]
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics[ensemble_metric("n_fits")] == 3
    assert 0 <= parent.data.metrics[ensemble_metric("coverage")] <= 1
    assert "report.html" in [item.path for item in client.list_artifacts(parent_run_id)]
    assert "answers are agreed" in log.read_text() or "answers agreed" in log.read_text()


def test_bootstrap_seed_resamples_the_training_trials_only(tiny_recording_file):
    from eirnn.config import TrainConfig
    from eirnn.data import load_dataset
    from eirnn.pipeline import split_with_test

    dataset = load_dataset(tiny_recording_file)
    train, val, _ = split_with_test(dataset, TrainConfig())
    resampled, same_val, _ = split_with_test(dataset, TrainConfig(bootstrap_seed=3))
    assert (same_val.trial_ids == val.trial_ids).all()
    assert resampled.n_trials == train.n_trials and set(resampled.trial_ids) < set(train.trial_ids)
    again, _, _ = split_with_test(dataset, TrainConfig(bootstrap_seed=3))
    assert (again.trial_ids == resampled.trial_ids).all()


def test_ensemble_nests_fits_reports_agreement_and_registers_one_model(tracking_store, tiny_recording_file):
    import mlflow.pyfunc
    import numpy as np

    import eirnn

    result = eirnn.ensemble(
        str(tiny_recording_file),
        n_fits=2,
        bootstrap_trials=True,
        ei_ratios=(4, 3),
        max_epochs=3,
        input_embed_type="linear",
        input_embed_dim=8,
        threads=1,
        experiment_name="ensemble-test",
    )
    client = MlflowClient()
    children = _children(client, result.parent_run_id)
    assert sorted((run.info.run_name, run.info.status) for run in children) == [
        ("fit-0", "FINISHED"),
        ("fit-1", "FINISHED"),
    ]
    params = {run.info.run_name: run.data.params for run in children}
    assert (params["fit-0"]["seed"], params["fit-1"]["seed"]) == ("0", "1")
    assert (params["fit-0"]["bootstrap_seed"], params["fit-1"]["bootstrap_seed"]) == ("0", "1")
    assert [model.n_units for model in result.models] == [15, 12]  # 8 E, 3 I recorded; E:I 4 then 3
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics[ensemble_metric("n_fits")] == 2
    assert parent.data.metrics[ensemble_metric("n_agreed")] == result.scores["n_agreed"]
    report = mlflow.artifacts.download_artifacts(run_id=result.parent_run_id, artifact_path="report.html")
    page = Path(report).read_text()
    assert "What the fits agree on" in page and "data:image/png;base64" in page and "fit-1" in page

    inputs = eirnn.load_dataset(tiny_recording_file).inputs[:3]
    ensemble = eirnn.load_model(version=result.model_version)
    mean, spread = ensemble.predict(inputs)
    singles = np.stack([model(torch.as_tensor(inputs), noise=False).rates.detach().numpy() for model in result.models])
    np.testing.assert_allclose(mean, singles.mean(0), rtol=1e-5)
    np.testing.assert_allclose(spread, singles.std(0), rtol=1e-4, atol=1e-6)
    served = mlflow.pyfunc.load_model(result.model_uri).predict(inputs.astype(np.float32))
    np.testing.assert_allclose(served["mean_rates_hz"], mean, rtol=1e-6)
    assert ensemble.train_config.max_epochs == 3


def test_a_slurm_ensemble_refuses_a_storage_the_nodes_cannot_reach_before_opening_a_run(
    tracking_store, tiny_recording_file
):
    from eirnn.config import ConfigError, TrainConfig
    from eirnn.tuning.ensemble import EnsembleSettings, run_ensemble

    config = TrainConfig(data=str(tiny_recording_file), experiment_name="ensemble-test")
    with pytest.raises(ConfigError, match=r"storage: --launcher slurm needs a database server .*sqlite:///"):
        run_ensemble(config, EnsembleSettings(n_fits=2, launcher="slurm"))
    assert MlflowClient().get_experiment_by_name("ensemble-test") is None
