"""`eirnn ensemble` end to end: fits as child runs of one parent, a worker killed mid-fit, the
summary on the parent."""

import signal
import subprocess
import sys
import time

import psutil
import pytest
from mlflow.tracking import MlflowClient

from eirnn.tracking.metric_names import EPOCH_METRICS, ensemble_metric
from eirnn.tracking.ui import stop_server
from eirnn.tuning.ensemble_fits import ENSEMBLE_TAG, FIT_TAG

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
        "600",
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
