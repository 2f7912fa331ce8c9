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
from conftest import small_config, tiny_recording
from mlflow.tracking import MlflowClient

from eirnn.logged_names import ENSEMBLE_TAG, EPOCH_METRICS, FIT_TAG, ensemble_metric, final_metric
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
        # grace 10 s: fewer retries of a live worker starved of CPU under the suite's own load (such
        # a worker abandons its fit when it wakes up: tests/test_lost_claims.py)
        "5",
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


def test_the_calibration_from_the_workers_nulls_equals_asking_every_null_after_the_fits(tracking_store):
    """The fits share the ensemble's split; their nulls are asked by their workers and the true
    network by the lead while the fits run; the calibration must equal asking all of them from
    the logged models at the end."""
    from urllib.parse import urlparse

    import mlflow
    import numpy as np
    import optuna

    from eirnn.agreement import aggregate, calibrate
    from eirnn.circuit_answers import ask_circuit, load_answers
    from eirnn.pipeline import split
    from eirnn.recovery import ground_truth_model, shuffled_within_blocks
    from eirnn.tuning.ensemble import EnsembleSettings, ensemble_storage, run_ensemble, study_name_of
    from eirnn.tuning.ensemble_fits import completed_fits
    from eirnn.tuning.ensemble_summary import summarize_ensemble

    dataset, truth = tiny_recording(n_trials=24, n_bins=20, n_conditions=2, n_inputs=4)
    config = small_config(max_epochs=2, seed=3, input_embed_type="linear", experiment_name="ensemble-test")
    result = run_ensemble(config, EnsembleSettings(n_fits=2), dataset=dataset, truth=truth)
    fits = [MlflowClient().get_run(run_id).data for run_id in result.fit_run_ids]
    assert [fit.params["seed"] for fit in fits] == ["3", "4"]
    assert [fit.params["split_seed"] for fit in fits] == ["3", "3"]  # one split: the data's facts are the fits'
    ceilings = [fit.metrics[final_metric("cond_noise_ceiling")] for fit in fits]
    assert ceilings[0] == ceilings[1] and np.isfinite(ceilings[0])

    _, val = split(dataset, config)
    nulls = [
        ask_circuit(shuffled_within_blocks(model, config.seed + k), val, group_seed=config.seed, seed=config.seed)
        for k, model in enumerate(result.models)
    ]
    for run_id, null in zip(result.fit_run_ids, nulls):
        logged = load_answers(
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="ensemble/null_answers.npz")
        )
        assert sorted(logged.values) == sorted(null.values)
        for name, values in null.values.items():
            np.testing.assert_array_equal(logged.values[name], values, err_msg=name)
    twin = ground_truth_model(truth, float(val.bin_ms), np.asarray(val.inputs[:, 0], dtype=np.float64))
    true = ask_circuit(twin, val, group_seed=config.seed, seed=config.seed)
    np.testing.assert_equal(result.calibration, calibrate(result.agreement, true, null=aggregate(nulls)))
    parent = MlflowClient().get_run(result.parent_run_id)
    assert parent.data.metrics[ensemble_metric("gt_precision_agreed")] == pytest.approx(
        result.calibration["precision_agreed"], nan_ok=True
    )

    # a fit whose worker had no ground truth (no truth file on its node) logged no null: the lead asks it
    artifacts = Path(urlparse(MlflowClient().get_run(result.fit_run_ids[1]).info.artifact_uri).path)
    (artifacts / "ensemble" / "null_answers.npz").unlink()
    study = optuna.load_study(study_name=study_name_of(result.parent_run_id), storage=ensemble_storage(""))
    trials = completed_fits(study, result.parent_run_id)
    again = summarize_ensemble(MlflowClient(), trials, result.parent_run_id, config, dataset, true, 2)
    np.testing.assert_equal(again.calibration, result.calibration)


def test_a_slurm_ensemble_refuses_a_storage_the_nodes_cannot_reach_before_opening_a_run(
    tracking_store, tiny_recording_file
):
    from eirnn.config import ConfigError, TrainConfig
    from eirnn.tuning.ensemble import EnsembleSettings, run_ensemble

    config = TrainConfig(data=str(tiny_recording_file), experiment_name="ensemble-test")
    with pytest.raises(ConfigError, match=r"storage: --launcher slurm needs a database server .*sqlite:///"):
        run_ensemble(config, EnsembleSettings(n_fits=2, launcher="slurm"))
    assert MlflowClient().get_experiment_by_name("ensemble-test") is None
