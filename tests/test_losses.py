"""The losses equal their textbook expressions, values and gradients."""

import torch

from eirnn.losses import NormalizedMSE, PoissonNLL, Targets, time_major


def _batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(6, 9, 5, generator=generator, dtype=torch.float64) * 30
    counts = torch.poisson(target * 0.025, generator=generator)
    prediction = (torch.rand(6, 9, 5, generator=generator, dtype=torch.float64) * 30).requires_grad_()
    return prediction, Targets(target, counts, None)


def test_normalized_mse_value_and_gradient_match_the_formula():
    prediction, targets = _batch()
    loss_fn = NormalizedMSE(targets.rates_hz)
    variance = targets.rates_hz.reshape(-1, 5).var(dim=0)
    expected = ((prediction - targets.rates_hz) ** 2 / variance).mean()
    (expected_grad,) = torch.autograd.grad(expected, prediction)
    loss = loss_fn(prediction, targets)
    (grad,) = torch.autograd.grad(loss, prediction)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)
    # a loss used inside a larger expression gets a gradient other than 1
    (scaled_grad,) = torch.autograd.grad(-2.5 * loss_fn(prediction, targets), prediction)
    torch.testing.assert_close(scaled_grad, -2.5 * expected_grad)


def test_normalized_mse_weights_neurons_by_their_variance():
    prediction, targets = _batch(1)
    loss_fn = NormalizedMSE(targets.rates_hz)
    louder = Targets(targets.rates_hz * 10, None, None)
    # the same relative error on a 10x louder data set costs the same
    assert torch.isclose(
        NormalizedMSE(louder.rates_hz)(prediction.detach() * 10, louder), loss_fn(prediction.detach(), targets)
    )


def test_poisson_nll_matches_the_log_likelihood_up_to_a_constant():
    prediction, targets = _batch(2)
    bin_s = 0.025
    expected_counts = prediction.detach() * bin_s
    log_likelihood = torch.distributions.Poisson(expected_counts).log_prob(targets.counts)
    constant = torch.lgamma(targets.counts + 1)
    expected = (-(log_likelihood + constant)).mean()
    torch.testing.assert_close(PoissonNLL(bin_s)(prediction.detach(), targets), expected, atol=1e-6, rtol=1e-6)


def test_normalized_mse_is_the_same_for_time_major_storage():
    prediction, targets = _batch(3)
    loss_fn = NormalizedMSE(targets.rates_hz)
    stored_time_major = Targets(time_major(targets.rates_hz), None, None)
    prediction_time_major = time_major(prediction.detach()).requires_grad_()
    assert stored_time_major.rates_hz.stride() != targets.rates_hz.stride()
    loss = loss_fn(prediction_time_major, stored_time_major)
    (grad,) = torch.autograd.grad(loss, prediction_time_major)
    (expected_grad,) = torch.autograd.grad(loss_fn(prediction, targets), prediction)
    torch.testing.assert_close(loss, loss_fn(prediction.detach(), targets))
    torch.testing.assert_close(grad, expected_grad)
    # the gradient keeps the layout, so that the fused recurrence gets it without a copy
    assert grad.stride() == prediction_time_major.stride()


def test_selected_trials_keep_their_values_and_come_time_major():
    _, targets = _batch(4)
    index = torch.tensor([4, 0, 2])
    selected = targets.select(index)
    torch.testing.assert_close(selected.rates_hz, targets.rates_hz[index], rtol=0, atol=0)
    torch.testing.assert_close(selected.counts, targets.counts[index], rtol=0, atol=0)
    assert selected.behavior is None
    assert selected.rates_hz.transpose(0, 1).is_contiguous()
