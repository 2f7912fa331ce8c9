"""`eirnn.train`, the public entry point, against a real SQLite tracking store."""

import math

import numpy as np
import pytest
from conftest import TINY_SIZES, small_settings, tiny_recording
from mlflow.tracking import MlflowClient

import eirnn
from eirnn.config import ConfigError
from eirnn.logged_names import EPOCH_METRICS, FIT_TAGS, final_metric, fit_tag

SMALL = small_settings(max_epochs=3)


def test_train_from_a_file_tracks_a_run_and_returns_its_results(tracking_store, tiny_recording_file):
    result = eirnn.train(tiny_recording_file, experiment_name="api", **SMALL)

    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["data"] == str(tiny_recording_file)
    assert result.config.data == str(tiny_recording_file) and result.config.max_epochs == 3
    # the core's names; logged as final/NAME, the counts, flags and times as eirnn.fit.* tags
    scores = {name: value for name, value in result.metrics.items() if name not in FIT_TAGS}
    assert {final_metric(name) for name in scores} <= set(run.data.metrics)
    for name, value in scores.items():
        logged = run.data.metrics[final_metric(name)]
        assert math.isnan(value) if math.isnan(logged) else value == pytest.approx(logged)
    assert float(run.data.tags[fit_tag("best_epoch")]) == result.metrics["best_epoch"]
    logged = [
        m.value
        for m in sorted(
            MlflowClient().get_metric_history(result.run_id, EPOCH_METRICS["val_psth_corr"]), key=lambda m: m.step
        )
    ]
    assert [epoch["val_psth_corr"] for epoch in result.history] == pytest.approx(logged)
    assert result.metrics["best_val_psth_corr"] == pytest.approx(result.fit.best_val_psth_corr)
    assert result.metrics["cond_psth_corr"] == pytest.approx(result.evaluation.condition_psth.mean)

    assert (result.model_version, result.champion_version, result.is_champion) == ("1", "1", True)
    assert result.dataset.n_neurons == TINY_SIZES["n_e"] + TINY_SIZES["n_i"]
    _, val = eirnn.split(result.dataset, result.config)
    np.testing.assert_array_equal(result.val.inputs, val.inputs)
    assert result.train.n_trials + result.val.n_trials == result.dataset.n_trials

    from eirnn.evaluation import predict_rates

    loaded = eirnn.load_model("eirnn", version=result.model_version)
    np.testing.assert_allclose(
        predict_rates(loaded, val.inputs).rates.numpy(), predict_rates(result.model, val.inputs).rates.numpy()
    )


def test_train_on_a_dataset_without_registering(tracking_store):

    dataset, _ = tiny_recording(1)
    result = eirnn.train(dataset, register=False, seed=3, **SMALL)

    assert result.dataset is dataset
    assert (result.model_version, result.is_champion) == (None, False)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["seed"] == "3"
    # named as the dataset it is, not as the built-in recording
    assert run.data.tags["eirnn.data"] == "synthetic-seed1"
    assert {dataset_input.dataset.name for dataset_input in run.inputs.dataset_inputs} == {"synthetic-seed1"}
    assert MlflowClient().search_registered_models() == []


def test_an_unknown_setting_is_refused_before_any_run(tracking_store):
    with pytest.raises(ConfigError, match="learning_rte"):
        eirnn.train(learning_rte=0.1)
    assert MlflowClient().search_experiments(filter_string="name = 'eirnn'") == []
