"""Several machines on one study: the Optuna study in PostgreSQL, runs on an `mlflow server`
backed by PostgreSQL, a lead that opens the parent run and the study and runs no trials, and two
independent `eirnn tune --parent-run-id` worker processes of 4 trials each.

Needs a PostgreSQL server whose URL (a role allowed to create databases) is in
EIRNN_TEST_POSTGRES_URL; `.ci/run` starts one on loopback and sets it.
"""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from conftest import small_flags, tracking_env
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback

from eirnn.logged_names import EPOCH_METRICS, TRIAL_STATE_TAG, TRIAL_TAG, study_metric
from eirnn.tracking.model_registry import CHAMPION
from eirnn.tracking.ui import free_port, stop_server

POSTGRES_URL = os.environ.get("EIRNN_TEST_POSTGRES_URL", "")
pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="EIRNN_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"
)
STARTUP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 420


@contextmanager
def fresh_databases():
    """Two fresh databases, one for the Optuna storage and one for the MLflow backend store: their
    URLs by role, dropped on exit."""
    import psycopg2
    from sqlalchemy.engine import make_url

    suffix = uuid.uuid4().hex[:10]
    names = {role: f"eirnn_test_{role}_{suffix}" for role in ("optuna", "mlflow")}
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    with admin.cursor() as cursor:
        for name in names.values():
            cursor.execute(f'CREATE DATABASE "{name}"')
    # the bare postgresql:// URL users write (psycopg 3, SQLAlchemy 2.1's default driver)
    base = make_url(POSTGRES_URL)
    try:
        yield {role: base.set(database=name).render_as_string(hide_password=False) for role, name in names.items()}
    finally:
        with admin.cursor() as cursor:
            for name in names.values():
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def running_mlflow_server(backend_store_uri: str, folder: Path):
    """`mlflow server` on a free loopback port with its artifacts and log in `folder`: its URL once
    /health answers, stopped on exit."""
    port = free_port("127.0.0.1", 0)
    log = folder / "mlflow-server.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(folder / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with open(log, "w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_server(server)
            pytest.fail(f"mlflow server not healthy after {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    try:
        yield url
    finally:
        stop_server(server)


@pytest.fixture
def databases():
    with fresh_databases() as urls:
        yield urls


@pytest.fixture
def mlflow_server(databases, tmp_path):
    with running_mlflow_server(databases["mlflow"], tmp_path) as url:
        yield url


def _launch(arguments: list[str], env: dict, log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "eirnn.cli", "tune", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def _wait_for_parent_run_id(lead: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(r"parent run (\w+)", log.read_text())
        if found:
            return found.group(1)
        if lead.poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"the lead printed no parent run id:\n{log.read_text()[-3000:]}")


def test_two_worker_processes_share_one_postgres_study_and_one_parent_run(
    databases, mlflow_server, tiny_recording_file, tmp_path
):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n")
    common = small_flags(
        study_name="machines",
        storage=databases["optuna"],
        experiment_name="machines",
        data=str(tiny_recording_file),
        search_space=str(space),
        pruner="none",
        max_epochs=3,
    )
    env = tracking_env(mlflow_server)
    processes = []
    try:
        lead_log = tmp_path / "lead.log"
        # the lead opens the parent run and the study, runs no trials, and summarises once 8 have finished
        lead = _launch([*common, "--n-trials", "8", "--n-workers", "0"], env, lead_log, tmp_path)
        processes.append(lead)
        parent_run_id = _wait_for_parent_run_id(lead, lead_log)
        workers = [
            _launch(
                [*common, "--n-trials", "4", "--parent-run-id", parent_run_id],
                env,
                tmp_path / f"worker{n}.log",
                tmp_path,
            )
            for n in range(2)
        ]
        processes.extend(workers)
        for process, name in zip(processes, ("lead", "worker0", "worker1")):
            code = process.wait(timeout=RUN_TIMEOUT_S)
            assert code == 0, f"{name} exited with {code}:\n{(tmp_path / f'{name}.log').read_text()[-3000:]}"
    finally:
        for process in processes:
            stop_server(process)

    trials = optuna.load_study(study_name="machines", storage=databases["optuna"]).trials
    assert sorted(trial.number for trial in trials) == list(range(8))
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "machines"
    assert parent.data.tags["eirnn.tuning.storage"] == "postgresql"
    assert parent.data.metrics[study_metric("trials_complete")] == 8
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    )
    assert sorted(int(run.data.tags[TRIAL_TAG]) for run in children) == list(range(8))
    assert all(run.info.status == "FINISHED" and run.data.tags[TRIAL_STATE_TAG] == "COMPLETE" for run in children)
    assert {trial.user_attrs["mlflow_run_id"] for trial in trials} == {run.info.run_id for run in children}

    best = max(trials, key=lambda trial: trial.value)
    assert parent.data.metrics[study_metric("best_value")] == pytest.approx(best.value)
    champion = client.get_model_version_by_alias("eirnn", CHAMPION)
    assert champion.run_id == best.user_attrs["mlflow_run_id"]


def _trial_runs(client: MlflowClient, parent_run_id: str) -> list:
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_retried_and_a_mismatched_worker_refused(
    databases, mlflow_server, tiny_recording_file, tmp_path
):
    common = small_flags(
        study_name="lost",
        storage=databases["optuna"],
        experiment_name="lost",
        data=str(tiny_recording_file),
        pruner="none",
        heartbeat_seconds=1,
        max_epochs=150,
        patience=1000,
    )
    env = tracking_env(mlflow_server)
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    processes = []
    try:
        lead = _launch([*common, "--n-trials", "3", "--n-workers", "0"], env, tmp_path / "lead.log", tmp_path)
        processes.append(lead)
        parent_run_id = _wait_for_parent_run_id(lead, tmp_path / "lead.log")
        joining = [*common, "--n-trials", "3", "--parent-run-id", parent_run_id]

        # the same study with another fixed setting is refused, naming it
        mismatched_log = tmp_path / "mismatched.log"
        mismatched = _launch([*joining, "--max-epochs", "100"], env, mismatched_log, tmp_path)
        processes.append(mismatched)
        doomed = _launch(joining, env, tmp_path / "doomed.log", tmp_path)
        processes.append(doomed)
        assert mismatched.wait(timeout=STARTUP_TIMEOUT_S) == 2
        assert "max_epochs: study 'lost' runs with 150, this worker has 100" in mismatched_log.read_text()

        # SIGKILL the worker in the middle of a trial: a child run with some epochs logged
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            running = [run for run in _trial_runs(client, parent_run_id) if run.info.status == "RUNNING"]
            if running and client.get_metric_history(running[0].info.run_id, EPOCH_METRICS["val_psth_corr"]):
                break
            assert doomed.poll() is None, (tmp_path / "doomed.log").read_text()[-3000:]
            time.sleep(0.5)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
        dead_run = running[0]

        restarted = _launch(joining, env, tmp_path / "restarted.log", tmp_path)
        processes.append(restarted)
        for process, name in ((restarted, "restarted"), (lead, "lead")):
            code = process.wait(timeout=RUN_TIMEOUT_S)
            assert code == 0, f"{name} exited with {code}:\n{(tmp_path / f'{name}.log').read_text()[-3000:]}"
    finally:
        for process in processes:
            stop_server(process)

    dead_number = int(dead_run.data.tags[TRIAL_TAG])
    trials = optuna.load_study(study_name="lost", storage=databases["optuna"]).trials
    states = {trial.number: trial.state for trial in trials}
    assert states[dead_number] == optuna.trial.TrialState.FAIL
    retries = [trial for trial in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) == dead_number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == next(trial for trial in trials if trial.number == dead_number).params
    assert sum(state == optuna.trial.TrialState.COMPLETE for state in states.values()) == 3

    children = _trial_runs(client, parent_run_id)  # every child under the one parent
    assert not [run.info.run_id for run in children if run.info.status == "RUNNING"]
    dead = client.get_run(dead_run.info.run_id)
    assert dead.info.status == "FAILED" and "worker lost" in dead.data.tags["eirnn.error"]
    assert sum(run.info.status == "FINISHED" for run in children) == 3
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics[study_metric("trials_complete")] == 3
