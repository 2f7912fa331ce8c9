"""Training losses. Each takes model rates in Hz [trials, time, neurons] and a target batch."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Targets:
    """One batch of what the model is fitted to, as tensors on the model's device."""

    rates_hz: torch.Tensor  # [trials, time, neurons]
    counts: torch.Tensor | None  # [trials, time, neurons], spike counts per bin
    behavior: torch.Tensor | None  # [trials, time, n_out]

    def select(self, index: torch.Tensor) -> "Targets":
        return Targets(*(None if t is None else t[index] for t in (self.rates_hz, self.counts, self.behavior)))


class _WeightedSquaredError(torch.autograd.Function):
    """mean over all elements of ((prediction - target) * scale)^2, scale per neuron (last axis).

    Written out because autograd's version of this one-liner makes five passes and four
    temporaries over the whole [trials, time, neurons] tensor forward and as many backward, a
    fifth of a training epoch; this makes three passes forward and one backward."""

    @staticmethod
    def forward(ctx, prediction: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        scaled_error = torch.sub(prediction, target).mul_(scale)
        flat = scaled_error.reshape(-1)
        ctx.save_for_backward(scaled_error, scale)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):  # type: ignore[override]
        scaled_error, scale = ctx.saved_tensors
        factor = grad_loss * 2.0 / scaled_error.numel()
        return scaled_error * (scale * factor), None, None


class NormalizedMSE:
    """Mean squared error of rates, each neuron's error divided by that neuron's variance in the
    training data, so that a 40 Hz neuron does not outweigh a 2 Hz one:
    mean over trials, bins and neurons of (rate - target)^2 / variance_neuron."""

    def __init__(self, train_rates_hz: torch.Tensor) -> None:
        variance = train_rates_hz.reshape(-1, train_rates_hz.shape[-1]).var(dim=0)
        # a silent neuron has zero variance; its floor keeps the weight finite
        self.inverse_variance = 1.0 / variance.clamp_min(1e-3 * float(variance.mean().clamp_min(1e-6)))
        self.scale = self.inverse_variance.sqrt()

    def __call__(self, rates_hz: torch.Tensor, targets: Targets) -> torch.Tensor:
        return _WeightedSquaredError.apply(rates_hz, targets.rates_hz, self.scale)


class PoissonNLL:
    """Negative log-likelihood of spike counts per bin under Poisson rates, per bin and neuron
    (the log k! term is constant and left out)."""

    def __init__(self, bin_s: float) -> None:
        self.bin_s = bin_s

    def __call__(self, rates_hz: torch.Tensor, targets: Targets) -> torch.Tensor:
        expected_counts = rates_hz * self.bin_s
        return (expected_counts - targets.counts * torch.log(expected_counts + 1e-8)).mean()


def behavior_mse(predicted: torch.Tensor, targets: Targets) -> torch.Tensor:
    return (predicted - targets.behavior).square().mean()
