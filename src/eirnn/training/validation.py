"""Validation every epoch: noise-free predictions scored as the final report scores them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from eirnn.losses import Targets
from eirnn.metrics import condition_psths, correlation_of_psths, to_float


class ValidationScorer:
    """Scores noise-free predictions on the validation trials, every epoch, as the report
    scores them (`eirnn.metrics.correlation_of_psths`). The target PSTHs are fixed, so they are
    averaged once; the model's are averaged on the model's device, and only those small
    arrays reach numpy."""

    def __init__(self, val: Any, device: torch.device) -> None:
        codes, code_of_trial = np.unique(val.conditions, return_inverse=True)
        rates = np.asarray(val.rates_hz, dtype=np.float64)
        self.labels = val.ei_labels
        self.target_psth = rates.mean(axis=0)
        self.target_condition_psth = condition_psths(rates, val.conditions, codes).reshape(-1, rates.shape[-1])
        averaging = np.zeros((len(codes), len(code_of_trial)))
        averaging[code_of_trial, np.arange(len(code_of_trial))] = 1.0
        averaging /= averaging.sum(axis=1, keepdims=True)
        self.condition_averaging = torch.as_tensor(averaging, dtype=torch.float32, device=device)

    def __call__(self, model_rates: torch.Tensor) -> dict[str, float]:
        # averaging in float32 on the device; correlations in float64 like the final metrics
        psth = model_rates.mean(dim=0).double().cpu().numpy()
        condition_psth = torch.einsum("cb,btn->ctn", self.condition_averaging, model_rates).double().cpu().numpy()
        overall = correlation_of_psths(psth, self.target_psth, self.labels)
        by_condition = correlation_of_psths(
            condition_psth.reshape(-1, psth.shape[-1]), self.target_condition_psth, self.labels
        )
        return {
            "val_psth_corr": to_float(overall.mean),
            "val_psth_corr_E": to_float(overall.mean_e),
            "val_psth_corr_I": to_float(overall.mean_i),
            "val_cond_psth_corr": to_float(by_condition.mean),
        }


def validation_metrics(
    model: torch.nn.Module, prepared: Any, targets: Targets, loss_fn, scorer: ValidationScorer
) -> dict[str, float]:
    """Noise-free predictions on the validation trials: loss and PSTH correlations."""
    model.eval()
    with torch.no_grad():
        output = model(prepared, noise=False)
        loss = loss_fn(output.rates, targets)
    return {"val_loss": float(loss), **scorer(output.rates)}
