"""A test-built NWB session and the real condition-averaged M1 example train end to end through
`mlflow run` and `eirnn train`, and their runs log the data facts."""

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, small_flags, small_project_parameters
from mlflow.tracking import MlflowClient
from nwb_sessions import write_session

from eirnn.data.examples import M1_REACH_FILE
from eirnn.logged_names import SELECTION_METRIC, final_metric

SHARED = Path(os.environ.get("EIRNN_SHARED_DIR") or REPO.parent / "shared")
M1_FILE = SHARED / M1_REACH_FILE
needs_m1 = pytest.mark.skipif(not M1_FILE.is_file(), reason=f"shared M1 example data not found at {M1_FILE}")
# condition-averaged: validation on the training trials must be asked for
M1_SETTINGS = dict(
    data=M1_FILE, inputs="cue-go", go_event=-300, data_keys="behavior=hand_velocity", validate_on_train="true"
)
SMALL = small_project_parameters(max_epochs=3)


def _mlflow_run(tracking_store, experiment: str, parameters: dict) -> tuple[subprocess.CompletedProcess, object]:
    client = MlflowClient()
    client.create_experiment(experiment, artifact_location=str(tracking_store / "artifacts"))
    command = [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local"]
    command += ["--experiment-name", experiment]
    for name, value in {**SMALL, **parameters}.items():
        command += ["-P", f"{name}={value}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return result, runs


def test_mlflow_run_trains_on_an_nwb_session_and_logs_the_data_facts(tracking_store):
    session = write_session(tracking_store / "session.nwb")
    parameters = dict(
        data=session.path,
        align="move_onset_time",
        window_ms="-300,200",  # within every trial: a window may not run past its trial's stop_time
        bin_ms=20,
        condition="target_pos",
        behavior="hand_vel",
    )
    result, runs = _mlflow_run(tracking_store, "nwb", parameters)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs
    params = run.data.params
    assert run.info.status == "FINISHED"
    assert params["data.file"] == str(session.path)
    assert params["data.sha256"] == hashlib.sha256(session.path.read_bytes()).hexdigest()
    assert (params["data.align"], params["data.window_ms"], params["data.format"]) == (
        "move_onset_time",
        "-300,200",
        "nwb",
    )
    assert params["data.n_trials_dropped"] == "2"
    assert "1 NaN move_onset_time" in params["data.dropped_trials"]
    assert params["data.n_trials"] == "38" and params["data.n_outputs"] == "2" and params["data.n_i"] == "4"
    assert params["data.validation"] == "held-out trials"
    assert math.isfinite(run.data.metrics[SELECTION_METRIC])


def _assert_condition_averaged_run(run):
    params, metrics = run.data.params, run.data.metrics
    assert run.info.status == "FINISHED"
    assert params["data.validation"].startswith("training trials: none: one (pseudo-)trial per condition")
    assert (
        "single-trial metrics (Fano factor, noise ceiling, bits/spike) are not available" in params["data.validation"]
    )
    assert params["data.inputs"].startswith("cue one-hot from the window start until -300")
    assert params["data.n_inputs"] == "9" and params["data.n_trials"] == "8" and params["data.n_outputs"] == "2"
    for single_trial_metric in ("bits_per_spike", "noise_ceiling", "fano_data"):
        assert math.isnan(metrics[final_metric(single_trial_metric)]), single_trial_metric


@needs_m1
def test_m1_condition_averaged_example_trains_through_eirnn_train(tracking_store):
    command = [sys.executable, "-m", "eirnn.cli", "train", "--data", str(M1_FILE), "--inputs", "cue-go"]
    command += ["--go-event", "-300", "--data-keys", "behavior=hand_velocity", "--experiment-name", "m1"]
    command += ["--validate-on-train", "true"]
    command += small_flags(max_epochs=3)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "single-trial metrics" in result.stderr  # said where the user sees it, not only in the run
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("m1").experiment_id])
    _assert_condition_averaged_run(run)


@needs_m1
def test_m1_condition_averaged_example_trains_through_mlflow_run(tracking_store):
    result, runs = _mlflow_run(tracking_store, "m1-mlflow-run", M1_SETTINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs
    _assert_condition_averaged_run(run)
