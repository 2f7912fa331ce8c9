"""Trial averaging (PSTHs) and per-neuron Pearson r, shared by the metric families."""

from __future__ import annotations

import numpy as np


def _nanmean_axis0(a: np.ndarray) -> np.ndarray:
    """nanmean over axis 0 without 'Mean of empty slice' warnings (all-NaN -> NaN)."""
    finite = np.isfinite(a)
    n = finite.sum(axis=0)
    s = np.where(finite, a, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def condition_psths(x: np.ndarray, conditions: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    """[n_codes, time, neurons]: trial average within each condition (codes default to the
    sorted distinct conditions)."""
    codes = np.unique(conditions) if codes is None else codes
    x = np.asarray(x)
    if not np.isfinite(x).all():
        return np.stack([_nanmean_axis0(x[conditions == c]) for c in codes])
    # finite values: every condition's sum in one matmul over the trials (no per-condition copies)
    members = (np.asarray(codes)[:, None] == np.asarray(conditions)[None, :]).astype(np.float64)
    sums = members @ x.reshape(len(x), -1).astype(np.float64, copy=False)
    counts = members.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], np.nan)
    return means.reshape(len(members), *x.shape[1:])


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per column of two [samples, columns] arrays, over samples finite in both.

    NaN where fewer than 2 samples remain or either column is constant (zero variance; tested
    exactly with max == min, so round-off cannot turn a constant into a spurious r).
    """
    mask = np.isfinite(a) & np.isfinite(b)
    n = mask.sum(axis=0)
    a0 = np.where(mask, a, 0.0)
    b0 = np.where(mask, b, 0.0)
    const_a = np.where(mask, a, -np.inf).max(axis=0) == np.where(mask, a, np.inf).min(axis=0)
    const_b = np.where(mask, b, -np.inf).max(axis=0) == np.where(mask, b, np.inf).min(axis=0)
    nn = np.maximum(n, 1)
    da = np.where(mask, a0 - a0.sum(axis=0) / nn, 0.0)
    db = np.where(mask, b0 - b0.sum(axis=0) / nn, 0.0)
    cov = (da * db).sum(axis=0)
    var = (da * da).sum(axis=0) * (db * db).sum(axis=0)
    bad = (n < 2) | const_a | const_b | ~(var > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var)
    r = np.clip(r, -1.0, 1.0)
    r[bad] = np.nan
    return r
