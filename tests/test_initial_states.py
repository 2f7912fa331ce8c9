"""Inferred initial states: the encoder never reads held-out neurons or forward bins, training and
resume with them, single-trial predictions through the logged model, held-out neuron choice."""

import mlflow
import numpy as np
import pytest
import torch
from conftest import REPO
from mlflow.tracking import MlflowClient

from eirnn.config import TrainConfig
from eirnn.data.split import heldout_neuron_index
from eirnn.data.synthetic import make_recording
from eirnn.evaluation import predict_rates
from eirnn.logged_names import epoch_metric, final_metric
from eirnn.model import create_model_for_dataset
from eirnn.pipeline import prepare
from eirnn.training import RESUME_FILE, fit

SMALL = dict(input_embed_dim=8, attention_heads=2, threads=1, encoder_hidden=8)


@pytest.fixture(scope="module")
def recording():
    return make_recording(seed=1, n_e=8, n_i=3, n_trials=96, n_bins=40)[0]


def _encoder_model(dataset, heldout, forward_bins):
    model = create_model_for_dataset(
        dataset, initial_state="inferred", heldout_neurons=heldout, forward_bins=forward_bins, seed=0
    )
    with torch.no_grad():  # the output layer starts at zero: give it weights so offsets depend on spikes
        model.encoder.to_offset.weight.normal_(generator=torch.Generator().manual_seed(1))
    return model.eval()


def _offsets(model, dataset, spikes):
    inputs = torch.as_tensor(dataset.inputs)
    return model(model.prepare_inputs(inputs, torch.as_tensor(spikes, dtype=torch.float32))).initial_state_offset


def test_held_out_spikes_and_forward_bins_never_reach_the_inferred_states(recording):
    heldout, forward_bins = [1, 4, 9], 5
    model = _encoder_model(recording, heldout, forward_bins)
    spikes = recording.counts.astype(np.float32)
    baseline = _offsets(model, recording, spikes)
    changed = spikes.copy()
    changed[..., heldout] = np.random.default_rng(0).poisson(5.0, changed[..., heldout].shape)
    changed[:, -forward_bins:] = np.nan
    assert torch.equal(_offsets(model, recording, changed), baseline)
    held_in = spikes.copy()
    held_in[:, :10, 0] += 3  # a held-in neuron in observed bins: the states move
    assert not torch.allclose(_offsets(model, recording, held_in), baseline)


def test_without_spikes_an_inferred_model_starts_from_the_shared_state(recording):
    model = _encoder_model(recording, [2], 0)
    shared = create_model_for_dataset(recording, seed=0).eval()
    shared.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")})
    inputs = torch.as_tensor(recording.inputs)
    assert torch.equal(model(inputs).rates, shared(inputs).rates)
    assert model(inputs).initial_state_offset is None


def test_shared_model_draws_the_same_weights_as_before(recording):
    """The encoder is built after every other module: shared models are unchanged by it."""
    shared = create_model_for_dataset(recording, seed=3)
    inferred = create_model_for_dataset(recording, seed=3, initial_state="inferred")
    assert not any(name.startswith("encoder.") for name in shared.state_dict())
    for name, value in shared.state_dict().items():
        assert torch.equal(value, inferred.state_dict()[name]), name


def _fit(dataset, checkpoint_dir=None, resume_from=None, **changes):
    inferred = dict(max_epochs=6, initial_state="inferred", heldout_neurons="0.25", forward_bins=4)
    config = TrainConfig(**{**SMALL, **inferred, **changes})
    prepared = prepare(config, dataset=dataset)
    result = fit(
        prepared.model,
        prepared.train,
        prepared.val,
        config.section("training"),
        checkpoint_dir=checkpoint_dir,
        resume_from=resume_from,
        progress=False,
    )
    return prepared, result


def test_inferred_checkpoints_resume_exactly(recording, tmp_path):
    _, uninterrupted = _fit(recording)
    assert all(np.isfinite(h["val_co_bps"]) for h in uninterrupted.history)
    assert any(name.startswith("encoder.") for name in uninterrupted.best_state)
    _fit(recording, checkpoint_dir=tmp_path, max_epochs=3, checkpoint_every=3)
    _, resumed = _fit(recording, resume_from=tmp_path / RESUME_FILE)
    trajectory = lambda result: [(h["train_loss"], h["val_co_bps"]) for h in result.history]  # noqa: E731
    assert trajectory(resumed) == trajectory(uninterrupted)


def test_heldout_neurons_by_fraction_are_seeded_and_by_id_exact(recording):
    first = heldout_neuron_index(recording, "0.2", seed=0)
    assert first == heldout_neuron_index(recording, "0.2", seed=0) and len(first) == 2
    assert first != heldout_neuron_index(recording, "0.2", seed=5)
    ids = [str(recording.neuron_ids[i]) for i in (3, 7)]
    assert heldout_neuron_index(recording, ",".join(ids), seed=0) == [3, 7]
    assert heldout_neuron_index(recording, "", seed=0) == []
    with pytest.raises(ValueError, match="heldout_neurons"):
        heldout_neuron_index(recording, "no-such-neuron", seed=0)


@pytest.mark.slow
def test_mlflow_run_inferred_logs_co_bps_and_serves_single_trials(tracking_store, tiny_recording_file):
    submitted = mlflow.projects.run(
        str(REPO),
        entry_point="main",
        parameters={
            "data": str(tiny_recording_file),
            "initial_state": "inferred",
            "heldout_neurons": 0.2,
            "forward_bins": 4,
            "max_epochs": 3,
            "input_embed_dim": 8,
            "attention_heads": 2,
            "encoder_hidden": 8,
            "threads": 1,
            "log_figures": "false",
        },
        env_manager="local",
        synchronous=True,
    )
    client = MlflowClient()
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    for name in ("co_bps", "fp_bps", "vel_r2"):
        assert np.isfinite(run.data.metrics[final_metric(name)]), name
    assert len(client.get_metric_history(run.info.run_id, epoch_metric("val_co_bps"))) == 3

    import eirnn
    from eirnn.data import load_dataset
    from eirnn.evaluation import trial_spikes
    from eirnn.pipeline import split
    from eirnn.tracking.serving import predict_input

    model = eirnn.load_model("eirnn")
    assert model.infers_initial_state and len(model.hparams["heldout_neurons"]) == 2
    _, val = split(load_dataset(tiny_recording_file), model.train_config)
    spikes = trial_spikes(model, val)
    direct = predict_rates(model, val.inputs, spikes=spikes).rates.numpy()
    served = mlflow.pyfunc.load_model("models:/eirnn@champion").predict(predict_input(model, val.inputs, spikes))
    np.testing.assert_allclose(served, direct, rtol=1e-5, atol=1e-5)
    same_condition = np.flatnonzero(val.conditions == val.conditions[0])[:2]
    assert not np.allclose(served[same_condition[0]], served[same_condition[1]])  # single trials differ
