"""Model selection on a configurable validation score, reproducible noise ceilings, and a test split
that no selection step sees: real training, a real SQLite MLflow store, a real Optuna journal."""

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import small_settings, tiny_recording
from mlflow.tracking import MlflowClient

from eirnn.config import ConfigError, TrainConfig
from eirnn.data import NeuralDataset
from eirnn.metrics import bits_per_spike
from eirnn.pipeline import prepare
from eirnn.training import EarlyStopping, fit

SMALL = small_settings(learning_rate=0.01)


@pytest.fixture(scope="module")
def tiny():
    return tiny_recording(0)


def test_early_stopping_waits_for_an_improvement_of_min_delta():
    rising_slowly = [0.5 + 0.0001 * epoch for epoch in range(100)]
    # a rise of 0.0005 per patience window of 5 epochs is below min_delta: a plateau
    stopping = EarlyStopping(patience=5, smoothing=0.0, min_delta=0.001)
    stopped = next(
        epoch
        for epoch, value in enumerate(rising_slowly)
        if (stopping.update(epoch, value), stopping.exhausted(epoch))[1]
    )
    assert stopped == 5
    assert stopping.best_epoch == 5  # the kept checkpoint still follows every improvement
    steeper = EarlyStopping(patience=5, smoothing=0.0, min_delta=0.001)
    for epoch in range(100):
        steeper.update(epoch, 0.5 + 0.0003 * epoch)  # 0.0015 per window: still learning
        assert not steeper.exhausted(epoch)

    loss = EarlyStopping(patience=3, smoothing=0.0, higher_is_better=False)
    for epoch, value in enumerate([1.0, 0.8, float("nan"), 0.9, 0.85, 0.95]):
        loss.update(epoch, value)
    assert loss.best_epoch == 1 and loss.exhausted(4)


@pytest.mark.parametrize(
    "selection_metric, key, pick",
    [("cond_psth_corr", "val_cond_psth_corr", np.argmax), ("val_loss", "val_loss", np.argmin)],
)
def test_the_best_checkpoint_follows_the_selection_metric(tiny, selection_metric, key, pick):
    dataset, _ = tiny
    config = TrainConfig(max_epochs=8, selection_metric=selection_metric, **SMALL)
    prepared = prepare(config, dataset)
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    values = [h[key] for h in result.history]
    assert result.best_epoch == int(pick(values))
    assert result.best_selection_score == values[result.best_epoch]
    assert all(h["selection_score"] == h[key] for h in result.history)
    assert "val_psth_corr" in result.history[-1]  # the seed's score stays logged
    assert result.stop_reason == "max_epochs" and "max_epochs=8" in result.stop_detail


def test_validation_bits_per_spike_is_the_published_metric(tiny):
    from eirnn.evaluation import predict_rates

    dataset, _ = tiny
    config = TrainConfig(max_epochs=3, selection_metric="bits_per_spike", **SMALL)
    prepared = prepare(config, dataset)
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    rates = predict_rates(prepared.model, prepared.val.inputs).rates.numpy().astype(np.float64)
    expected = bits_per_spike(rates * prepared.val.bin_s, prepared.val.counts)
    assert result.history[-1]["val_bits_per_spike"] == pytest.approx(expected, abs=1e-4)

    rates_only = NeuralDataset(
        rates=prepared.val.rates_hz,
        inputs=prepared.val.inputs,
        conditions=prepared.val.conditions,
        bin_ms=prepared.val.bin_ms,
    )
    with pytest.raises(ConfigError, match="selection_metric"):
        fit(prepared.model, rates_only, rates_only, config.section("training"), progress=False)


def test_noise_ceilings_do_not_depend_on_the_model_seed(tracking_store, tiny):
    from eirnn.tracking.run import train_and_log

    dataset, _ = tiny
    logged = []
    for seed in (1, 2):
        config = TrainConfig(max_epochs=2, seed=seed, split_seed=0, **SMALL)
        outcome = train_and_log(config, dataset=dataset, register=False)
        metrics = MlflowClient().get_run(outcome.run_id).data.metrics
        logged.append({key.removeprefix("final/"): value for key, value in metrics.items()})
    assert logged[0]["psth_corr"] != logged[1]["psth_corr"]  # different models
    for name in ("noise_ceiling", "cond_noise_ceiling", "noise_ceiling_sem", "cond_noise_ceiling_sem"):
        assert math.isfinite(logged[0][name])
        assert logged[0][name] == logged[1][name], name  # bit-identical
    assert logged[0]["cond_noise_ceiling_sem"] < 0.01


def test_no_trial_of_a_study_trains_or_selects_on_the_test_trials(tracking_store, tiny):
    from eirnn.tuning.settings import PrunerSettings, StudySettings
    from eirnn.tuning.study import run_study

    dataset, _ = tiny
    config = TrainConfig(max_epochs=3, test_fraction=0.2, experiment_name="tuning", **SMALL)
    space = {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}
    settings = StudySettings(study_name="held-out", n_trials=2, search_space=space, pruner=PrunerSettings("none"))
    outcome = run_study(config, settings, dataset=dataset)
    client = MlflowClient()
    parent = client.get_run(outcome.parent_run_id)
    trials = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'"
    )
    assert len(trials) == 2
    test_sets = []
    for trial in trials:
        path = mlflow.artifacts.download_artifacts(run_id=trial.info.run_id, artifact_path="split.json")
        split = json.loads(Path(path).read_text())
        test = set(split["test"])
        assert test and not test & (set(split["train"]) | set(split["val"]))
        test_sets.append(test)
        assert "final/test_cond_psth_corr" in trial.data.metrics
    assert test_sets[0] == test_sets[1]  # one test split for the whole study
    assert len(test_sets[0]) == int(0.2 * dataset.n_trials)
    best = client.get_run(parent.data.tags["eirnn.tuning.best_run_id"]).data.metrics
    assert parent.data.metrics["study/best_trial_test_cond_psth_corr"] == best["final/test_cond_psth_corr"]
    assert parent.data.metrics["study/best_trial_val_cond_psth_corr"] == best["final/cond_psth_corr"]
    assert outcome.best_test_scores["cond_psth_corr"] == best["final/test_cond_psth_corr"]
    version = client.get_model_version("eirnn", outcome.model_version)
    assert float(version.tags["test_cond_psth_corr"]) == best["final/test_cond_psth_corr"]


def test_data_without_a_file_is_identified_by_its_content(tiny):
    import dataclasses

    dataset, _ = tiny
    same, _ = tiny_recording(0)
    other, _ = tiny_recording(1)
    relabeled = dataclasses.replace(dataset, ei_labels=dataset.ei_labels[::-1].copy())
    from eirnn.pipeline import dataset_sha256

    sha = dataset_sha256(dataset)
    assert len(sha) == 64 and dataset_sha256(same) == sha
    assert dataset_sha256(other) != sha and dataset_sha256(relabeled) != sha


def test_a_noise_ceiling_is_computed_once_per_data_and_follows_any_change_of_it(tiny):
    from eirnn.evaluation import CONDITION_CEILING_STREAM, data_noise_ceilings
    from eirnn.metrics import noise_ceiling

    dataset, _ = tiny
    target, conditions = np.asarray(dataset.rates_hz, dtype=np.float64), np.asarray(dataset.conditions)
    pooled, first = data_noise_ceilings(target, conditions, 0, 20)
    assert data_noise_ceilings(target.copy(), conditions.copy(), 0, 20)[1] is first  # same content, no recompute
    afresh = noise_ceiling(
        target, conditions, by_condition=True, n_splits=20, rng=np.random.default_rng([0, CONDITION_CEILING_STREAM])
    )
    assert afresh.mean == first.mean
    np.testing.assert_array_equal(afresh.ceiling, first.ceiling)
    changed = target.copy()
    changed[0] += 1.0
    assert data_noise_ceilings(changed, conditions, 0, 20)[1].mean != first.mean
    assert data_noise_ceilings(target, conditions, 1, 20)[1].mean != first.mean
    assert pooled.mean != first.mean


def test_a_test_score_the_test_trials_cannot_support_says_why(tracking_store, tiny):
    from eirnn.tracking.run import train_and_log

    dataset, _ = tiny
    # 10% of 96 trials over 8 conditions: most conditions get a single test trial
    config = TrainConfig(max_epochs=2, test_fraction=0.1, **{**SMALL, "log_figures": True})
    outcome = train_and_log(config, dataset=dataset, register=False)
    summary = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="metrics.json")).read_text()
    )
    assert summary["final"]["test_cond_noise_ceiling"] is None
    reason = summary["not_available"]["test_cond_noise_ceiling"]
    assert reason.startswith("needs >= 2 trials in every condition")
    report = Path(mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="report.md")).read_text()
    assert reason in report and "the value is not finite" not in report
