"""`eirnn tune --launcher slurm` and `eirnn ensemble --launcher slurm` against a real single-node
SLURM cluster (`.ci/slurm`, which `.ci/run` starts): the lead submits its workers as a job array,
the trials (fits) land under one parent run on an `mlflow server`, and a worker job cancelled
mid-fit (`scancel`: SIGTERM, then SIGKILL) has its trial failed, queued again and run by a worker
the lead submits in its place.

Needs PostgreSQL (EIRNN_TEST_POSTGRES_URL) for the Optuna storage and the MLflow backend store.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback

# the PostgreSQL databases and the mlflow server of the several-machines tests
from test_tuning_postgres import POSTGRES_URL, fresh_databases, running_mlflow_server

from eirnn.logged_names import EPOCH_METRICS, FIT_TAG, TRIAL_STATE_TAG, TRIAL_TAG, ensemble_metric, study_metric
from eirnn.tracking.ui import stop_server


def _slurmctld_answers() -> bool:
    if shutil.which("scontrol") is None:
        return False
    result = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return result.returncode == 0 and "is UP" in result.stdout


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="EIRNN_TEST_POSTGRES_URL is not set: no PostgreSQL server"),
    pytest.mark.skipif(
        not _slurmctld_answers(), reason="slurmctld is not running: start a single-node cluster with `.ci/slurm`"
    ),
]
RUN_TIMEOUT_S = 420


# one set of databases and one `mlflow server` for the module (under `pytest -n 2`, one per worker
# that runs its tests): each test has its own study and experiment names and looks only at the
# runs under its own parent run
@pytest.fixture(scope="module")
def databases():
    with fresh_databases() as urls:
        yield urls


@pytest.fixture(scope="module")
def mlflow_server(databases, tmp_path_factory):
    with running_mlflow_server(databases["mlflow"], tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def _lead(command: str, arguments: list[str], mlflow_url: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """`eirnn COMMAND --launcher slurm ARGUMENTS`, the lead, started in the background."""
    log = tmp_path / "lead.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_url}
    env.pop("MLFLOW_RUN_ID", None)
    with open(log, "w") as output:
        lead = subprocess.Popen(
            [sys.executable, "-m", "eirnn.cli", command, "--launcher", "slurm", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
    return lead, log


def _tune(arguments: list[str], mlflow_url: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    return _lead("tune", arguments, mlflow_url, tmp_path)


def _shared(name: str, storage: str, data: Path, tmp_path: Path) -> list[str]:
    """The settings of the tune and ensemble leads: tiny model, small jobs. Heartbeats of 10 s:
    on a loaded machine shorter ones go missing from live workers, whose trials are then failed
    and re-run; a cancelled worker's trial is queued again at SIGTERM, not through heartbeats."""
    return [
        *("--storage", storage, "--experiment-name", name, "--data", str(data)),
        *("--heartbeat-seconds", "10", "--input-embed-dim", "8", "--attention-heads", "2"),
        *("--log-figures", "false", "--slurm-time", "15", "--slurm-memory", "1G"),
        *("--slurm-log-dir", str(tmp_path / "slurm")),
    ]


def _common(study: str, storage: str, data: Path, tmp_path: Path) -> list[str]:
    return ["--study-name", study, "--pruner", "none", *_shared(study, storage, data, tmp_path)]


def _wait(lead: subprocess.Popen, log: Path) -> None:
    try:
        code = lead.wait(timeout=RUN_TIMEOUT_S)
    finally:
        stop_server(lead)
    workers = "".join(path.read_text()[-1500:] for path in sorted(log.parent.glob("slurm/*.out")))
    assert code == 0, f"the lead exited with {code}:\n{log.read_text()[-3000:]}\nworkers:\n{workers}"


def _children(client: MlflowClient, parent_run_id: str) -> list:
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def _parent_run_id(log: Path) -> str:
    return re.search(r"parent run (\w+)", log.read_text()).group(1)


def _jobs_left(parent_run_id: str, command: str = "tune") -> str:
    return subprocess.run(
        ["squeue", "--noheader", "--states=PENDING,RUNNING", f"--name=eirnn-{command}-{parent_run_id}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _cancel_the_worker_mid_fit(lead: subprocess.Popen, log: Path, client: MlflowClient):
    """`scancel` the lead's first job once a child run has logged an epoch; returns that run."""
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        running = []
        while time.monotonic() < deadline and not running:
            assert lead.poll() is None, log.read_text()[-3000:]
            job = re.search(r"submitted to SLURM as job (\d+)", log.read_text())
            parent = re.search(r"parent run (\w+)", log.read_text())
            if job and parent:
                running = [
                    run
                    for run in _children(client, parent.group(1))
                    if run.info.status == "RUNNING"
                    and client.get_metric_history(run.info.run_id, EPOCH_METRICS["val_psth_corr"])
                ]
            time.sleep(0.5)
        assert running, f"no fit got to its first epoch:\n{log.read_text()[-3000:]}"
        subprocess.run(["scancel", job.group(1)], check=True)
    except BaseException:
        stop_server(lead)
        raise
    return running[0]


def _cancel_mid_fit_and_wait(lead: subprocess.Popen, log: Path, client: MlflowClient, task: str):
    """Cancel the lead's one worker mid-fit, wait for the lead, check that it submitted a worker
    for the lost `task` and that the cancelled child run says why it ended; returns the parent
    run id and that run."""
    cancelled_run_id = _cancel_the_worker_mid_fit(lead, log, client).info.run_id
    _wait(lead, log)
    assert f"submitted SLURM workers for the 1 {task}(s) still missing" in log.read_text()
    cancelled = client.get_run(cancelled_run_id)
    assert cancelled.info.status == "KILLED" and "stopped by SIGTERM" in cancelled.data.tags["eirnn.error"]
    return _parent_run_id(log), cancelled


def test_a_study_submitted_through_slurm_has_its_trials_under_one_parent(
    databases,
    mlflow_server,
    tiny_recording_file,
    tmp_path,
):
    lead, log = _tune(
        [
            *_common("cluster", databases["optuna"], tiny_recording_file, tmp_path),
            *("--n-trials", "2", "--n-workers", "2", "--max-epochs", "3"),
        ],
        mlflow_server,
        tmp_path,
    )
    _wait(lead, log)

    parent_run_id = _parent_run_id(log)
    assert "2 worker(s) submitted to SLURM as job" in log.read_text()
    assert len(list((tmp_path / "slurm").glob(f"eirnn-tune-{parent_run_id}-*.out"))) == 2
    trials = optuna.load_study(study_name="cluster", storage=databases["optuna"]).trials
    assert sorted(trial.state.name for trial in trials) == ["COMPLETE", "COMPLETE"]
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics[study_metric("trials_complete")] == 2
    children = _children(client, parent_run_id)
    assert sorted(int(run.data.tags[TRIAL_TAG]) for run in children) == [0, 1]
    assert all(run.info.status == "FINISHED" and run.data.tags[TRIAL_STATE_TAG] == "COMPLETE" for run in children)
    assert _jobs_left(parent_run_id) == ""


def test_a_slurm_worker_cancelled_mid_fit_has_its_trial_retried(
    databases,
    mlflow_server,
    tiny_recording_file,
    tmp_path,
):
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    lead, log = _tune(
        [
            *_common("cancelled", databases["optuna"], tiny_recording_file, tmp_path),
            *("--n-trials", "1", "--n-workers", "1", "--max-epochs", "150", "--patience", "1000"),
        ],
        mlflow_server,
        tmp_path,
    )
    parent_run_id, cancelled = _cancel_mid_fit_and_wait(lead, log, client, "trial")
    trials = optuna.load_study(study_name="cancelled", storage=databases["optuna"]).trials
    lost = int(cancelled.data.tags[TRIAL_TAG])
    retries = [trial for trial in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) == lost]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == next(trial for trial in trials if trial.number == lost).params
    children = _children(client, parent_run_id)
    assert not [run.info.run_id for run in children if run.info.status == "RUNNING"]
    assert sorted(run.info.status for run in children) == ["FINISHED", "KILLED"]
    assert client.get_run(parent_run_id).info.status == "FINISHED"
    assert _jobs_left(parent_run_id) == ""


def _ensemble(name: str, arguments: list[str], storage: str, mlflow_url: str, data: Path, tmp_path: Path):
    return _lead("ensemble", [*_shared(name, storage, data, tmp_path), *arguments], mlflow_url, tmp_path)


def test_an_ensemble_submitted_through_slurm_has_its_fits_under_one_parent_and_a_summary(
    databases,
    mlflow_server,
    tiny_recording_file,
    tmp_path,
):
    arguments = ["--n-fits", "2", "--n-workers", "2", "--max-epochs", "3"]
    lead, log = _ensemble(
        "cluster-ensemble", arguments, databases["optuna"], mlflow_server, tiny_recording_file, tmp_path
    )
    _wait(lead, log)

    parent_run_id = _parent_run_id(log)
    assert "2 worker(s) submitted to SLURM as job" in log.read_text()
    assert len(list((tmp_path / "slurm").glob(f"eirnn-ensemble-{parent_run_id}-*.out"))) == 2
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics[ensemble_metric("n_fits")] == 2
    assert parent.data.metrics[ensemble_metric("n_answers")] > 0
    assert 0 <= parent.data.metrics[ensemble_metric("coverage")] <= 1
    children = _children(client, parent_run_id)
    assert sorted(int(run.data.tags[FIT_TAG]) for run in children) == [0, 1]
    assert all(run.info.status == "FINISHED" and run.data.tags[TRIAL_STATE_TAG] == "COMPLETE" for run in children)
    assert _jobs_left(parent_run_id, "ensemble") == ""


def test_a_slurm_ensemble_worker_cancelled_mid_fit_has_its_fit_retried(
    databases,
    mlflow_server,
    tiny_recording_file,
    tmp_path,
):
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    arguments = ["--n-fits", "1", "--n-workers", "1", "--max-epochs", "150", "--patience", "1000"]
    lead, log = _ensemble(
        "cancelled-ensemble", arguments, databases["optuna"], mlflow_server, tiny_recording_file, tmp_path
    )
    parent_run_id, cancelled = _cancel_mid_fit_and_wait(lead, log, client, "fit")
    children = _children(client, parent_run_id)
    assert sorted(run.info.status for run in children) == ["FINISHED", "KILLED"]
    assert [run.data.tags[FIT_TAG] for run in children] == ["0", "0"]
    retried = next(run for run in children if run.info.status == "FINISHED")
    assert retried.data.params["seed"] == cancelled.data.params["seed"]
    assert retried.data.tags[TRIAL_STATE_TAG] == "COMPLETE"
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics[ensemble_metric("n_fits")] == 1
    assert _jobs_left(parent_run_id, "ensemble") == ""
