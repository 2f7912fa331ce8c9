"""Trial-to-trial variability of spike counts: the Fano factor of data and of a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eirnn.metrics.availability import NotAvailable, _as_trials, _check_conditions, _integer_counts, _rng


@dataclass(frozen=True, eq=False)
class FanoResult:
    """per_neuron: [neurons] mean Fano over qualifying cells (NaN if none); mean: over
    neurons with any qualifying cell; n_cells: [neurons] qualifying (condition, bin) cells."""

    per_neuron: np.ndarray
    mean: float
    n_cells: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


def fano_factor(counts: Any, conditions: Any = None, min_mean_count: float = 0.1) -> FanoResult | NotAvailable:
    """Across-trial Fano factor of spike counts. Dimensionless (1 for a Poisson process).

    For every (condition c, bin t, neuron j) with at least 2 trials in c:
    ``F = var_trials(k) / mean_trials(k)`` (variance with ddof=1) over the trials of c,
    kept only if ``mean_trials(k) >= min_mean_count`` (counts per bin). Per neuron: the mean
    of F over its kept cells. ``mean``: the mean over neurons with at least one kept cell.
    ``conditions=None`` treats all trials as one condition. NaN counts (padding) are skipped.

    Needs integer spike counts per bin. Rates in Hz (= k / bin_s) inflate F by 1/bin_s,
    because the variance scales by 1/bin_s^2 and the mean by 1/bin_s: at 25 ms bins a
    count Fano of ~1.24 reads as 49.49 on rates. Non-integer input, or input whose values
    are all multiples of a common factor >= 5 (counts / bin_s), returns NotAvailable, as do
    no counts (None) and fewer than 2 trials in every condition.

    Examples
    --------
    >>> import numpy as np
    >>> from eirnn.metrics import fano_factor
    >>> counts = np.random.default_rng(0).poisson(3.0, size=(50, 20, 4))  # Poisson counts
    >>> round(fano_factor(counts).mean, 2)
    0.99
    """
    k = _integer_counts(counts)
    if isinstance(k, NotAvailable):
        return k
    return _fano_core(k, conditions, min_mean_count)


def _fano_core(k: np.ndarray, conditions: Any, min_mean_count: float) -> FanoResult | NotAvailable:
    if k.ndim != 3:
        raise ValueError(f"counts: expected [trials, time, neurons], got {k.shape}")
    cond = np.zeros(k.shape[0], int) if conditions is None else _check_conditions(conditions, k.shape[0])
    n_neurons = k.shape[2]
    total = np.zeros(n_neurons)
    n_cells = np.zeros(n_neurons, dtype=int)
    usable = 0
    for c in np.unique(cond):
        kc = k[cond == c]
        fin = np.isfinite(kc)
        n = fin.sum(axis=0)  # [time, neurons]
        if not np.any(n >= 2):
            continue
        usable += 1
        k0 = np.where(fin, kc, 0.0)
        nn = np.maximum(n, 1)
        mean = k0.sum(axis=0) / nn
        var = (np.where(fin, kc - mean, 0.0) ** 2).sum(axis=0) / np.maximum(n - 1, 1)
        ok = (n >= 2) & (mean >= min_mean_count) & (mean > 0)
        ff = np.where(ok, var / np.where(ok, mean, 1.0), 0.0)
        total += ff.sum(axis=0)
        n_cells += ok.sum(axis=0)
    if usable == 0:
        return NotAvailable("needs >= 2 trials in at least one condition")
    if n_cells.sum() == 0:
        return NotAvailable(f"no (condition, bin, neuron) with mean count >= {min_mean_count}")
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(n_cells > 0, total / np.maximum(n_cells, 1), np.nan)
    return FanoResult(per, float(per[n_cells > 0].mean()), n_cells)


def model_fano_factor(
    model_rate_samples_hz: Any,
    bin_s: float,
    conditions: Any = None,
    rng: Any = None,
    min_mean_count: float = 0.1,
) -> FanoResult | NotAvailable:
    """The model's Fano factor, comparable with :func:`fano_factor` on recorded counts.

    ``model_rate_samples_hz``: model rates in Hz ``[trials, time, neurons]`` from runs with
    the network noise ON (so trials differ). Counts ``k ~ Poisson(rate * bin_s)`` are drawn
    (negative rates clipped to 0) and passed to :func:`fano_factor`. For this doubly
    stochastic process F = 1 + var_trials(rate * bin_s) / mean(rate * bin_s) >= 1, so F
    above 1 measures the model's trial-to-trial rate variability. ``rng``: a
    ``numpy.random.Generator`` or a seed.
    """
    r = _as_trials(model_rate_samples_hz, "model_rate_samples_hz")
    if not bin_s > 0:
        raise ValueError(f"bin_s must be > 0, got {bin_s}")
    if not np.all(np.isfinite(r)):
        raise ValueError("model rates contain NaN/inf")
    counts = _rng(rng).poisson(np.clip(r, 0.0, None) * bin_s)
    return _fano_core(counts.astype(float), conditions, min_mean_count)
