"""The fixed-point finder on networks whose fixed points are solvable by hand."""

import numpy as np
import pytest
import torch

from eirnn.evaluation import predict_rates
from eirnn.fixed_points import (
    continuous_eigenvalues,
    find_fixed_points,
    network_map,
    seeded_starts,
    simulate_states,
)
from eirnn.model import EIRNN


def one_unit_network(weight: float) -> EIRNN:
    """One E unit with a self-connection, ReLU rates, input embedding the identity."""
    model = EIRNN(
        1,
        0,
        1,
        enforce_ratio=False,
        input_embed_type="linear",
        input_embed_dim=1,
        learnable_h0=False,
        tau=50.0,
        dt=10.0,
        noise_scale=0.0,
        activation="relu",
        self_connections=True,
    )
    with torch.no_grad():
        model.recurrent_weight_raw.fill_(weight)
        model.embedding.projection.weight.fill_(1.0)
        model.embedding.projection.bias.zero_()
        model.input_projection.weight.fill_(1.0)
        model.input_projection.bias.fill_(0.0)
    return model.eval()


def test_one_unit_network_has_one_stable_and_one_unstable_fixed_point():
    # x = w relu(x) + u with w = 2, u = -1: x* = -1 (relu silent, slope 0: stable) and
    # x* = u / (1 - w) = 1 (slope w = 2 > 1: unstable); map eigenvalue 1 - alpha + alpha w f'(x*)
    model = one_unit_network(2.0)
    step = network_map(model, np.array([-1.0]))
    points = find_fixed_points(step, np.linspace(-3, 3, 13)[:, None])
    order = np.argsort(points.states[:, 0])
    np.testing.assert_allclose(points.states[order, 0], [-1.0, 1.0], atol=1e-8)
    alpha = 10.0 / 50.0
    np.testing.assert_allclose(points.eigenvalues[order, 0].real, [1 - alpha, 1 - alpha + 2 * alpha], atol=1e-8)
    assert points.stable[order].tolist() == [True, False]
    # continuous time: -(1 - w f') / tau, in 1/s
    np.testing.assert_allclose(continuous_eigenvalues(points.eigenvalues[order, 0], 0.010).real, [-20.0, 20.0])


def test_linear_network_fixed_point_solves_the_linear_system():
    # ReLU units kept positive by a strong input are linear: x* = (I - W)^-1 (W_in u + b)
    model = EIRNN(
        3,
        1,
        2,
        enforce_ratio=False,
        input_embed_type="linear",
        input_embed_dim=2,
        learnable_h0=False,
        noise_scale=0.0,
        activation="relu",
        spectral_radius=0.5,
        seed=3,
    )
    u = np.array([3.0, 2.0])
    with torch.no_grad():
        model.input_projection.bias.fill_(20.0)
        weight = model.effective_recurrent_weights().double().numpy()
        drive = model.input_projection(model.embedding(torch.tensor(u[None], dtype=torch.float32)))[0].double().numpy()
    expected = np.linalg.solve(np.eye(4) - weight, drive)
    assert (expected > 0).all()
    starts = seeded_starts(torch.as_tensor(expected[None]), 16, seed=0, noise_scale=2.0)
    points = find_fixed_points(network_map(model, u), starts)
    assert points.n_points == 1
    np.testing.assert_allclose(points.states[0], expected, rtol=1e-6)
    alpha = model.alpha
    expected_eigenvalues = 1 - alpha + alpha * np.linalg.eigvals(weight)
    np.testing.assert_allclose(np.sort(np.abs(points.eigenvalues[0])), np.sort(np.abs(expected_eigenvalues)), rtol=1e-5)
    assert points.stable[0]


def test_a_map_without_fixed_points_returns_none():
    points = find_fixed_points(lambda x: x + 1.0, np.zeros((4, 2)), adam_steps=50)
    assert points.n_points == 0 and points.states.shape == (0, 2)


def test_simulated_states_give_the_model_output():
    model = EIRNN(4, 2, 3, input_embed_type="attention", input_embed_dim=8, attention_heads=2, seed=1).eval()
    inputs = np.random.default_rng(0).normal(size=(3, 12, 3)).astype(np.float32)
    states = simulate_states(model, inputs)
    output = predict_rates(model, inputs)
    np.testing.assert_allclose(torch.nn.functional.softplus(states).numpy(), output.units.numpy(), rtol=2e-4, atol=1e-5)


def test_simulated_states_embed_each_distinct_input_once_as_the_forward_pass_does():
    from eirnn.fixed_points import input_drive

    model = EIRNN(4, 2, 3, input_embed_type="attention", input_embed_dim=8, attention_heads=2, seed=1).eval()
    vectors = np.random.default_rng(1).normal(size=(3, 3)).astype(np.float32)
    inputs = vectors[np.random.default_rng(2).integers(0, 3, size=(5, 12))]  # trials repeat 3 input vectors
    drives = input_drive(model, inputs.reshape(-1, 3)).reshape(5, 12, -1)  # every trial and bin embedded
    weight = model.effective_recurrent_weights().detach().double()
    state = model.initial_state().detach().double().expand(5, -1)
    expected = []
    for t in range(12):
        state = (1 - model.alpha) * state + model.alpha * (
            torch.nn.functional.softplus(state) @ weight.T + drives[:, t]
        )
        expected.append(state)
    # the embedding's matrix products may round the last float32 bit differently for 3 rows than for 60
    np.testing.assert_allclose(simulate_states(model, inputs), torch.stack(expected, dim=1), rtol=1e-6, atol=1e-7)


def test_newton_steps_that_stop_once_the_states_repeat_end_where_all_steps_end():
    from eirnn.fixed_points import NEWTON_STEPS, _newton, map_jacobians

    def step(x):
        return torch.tanh(2.0 * x) + 0.1

    states = torch.tensor([[-0.9], [0.02], [1.1], [0.5]], dtype=torch.float64)
    plain = states
    for _ in range(NEWTON_STEPS):  # every step, as before the shortcut
        with torch.no_grad():
            residual = step(plain) - plain
        jacobian = map_jacobians(step, plain) - torch.eye(1, dtype=torch.float64)
        plain = plain + torch.nan_to_num(torch.linalg.lstsq(jacobian, -residual[..., None]).solution[..., 0])
    assert torch.equal(_newton(step, states, NEWTON_STEPS), plain)


@pytest.mark.parametrize("noise_scale", [0.1, 1.0])
def test_seeded_starts_are_reproducible(noise_scale):
    visited = torch.randn(10, 3, dtype=torch.float64)
    first = seeded_starts(visited, 5, seed=7, noise_scale=noise_scale)
    np.testing.assert_array_equal(first, seeded_starts(visited, 5, seed=7, noise_scale=noise_scale))
    assert not torch.equal(first, seeded_starts(visited, 5, seed=8, noise_scale=noise_scale))
