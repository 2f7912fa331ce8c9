"""Training losses. Each takes model rates in Hz [trials, time, neurons] and a target batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def time_major(batch_major: torch.Tensor) -> torch.Tensor:
    """The same [trials, time, ...] tensor, stored time-major like the model's outputs, so that a
    loss runs over prediction and target in memory order (and its gradient keeps that layout)."""
    return batch_major.transpose(0, 1).contiguous().transpose(0, 1)


def _in_memory_order(tensor: torch.Tensor) -> torch.Tensor:
    """1-D view of a dense tensor's elements in memory order, whatever the order of its axes."""
    axes = sorted(range(tensor.dim()), key=tensor.stride, reverse=True)
    return tensor.permute(axes).reshape(-1)


@dataclass
class Targets:
    """One batch of what the model is fitted to, as tensors on the model's device, best stored
    time-major (see `time_major`)."""

    rates_hz: torch.Tensor  # [trials, time, neurons]
    counts: torch.Tensor | None  # [trials, time, neurons], spike counts per bin
    behavior: torch.Tensor | None  # [trials, time, n_out]
    # smoothed single-trial rates (Hz) for the teacher-forced term, eirnn.training.teacher_forcing
    single_trial_rates_hz: torch.Tensor | None = None  # [trials, time, neurons]

    def select(self, index: torch.Tensor) -> Targets:
        """The trials in `index`, stored time-major."""

        def take(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.transpose(0, 1)[:, index].transpose(0, 1)

        return Targets(take(self.rates_hz), take(self.counts), take(self.behavior), take(self.single_trial_rates_hz))


class _WeightedSquaredError(torch.autograd.Function):
    """mean over all elements of (prediction - target)^2 * weight, one weight per neuron (last axis).

    Written out because autograd's version of this one-liner makes five passes and four
    temporaries over the whole [trials, time, neurons] tensor forward and as many backward, a
    fifth of a training epoch. Here the forward pass computes the gradient too, in one buffer:
    the error, scaled by sqrt(weight) in place, gives the loss as its dot product with itself,
    then is scaled in place again into the gradient. Writing into a fresh buffer costs three
    to four times an in-place pass over one the cache holds, so only the subtraction does."""

    @staticmethod
    def forward(ctx, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        root_weight = weight.sqrt()
        gradient = torch.sub(prediction, target).mul_(root_weight)
        flat = _in_memory_order(gradient)
        loss = torch.dot(flat, flat) / flat.numel()
        gradient.mul_(root_weight * (2.0 / flat.numel()))
        ctx.save_for_backward(gradient)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):  # type: ignore[override]
        (gradient,) = ctx.saved_tensors
        return gradient if float(grad_loss) == 1.0 else gradient * grad_loss, None, None


class NormalizedMSE:
    """Mean squared error of rates, each neuron's error divided by that neuron's variance in the
    training data, so that a 40 Hz neuron does not outweigh a 2 Hz one:
    mean over trials, bins and neurons of (rate - target)^2 / variance_neuron."""

    needs_counts = False

    @classmethod
    def for_training(cls, train_targets: Targets, bin_s: float) -> NormalizedMSE:
        """The loss of a fit (`eirnn.choices.LOSSES`, "mse"): weights from the training rates.

        Examples
        --------
        >>> import torch
        >>> from eirnn.choices import LOSSES
        >>> from eirnn.losses import Targets
        >>> targets = Targets(torch.rand(4, 6, 3), None, None)
        >>> loss = LOSSES["mse"].for_training(targets, bin_s=0.01)
        >>> float(loss(targets.rates_hz, targets))
        0.0
        """
        return cls(train_targets.rates_hz)

    def __init__(self, train_rates_hz: torch.Tensor) -> None:
        # the samples of each neuron in memory order: a view of time-major targets, not a copy
        leading_axes = sorted(range(train_rates_hz.dim() - 1), key=train_rates_hz.stride, reverse=True)
        samples = train_rates_hz.permute(*leading_axes, -1).reshape(-1, train_rates_hz.shape[-1])
        variance = samples.var(dim=0)
        # a silent neuron has zero variance; its floor keeps the weight finite
        self.inverse_variance = 1.0 / variance.clamp_min(1e-3 * float(variance.mean().clamp_min(1e-6)))

    def __call__(self, rates_hz: torch.Tensor, targets: Targets) -> torch.Tensor:
        return _WeightedSquaredError.apply(rates_hz, targets.rates_hz, self.inverse_variance)


class PoissonNLL:
    """Negative log-likelihood of spike counts per bin under Poisson rates, per bin and neuron
    (the log k! term is constant and left out)."""

    needs_counts = True

    @classmethod
    def for_training(cls, train_targets: Targets, bin_s: float) -> PoissonNLL:
        """The loss of a fit (`eirnn.choices.LOSSES`, "poisson") with bins of `bin_s` seconds.

        Examples
        --------
        >>> import torch
        >>> from eirnn.choices import LOSSES
        >>> from eirnn.losses import Targets
        >>> targets = Targets(torch.ones(2, 3, 4), torch.zeros(2, 3, 4), None)
        >>> round(float(LOSSES["poisson"].for_training(targets, bin_s=0.5)(targets.rates_hz, targets)), 3)
        0.5
        """
        return cls(bin_s)

    def __init__(self, bin_s: float) -> None:
        self.bin_s = bin_s

    def __call__(self, rates_hz: torch.Tensor, targets: Targets) -> torch.Tensor:
        expected_counts = rates_hz * self.bin_s
        return (expected_counts - targets.counts * torch.log(expected_counts + 1e-8)).mean()


def behavior_mse(predicted: torch.Tensor, targets: Targets) -> torch.Tensor:
    return (predicted - targets.behavior).square().mean()
