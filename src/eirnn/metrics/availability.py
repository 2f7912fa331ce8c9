"""Metric values the data cannot support, and the input checks every metric shares.

A quantity the data cannot support (one trial per condition, rates but no counts, ...) is
returned as :class:`NotAvailable` with the reason, never as a made-up number. Use
:func:`is_available` to test and :func:`to_float` to log (NaN for ``NotAvailable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NotAvailable:
    """A metric the data cannot support. Falsy; prints as ``n/a (reason)``."""

    reason: str

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"n/a ({self.reason})"


Metric = float | NotAvailable


def is_available(x: Any) -> bool:
    """True unless ``x`` is a :class:`NotAvailable`."""
    return not isinstance(x, NotAvailable)


def to_float(x: Any) -> float:
    """``float(x)``, or NaN for :class:`NotAvailable` (for logging)."""
    if isinstance(x, NotAvailable):
        return float("nan")
    return float(x)


def _as_trials(x: Any, name: str) -> np.ndarray:
    """[trials, time, neurons] float array; a 2-D [time, neurons] PSTH becomes one 'trial'."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name}: expected [trials, time, neurons] (or [time, neurons]), got shape {a.shape}")
    return a


def _check_conditions(conditions: Any, n_trials: int, name: str = "conditions") -> np.ndarray:
    c = np.asarray(conditions)
    if c.ndim != 1 or c.shape[0] != n_trials:
        raise ValueError(f"{name}: expected one code per trial, shape ({n_trials},), got {c.shape}")
    return c


def _check_labels(ei_labels: Any, n_neurons: int) -> np.ndarray | None:
    if ei_labels is None:
        return None
    lab = np.asarray(ei_labels).astype(int)
    if lab.shape != (n_neurons,):
        raise ValueError(f"ei_labels: expected shape ({n_neurons},), got {lab.shape}")
    if not np.all(np.isin(lab, (0, 1))):
        raise ValueError("ei_labels: expected 0 (E) or 1 (I) only")
    return lab


def _mean_or_na(values: np.ndarray, what: str) -> Metric:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return NotAvailable(f"{what} undefined for every neuron")
    return float(v.mean())


def _rng(rng: Any) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _integer_counts(counts: Any) -> np.ndarray | NotAvailable:
    """Validate spike counts: integers >= 0 (NaN allowed for padding). NotAvailable otherwise.

    Besides non-integer values it rejects arrays whose nonzero values share a common factor
    >= 5: that is what counts / bin_s look like (e.g. x40 at 25 ms bins), while real counts
    practically always contain a 1 or two coprime values.
    """
    if counts is None:
        return NotAvailable("no spike counts (rates-only data)")
    a = np.asarray(counts)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"spike counts: expected a numeric array, got dtype {a.dtype}")
    a = a.astype(float)
    fin = a[np.isfinite(a)]
    if np.any(fin < 0):
        raise ValueError("spike counts: negative values found")
    if np.any(fin != np.round(fin)):
        return NotAvailable("needs integer spike counts per bin; got non-integer values (rates?)")
    nz = fin[fin > 0].astype(np.int64)
    if nz.size:
        g = int(np.gcd.reduce(np.unique(nz)))
        if g >= 5:
            return NotAvailable(
                f"needs spike counts per bin; every nonzero value is a multiple of {g}, "
                f"which looks like rates in Hz (counts / bin_s)"
            )
    return a
