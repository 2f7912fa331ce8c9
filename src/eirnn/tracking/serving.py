"""The module that is logged to MLflow: rates in, rates out, so that `mlflow.pyfunc` and
`mlflow models serve` can call it with one float tensor [trials, time, n_inputs]."""

from __future__ import annotations

import torch


class RatePredictor(torch.nn.Module):
    """Wraps a fitted network; its forward returns firing rates in Hz [trials, time, neurons],
    deterministic (process noise off), for any number of trials and time bins."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(inputs.to(torch.float32), noise=False).rates
