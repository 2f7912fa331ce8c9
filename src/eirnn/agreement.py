"""What an ensemble of fits agrees on, and how far that agreement can be trusted.

Each fit answers the same questions (`eirnn.circuit_answers`). Per answer (one entry of an
answer array, e.g. neuron 7 in condition 2 under silence_I) the ensemble gives its mean and
spread (standard deviation across fits, ddof=0), the consensus sign (the sign most fits give;
for counts such as `n_stable_fixed_points`, the most common value) and the sign fraction: the
share of all fits that give the consensus (a fit without an answer, NaN, disagrees).

Verdict rule (`VerdictRule`; how it was chosen: docs/metrics.md and benchmarks/README.md): an
answer is *agreed* when its sign fraction is at least `min_sign_fraction` and its mean is at
least `min_mean_over_spread` spreads away from 0 (for counts: the sign fraction alone).

On data with a ground truth, `calibrate` scores the verdicts against the true network's
answers: coverage (share agreed), precision (share with the true sign) of agreed and of
not-agreed answers, the AUROC of the sign fraction for telling right from wrong consensus
signs, the share of agreed answers whose mean is within a factor of 2 of the true value, and
the correlation with the truth of the ensemble mean against that of single fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from eirnn.circuit_answers import CircuitAnswers
from eirnn.metrics import pearson_r

COUNT_ANSWERS = ("n_stable_fixed_points",)
MAGNITUDE_FACTOR = 2.0


@dataclass(frozen=True)
class VerdictRule:
    """An answer is agreed when sign_fraction >= min_sign_fraction and
    |mean| >= min_mean_over_spread * spread (counts: the fraction alone)."""

    # chosen on held-out teachers only (benchmarks/bench_ensemble.py select; benchmarks/README.md)
    min_sign_fraction: float = 0.75
    min_mean_over_spread: float = 1.0

    def agreed(self, name: str, mean: np.ndarray, spread: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        enough = fraction >= self.min_sign_fraction - 1e-12
        if name in COUNT_ANSWERS:
            return enough
        with np.errstate(invalid="ignore"):
            return enough & (np.abs(mean) >= self.min_mean_over_spread * spread) & (mean != 0)


@dataclass
class AnswerAgreement:
    """One answer family across fits; every array has the answer's shape."""

    name: str
    mean: np.ndarray
    spread: np.ndarray
    consensus: np.ndarray  # sign (-1, 0, 1), or the modal value of a count
    sign_fraction: np.ndarray
    agreed: np.ndarray  # bool
    values: np.ndarray  # [fits, ...] each fit's answers


def _signs(name: str, values: np.ndarray) -> np.ndarray:
    return values if name in COUNT_ANSWERS else np.sign(values)


def _consensus(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(consensus, fraction of all fits giving it) per answer, from [fits, ...] values."""
    signs = _signs(name, values)
    candidates = [-1.0, 0.0, 1.0] if name not in COUNT_ANSWERS else np.unique(signs[np.isfinite(signs)])
    if not len(candidates):
        nan = np.full(values.shape[1:], np.nan)
        return nan, np.zeros(values.shape[1:])
    counts = np.stack([(signs == candidate).sum(axis=0) for candidate in candidates])
    best = counts.argmax(axis=0)
    consensus = np.asarray(candidates, dtype=float)[best]
    fraction = counts.max(axis=0) / len(values)
    consensus[counts.max(axis=0) == 0] = np.nan
    return consensus, fraction


def aggregate(answers: Sequence[CircuitAnswers], rule: VerdictRule | None = None) -> dict[str, AnswerAgreement]:
    """Per answer family: ensemble mean, spread, consensus, sign fraction and verdict.

    Examples
    --------
    Four fits answer `silence_I` for three neurons in one condition: all agree that neuron 0 goes
    up and neuron 1 down; they split on neuron 2, which is not agreed:

    >>> import numpy as np
    >>> from eirnn.agreement import aggregate
    >>> from eirnn.circuit_answers import CircuitAnswers
    >>> fits = [
    ...     CircuitAnswers({"silence_I": np.array([values])})
    ...     for values in ([2.0, -1.0, 0.5], [3.0, -1.2, -0.5], [2.5, -0.8, 0.4], [2.2, -1.1, -0.3])
    ... ]
    >>> entry = aggregate(fits)["silence_I"]
    >>> entry.mean.round(3), entry.sign_fraction, entry.agreed
    (array([[ 2.425, -1.025,  0.025]]), array([[1. , 1. , 0.5]]), array([[ True,  True, False]]))
    """
    rule = rule or VerdictRule()
    result = {}
    for name in answers[0].values:
        values = np.stack([fit.values[name] for fit in answers]).astype(np.float64)
        finite = np.isfinite(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            count = finite.sum(axis=0)
            mean = np.where(count > 0, np.where(finite, values, 0).sum(axis=0) / np.maximum(count, 1), np.nan)
            spread = np.sqrt(np.where(finite, (values - mean) ** 2, 0).sum(axis=0) / np.maximum(count, 1))
        spread[count == 0] = np.nan
        consensus, fraction = _consensus(name, values)
        agreed = rule.agreed(name, mean, spread, fraction) & (count > 0)
        result[name] = AnswerAgreement(name, mean, spread, consensus, fraction, agreed, values)
    return result


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for telling `positive` from the rest (ties count
    half; Mann-Whitney U); NaN without both classes.

    Examples
    --------
    >>> import numpy as np
    >>> from eirnn.agreement import auroc
    >>> auroc(np.array([0.9, 0.8, 0.6, 0.3]), np.array([True, True, False, False]))  # separates perfectly
    1.0
    >>> auroc(np.array([0.9, 0.5, 0.6, 0.3]), np.array([True, True, False, False]))  # 3 of 4 pairs in order
    0.75
    """
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _pooled(agreement: dict[str, AnswerAgreement], truth: CircuitAnswers, names: Sequence[str]):
    """Flattened (agreement fields, truth, right) over answers that have a consensus and a non-zero truth."""
    rows = []
    for name in names:
        entry, true = agreement[name], np.asarray(truth.values[name], dtype=np.float64)
        keep = np.isfinite(entry.consensus) & np.isfinite(true) & ((true != 0) | (name in COUNT_ANSWERS))
        right = entry.consensus[keep] == _signs(name, true[keep])
        rows.append((entry.mean[keep], entry.sign_fraction[keep], entry.agreed[keep], true[keep], right))
    return [np.concatenate(column) for column in zip(*rows)] if rows else [np.zeros(0)] * 5


def _share(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else float("nan")


def calibrate(
    agreement: dict[str, AnswerAgreement],
    truth: CircuitAnswers,
    names: Sequence[str] | None = None,
    null: dict[str, AnswerAgreement] | None = None,
) -> dict[str, float]:
    """Verdicts against the true network's answers, pooled over `names` (default: every answer
    family but the counts). `null`: the same ensemble's block-shuffled nulls; their precision on
    the answers this ensemble agrees on is the bar to clear.

    Examples
    --------
    The fits of `aggregate`'s example against a true network's answers: the two agreed answers
    have the true sign (precision 1), the one not agreed has not:

    >>> import numpy as np
    >>> from eirnn.agreement import aggregate, calibrate
    >>> from eirnn.circuit_answers import CircuitAnswers
    >>> fits = [
    ...     CircuitAnswers({"silence_I": np.array([values])})
    ...     for values in ([2.0, -1.0, 0.5], [3.0, -1.2, -0.5], [2.5, -0.8, 0.4], [2.2, -1.1, -0.3])
    ... ]
    >>> truth = CircuitAnswers({"silence_I": np.array([[1.5, -2.0, 0.2]])})
    >>> scores = calibrate(aggregate(fits), truth)
    >>> {name: round(scores[name], 3) for name in ("coverage", "precision_agreed", "precision_not_agreed")}
    {'coverage': 0.667, 'precision_agreed': 1.0, 'precision_not_agreed': 0.0}
    """
    names = [name for name in agreement if name not in COUNT_ANSWERS] if names is None else list(names)
    mean, fraction, agreed, true, right = _pooled(agreement, truth, names)
    agreed = agreed.astype(bool)
    right = right.astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean / true
    within = (ratio >= 1 / MAGNITUDE_FACTOR) & (ratio <= MAGNITUDE_FACTOR)
    result = {
        "n_answers": float(len(right)),
        "coverage": _share(agreed),
        "precision_agreed": _share(right[agreed]),
        "precision_not_agreed": _share(right[~agreed]),
        "precision_all": _share(right),
        "agreement_auroc": auroc(fraction, right),
        "within_2x_agreed": _share(within[agreed]),
        **_correlations(agreement, truth, [name for name in names if name.startswith(("silence_", "boost_"))]),
    }
    if null is not None:
        _, _, _, _, null_right = _pooled(null, truth, names)
        result["null_precision_on_agreed"] = _share(null_right.astype(bool)[agreed])
        result["null_precision_all"] = _share(null_right.astype(bool))
    return result


def _correlations(
    agreement: dict[str, AnswerAgreement], truth: CircuitAnswers, names: Sequence[str]
) -> dict[str, float]:
    """Pearson r with the truth of the ensemble-mean perturbation answers, and the mean r of the single fits."""
    if not names:
        return {}
    true = np.concatenate([np.ravel(truth.values[name]) for name in names])
    mean = np.concatenate([np.ravel(agreement[name].mean) for name in names])
    n_fits = len(agreement[names[0]].values)
    singles = [
        pearson_r(np.concatenate([np.ravel(agreement[name].values[fit]) for name in names]), true)
        for fit in range(n_fits)
    ]
    return {
        "ensemble_mean_corr": pearson_r(mean, true),
        "single_fit_corr": float(np.nanmean(singles)) if singles else float("nan"),
    }
