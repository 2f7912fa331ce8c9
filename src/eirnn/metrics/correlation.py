"""PSTH correlations (pooled and condition-resolved) and the NLB PSTH R^2. Dimensionless."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eirnn.metrics.availability import Metric, NotAvailable, _as_trials, _check_conditions, _check_labels, _mean_or_na
from eirnn.metrics.psth import _nanmean_axis0, _pearson_columns, condition_psths


@dataclass(frozen=True, eq=False)
class PsthCorrelation:
    """Per-neuron Pearson r and its means.

    per_neuron: [neurons] r (NaN where undefined: a PSTH with zero variance).
    mean: nanmean over neurons; mean_e / mean_i: over E (label 0) / I (label 1) neurons.
    n_undefined: how many neurons gave NaN and were excluded from the means.
    """

    per_neuron: np.ndarray
    mean: Metric
    mean_e: Metric
    mean_i: Metric
    n_undefined: int = 0


def _summarise_r(r: np.ndarray, labels: np.ndarray | None) -> PsthCorrelation:
    mean = _mean_or_na(r, "r")
    if labels is None:
        mean_e: Metric = mean
        mean_i: Metric = NotAvailable("no E/I labels")
    else:
        mean_e = _mean_or_na(r[labels == 0], "r (E)") if np.any(labels == 0) else NotAvailable("no E neurons")
        mean_i = _mean_or_na(r[labels == 1], "r (I)") if np.any(labels == 1) else NotAvailable("no I neurons")
    return PsthCorrelation(r, mean, mean_e, mean_i, int(np.sum(~np.isfinite(r))))


def psth_correlation(model_rates: Any, target_rates: Any, ei_labels: Any = None) -> PsthCorrelation:
    """PSTH correlation over time (the reference report's definition). Dimensionless.

    PSTH_j(t) = mean over all given trials of rates[:, t, j] (model and target averaged over
    their own trials; the trial counts may differ). Per neuron j,
    ``r_j = Pearson(PSTH_model_j(t), PSTH_target_j(t))`` over time bins (bins that are NaN
    in either PSTH are skipped). ``mean`` = mean of r_j over neurons with a defined r (a PSTH
    with zero variance gives NaN; those are counted in ``n_undefined`` and excluded).
    ``mean_e`` / ``mean_i`` average over E (label 0) / I (label 1) neurons; without labels
    ``mean_e`` = ``mean`` and ``mean_i`` is NotAvailable.

    Condition structure is ignored: the PSTH pools all conditions, so a model that gets every
    condition's offset wrong can still reach r = 1 (see :func:`condition_psth_correlation`).
    Scale and offset are also ignored (Pearson); use :func:`psth_r2` for those.

    Examples
    --------
    >>> import numpy as np
    >>> from eirnn.metrics import psth_correlation
    >>> t = np.linspace(0, 1, 50)
    >>> psth = 20 + 10 * np.stack([np.sin(2 * np.pi * t), t], axis=-1)  # 50 bins x 2 neurons, Hz
    >>> result = psth_correlation(2 * psth[None] + 5, psth[None])  # one trial each
    >>> result.per_neuron, result.mean
    (array([1., 1.]), 1.0)
    """
    m = _as_trials(model_rates, "model_rates")
    t = _as_trials(target_rates, "target_rates")
    if m.shape[1:] != t.shape[1:]:
        raise ValueError(f"model [.., time, neurons] {m.shape[1:]} != target {t.shape[1:]}")
    return correlation_of_psths(_nanmean_axis0(m), _nanmean_axis0(t), ei_labels)


def correlation_of_psths(model_psth: Any, target_psth: Any, ei_labels: Any = None) -> PsthCorrelation:
    """Per-neuron Pearson r between two PSTHs already averaged over trials, [samples, neurons]
    (time bins, or conditions x time stacked), summarised as :func:`psth_correlation` does.
    For callers that score many models against one target (validation every epoch)."""
    model_psth, target_psth = np.asarray(model_psth, dtype=float), np.asarray(target_psth, dtype=float)
    if model_psth.shape != target_psth.shape:
        raise ValueError(f"model PSTH {model_psth.shape} != target PSTH {target_psth.shape}")
    return _summarise_r(_pearson_columns(model_psth, target_psth), _check_labels(ei_labels, target_psth.shape[1]))


def condition_psth_correlation(
    model_rates: Any,
    target_rates: Any,
    conditions: Any,
    ei_labels: Any = None,
    *,
    model_conditions: Any = None,
) -> PsthCorrelation:
    """Condition-resolved PSTH correlation (stricter). Dimensionless.

    PSTH_{c,j}(t) = mean of rates over the trials of condition c. Per neuron j, Pearson r over
    the concatenation of the per-condition PSTHs (conditions x time stacked, one sample per
    (condition, bin)), so the model must also get the differences between conditions right.
    ``conditions`` codes the target trials; ``model_conditions`` the model trials (default:
    the same codes, i.e. the model was run on the same trials). Means as in
    :func:`psth_correlation`.

    Examples
    --------
    >>> import numpy as np
    >>> from eirnn.metrics import condition_psth_correlation
    >>> rates = np.random.default_rng(0).gamma(2.0, 5.0, size=(20, 30, 4))  # trials x bins x neurons, Hz
    >>> condition_psth_correlation(rates, rates, conditions=np.repeat([0, 1], 10)).mean
    1.0
    """
    t = _as_trials(target_rates, "target_rates")
    m = _as_trials(model_rates, "model_rates")
    if m.shape[1:] != t.shape[1:]:
        raise ValueError(f"model [.., time, neurons] {m.shape[1:]} != target {t.shape[1:]}")
    cond_t = _check_conditions(conditions, t.shape[0])
    cond_m = _check_conditions(
        conditions if model_conditions is None else model_conditions, m.shape[0], "model_conditions"
    )
    codes = np.unique(cond_t)
    missing = np.setdiff1d(codes, np.unique(cond_m))
    if missing.size:
        raise ValueError(f"model has no trials for conditions {missing.tolist()}")
    n = t.shape[2]
    pm = condition_psths(m, cond_m, codes).reshape(-1, n)
    pt = condition_psths(t, cond_t, codes).reshape(-1, n)
    return correlation_of_psths(pm, pt, ei_labels)


def psth_r2(model_psth_by_condition: Any, target_psth_by_condition: Any) -> float:
    """PSTH R^2 as the Neural Latents Benchmark computes it. Dimensionless, <= 1.

    nlb_tools ``evaluation.eval_psth`` = ``sklearn.metrics.r2_score(psth, rates)`` with rows =
    all leading axes stacked (conditions x time, or trials x time) and columns = neurons,
    ``multioutput='uniform_average'``; rows whose target (first neuron) is NaN are dropped.
    Per neuron j: ``R2_j = 1 - sum (y - yhat)^2 / sum (y - mean(y))^2`` (y = target column);
    a constant target column gives 1 if predicted exactly, else 0 (sklearn's
    ``force_finite``). Result: mean of R2_j over neurons.

    Inputs: same shape ``[..., neurons]``, normally ``[conditions, time, neurons]`` condition
    PSTHs. NLB's ``eval_psth`` averages the model's per-trial rates within each condition first
    and scores those predicted condition PSTHs against the data's, which is what
    `eirnn.evaluation` passes here.
    A model that predicts each neuron's overall mean gives 0; units must match (Hz vs Hz).

    Examples
    --------
    >>> import numpy as np
    >>> from eirnn.metrics import psth_r2
    >>> psth = np.arange(12.0).reshape(4, 3) ** 2  # 4 bins x 3 neurons
    >>> psth_r2(psth, psth), psth_r2(np.broadcast_to(psth.mean(axis=0), psth.shape), psth)
    (1.0, 0.0)
    """
    yhat = np.asarray(model_psth_by_condition, dtype=float)
    y = np.asarray(target_psth_by_condition, dtype=float)
    if yhat.shape != y.shape:
        raise ValueError(f"model shape {yhat.shape} != target shape {y.shape}")
    if y.ndim < 2:
        raise ValueError(f"expected [..., neurons], got shape {y.shape}")
    y = y.reshape(-1, y.shape[-1])
    yhat = yhat.reshape(-1, y.shape[-1])
    keep = ~np.isnan(y[:, 0])
    y, yhat = y[keep], yhat[keep]
    if np.any(~np.isfinite(yhat)) or np.any(~np.isfinite(y)):
        raise ValueError("NaN/inf in PSTHs within the rows the target defines")
    if y.shape[0] < 2:
        raise ValueError("psth_r2 needs at least 2 rows (bins)")
    return r2_uniform_average(y, yhat)


def r2_uniform_average(y: np.ndarray, yhat: np.ndarray) -> float:
    """sklearn's ``r2_score(y, yhat)`` (``multioutput='uniform_average'``, ``force_finite``) for
    [samples, columns] arrays: the mean over columns of 1 - SS_res / SS_tot."""
    ss_res = ((y - yhat) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.ones_like(ss_tot)
    ok = ss_tot != 0
    r2[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    r2[~ok & (ss_res != 0)] = 0.0
    return float(r2.mean())


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays of the same size, flattened, over the entries finite in
    both; NaN with fewer than 3 such entries or when either side is constant on them.

    Examples
    --------
    >>> from eirnn.metrics import pearson_r
    >>> round(pearson_r([1.0, 2.0, 3.0, float("nan")], [2.0, 4.0, 7.0, 1.0]), 3)
    0.993
    """
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if keep.sum() > 2 and denominator > 0 else float("nan")
