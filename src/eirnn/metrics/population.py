"""Population-level descriptions: per-neuron rate and modulation summary, PCA of PSTHs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eirnn.metrics.availability import _as_trials, _check_conditions
from eirnn.metrics.psth import _nanmean_axis0, condition_psths


@dataclass(frozen=True, eq=False)
class NeuronSummary:
    """mean_rate_hz: [neurons] Hz; psth_variance_hz2: [neurons] Hz^2."""

    mean_rate_hz: np.ndarray
    psth_variance_hz2: np.ndarray


def per_neuron_summary(rates_hz: Any, conditions: Any = None) -> NeuronSummary:
    """Per-neuron mean rate and PSTH modulation.

    mean_rate_hz [Hz]: mean of the rates over all trials and bins (NaN skipped).
    psth_variance_hz2 [Hz^2]: population variance (ddof=0) over time bins of the PSTH (the
    trial-averaged rate); with ``conditions``, over the stacked per-condition PSTHs
    (conditions x time), so between-condition differences count as modulation. This is the
    signal variance a PSTH correlation can explain; ~0 means an unmodulated neuron.
    """
    x = _as_trials(rates_hz, "rates_hz")
    n = x.shape[2]
    mean_rate = _nanmean_axis0(x.reshape(-1, n))
    if conditions is None:
        psth = _nanmean_axis0(x)
    else:
        cond = _check_conditions(conditions, x.shape[0])
        psth = condition_psths(x, cond, np.unique(cond)).reshape(-1, n)
    mu = _nanmean_axis0(psth)
    var = _nanmean_axis0((psth - mu) ** 2)
    return NeuronSummary(mean_rate, var)


@dataclass(frozen=True, eq=False)
class PCAResult:
    """components: [k, neurons] orthonormal rows (sign: largest |loading| positive);
    mean: [neurons] subtracted before projecting; explained_variance_ratio: [k]."""

    components: np.ndarray
    mean: np.ndarray
    explained_variance_ratio: np.ndarray


def _as_samples(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim < 2:
        raise ValueError(f"{name}: expected [samples, neurons] (e.g. conditions*time x neurons), got {a.shape}")
    return a.reshape(-1, a.shape[-1])


def pca_fit(target_psth_2d: Any, n_components: int = 10) -> PCAResult:
    """PCA of PSTHs by SVD of the mean-centred data (numpy).

    Input ``[conditions*time, neurons]`` or ``[time, neurons]`` (a 3-D
    ``[conditions, time, neurons]`` is flattened over its leading axes). Rows with NaN are
    dropped. ``explained_variance_ratio[i] = s_i^2 / sum_all s^2`` (fraction of the total
    variance). ``n_components`` is capped at min(samples, neurons).
    """
    x = _as_samples(target_psth_2d, "target_psth_2d")
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] < 2:
        raise ValueError("pca_fit needs at least 2 finite rows")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = int(min(n_components, vt.shape[0]))
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    signs[signs == 0] = 1.0
    comps = comps * signs[:, None]
    total = float(np.sum(s**2))
    evr = s[:k] ** 2 / total if total > 0 else np.zeros(k)
    return PCAResult(comps, mean, evr)


def pca_project(psth_2d: Any, pca: PCAResult) -> np.ndarray:
    """Scores ``(x - pca.mean) @ pca.components.T``; output keeps the input's leading axes,
    last axis = components."""
    a = np.asarray(psth_2d, dtype=float)
    if a.shape[-1] != pca.mean.shape[0]:
        raise ValueError(f"expected {pca.mean.shape[0]} neurons, got {a.shape[-1]}")
    return (a - pca.mean) @ pca.components.T
