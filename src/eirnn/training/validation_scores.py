"""Validation every epoch: noise-free predictions scored as the final report scores them, and
the score that selects models (`TrainConfig.selection_metric`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from eirnn.config import LOWER_IS_BETTER, ConfigError
from eirnn.losses import Targets
from eirnn.metrics import NLB_MIN_RATE, condition_psths, correlation_of_psths, to_float

# the per-epoch validation metric behind each `selection_metric`
SELECTION_SCORES = {
    "cond_psth_corr": "val_cond_psth_corr",
    "psth_corr": "val_psth_corr",
    "bits_per_spike": "val_bits_per_spike",
    "val_loss": "val_loss",
    "co_bps": "val_co_bps",
}


def selection_score(metrics: dict[str, float], selection_metric: str) -> float:
    """The epoch's validation value of `selection_metric`, in its own direction."""
    return metrics[SELECTION_SCORES[selection_metric]]


def higher_is_better(selection_metric: str) -> bool:
    return selection_metric not in LOWER_IS_BETTER


def check_selection_metric(selection_metric: str, val: Any, heldout: Any = None) -> None:
    if selection_metric == "co_bps" and (val.counts is None or not heldout):
        raise ConfigError(
            "selection_metric: 'co_bps' needs spike counts and held-out neurons (heldout_neurons); "
            "use cond_psth_corr, psth_corr or val_loss"
        )
    if selection_metric == "bits_per_spike" and val.counts is None:
        raise ConfigError(
            "selection_metric: 'bits_per_spike' needs spike counts, but the data has rates only; "
            "use cond_psth_corr, psth_corr or val_loss"
        )


class PoissonScore:
    """Bits per spike of rates against fixed counts (`eirnn.metrics.bits_per_spike`, nlb_tools'
    definition), on the model's device: the counts and the null model's
    log-likelihood are prepared once for the whole fit."""

    def __init__(self, counts: np.ndarray, bin_s: float, device: torch.device) -> None:
        # Only bins with spikes add k log(lambda), so those bins are listed once, in the
        # time-major order in which the model writes its rates (a data set's counts are finite)
        null = counts.reshape(-1, counts.shape[-1]).mean(axis=0)
        null = np.broadcast_to(np.where(null == 0, NLB_MIN_RATE, null), counts.shape)
        self.null_log_likelihood = float((counts * np.log(null) - null).sum())
        self.n_spikes = float(counts.sum())
        self.bin_s = bin_s
        flat_counts = np.moveaxis(counts, 1, 0).reshape(-1)
        spike_bins = np.flatnonzero(flat_counts)
        self.spike_bins = torch.as_tensor(spike_bins, device=device)
        self.counts = torch.as_tensor(flat_counts[spike_bins], dtype=torch.float32, device=device)

    def __call__(self, model_rates: torch.Tensor) -> float:
        if self.n_spikes <= 0:
            return float("nan")
        expected = (model_rates.transpose(0, 1) * self.bin_s).clamp_min(NLB_MIN_RATE).reshape(-1)
        # float32 sums (torch reduces blockwise): within 1e-5 bits per spike of float64 ones, at a third of the time
        spike_terms = torch.dot(self.counts, expected.index_select(0, self.spike_bins).log())
        log_likelihood = float(spike_terms) - float(expected.sum())
        return (log_likelihood - self.null_log_likelihood) / self.n_spikes / float(np.log(2))


class ValidationScorer:
    """Scores noise-free predictions on the validation trials, every epoch, as the report
    scores them (`eirnn.metrics.correlation_of_psths`). The target PSTHs are fixed, so they are
    averaged once; the model's are averaged on the model's device, and only those small
    arrays reach numpy. With `heldout` neurons it also scores co-smoothing (`val_co_bps`: their
    columns over every bin but the last `forward_bins`)."""

    def __init__(self, val: Any, device: torch.device, heldout: Any = None, forward_bins: int = 0) -> None:
        codes, code_of_trial = np.unique(val.conditions, return_inverse=True)
        rates = np.asarray(val.rates_hz, dtype=np.float64)
        self.labels = val.ei_labels
        self.target_psth = rates.mean(axis=0)
        self.target_condition_psth = condition_psths(rates, val.conditions, codes).reshape(-1, rates.shape[-1])
        averaging = np.zeros((len(codes), len(code_of_trial)))
        averaging[code_of_trial, np.arange(len(code_of_trial))] = 1.0
        averaging /= averaging.sum(axis=1, keepdims=True)
        self.condition_averaging = torch.as_tensor(averaging, dtype=torch.float32, device=device)
        self.bits_per_spike = self.co_bps = None
        if val.counts is not None:
            counts = np.asarray(val.counts, dtype=np.float64)
            self.bits_per_spike = PoissonScore(counts, val.bin_s, device)
            if heldout:
                self.observed_bins = counts.shape[1] - forward_bins
                self.heldout = torch.as_tensor(list(heldout), dtype=torch.long, device=device)
                self.co_bps = PoissonScore(counts[:, : self.observed_bins][..., list(heldout)], val.bin_s, device)

    def __call__(self, model_rates: torch.Tensor) -> dict[str, float]:
        # averaging in float32 on the device; correlations in float64 like the final metrics
        psth = model_rates.mean(dim=0).double().cpu().numpy()
        # over the time-major layout the model writes (a [trials, time, neurons] view of it)
        by_time = torch.matmul(self.condition_averaging, model_rates.transpose(0, 1))
        condition_psth = by_time.transpose(0, 1).double().cpu().numpy()
        overall = correlation_of_psths(psth, self.target_psth, self.labels)
        by_condition = correlation_of_psths(
            condition_psth.reshape(-1, psth.shape[-1]), self.target_condition_psth, self.labels
        )
        scores = {
            "val_psth_corr": to_float(overall.mean),
            "val_psth_corr_E": to_float(overall.mean_e),
            "val_psth_corr_I": to_float(overall.mean_i),
            "val_cond_psth_corr": to_float(by_condition.mean),
        }
        if self.bits_per_spike is not None:
            scores["val_bits_per_spike"] = self.bits_per_spike(model_rates)
        if self.co_bps is not None:
            scores["val_co_bps"] = self.co_bps(model_rates[:, : self.observed_bins].index_select(-1, self.heldout))
        return scores


def validation_metrics(
    model: torch.nn.Module, prepared: Any, targets: Targets, loss_fn, scorer: ValidationScorer
) -> dict[str, float]:
    """Noise-free predictions on the validation trials: loss and PSTH correlations."""
    model.eval()
    with torch.no_grad():
        output = model(prepared, noise=False)
        loss = loss_fn(output.rates, targets)
    return {"val_loss": float(loss), **scorer(output.rates)}
