"""Poisson likelihood of spike counts: co-smoothing bits per spike (Neural Latents Benchmark)."""

from __future__ import annotations

from typing import Any

import numpy as np

from eirnn.metrics.availability import Metric, NotAvailable, _integer_counts
from eirnn.metrics.psth import _nanmean_axis0

#: nlb_tools replaces zero rate predictions by this value before taking the log.
NLB_MIN_RATE = 1e-9


def _log_factorial(k: np.ndarray) -> np.ndarray:
    """log(k!) for integer-valued k >= 0 (exact table, numpy only)."""
    ki = k.astype(np.int64)
    top = int(ki.max()) if ki.size else 0
    table = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, top + 1, dtype=float)))])
    return table[ki]


def _poisson_nll(lam: np.ndarray, k: np.ndarray) -> float:
    """Total Poisson negative log-likelihood sum(lam - k log lam + log k!) (nats)."""
    return float(np.sum(lam - k * np.log(lam) + _log_factorial(k)))


def bits_per_spike(pred_rates_per_bin: Any, spike_counts: Any, null_rates: Any = None) -> Metric:
    """Co-smoothing bits per spike (Neural Latents Benchmark, nlb_tools ``bits_per_spike``).

    ``bps = (LL_model - LL_null) / (n_spikes * ln 2)``  [bits / spike], with the Poisson
    log-likelihood ``LL(lam) = sum over trials, bins, neurons of k log lam - lam - log k!``
    (the log k! term cancels in the difference) and ``n_spikes`` = total count.

    pred_rates_per_bin: expected spike counts per bin (lambda), ``[trials, time, neurons]``;
        a model's rates in Hz must be multiplied by the bin width in seconds first.
    spike_counts: integer spike counts, same shape; None -> NotAvailable (rates-only data).
        Bins with NaN counts (padding) are skipped, as in nlb_tools.
    null_rates: the null model's lambda, broadcastable to the counts (e.g. ``[neurons]``);
        default as nlb_tools: each neuron's mean count over all trials and bins.
    Zero lambdas are replaced by 1e-9, as nlb_tools does. 0 for the null model itself,
    > 0 when the model explains the spikes better than each neuron's mean rate.

    Examples
    --------
    >>> import numpy as np
    >>> from eirnn.metrics import bits_per_spike
    >>> lam = np.linspace(0.5, 3.0, 40)[None, :, None] * np.ones((30, 1, 3))  # expected counts per bin
    >>> counts = np.random.default_rng(0).poisson(lam)  # 30 trials x 40 bins x 3 neurons
    >>> round(float(bits_per_spike(lam, counts)), 3)  # the true rates beat each neuron's mean rate
    0.134
    """
    k = _integer_counts(spike_counts)
    if isinstance(k, NotAvailable):
        return k
    lam = np.asarray(pred_rates_per_bin, dtype=float)
    if lam.shape != k.shape:
        raise ValueError(f"predictions shape {lam.shape} != spike counts shape {k.shape}")
    if k.ndim != 3:
        raise ValueError(f"expected [trials, time, neurons], got {k.shape}")
    if null_rates is None:
        null = np.broadcast_to(_nanmean_axis0(k.reshape(-1, k.shape[2])), k.shape)
    else:
        null = np.broadcast_to(np.asarray(null_rates, dtype=float), k.shape)
    valid = ~np.isnan(k)
    kv, lam, null = k[valid], lam[valid], np.array(null[valid])
    n_spikes = kv.sum()
    if n_spikes <= 0:
        return NotAvailable("no spikes in the counts")
    for name, arr in (("predictions", lam), ("null_rates", null)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: NaN/inf values where counts are defined")
        if np.any(arr < 0):
            raise ValueError(f"{name}: negative expected counts")
    lam = np.where(lam == 0, NLB_MIN_RATE, lam)
    null = np.where(null == 0, NLB_MIN_RATE, null)
    return float((_poisson_nll(null, kv) - _poisson_nll(lam, kv)) / n_spikes / np.log(2))
