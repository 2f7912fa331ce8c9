"""Reliability of the recorded PSTH: the split-half noise ceiling and correlations normalised by it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from eirnn.metrics.availability import Metric, NotAvailable, _as_trials, _check_conditions, _mean_or_na, _rng
from eirnn.metrics.correlation import PsthCorrelation
from eirnn.metrics.psth import _nanmean_axis0, _pearson_columns

# below this ceiling a neuron's PSTH has no reproducible signal to normalise by (r / ~0)
NEAR_ZERO_CEILING = 0.1
# the noise ceiling of each score that has one, as `eirnn.evaluation` names them (likelihoods
# and losses have none)
NOISE_CEILING_OF = {"psth_corr": "noise_ceiling", "cond_psth_corr": "cond_noise_ceiling"}
# the half PSTHs of as many splits as fit in this many bytes are averaged in one matmul
HALF_MEANS_BYTES = 32 * 2**20


@dataclass(frozen=True, eq=False)
class NoiseCeiling:
    """Split-half reliability of the target PSTH and the correlation ceiling it implies.

    reliability: [neurons] Spearman-Brown-corrected split-half r, averaged over splits: the
        estimated squared correlation between the true PSTH and the all-trials PSTH.
    ceiling: [neurons] sqrt(max(reliability, 0)): the expected correlation of the true PSTH (a
        perfect model) with the all-trials target PSTH; 0 for a neuron without reproducible
        signal (reliability <= 0), NaN where undefined (a constant half-PSTH in every split).
    mean: mean ceiling over neurons with a usable ceiling (defined and >= NEAR_ZERO_CEILING);
        mean_reliability likewise.
    sem: standard error of ``mean`` over the random splits (std of the per-split means /
        sqrt(n_splits)): how much the number would move with other splits of the same trials.
    n_undefined: neurons without a defined ceiling; n_near_zero: neurons whose ceiling is
        below NEAR_ZERO_CEILING (no reproducible signal). Both are excluded from ``mean`` and
        from normalised means (``usable``).
    by_condition: whether PSTHs were stacked conditions x time.
    """

    reliability: np.ndarray
    ceiling: np.ndarray
    mean: Metric
    mean_reliability: Metric
    n_undefined: int
    by_condition: bool
    n_splits: int
    sem: float = float("nan")
    n_near_zero: int = 0

    @property
    def usable(self) -> np.ndarray:
        """[neurons] bool: a defined ceiling of at least NEAR_ZERO_CEILING."""
        with np.errstate(invalid="ignore"):
            return np.isfinite(self.ceiling) & (self.ceiling >= NEAR_ZERO_CEILING)

    @property
    def per_neuron(self) -> np.ndarray:
        """Alias of ``ceiling`` (the per-neuron normaliser)."""
        return self.ceiling


def noise_ceiling(
    target_rates: Any,
    conditions: Any = None,
    *,
    by_condition: bool | None = None,
    n_splits: int = 20,
    rng: Any = 0,
) -> NoiseCeiling | NotAvailable:
    """Noise ceiling of a PSTH correlation: how high a perfect model's r can be on these data.

    Procedure, repeated for ``n_splits`` random splits: within each condition (all trials if
    ``conditions`` is None) shuffle the trials and cut them into two halves (sizes floor/ceil
    of n/2); average each half into a PSTH, stacked as in the correlation being normalised:
    ``by_condition=True`` -> conditions x time (as :func:`condition_psth_correlation`),
    ``False`` -> pooled over conditions, over time (as :func:`psth_correlation`; conditions
    are then only used to stratify the split). Default: True iff ``conditions`` is given.
    Per neuron, r_half = Pearson(half A, half B); Spearman-Brown:
    ``rel = 2 r_half / (1 + r_half)``; ``reliability`` = mean of rel over splits.

    Why sqrt: with PSTH = signal s(t) + trial-noise mean e(t) (variance sigma^2 / n),
    r_half = S / (S + 2 sigma^2/N) and the Spearman-Brown value is S / (S + sigma^2/N),
    which is the SQUARED correlation between the true s and the all-N-trials PSTH. A perfect
    model (its PSTH = s) therefore reaches r = sqrt(reliability) against the target PSTH
    that :func:`psth_correlation` uses, so ``ceiling = sqrt(reliability)`` and
    ``normalized_correlation(r, ceiling) = r / ceiling`` is ~1 for a perfect model (this is
    Spearman's correction for attenuation with a noise-free model). It assumes the model PSTH
    itself is noise-free (noise off, or averaged over many model trials).

    Units: dimensionless. NotAvailable if any condition (or the whole set) has fewer than 2
    trials, e.g. condition-averaged data. With odd trial counts the halves differ by one
    trial, which the factor-2 correction ignores (small effect). Per-neuron ceilings of noisy
    neurons are noisy and, through the sqrt, slightly low on average.

    Examples
    --------
    >>> import numpy as np
    >>> from eirnn.metrics import noise_ceiling
    >>> signal = 10 + 5 * np.sin(np.linspace(0, 6, 40))[None, :, None]  # Hz, the same on every trial
    >>> rates = signal + np.random.default_rng(0).normal(0, 1, size=(40, 40, 3))  # 40 noisy trials
    >>> round(noise_ceiling(rates, rng=0).mean, 2)
    1.0
    """
    x = _as_trials(target_rates, "target_rates")
    n_trials = x.shape[0]
    if np.asarray(target_rates).ndim == 2:
        return NotAvailable("needs single trials; got a trial-averaged PSTH")
    if by_condition is None:
        by_condition = conditions is not None
    if by_condition and conditions is None:
        raise ValueError("by_condition=True needs conditions")
    cond = np.zeros(n_trials, int) if conditions is None else _check_conditions(conditions, n_trials)
    codes, sizes = np.unique(cond, return_counts=True)
    if np.any(sizes < 2):
        few = int(np.sum(sizes < 2))
        return NotAvailable(
            f"needs >= 2 trials in every condition; {few} of {len(codes)} conditions have 1 trial"
            if conditions is not None
            else "needs >= 2 trials"
        )
    if n_splits < 1:
        raise ValueError("n_splits must be >= 1")
    rel_sum, rel_n, split_ceilings = _split_half_reliability(x, cond, codes, bool(by_condition), n_splits, _rng(rng))
    with np.errstate(invalid="ignore", divide="ignore"):
        reliability = np.where(rel_n > 0, rel_sum / np.maximum(rel_n, 1), np.nan)
        ceiling = np.sqrt(np.clip(reliability, 0.0, None))  # NaN stays NaN
        usable = np.isfinite(ceiling) & (ceiling >= NEAR_ZERO_CEILING)
    per_split = np.nanmean(np.where(usable, split_ceilings, np.nan), axis=1) if usable.any() else np.full(1, np.nan)
    sem = float(np.std(per_split, ddof=1) / np.sqrt(n_splits)) if n_splits > 1 and usable.any() else float("nan")
    return NoiseCeiling(
        reliability=reliability,
        ceiling=ceiling,
        mean=_mean_or_na(np.where(usable, ceiling, np.nan), "noise ceiling"),
        mean_reliability=_mean_or_na(np.where(usable, reliability, np.nan), "reliability"),
        n_undefined=int(np.sum(~np.isfinite(ceiling))),
        by_condition=bool(by_condition),
        n_splits=int(n_splits),
        sem=sem,
        n_near_zero=int(np.sum(np.isfinite(ceiling) & (ceiling < NEAR_ZERO_CEILING))),
    )


def _split_half_reliability(
    x: np.ndarray, cond: np.ndarray, codes: np.ndarray, by_condition: bool, n_splits: int, gen: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per neuron: the sum and count of the finite Spearman-Brown reliabilities over the splits,
    and each split's ceiling [n_splits, neurons] (NaN where undefined)."""
    n_neurons = x.shape[-1]
    idx_by_code = [np.flatnonzero(cond == c) for c in codes]
    rel_sum = np.zeros(n_neurons)
    rel_n = np.zeros(n_neurons, dtype=int)
    split_ceilings = np.full((n_splits, n_neurons), np.nan)
    halves = [_split_halves(idx_by_code, gen) for _ in range(n_splits)]
    half_means = _finite_half_means(x, halves, by_condition) if np.isfinite(x).all() else None
    for split, (halves_a, halves_b) in enumerate(halves):
        if half_means is not None:
            ha, hb = next(half_means)
        elif by_condition:
            ha = np.concatenate([_nanmean_axis0(x[a]) for a in halves_a])
            hb = np.concatenate([_nanmean_axis0(x[b]) for b in halves_b])
        else:
            ha = _nanmean_axis0(x[np.concatenate(halves_a)])
            hb = _nanmean_axis0(x[np.concatenate(halves_b)])
        r = _pearson_columns(ha, hb)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = 2.0 * r / (1.0 + r)
        ok = np.isfinite(rel)
        rel_sum[ok] += rel[ok]
        rel_n += ok
        split_ceilings[split, ok] = np.sqrt(np.clip(rel[ok], 0.0, None))
    return rel_sum, rel_n, split_ceilings


def _split_halves(idx_by_code: list[np.ndarray], gen: np.random.Generator) -> tuple[list, list]:
    """Each condition's trials shuffled and cut into halves A and B (sizes floor/ceil of n/2)."""
    halves_a, halves_b = [], []
    for idx in idx_by_code:
        p = gen.permutation(idx)
        halves_a.append(p[: len(p) // 2])
        halves_b.append(p[len(p) // 2 :])
    return halves_a, halves_b


def _finite_half_means(x: np.ndarray, halves: list[tuple[list, list]], by_condition: bool) -> Iterator[np.ndarray]:
    """The two half PSTHs [2, groups * time, neurons] of each split of finite `x`, in order: one
    matmul of averaging weights (a row per split, half and condition, or per split and half
    when pooled) with the trials for as many splits as fit HALF_MEANS_BYTES, instead of a copy
    of each half's trials."""
    n_trials, rest = x.shape[0], x.shape[1:]
    groups = len(halves[0][0]) if by_condition else 1
    flat = x.reshape(n_trials, -1)
    per_split = 2 * groups * flat.shape[1] * flat.itemsize
    chunk = max(1, HALF_MEANS_BYTES // per_split)
    for first in range(0, len(halves), chunk):
        pairs = halves[first : first + chunk]
        weights = np.zeros((len(pairs), 2, groups, n_trials))
        for split, pair in enumerate(pairs):
            for half, members in enumerate(pair):
                for group, chosen in enumerate(members if by_condition else [np.concatenate(members)]):
                    weights[split, half, group, chosen] = 1.0 / len(chosen)
        means = weights.reshape(-1, n_trials) @ flat
        yield from means.reshape(len(pairs), 2, groups * rest[0], *rest[1:])


def normalized_correlation(corr: Any, ceiling: Any) -> Any:
    """Correlation divided by its noise ceiling: ``corr / ceiling`` (dimensionless, ~1 for a
    perfect model; can exceed 1 by chance).

    ``corr``: a float, a per-neuron array, or a :class:`PsthCorrelation` (its per-neuron r).
    ``ceiling``: a float, a per-neuron array, or a :class:`NoiseCeiling`. Arrays divide per
    neuron and return an array (average it with ``np.nanmean`` yourself); a float ``corr``
    with a ``NoiseCeiling`` is divided by its mean ceiling. NotAvailable in either argument
    propagates; a ceiling <= 0 or NaN gives NaN, and so does, with a ``NoiseCeiling``, a
    neuron whose ceiling is not ``usable``. Use the ceiling computed with the same stacking
    (``by_condition``) as the correlation. For a mean over neurons see
    :func:`normalized_mean_correlation`.

    Examples
    --------
    >>> from eirnn.metrics import normalized_correlation
    >>> normalized_correlation(0.5, 0.8)
    0.625
    """
    if isinstance(corr, NotAvailable):
        return corr
    if isinstance(ceiling, NotAvailable):
        return ceiling
    if isinstance(corr, PsthCorrelation):
        corr = corr.per_neuron
    if isinstance(ceiling, NoiseCeiling):
        if np.ndim(corr) == 0:
            if isinstance(ceiling.mean, NotAvailable):
                return ceiling.mean
            ceiling = ceiling.mean
        else:
            ceiling = np.where(ceiling.usable, ceiling.ceiling, np.nan)
    c = np.asarray(corr, dtype=float)
    d = np.asarray(ceiling, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(d > 0, c / np.where(d > 0, d, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def normalized_mean_correlation(corr: PsthCorrelation, ceiling: Any) -> Metric:
    """Mean r over the neurons with a usable ceiling divided by their mean ceiling (neurons
    with an undefined or near-zero ceiling are left out of both means; ``NoiseCeiling`` counts
    them). NotAvailable propagates."""
    if isinstance(ceiling, NotAvailable):
        return ceiling
    keep = ceiling.usable & np.isfinite(corr.per_neuron)
    if not keep.any():
        return NotAvailable("no neuron has both a correlation and a usable noise ceiling")
    return float(np.mean(corr.per_neuron[keep]) / np.mean(ceiling.ceiling[keep]))
