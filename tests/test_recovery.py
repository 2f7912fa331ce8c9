"""Ground-truth recovery (eirnn.recovery) on a small synthetic recording with a known circuit."""

import dataclasses

import numpy as np
import pytest
import torch

from eirnn.data.synthetic import make_recording
from eirnn.evaluation import predict_rates
from eirnn.metrics import condition_psths
from eirnn.recovery import effective_weights, ground_truth_model, recover, shuffled_within_blocks


@pytest.fixture(scope="module")
def recording():
    return make_recording(seed=1, n_e=12, n_i=4, n_bins=60, n_trials=80, n_conditions=4)


def test_true_network_as_a_model_reproduces_the_recording(recording):
    dataset, truth = recording
    twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    rates = predict_rates(twin, dataset.inputs).rates.numpy()[..., : dataset.n_neurons].astype(np.float64)
    model_psths = condition_psths(rates, dataset.conditions)
    true_psths = condition_psths(truth.rates_hz, dataset.conditions)
    # noise off and one shared initial state, so close but not identical to the noisy truth
    assert np.corrcoef(model_psths.ravel(), true_psths.ravel())[0, 1] > 0.95


def test_model_with_the_true_weights_recovers_everything_and_the_null_does_not(recording):
    dataset, truth = recording
    twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    result = recover(twin, truth, dataset, seed=0)
    metrics = result.metrics
    assert metrics["gt_weight_corr"] == pytest.approx(1.0, abs=1e-6)
    for block in ("EE", "EI", "IE", "II"):
        assert metrics[f"gt_weight_corr_{block}"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["gt_sign_agreement"] == 1.0
    assert metrics["gt_perturbation_corr"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["gt_perturbation_sign_agreement"] == 1.0
    # the null keeps Dale's signs (which alone correlate the weights) but loses the structure
    assert metrics["gt_null_weight_corr"] < 0.9
    assert metrics["gt_null_perturbation_corr"] < 0.5
    assert set(result.groups) == {"I", "E"}


def test_shuffled_labels_lose_sign_agreement(recording):
    """A model that believes the wrong neurons are inhibitory gets weight signs wrong."""
    from eirnn.model import create_model_for_dataset

    dataset, truth = recording
    rng = np.random.default_rng(0)
    shuffled = dataclasses.replace(dataset, ei_labels=rng.permutation(dataset.ei_labels))
    model = create_model_for_dataset(shuffled, input_embed_dim=8, attention_heads=2, seed=0)
    metrics = recover(model, truth, dataset, seed=0).metrics
    assert metrics["gt_sign_agreement"] < 0.9
    assert np.isfinite(metrics["gt_perturbation_corr"])


def test_null_shuffles_within_blocks_and_keeps_each_blocks_weights(recording):
    dataset, truth = recording
    twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    null = shuffled_within_blocks(twin, seed=3)
    assert not torch.equal(null.recurrent_weight_raw, twin.recurrent_weight_raw)
    for post in (twin.e_mask, twin.i_mask):
        for pre in (twin.e_mask, twin.i_mask):
            block = post[:, None] & pre[None, :]
            before = torch.sort(twin.recurrent_weight_raw[block]).values
            after = torch.sort(null.recurrent_weight_raw[block]).values
            assert torch.equal(before, after)
    assert torch.equal(shuffled_within_blocks(twin, seed=3).recurrent_weight_raw, null.recurrent_weight_raw)
    weights = effective_weights(twin, dataset.n_neurons)
    assert np.all(np.diag(weights) == 0)
