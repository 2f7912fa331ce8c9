"""A tracking server that goes away mid-training: a real `mlflow server` on loopback is stopped
for 30 s and started again while `eirnn train` runs against it. Training goes on, the logger
keeps what it could not send and retries, and the run ends with every epoch's metrics."""

import re
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import small_flags, small_settings, tracking_env
from mlflow.tracking import MlflowClient

from eirnn.logged_names import EPOCH_METRICS, HELDOUT_EPOCH_METRICS
from eirnn.tracking.ui import free_port, stop_server

OUTAGE_S = 30
STARTUP_TIMEOUT_S = 120
# long enough that the fit is still running when the server stops: the first metrics show at the
# checkpoint of epoch 20, and a fit that ended before the outage would upload its artifacts into it
MAX_EPOCHS = 300
# what every run logs each epoch (these runs hold no neurons out)
EPOCH_NAMES = [name for key, name in EPOCH_METRICS.items() if key not in HELDOUT_EPOCH_METRICS]


def _start_server(tmp_path, port: int) -> subprocess.Popen:
    log = open(tmp_path / "server.log", "a")  # noqa: SIM115 (kept open for the server's lifetime)
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"),
            *("--artifacts-destination", str(tmp_path / "server-artifacts")),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    pytest.fail("mlflow server did not start")


def _server_and_training_env(tmp_path) -> tuple[int, str, subprocess.Popen, dict]:
    """A started server's port, URL and process, and the environment of a training process that
    logs to it, with MLflow's own HTTP retries kept short, so that eirnn's handling of the outage
    is what the test sees."""
    port = free_port("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    env = tracking_env(url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")
    return port, url, _start_server(tmp_path, port), env


def _training_process(python_arguments: list[str], env: dict, folder) -> subprocess.Popen:
    """A Python process that trains against the server (its stderr kept), in its own session."""
    return subprocess.Popen(
        [sys.executable, *python_arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=folder,
        start_new_session=True,
    )


@pytest.mark.slow
def test_server_down_for_30_s_loses_no_metric(tmp_path, tiny_recording_file):
    port, url, server, env = _server_and_training_env(tmp_path)
    settings = dict(data=str(tiny_recording_file), max_epochs=MAX_EPOCHS, patience=MAX_EPOCHS, checkpoint_every=20)
    training = _training_process(["-m", "eirnn.cli", "train", *small_flags(**settings)], env, tmp_path)
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        run_id = None
        while time.monotonic() < deadline and run_id is None:
            experiment = client.get_experiment_by_name("eirnn")
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            if runs and client.get_metric_history(runs[0].info.run_id, EPOCH_METRICS["val_psth_corr"]):
                run_id = runs[0].info.run_id
            time.sleep(0.2)
        assert run_id is not None, "no epoch logged"
        stop_server(server)
        time.sleep(OUTAGE_S)
        assert training.poll() is None, training.stderr.read()[-3000:]  # still training (or draining)
        server = _start_server(tmp_path, port)
        _, err = training.communicate(timeout=600)
        assert training.returncode == 0, err[-3000:]
        assert "tracking server did not answer" in err and "answers again" in err
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        for key in EPOCH_NAMES:
            assert sorted(m.step for m in client.get_metric_history(run_id, key)) == list(range(MAX_EPOCHS)), key
    finally:
        stop_server(training)
        stop_server(server)


# a run whose sink, after the fit, waits until the test has stopped the tracking server: the
# evaluation's uploads then meet the outage
RUN_INTO_AN_OUTAGE = """
import sys, time
from pathlib import Path
from eirnn.config import TrainConfig
from eirnn.tracking.mlflow_run import train_and_log

class WaitsForTheOutage:
    def on_fit_end(self, failed):
        Path("fit-ended").touch()
        while not Path("server-stopped").exists():
            time.sleep(0.1)

train_and_log(TrainConfig(**eval(sys.argv[1])), sinks=[WaitsForTheOutage()])
"""


@pytest.mark.slow
def test_a_server_gone_when_the_results_upload_leaves_a_run_that_resumes_once_it_is_back(tmp_path, tiny_recording_file):
    port, url, server, env = _server_and_training_env(tmp_path)
    settings = small_settings(data=str(tiny_recording_file), max_epochs=5)
    training = _training_process(["-c", RUN_INTO_AN_OUTAGE, repr(settings)], env, tmp_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (tmp_path / "fit-ended").exists():
            assert training.poll() is None and time.monotonic() < deadline, training.stderr.read()[-3000:]
            time.sleep(0.1)
        stop_server(server)
        (tmp_path / "server-stopped").touch()
        _, err = training.communicate(timeout=600)
        assert training.returncode == 1, err[-3000:]
        assert "the tracking server did not answer as run" in err, err[-3000:]
        run_id = re.search(r"eirnn train --resume (\w+)", err).group(1)

        server = _start_server(tmp_path, port)
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        assert client.get_run(run_id).info.status == "RUNNING"
        resumed = subprocess.run(
            [sys.executable, "-m", "eirnn.cli", "train", "--resume", run_id],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
        )
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert "final/cond_psth_corr" in run.data.metrics
        for key in EPOCH_NAMES:
            assert sorted(m.step for m in client.get_metric_history(run_id, key)) == list(range(5)), key
        assert [version.run_id for version in client.search_model_versions("name = 'eirnn'")] == [run_id]
    finally:
        stop_server(training)
        stop_server(server)
