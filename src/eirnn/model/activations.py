"""The rate nonlinearities f (`TrainConfig.activation`, registry `eirnn.choices.ACTIVATIONS`).

Each is the three things the code needs of f: the rate r = f(x) (optionally written into a
buffer, for the fused recurrence), the slope f'(x) computed from the rate alone (so that the
recurrence's backward pass stores only rates, `eirnn.model.recurrence`), and the inverse x with
f(x) = r (for the least-squares initialisation and the teacher-forced term, numpy or torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class Softplus:
    """f(x) = log(1 + exp(x)), as `torch.nn.functional.softplus` (linear above x = 20)."""

    @staticmethod
    def rate(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """f(x): F.softplus(x), or, written into `out` (the fused recurrence's buffers),
        max(x, log(1 + exp(clip(x, -20, 20)))), within 1e-6 of it (one rounding of 1 + exp(x)).

        The buffered form takes log where F.softplus takes log1p, the costlier half of its work,
        and never lets exp reach the subnormal numbers, whose arithmetic is several times slower
        on x86 (a silent unit's state can sit far below zero): below x = -16.6, where F.softplus
        is under 6e-8, it gives 0 in float32 (in float64, 2.1e-9 below x = -20).

        Examples
        --------
        >>> import torch
        >>> from eirnn.choices import ACTIVATIONS
        >>> ACTIVATIONS["softplus"].rate(torch.zeros(2))
        tensor([0.6931, 0.6931])
        >>> ACTIVATIONS["softplus"].rate(torch.tensor([-20.0, 0.0, 30.0]), out=torch.empty(3))
        tensor([ 0.0000,  0.6931, 30.0000])
        """
        if out is None:
            return F.softplus(x)
        torch.clamp(x, -20.0, 20.0, out=out).exp_().add_(1.0).log_()
        return torch.maximum(out, x, out=out)

    @staticmethod
    def multiply_by_slope(grad: torch.Tensor, rate: torch.Tensor, scratch: torch.Tensor) -> None:
        """grad *= f'(x), from the rate r = f(x), with `scratch` (shaped like r) as working space."""
        # f'(x) = sigmoid(x) = 1 - exp(-softplus(x)); above F.softplus's threshold of 20, where
        # r = x, exp(-r) rounds the slope to exactly 1 in float32, as sigmoid does
        torch.exp(torch.neg(rate, out=scratch), out=scratch)
        grad.addcmul_(grad, scratch, value=-1.0)

    @staticmethod
    def inverse(rates: Any) -> Any:
        """x with f(x) = r, for positive rates r (numpy array or torch tensor).

        Examples
        --------
        >>> import numpy as np
        >>> from eirnn.model.activations import Softplus
        >>> print(np.round(Softplus.inverse(np.log(2.0)), 6))
        0.0
        """
        module = torch if isinstance(rates, torch.Tensor) else np
        return rates + module.log(-module.expm1(-rates))  # log(exp(r) - 1), overflow-free


class ReLU:
    """f(x) = max(x, 0)."""

    @staticmethod
    def rate(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """f(x), written into `out` when given (the same numbers as F.relu).

        Examples
        --------
        >>> import torch
        >>> from eirnn.choices import ACTIVATIONS
        >>> ACTIVATIONS["relu"].rate(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
        """
        return torch.clamp_min(x, 0.0, out=out) if out is not None else F.relu(x)

    @staticmethod
    def multiply_by_slope(grad: torch.Tensor, rate: torch.Tensor, scratch: torch.Tensor) -> None:
        """grad *= f'(x), from the rate r = f(x): zero where r is zero.

        Examples
        --------
        >>> import torch
        >>> from eirnn.model.activations import ReLU
        >>> grad = torch.ones(2)
        >>> ReLU.multiply_by_slope(grad, torch.tensor([0.0, 3.0]), torch.empty(2))
        >>> grad
        tensor([0., 1.])
        """
        grad.masked_fill_(rate <= 0, 0.0)

    @staticmethod
    def inverse(rates: Any) -> Any:
        """x with f(x) = r, for positive rates r: r itself."""
        return rates
