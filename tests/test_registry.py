"""The champion rule against a real SQLite model registry: versions compete only with versions
selected on the same metric and fitted to the same data, and a broken run never holds the alias."""

import math

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from eirnn.tracking.model_registry import CHAMPION, group_alias, tag_version, update_champion

NAME = "eirnn"
DATA_A, DATA_B = "a" * 64, "b" * 64


@pytest.fixture
def client(tracking_store):
    client = MlflowClient()
    client.create_registered_model(NAME)
    return client


def _register(client, score, *, data=DATA_A, metric="cond_psth_corr", status="FINISHED", tags=None):
    """A finished run with a best selection score, registered as a new version and ruled on."""
    experiment = client.get_experiment_by_name("Default").experiment_id
    run = client.create_run(experiment, tags=tags or {})
    client.log_param(run.info.run_id, "data.sha256", data)
    client.log_metric(run.info.run_id, "final/best_selection_score", score)
    client.log_metric(run.info.run_id, "final/test_cond_psth_corr", 0.5)
    client.set_terminated(run.info.run_id, status)
    version = client.create_model_version(NAME, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version
    tag_version(client, NAME, str(version), run.info.run_id, metric)
    return str(version), update_champion(NAME, client, str(version))


def _champion(client):
    return str(client.get_model_version_by_alias(NAME, CHAMPION).version)


def test_better_version_on_the_same_data_and_metric_takes_the_alias(client):
    _register(client, 0.5)
    second, champion = _register(client, 0.6)
    assert champion == second == _champion(client)
    _register(client, 0.6)  # a tie keeps the older version
    assert _champion(client) == second
    tags = client.get_model_version(NAME, second).tags
    assert tags["selection_metric"] == "cond_psth_corr" and tags["data_sha256"] == DATA_A
    assert float(tags["selection_score"]) == 0.6 and float(tags["test_cond_psth_corr"]) == 0.5


def test_a_run_on_other_data_does_not_displace_the_champion(client):
    first, _ = _register(client, 0.5, data=DATA_A)
    other, champion = _register(client, 0.9, data=DATA_B)
    assert champion == first == _champion(client)
    # the other recording's best version is found by its own alias
    assert str(client.get_model_version_by_alias(NAME, group_alias(("cond_psth_corr", DATA_B))).version) == other
    assert str(client.get_model_version_by_alias(NAME, group_alias(("cond_psth_corr", DATA_A))).version) == first


def test_runs_with_different_selection_metrics_are_not_compared(client):
    first, _ = _register(client, 0.5, metric="cond_psth_corr")
    # a val_loss of 0.1 is "better" than nothing comparable: it must not be weighed against 0.5
    by_loss, champion = _register(client, 0.1, metric="val_loss")
    assert champion == first == _champion(client)
    _register(client, 0.3, metric="val_loss")
    alias = group_alias(("val_loss", DATA_A))
    assert str(client.get_model_version_by_alias(NAME, alias).version) == by_loss  # lower loss is better


BROKEN = [
    dict(score=math.nan),
    dict(score=math.inf),
    dict(score=0.99, status="FAILED"),
    dict(score=0.99, status="KILLED"),
    dict(score=0.99, tags={"eirnn.fit.stop_reason": "diverged"}),
    dict(score=0.99, tags={"eirnn.error": "TrainingDivergedError: loss is nan"}),
]


def test_a_broken_run_never_becomes_champion(client):
    for broken in BROKEN:
        _, champion = _register(client, **broken)
        assert champion is None, broken
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(NAME, CHAMPION)
    good, champion = _register(client, 0.4)
    assert champion == good
    for broken in BROKEN:
        _, champion = _register(client, **broken)
        assert champion == good == _champion(client), broken


def _registry_line(client, version, champion):
    from eirnn.tracking.model_registry import standing
    from eirnn.tracking.run_summary import RunSummary

    summary = RunSummary(
        *("run", "name", "0", "Default", "cond_psth_corr", 0.5, None, None, 0, 1, 1, "max_epochs"),
        *("data", DATA_A, "shape"),
        model_name=NAME,
        model_version=version,
        champion_version=champion,
        standing=standing(client, NAME, version),
    )
    return summary.registry_line


def test_the_registry_line_of_a_run_on_another_recording_names_its_own_groups_outcome(client):
    first, champion = _register(client, 0.5, data=DATA_A)
    assert _registry_line(client, first, champion) == "eirnn version 1, now the champion"
    other, champion = _register(client, 0.9, data=DATA_B)
    line = _registry_line(client, other, champion)
    alias_b = group_alias(("cond_psth_corr", DATA_B))
    assert line == (
        f"eirnn version {other}, the best of its group (cond_psth_corr on data {DATA_B[:12]}): alias {alias_b}; "
        f"the `champion` alias stays on version {first}, fitted to another recording (data {DATA_A[:12]}), "
        "which this run does not compete with"
    )
    worse, champion = _register(client, 0.2, data=DATA_B)
    assert f"its group's (cond_psth_corr on data {DATA_B[:12]}) champion stays version {other}" in _registry_line(
        client, worse, champion
    )
    by_loss, champion = _register(client, 0.1, metric="val_loss")
    assert "selected on another metric (cond_psth_corr)" in _registry_line(client, by_loss, champion)
    same, champion = _register(client, 0.4, data=DATA_A)
    assert _registry_line(client, same, champion) == (
        f"eirnn version {same}; champion stays version {first} (its score is at least as high)"
    )


@pytest.mark.slow
def test_the_closing_block_of_a_run_on_a_second_recording(tracking_store, tiny_recording_file, capsys):
    from eirnn.cli import main
    from eirnn.data.binned_files import write_dataset
    from eirnn.data.synthetic import make_recording

    second = tracking_store / "second.npz"
    write_dataset(make_recording(seed=1, n_e=6, n_i=2, n_trials=40, n_bins=20)[0], second)
    flags = ["--max-epochs", "2", "--input-embed-dim", "8", "--attention-heads", "2", "--threads", "1"]
    flags += ["--log-figures", "false"]
    assert main(["train", "--data", str(tiny_recording_file), *flags]) == 0
    assert main(["train", "--data", str(second), *flags]) == 0
    closing = capsys.readouterr().out.split("eirnn train: done")[-1]
    client = MlflowClient()
    sha = client.get_model_version(NAME, "2").tags["data_sha256"]
    alias = group_alias(("cond_psth_corr", sha))
    assert str(client.get_model_version_by_alias(NAME, alias).version) == "2"
    assert f"eirnn version 2, the best of its group (cond_psth_corr on data {sha[:12]}): alias {alias}" in closing
    assert "the `champion` alias stays on version 1, fitted to another recording (data " in closing
    assert "its score is at least as high" not in closing
