"""A worker that is alive but paused (SIGSTOP: a swapping or oversubscribed node) for longer than
the heartbeat grace loses its trial to another worker; when it wakes up (SIGCONT) it abandons the
trial instead of finishing it a second time: one finished child run per fit or trial, the woken
worker's run KILLED with the reason in `eirnn.tuning.abandoned`, the summary from one run each."""

import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest
from conftest import small_flags, tracking_env
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from eirnn.logged_names import (
    ABANDONED_TAG,
    ENSEMBLE_TAG,
    EPOCH_METRICS,
    FIT_TAG,
    TRIAL_STATE_TAG,
    TRIAL_TAG,
    ensemble_metric,
    study_metric,
)
from eirnn.tracking.ui import stop_server
from eirnn.tuning.claims import ClaimLost, ClaimWatch
from eirnn.tuning.dead_trials import end_runs_of_requeued_trials, recording_trial_failure
from eirnn.tuning.settings import PARENT_RUN_ATTR, RUN_ATTR
from eirnn.tuning.storage import open_storage

RUN_TIMEOUT_S = 600
HEARTBEAT_S = 2  # grace 4 s
MAX_EPOCHS = 2000  # fits of some seconds: both workers mid-fit at once, a paused one far from its end
TINY_FIT = {"input_embed_type": "linear", "patience": 5000, "max_epochs": MAX_EPOCHS}


def _children(client: MlflowClient, parent_run_id: str) -> list:
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def _epochs_logged(client: MlflowClient, run) -> int:
    return len(client.get_metric_history(run.info.run_id, EPOCH_METRICS["train_loss"]))


def _writable(database: Path) -> bool:
    """No other connection holds a lock on the SQLite file (BEGIN EXCLUSIVE waits for readers too)."""
    connection = sqlite3.connect(database, timeout=1.0, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


def _pause_outside_a_transaction(process: psutil.Process, databases: list[Path]) -> None:
    """SIGSTOP `process` at a moment it holds no lock on the SQLite files: stopped inside a
    transaction it would block every other process of the study until it wakes."""
    for _ in range(100):
        process.send_signal(signal.SIGSTOP)
        while process.status() != psutil.STATUS_STOPPED:
            time.sleep(0.01)
        if all(_writable(database) for database in databases):
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"process {process.pid} always held a lock on {databases}")


def _wait(condition, what: str, processes: list[subprocess.Popen], deadline: float):
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        for process in processes:
            assert process.poll() is None, f"a process exited with {process.returncode} while waiting for {what}"
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _store(folder: Path) -> MlflowClient:
    """A client of the SQLite tracking store in `folder`, its tables made before any worker
    opens it (processes that create them at once race on the schema's migration)."""
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    client.search_experiments()
    return client


def _eirnn(command: str, arguments: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "eirnn.cli", command, *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=tracking_env(f"sqlite:///{cwd / 'mlflow.db'}"),
            cwd=cwd,
            start_new_session=True,
        )


def _check_abandoned(client: MlflowClient, run_id: str) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "KILLED", run.info.status
    assert "failed it as stale" in run.data.tags[ABANDONED_TAG]
    assert run.data.tags[TRIAL_STATE_TAG] == "FAIL"
    # stopped at its next epoch after waking, not trained to the end
    assert _epochs_logged(client, run) < MAX_EPOCHS


@pytest.mark.slow
def test_a_paused_ensemble_worker_abandons_its_retried_fit_and_each_fit_keeps_one_finished_run(
    tmp_path, tiny_recording_file
):
    flags = small_flags(experiment_name="paused", heartbeat_seconds=HEARTBEAT_S, **TINY_FIT)
    arguments = ["--data", str(tiny_recording_file), "--n-fits", "2", "--n-workers", "2", *flags]
    client = _store(tmp_path)
    lead = _eirnn("ensemble", arguments, tmp_path / "lead.log", tmp_path)
    paused = None
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S

        def both_fitting():
            experiment = client.get_experiment_by_name("paused")
            if experiment is None:
                return None
            parents = client.search_runs([experiment.experiment_id], f"tags.`{ENSEMBLE_TAG}` = 'ensemble'")
            parent = next((run for run in parents if not run.data.tags.get("mlflow.parentRunId")), None)
            children = _children(client, parent.info.run_id) if parent else []
            fitting = [run for run in children if run.info.status == "RUNNING" and _epochs_logged(client, run)]
            return parent.info.run_id if len(fitting) == 2 else None

        parent_run_id = _wait(both_fitting, "both workers mid-fit", [lead], deadline)
        workers = [child for child in psutil.Process(lead.pid).children() if "spawn_main" in " ".join(child.cmdline())]
        assert len(workers) == 2
        paused = workers[0]
        _pause_outside_a_transaction(paused, [tmp_path / "mlflow.db", tmp_path / "eirnn-ensembles.db"])

        # the other worker fails the paused fit as stale (its run FAILED) and re-runs it
        def retried():
            runs = _children(client, parent_run_id)
            lost = [run for run in runs if run.info.status == "FAILED"]
            again = [run for run in runs if lost and run.data.tags[FIT_TAG] == lost[0].data.tags[FIT_TAG]]
            return lost[0].info.run_id if len(again) == 2 else None

        lost_run_id = _wait(retried, "the paused worker's fit to be run again", [lead], deadline)
        paused.send_signal(signal.SIGCONT)
        assert lead.wait(timeout=RUN_TIMEOUT_S) == 0, (tmp_path / "lead.log").read_text()[-3000:]
    finally:
        if paused is not None and paused.is_running():
            paused.send_signal(signal.SIGCONT)
        stop_server(lead)

    children = _children(client, parent_run_id)
    assert not [run for run in children if run.info.status == "RUNNING"]
    finished = [run for run in children if run.info.status == "FINISHED"]
    assert sorted(run.data.tags[FIT_TAG] for run in finished) == ["0", "1"]
    _check_abandoned(client, lost_run_id)
    assert "abandons" in (tmp_path / "lead.log").read_text() or "abandoned" in (tmp_path / "lead.log").read_text()
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics[ensemble_metric("n_fits")] == 2
    assert parent.data.metrics[ensemble_metric("n_fits_failed")] == 0
    report = Path(client.download_artifacts(parent_run_id, "report.md", str(tmp_path))).read_text()
    assert lost_run_id not in report
    assert all(run.info.run_id in report for run in finished)


@pytest.mark.slow
def test_a_paused_study_worker_abandons_its_retried_trial_and_runs_its_share_after_all(tmp_path, tiny_recording_file):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = small_flags(
        study_name="paused",
        storage=storage,
        experiment_name="paused",
        data=str(tiny_recording_file),
        pruner="none",
        heartbeat_seconds=HEARTBEAT_S,
        **TINY_FIT,
    )
    client = _store(tmp_path)
    lead = _eirnn("tune", [*common, "--n-trials", "2", "--n-workers", "0"], tmp_path / "lead.log", tmp_path)
    processes, paused = [lead], None
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        log = tmp_path / "lead.log"
        announced = _wait(
            lambda: re.search(r"parent run (\w+)", log.read_text()), "the parent run", processes, deadline
        )
        parent_run_id = announced.group(1)
        joining = [*common, "--n-trials", "1", "--parent-run-id", parent_run_id]
        first = _eirnn("tune", joining, tmp_path / "first.log", tmp_path)
        processes.append(first)

        def fitting():
            running = [run for run in _children(client, parent_run_id) if run.info.status == "RUNNING"]
            return running[0] if running and _epochs_logged(client, running[0]) else None

        lost_run = _wait(fitting, "the first worker mid-trial", processes, deadline)
        paused = psutil.Process(first.pid)
        _pause_outside_a_transaction(paused, [tmp_path / "mlflow.db", tmp_path / "study.db"])
        lost_number = int(lost_run.data.tags[TRIAL_TAG])

        # the lead fails the paused trial as stale and queues its settings again; a second worker runs them
        study = optuna.load_study(study_name="paused", storage=storage)

        def states() -> dict[int, TrialState]:
            return {trial.number: trial.state for trial in study.get_trials(deepcopy=False)}

        _wait(lambda: states()[lost_number] == TrialState.FAIL, "the paused trial to fail", processes[:1], deadline)
        second = _eirnn("tune", joining, tmp_path / "second.log", tmp_path)
        processes.append(second)
        _wait(lambda: TrialState.RUNNING in states().values(), "the trial's re-run", [lead, second], deadline)
        paused.send_signal(signal.SIGCONT)
        for process, name in ((first, "first"), (second, "second"), (lead, "lead")):
            code = process.wait(timeout=RUN_TIMEOUT_S)
            assert code == 0, f"{name} exited with {code}:\n{(tmp_path / f'{name}.log').read_text()[-3000:]}"
    finally:
        if paused is not None and paused.is_running():
            paused.send_signal(signal.SIGCONT)
        for process in processes:
            stop_server(process)

    assert "abandon" in (tmp_path / "first.log").read_text()
    trials = optuna.load_study(study_name="paused", storage=storage).get_trials(deepcopy=False)
    complete = {trial.number for trial in trials if trial.state == TrialState.COMPLETE}
    assert len(complete) == 2 and lost_number not in complete
    lost_params = next(trial.params for trial in trials if trial.number == lost_number)
    assert lost_params in [trial.params for trial in trials if trial.number in complete]
    children = _children(client, parent_run_id)
    assert not [run for run in children if run.info.status == "RUNNING"]
    assert {int(run.data.tags[TRIAL_TAG]) for run in children if run.info.status == "FINISHED"} == complete
    assert sum(run.info.status == "FINISHED" for run in children) == 2
    _check_abandoned(client, lost_run.info.run_id)
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics[study_metric("trials_complete")] == 2


def _fail_as_another_process_would(storage_url: str, trial_number: int) -> None:
    """What a process that finds the trial's heartbeat stale does: fail it, queue its settings again."""
    study = optuna.load_study(study_name=None, storage=open_storage(storage_url, HEARTBEAT_S))
    frozen = next(trial for trial in study.get_trials(deepcopy=False) if trial.number == trial_number)
    study._storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
    study._storage.get_heartbeat_stale_trial_callback()(study, frozen)


def _claimed_trial(tmp_path: Path, client: MlflowClient, name: str) -> tuple[str, optuna.Trial, str, str]:
    """A RUNNING trial of a new study `name` (SQLite storage with heartbeats) and its child run."""
    storage_url = f"sqlite:///{tmp_path / f'{name}.db'}"
    study = optuna.create_study(study_name=name, storage=open_storage(storage_url, HEARTBEAT_S))
    parent = client.create_run(client.create_experiment(name)).info.run_id
    trial = study.ask()
    trial.set_user_attr(PARENT_RUN_ATTR, parent)
    child = client.create_run(
        client.get_run(parent).info.experiment_id, tags={"mlflow.parentRunId": parent, TRIAL_TAG: str(trial.number)}
    ).info.run_id
    return storage_url, trial, parent, child


def test_a_worker_that_finds_its_trial_failed_ends_its_run_killed_and_raises_claim_lost(tmp_path, tracking_store):
    client = MlflowClient()
    storage_url, trial, parent, child = _claimed_trial(tmp_path, client, "watched")
    watch = ClaimWatch(trial, interval_s=0)
    assert watch.on_epoch_end(0, {}) is False  # still this worker's
    _fail_as_another_process_would(storage_url, trial.number)
    with pytest.raises(ClaimLost, match="failed it as stale"), recording_trial_failure(trial, parent):
        watch.on_epoch_end(1, {})
    _check_abandoned(client, child)
    # writing a result to the lost trial (after the last look) says the same
    storage_url, trial, parent, child = _claimed_trial(tmp_path, client, "written")
    _fail_as_another_process_would(storage_url, trial.number)
    with pytest.raises(ClaimLost), recording_trial_failure(trial, parent):
        trial.set_user_attr(RUN_ATTR, child)
    assert client.get_run(child).info.status == "KILLED"


def test_the_lead_ends_a_finished_run_of_a_requeued_trial_and_keeps_the_others(tmp_path, tracking_store):
    client = MlflowClient()
    storage_url, trial, parent, slipped = _claimed_trial(tmp_path, client, "slipped")
    study = optuna.load_study(study_name="slipped", storage=open_storage(storage_url, HEARTBEAT_S))
    kept = study.ask()
    kept_run = client.create_run(
        client.get_run(parent).info.experiment_id, tags={"mlflow.parentRunId": parent, TRIAL_TAG: str(kept.number)}
    ).info.run_id
    _fail_as_another_process_would(storage_url, trial.number)
    study.tell(kept, 0.5)
    for run_id in (slipped, kept_run):
        client.set_terminated(run_id, "FINISHED")
    end_runs_of_requeued_trials(client, study, parent)
    assert client.get_run(slipped).info.status == "KILLED"
    assert "ended this run" in client.get_run(slipped).data.tags[ABANDONED_TAG]
    assert client.get_run(kept_run).info.status == "FINISHED"
