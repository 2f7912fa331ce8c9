"""EIRNN construction, unit layout, Dale's law, noise and checkpoints."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from eirnn.model import (
    EIRNN,
    PreparedInputs,
    count_units,
    create_model_for_dataset,
    create_model_from_data,
    prepare_inputs,
    recorded_unit_index,
)

SMALL = dict(input_embed_dim=8, attention_heads=2, attention_token_dim=8)


def small_model(**overrides) -> EIRNN:
    options = dict(n_classic=5, n_interneuron=2, n_inputs=4, n_outputs=2, seed=0, **SMALL)
    options.update(overrides)
    return create_model_from_data(**options)


def random_inputs(batch=3, steps=12, n_inputs=4, seed=0) -> torch.Tensor:
    return torch.randn(batch, steps, n_inputs, generator=torch.Generator().manual_seed(seed))


def test_shapes_for_the_m1_sizes():
    model = create_model_from_data(41, 13, 14, n_outputs=2, seed=0)
    assert (model.n_e, model.n_i, model.n_units) == (52, 13, 65)
    assert model.effective_recurrent_weights().shape == (65, 65)
    assert model.input_weights().shape == (65, 56)
    assert model.readout_weights().shape == (2, 52)
    assert model.initial_state().shape == (65,)
    assert model.e_mask.sum() == 52 and model.i_mask.sum() == 13 and not model.e_mask[52:].any()
    assert model.recorded_units.tolist() == list(range(41)) + list(range(52, 65))
    output = model(torch.zeros(2, 3, 14))
    assert output.rates.shape == (2, 3, 54) and output.units.shape == (2, 3, 65) and output.behavior.shape == (2, 3, 2)


def test_unit_counts():
    assert count_units(41, 13, True, 4.0) == (52, 13)
    assert count_units(54, 0, True, 4.0) == (54, 14)  # unlabeled: hidden I units only
    assert count_units(10, 5, True, 4.0) == (20, 5)
    assert count_units(54, 0, False, 4.0) == (54, 0)
    unlabeled = create_model_from_data(54, 0, 3, seed=0, **SMALL)
    assert unlabeled.recorded_units.tolist() == list(range(54)) and unlabeled.n_units == 68
    with pytest.raises(ValueError, match="need recorded neurons"):
        count_units(0, 0, True, 4.0)


def test_recorded_units_follow_interleaved_labels():
    labels = [0, 1, 0, 0, 1]
    assert recorded_unit_index(3, 2, 8, labels) == [0, 8, 1, 2, 9]
    model = small_model(n_classic=3, neuron_labels=np.array(labels, dtype=np.int8))
    assert (model.n_e, model.n_i) == (8, 2)
    assert model.recorded_units.tolist() == [0, 8, 1, 2, 9]
    output = model(random_inputs(), noise=False)
    expected = output.units[..., model.recorded_units] * model.rate_gain
    torch.testing.assert_close(output.rates, expected)
    with pytest.raises(ValueError, match="expected n_classic=4"):
        recorded_unit_index(4, 1, 8, labels)


def test_initial_weights_are_balanced_with_the_set_spectral_radius():
    model = create_model_from_data(20, 5, 3, spectral_radius=1.3, seed=1, **SMALL)
    weights = model.effective_recurrent_weights().detach().double()
    torch.testing.assert_close(weights.sum(1), torch.zeros(25, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.linalg.eigvals(weights).abs().max().item() == pytest.approx(1.3, rel=1e-4)


def test_dale_signs_hold_after_training():
    model = small_model(input_embed_type="linear")
    initial = model.effective_recurrent_weights().detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    inputs, targets = random_inputs(batch=4, steps=10), 10 * torch.rand(4, 10, 7)
    for _ in range(100):
        loss = (model(inputs).rates - targets).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = model.effective_recurrent_weights().detach()
    assert (weights[:, model.e_mask] >= 0).all()
    assert (weights[:, model.i_mask] <= 0).all()
    assert (weights.diagonal() == 0).all()
    assert (weights - initial).abs().max() > 0.1


def test_noise_follows_mode_and_generator():
    model, inputs = small_model(), random_inputs()
    model.eval()
    torch.testing.assert_close(model(inputs).rates, model(inputs).rates, rtol=0, atol=0)
    torch.testing.assert_close(model(inputs, noise=False).rates, model(inputs).rates, rtol=0, atol=0)

    def noisy(seed: int) -> torch.Tensor:
        return model(inputs, noise=True, generator=torch.Generator().manual_seed(seed)).rates

    torch.testing.assert_close(noisy(1), noisy(1), rtol=0, atol=0)
    assert not torch.equal(noisy(1), noisy(2))
    model.train()
    assert not torch.equal(model(inputs).rates, model(inputs).rates)


def test_hparams_rebuild_and_checkpoint_round_trip(tmp_path):
    model = small_model(neuron_labels=[1, 0, 0, 1, 0, 0, 0], learnable_h0=False, activation="relu")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    rebuilt = create_model_from_data(**json.loads(json.dumps(model.hparams)))
    rebuilt.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    inputs = random_inputs()
    expected, actual = model(inputs, noise=False), rebuilt(inputs, noise=False)
    for name in ("rates", "units", "behavior"):
        torch.testing.assert_close(getattr(actual, name), getattr(expected, name), rtol=0, atol=0)


def test_create_model_for_dataset_reads_sizes_and_labels():
    labeled = SimpleNamespace(
        n_e=3,
        n_i=2,
        n_neurons=5,
        n_inputs=4,
        ei_labels=np.array([0, 1, 0, 1, 0], dtype=np.int8),
        bin_ms=20.0,
        behavior=np.zeros((2, 6, 3)),
    )
    model = create_model_for_dataset(labeled, tau=40.0, **SMALL)
    assert model.recorded_units.tolist() == [0, 8, 1, 9, 2]
    assert model.n_outputs == 3 and model.alpha == pytest.approx(0.5)
    unlabeled = SimpleNamespace(n_e=5, n_i=0, n_neurons=5, n_inputs=4, ei_labels=None, bin_ms=25.0, behavior=None)
    model = create_model_for_dataset(unlabeled, **SMALL)
    assert (model.n_e, model.n_i, model.n_outputs) == (5, 2, 0)
    assert model(random_inputs()).behavior is None


def test_set_rate_scale_maps_the_initial_state_to_mean_rates():
    model = small_model()
    mean_rates = torch.tensor([5.0, 20.0, 0.0, 1.0, 40.0, 3.0, 8.0])
    model.set_rate_scale(mean_rates)
    initial_rate = torch.nn.functional.softplus(model.initial_state()[model.recorded_units])
    torch.testing.assert_close(model.rate_gain * initial_rate, mean_rates.clamp_min(0.1))


def test_prepared_inputs_match_raw_inputs():
    model = small_model()
    steps = torch.tensor([0.0, 1.0, 1.0, 0.5]).repeat_interleave(3)
    inputs = torch.stack([steps[:, None] * torch.ones(4), steps[:, None] * torch.arange(4.0)])
    prepared = model.prepare_inputs(inputs)
    assert isinstance(prepared, PreparedInputs) and prepared.unique_inputs.shape[0] == 5  # the zero row is shared
    torch.testing.assert_close(prepared.dense(), inputs, rtol=0, atol=0)
    torch.testing.assert_close(model(prepared, noise=False).rates, model(inputs, noise=False).rates)
    subset = prepared.select(torch.tensor([1]))
    torch.testing.assert_close(model(subset, noise=False).rates, model(inputs[1:], noise=False).rates)


@pytest.mark.parametrize("piecewise", [True, False])
def test_prepare_inputs_finds_the_rows_torch_unique_finds(piecewise):
    generator = torch.Generator().manual_seed(3)
    levels = torch.randint(0, 3, (7, 30, 1), generator=generator).float()
    if piecewise:  # a few changes per trial, rows repeated across trials and steps
        levels = levels[:, ::10].repeat_interleave(10, dim=1)
    inputs = levels * torch.tensor([1.0, -0.5, 2.0]) + (0.0 if piecewise else torch.rand(7, 30, 3, generator=generator))
    unique, rows = torch.unique(inputs.reshape(-1, 3), dim=0, return_inverse=True)
    prepared = prepare_inputs(inputs)
    assert torch.equal(prepared.unique_inputs, unique)
    assert torch.equal(prepared.step_rows, rows.view(7, 30))


def test_attention_weights_are_per_head_distributions():
    model = small_model(input_embed_type="attention")
    weights = model.embedding.attention_weights(torch.randn(5, 4))
    assert weights.shape == (5, 2, 4, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5, 2, 4))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(activation="tanh"), "activation must be one of"),
        (dict(input_embed_type="rnn"), "input_embed_type must be one of"),
        (dict(dt=60.0), "need 0 < dt <= tau"),
        (dict(attention_token_dim=7), "must be a multiple of attention_heads"),
    ],
)
def test_invalid_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        small_model(**overrides)


def test_same_seed_same_initial_weights_and_auto_device():
    first, second = small_model(seed=3, device="auto"), small_model(seed=3)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=0, msg=name)
    assert math.isclose(first.noise_std, math.sqrt(2 * 0.5) * 0.1)
