"""Single-trial scores of the Neural Latents Benchmark (nlb_tools ``evaluation``, v0.0.3):
co-smoothing and forward-prediction bits per spike, and velocity decoding R^2.

co-bps and fp-bps are `eirnn.metrics.bits_per_spike` (nlb_tools ``bits_per_spike``) on the
held-out neurons and on the forward-prediction bins; vel R^2 is nlb_tools
``fit_and_eval_decoder``: a ridge regression from the predicted rates to the behaviour, its
penalty chosen by 5-fold cross-validation on the training trials (sklearn ``GridSearchCV`` over
``alpha = logspace(-4, 0, 9)``), scored on the evaluation trials. tests/data/nlb_reference holds
nlb_tools' own values on fixed arrays, with the script that produced them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eirnn.metrics.availability import Metric, NotAvailable
from eirnn.metrics.correlation import r2_uniform_average
from eirnn.metrics.likelihood import bits_per_spike

#: nlb_tools' grid of ridge penalties and its cross-validation folds (sklearn's default 5)
RIDGE_ALPHAS = np.logspace(-4, 0, 9)
CV_FOLDS = 5


def co_bps(pred_rates_per_bin: Any, spike_counts: Any, heldout: Sequence[int]) -> Metric:
    """Co-smoothing bits per spike [bits/spike]: `bits_per_spike` of the held-out neurons' columns.

    pred_rates_per_bin, spike_counts: [trials, time, neurons] (expected counts per bin, counts;
    NaN counts are padding); heldout: the held-out neurons' column indices. The trials should be
    the observed window (without forward-prediction bins), as NLB's eval_spikes_heldout.

    Examples
    --------
    Poisson counts of 20 trials x 10 bins x 4 neurons; neurons 2 and 3 are held out. The true
    rates earn positive bits per spike, each neuron's mean rate (the null model) earns 0:

    >>> import numpy as np
    >>> from eirnn.metrics.single_trial import co_bps
    >>> rng = np.random.default_rng(0)
    >>> rates = np.repeat(rng.uniform(0.1, 2.0, size=(1, 10, 4)), 20, axis=0)  # expected counts per bin
    >>> counts = rng.poisson(rates).astype(float)
    >>> round(co_bps(rates, counts, heldout=[2, 3]), 3)
    0.218
    >>> null = np.broadcast_to(counts.mean(axis=(0, 1)), counts.shape)
    >>> round(co_bps(null, counts, heldout=[2, 3]), 3)
    0.0
    >>> co_bps(rates, counts, heldout=[])
    NotAvailable(reason='no held-out neurons (heldout_neurons is empty)')
    """
    if len(heldout) == 0:
        return NotAvailable("no held-out neurons (heldout_neurons is empty)")
    if spike_counts is None:
        return NotAvailable("the data has rates only, no spike counts")
    columns = np.asarray(heldout, dtype=int)
    return bits_per_spike(np.asarray(pred_rates_per_bin)[..., columns], np.asarray(spike_counts)[..., columns])


def fp_bps(pred_rates_per_bin: Any, spike_counts: Any, forward_bins: int) -> Metric:
    """Forward-prediction bits per spike [bits/spike]: `bits_per_spike` of every neuron (held-in
    and held-out) over each trial's last `forward_bins` bins, with the null model's mean taken
    over those bins, as nlb_tools does with eval_spikes_*_forward.

    Examples
    --------
    The counts of `co_bps`'s example, scored over each trial's last 3 bins:

    >>> import numpy as np
    >>> from eirnn.metrics.single_trial import fp_bps
    >>> rng = np.random.default_rng(0)
    >>> rates = np.repeat(rng.uniform(0.1, 2.0, size=(1, 10, 4)), 20, axis=0)
    >>> counts = rng.poisson(rates).astype(float)
    >>> round(fp_bps(rates, counts, forward_bins=3), 3)
    0.044
    """
    if forward_bins <= 0:
        return NotAvailable("no forward-prediction bins (forward_bins is 0)")
    if spike_counts is None:
        return NotAvailable("the data has rates only, no spike counts")
    return bits_per_spike(
        np.asarray(pred_rates_per_bin)[:, -forward_bins:], np.asarray(spike_counts)[:, -forward_bins:]
    )


def vel_r2(train_rates: Any, train_behavior: Any, eval_rates: Any, eval_behavior: Any) -> Metric:
    """Velocity (behaviour) decoding R^2, dimensionless, <= 1: nlb_tools ``velocity_decoding``
    with one decode mask.

    Rates [trials, time, neurons] (any units; NLB uses per-bin rates of all neurons) and
    behaviour [trials, time, n_out] of the training and evaluation trials are flattened to
    [samples, .]; samples whose first behaviour column is NaN are dropped. A ridge regression
    with intercept is fitted to the training samples, its penalty the best mean R^2 over 5
    contiguous folds (first best on ties), refitted on all training samples and scored on the
    evaluation samples (R^2 averaged over behaviour columns).

    Examples
    --------
    Behaviour that is a linear function of the rates decodes perfectly; with noise on the
    training behaviour, a little less:

    >>> import numpy as np
    >>> from eirnn.metrics.single_trial import vel_r2
    >>> rng = np.random.default_rng(0)
    >>> rates = rng.normal(size=(30, 10, 4))  # 30 trials x 10 bins x 4 neurons
    >>> velocity = np.stack([2 * rates[..., 0] - rates[..., 1], rates[..., 2]], axis=-1)
    >>> round(vel_r2(rates[:20], velocity[:20], rates[20:], velocity[20:]), 3)
    1.0
    >>> noisy = velocity[:20] + rng.normal(size=(20, 10, 2))
    >>> round(vel_r2(rates[:20], noisy, rates[20:], velocity[20:]), 3)
    0.986
    """
    if train_behavior is None or eval_behavior is None:
        return NotAvailable("the data has no behaviour")
    x_train, y_train = _samples(train_rates, train_behavior)
    x_eval, y_eval = _samples(eval_rates, eval_behavior)
    if len(x_train) < CV_FOLDS or len(x_eval) < 2:
        return NotAvailable(f"too few behaviour samples ({len(x_train)} training, {len(x_eval)} evaluation)")
    if not (np.all(np.isfinite(x_train)) and np.all(np.isfinite(x_eval))):
        raise ValueError("vel_r2: NaN/inf rate predictions where the behaviour is defined")
    # the ridge is shift-invariant (it fits an intercept) and R^2 too: centring every sample on
    # the training means once keeps the moment differences below well conditioned
    x_mean, y_mean = x_train.mean(axis=0), y_train.mean(axis=0)
    x_train, y_train, x_eval, y_eval = x_train - x_mean, y_train - y_mean, x_eval - x_mean, y_eval - y_mean
    folds = np.array_split(np.arange(len(x_train)), CV_FOLDS)
    fold_moments = [_Moments.of(x_train[fold], y_train[fold]) for fold in folds]
    total = sum(fold_moments[1:], fold_moments[0])
    scores = [_cross_validated_r2(x_train, y_train, folds, fold_moments, total, alpha) for alpha in RIDGE_ALPHAS]
    best_alpha = RIDGE_ALPHAS[int(np.argmax(scores))]
    return r2_uniform_average(y_eval, total.ridge(best_alpha)(x_eval))


def _samples(rates: Any, behavior: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(rates, dtype=float)
    y = np.asarray(behavior, dtype=float)
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"vel_r2: rates {x.shape[0]} samples, behaviour {y.shape[0]}")
    keep = ~np.isnan(y[:, 0])
    return x[keep], y[keep]


def _cross_validated_r2(
    x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], fold_moments: list[_Moments], total: _Moments, alpha: float
) -> float:
    """Mean R^2 over the folds of a ridge fitted on the other folds: each fit from the moments of
    all samples minus the fold's, one pass over the samples for every penalty and fold."""
    scores = []
    for fold, moments in zip(folds, fold_moments):
        scores.append(r2_uniform_average(y[fold], (total - moments).ridge(alpha)(x[fold])))
    return float(np.mean(scores))


@dataclass(frozen=True)
class _Moments:
    """Sample count, sums and cross-products of [samples, .] rates x and behaviour y: enough for
    the ridge on those samples, and additive over disjoint sample sets."""

    n: int
    sum_x: np.ndarray
    sum_y: np.ndarray
    xx: np.ndarray
    xy: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> _Moments:
        return cls(len(x), x.sum(axis=0), y.sum(axis=0), x.T @ x, x.T @ y)

    def __add__(self, other: _Moments) -> _Moments:
        return _Moments(*(a + b for a, b in zip(self._fields(), other._fields())))

    def __sub__(self, other: _Moments) -> _Moments:
        return _Moments(*(a - b for a, b in zip(self._fields(), other._fields())))

    def _fields(self) -> tuple:
        return self.n, self.sum_x, self.sum_y, self.xx, self.xy

    def ridge(self, alpha: float):
        """sklearn ``Ridge(alpha)`` with intercept (centred normal equations); returns the predictor."""
        x_mean, y_mean = self.sum_x / self.n, self.sum_y / self.n
        centred_xx = self.xx - self.n * np.outer(x_mean, x_mean)
        centred_xy = self.xy - self.n * np.outer(x_mean, y_mean)
        weights = np.linalg.solve(centred_xx + alpha * np.eye(len(x_mean)), centred_xy)
        intercept = y_mean - x_mean @ weights
        return lambda new: new @ weights + intercept
