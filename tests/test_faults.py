"""Faults a real `eirnn train` process meets: SIGKILL at any moment, SIGTERM from a scheduler, a
resume that must not be trusted blindly. Real processes, real signals, a real SQLite store."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import small_flags, small_settings
from mlflow.tracking import MlflowClient

from eirnn.cli import main
from eirnn.logged_names import EPOCH_METRICS, HELDOUT_EPOCH_METRICS, STOP_REASON_TAG

# long enough that every stop lands mid-fit on a fast machine too (the last kill comes after
# epoch 30 and 0.7 s more)
MAX_EPOCHS = 150
CHECKPOINTS = dict(patience=1000, checkpoint_every=10, checkpoint_seconds=0)
TRAIN = small_flags(max_epochs=MAX_EPOCHS, **CHECKPOINTS)
WAIT_S = 180
#: metrics that differ between runs by wall-clock time alone
TIMINGS = {EPOCH_METRICS["epoch_seconds"], "final/training_seconds"}
# what every run logs each epoch (these runs hold no neurons out)
EPOCH_NAMES = {name for key, name in EPOCH_METRICS.items() if key not in HELDOUT_EPOCH_METRICS}


def eirnn(*args: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "eirnn.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        **options,
    )


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=WAIT_S)
    return process.returncode, err


def only_run(client: MlflowClient):
    experiment = client.get_experiment_by_name("eirnn")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return runs[0] if len(runs) == 1 else None


def wait_for_steps(client: MlflowClient, at_least: int, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        run = only_run(client)
        if run and len(client.get_metric_history(run.info.run_id, EPOCH_METRICS["val_psth_corr"])) >= at_least:
            return run.info.run_id
        assert process.poll() is None, process.stderr.read()[-2000:]
        time.sleep(0.05)
    pytest.fail(f"no {at_least} logged epochs within {WAIT_S} s")


def epoch_values(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in EPOCH_NAMES
        if key not in TIMINGS
    }


def final_metrics(client: MlflowClient, run_id: str) -> dict[str, float | str]:
    """Final metrics, a metric the data cannot support (logged NaN) as "n/a", which compares equal."""
    metrics = client.get_run(run_id).data.metrics
    return {
        key: "n/a" if math.isnan(value) else value
        for key, value in metrics.items()
        if key not in TIMINGS and key not in EPOCH_NAMES
    }


@pytest.mark.slow
def test_sigkill_at_three_moments_then_resume_equals_an_uninterrupted_run(
    tracking_store, tiny_recording_file, monkeypatch
):
    client = MlflowClient()
    data = ["--data", str(tiny_recording_file)]
    # three kills: a moment after the first checkpoint (between checkpoints: epochs trained and
    # not saved), right as the second checkpoint's metrics arrive, and a moment after the third
    process = eirnn("train", *data, *TRAIN)
    run_id = None
    for at_least, delay_s in ((10, 0.7), (20, 0.0), (30, 0.7)):
        if run_id is not None:
            process = eirnn("train", "--resume", run_id)
        run_id = wait_for_steps(client, at_least, process)
        time.sleep(delay_s)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert client.get_run(run_id).info.status == "RUNNING"  # SIGKILL leaves no chance to clean up
    code, err = finish(eirnn("train", "--resume", run_id))
    assert code == 0, err[-2000:]
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in EPOCH_NAMES:  # one value per epoch, no gap, no repeat
        assert [m.step for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)] == list(
            range(MAX_EPOCHS)
        ), key

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "uninterrupted")
    code, err = finish(eirnn("train", *data, *TRAIN))
    assert code == 0, err[-2000:]
    reference = client.search_runs([client.get_experiment_by_name("uninterrupted").experiment_id])[0].info.run_id
    assert epoch_values(client, run_id) == epoch_values(client, reference)
    assert final_metrics(client, run_id) == final_metrics(client, reference)


@pytest.mark.slow
def test_sigterm_ends_the_run_killed_and_resume_completes_it(tracking_store, tiny_recording_file, capsys):
    client = MlflowClient()
    data = tracking_store / "recording.npz"
    data.write_bytes(tiny_recording_file.read_bytes())
    process = eirnn("train", "--data", str(data), *TRAIN)
    run_id = wait_for_steps(client, 3, process)
    process.send_signal(signal.SIGTERM)
    code, err = finish(process)
    assert code == 128 + signal.SIGTERM, err[-2000:]
    assert f"continue with: eirnn train --resume {run_id}" in err
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["eirnn.resume"] == f"eirnn train --resume {run_id}"
    stopped_after = len(client.get_metric_history(run_id, EPOCH_METRICS["val_psth_corr"]))
    assert stopped_after < MAX_EPOCHS

    # a changed data file or a changed setting is refused, and the run stays KILLED
    original = data.read_bytes()
    with np.load(data) as stored:
        changed = dict(stored)
    changed["spikes"][0, 0, 0] += 1
    np.savez(data, **changed)
    # (the checks run before the run is reopened: in-process is enough, and quick)
    assert main(["train", "--resume", run_id]) == 2
    assert "the file changed, start a new run" in capsys.readouterr().err
    data.write_bytes(original)
    assert main(["train", "--resume", run_id, "--max-epochs", "90"]) == 2
    assert "max_epochs: --resume continues with the run's own settings" in capsys.readouterr().err
    assert client.get_run(run_id).info.status == "KILLED"

    code, err = finish(eirnn("train", "--resume", run_id))
    assert code == 0, err[-2000:]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in EPOCH_NAMES:
        assert sorted(m.step for m in client.get_metric_history(run_id, key)) == list(range(MAX_EPOCHS)), key
    versions = client.search_model_versions("name = 'eirnn'")

    # a FINISHED run is not resumed: no second model version
    assert main(["train", "--resume", run_id]) == 2
    assert f"found run {run_id} FINISHED" in capsys.readouterr().err
    assert len(client.search_model_versions("name = 'eirnn'")) == len(versions) == 1


@pytest.mark.slow
def test_a_resumed_run_on_the_built_in_recording_still_scores_what_it_recovers(tracking_store):
    client = MlflowClient()
    process = eirnn("train", *small_flags(max_epochs=8, **CHECKPOINTS))
    run_id = wait_for_steps(client, 2, process)
    process.send_signal(signal.SIGTERM)
    code, err = finish(process)
    assert code == 128 + signal.SIGTERM, err[-2000:]
    code, err = finish(eirnn("train", "--resume", run_id))
    assert code == 0, err[-2000:]
    metrics = client.get_run(run_id).data.metrics
    for name in ("final/gt_weight_corr", "final/gt_perturbation_corr", "final/gt_null_perturbation_corr"):
        assert np.isfinite(metrics[name]), name


class SigtermToItselfAfterTheFit:
    """A sink that sends this process a real SIGTERM once the fit has ended, before the run is
    evaluated: where a scheduler's wall time lands when the last epochs were quick."""

    def on_fit_end(self, failed: bool) -> None:
        if not failed:
            os.kill(os.getpid(), signal.SIGTERM)


class SigtermToItselfOnceTheModelIsRegistered:
    """A sink after the MLflow one that sends this process a real SIGTERM once the run has logged
    and registered its model, the last moment a stop can land before the run ends."""

    def on_finished(self, result) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_sigterm_after_the_fit_leaves_a_run_whose_resume_only_evaluates(
    tracking_store, tiny_recording_file, monkeypatch, capsys
):
    from eirnn.config import TrainConfig
    from eirnn.tracking.mlflow_run import train_and_log
    from eirnn.training import TrainingInterrupted

    client = MlflowClient()
    # min_delta=1 ends the fit by patience after 3 epochs: a resume that trained on would add a 4th
    settings = small_settings(max_epochs=MAX_EPOCHS, patience=3, min_delta=1.0, data=str(tiny_recording_file))
    with pytest.raises(TrainingInterrupted) as stopped:
        train_and_log(TrainConfig(**settings), sinks=[SigtermToItselfAfterTheFit()])
    run = only_run(client)
    assert stopped.value.checkpoint_epoch == 3
    assert run.info.status == "KILLED"
    assert run.data.tags["eirnn.resume"] == f"eirnn train --resume {run.info.run_id}"
    assert "final/cond_psth_corr" not in run.data.metrics

    assert main(["train", "--resume", run.info.run_id]) == 0
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert client.get_run(run.info.run_id).data.tags[STOP_REASON_TAG] == "patience"
    for key in EPOCH_NAMES:
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == [0, 1, 2, 3], key

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "uninterrupted")
    assert main(["train", *small_flags(**settings)]) == 0
    reference = client.search_runs([client.get_experiment_by_name("uninterrupted").experiment_id])[0].info.run_id
    assert epoch_values(client, run.info.run_id) == epoch_values(client, reference)
    assert final_metrics(client, run.info.run_id) == final_metrics(client, reference)


def test_a_run_stopped_after_it_registered_keeps_one_model_and_one_version_when_resumed(
    tracking_store, tiny_recording_file
):
    import mlflow

    from eirnn.config import TrainConfig
    from eirnn.tracking.mlflow_run import train_and_log
    from eirnn.training import TrainingInterrupted

    client = MlflowClient()
    settings = small_settings(max_epochs=2, data=str(tiny_recording_file))
    with pytest.raises(TrainingInterrupted):
        train_and_log(TrainConfig(**settings), sinks=[SigtermToItselfOnceTheModelIsRegistered()])
    run = only_run(client)
    assert run.info.status == "KILLED"
    assert len(client.search_model_versions("name = 'eirnn'")) == 1

    assert main(["train", "--resume", run.info.run_id]) == 0
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    versions = client.search_model_versions("name = 'eirnn'")
    assert [version.run_id for version in versions] == [run.info.run_id]
    logged = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    assert [model.model_id for model in logged] == [versions[0].source.removeprefix("models:/")]
