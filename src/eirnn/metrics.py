"""Metrics comparing a model's firing rates with a recorded population (numpy only).

Array conventions
-----------------
* Trial data: ``[trials, time, neurons]``. A 2-D ``[time, neurons]`` array is accepted wherever
  a trial average (PSTH) is taken and is treated as an already averaged PSTH.
* ``conditions``: integer (or any sortable) condition code per trial, shape ``[trials]``.
* ``ei_labels``: ``[neurons]``, 0 = excitatory (E), 1 = inhibitory (I).
* Rates are in Hz, spike counts are integers per bin; each docstring says which it needs.

A quantity the data cannot support (one trial per condition, rates but no counts, ...) is
returned as :class:`NotAvailable` with the reason, never as a made-up number. Use
:func:`is_available` to test and :func:`to_float` to log (NaN for ``NotAvailable``).

Definitions, units and references: ``docs/metrics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FanoResult",
    "NeuronSummary",
    "NoiseCeiling",
    "NotAvailable",
    "PCAResult",
    "PsthCorrelation",
    "bits_per_spike",
    "condition_psth_correlation",
    "fano_factor",
    "is_available",
    "model_fano_factor",
    "noise_ceiling",
    "normalized_correlation",
    "pca_fit",
    "pca_project",
    "per_neuron_summary",
    "psth_correlation",
    "psth_r2",
    "to_float",
]

#: nlb_tools replaces zero rate predictions by this value before taking the log.
NLB_MIN_RATE = 1e-9


# ---------------------------------------------------------------------------------------------
# NotAvailable
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
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
    return np.stack([_nanmean_axis0(x[conditions == c]) for c in codes])


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


# ---------------------------------------------------------------------------------------------
# PSTH correlation
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# PSTH R^2 (Neural Latents Benchmark)
# ---------------------------------------------------------------------------------------------
def psth_r2(model_psth_by_condition: Any, target_psth_by_condition: Any) -> float:
    """PSTH R^2 as the Neural Latents Benchmark computes it. Dimensionless, <= 1.

    nlb_tools ``evaluation.eval_psth`` = ``sklearn.metrics.r2_score(psth, rates)`` with rows =
    all leading axes stacked (conditions x time, or trials x time) and columns = neurons,
    ``multioutput='uniform_average'``; rows whose target (first neuron) is NaN are dropped.
    Per neuron j: ``R2_j = 1 - sum (y - yhat)^2 / sum (y - mean(y))^2`` (y = target column);
    a constant target column gives 1 if predicted exactly, else 0 (sklearn's
    ``force_finite``). Result: mean of R2_j over neurons.

    Inputs: same shape ``[..., neurons]``, e.g. ``[conditions, time, neurons]`` condition
    PSTHs. NLB itself passes per-trial model rates ``[trials, time, neurons]`` against each
    trial's condition PSTH (``target_psth[condition_index]``); both work here.
    A model that predicts each neuron's overall mean gives 0; units must match (Hz vs Hz).
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
    ss_res = ((y - yhat) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.ones_like(ss_tot)
    ok = ss_tot != 0
    r2[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    r2[~ok & (ss_res != 0)] = 0.0
    return float(r2.mean())


# ---------------------------------------------------------------------------------------------
# bits per spike (Neural Latents Benchmark co-bps)
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Fano factor
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# per-neuron summary
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# noise ceiling
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class NoiseCeiling:
    """Split-half reliability of the target PSTH and the correlation ceiling it implies.

    reliability: [neurons] Spearman-Brown-corrected split-half r, averaged over splits: the
        estimated squared correlation between the true PSTH and the all-trials PSTH.
    ceiling: [neurons] sqrt(max(reliability, 0)): the expected correlation of the true PSTH (a
        perfect model) with the all-trials target PSTH; 0 for a neuron without reproducible
        signal (reliability <= 0), NaN where undefined (a constant half-PSTH in every split).
    mean: mean ceiling over neurons with a defined ceiling; mean_reliability likewise.
    n_undefined: neurons without a defined ceiling (excluded from ``mean``).
    by_condition: whether PSTHs were stacked conditions x time.
    """

    reliability: np.ndarray
    ceiling: np.ndarray
    mean: Metric
    mean_reliability: Metric
    n_undefined: int
    by_condition: bool
    n_splits: int

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
    """
    x = _as_trials(target_rates, "target_rates")
    n_trials, _n_time, n_neurons = x.shape
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
    gen = _rng(rng)
    idx_by_code = [np.flatnonzero(cond == c) for c in codes]
    rel_sum = np.zeros(n_neurons)
    rel_n = np.zeros(n_neurons, dtype=int)
    for _ in range(n_splits):
        halves_a, halves_b = [], []
        for idx in idx_by_code:
            p = gen.permutation(idx)
            halves_a.append(p[: len(p) // 2])
            halves_b.append(p[len(p) // 2 :])
        if by_condition:
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
    with np.errstate(invalid="ignore", divide="ignore"):
        reliability = np.where(rel_n > 0, rel_sum / np.maximum(rel_n, 1), np.nan)
        ceiling = np.sqrt(np.clip(reliability, 0.0, None))  # NaN stays NaN
    return NoiseCeiling(
        reliability=reliability,
        ceiling=ceiling,
        mean=_mean_or_na(ceiling, "noise ceiling"),
        mean_reliability=_mean_or_na(reliability, "reliability"),
        n_undefined=int(np.sum(~np.isfinite(ceiling))),
        by_condition=bool(by_condition),
        n_splits=int(n_splits),
    )


def normalized_correlation(corr: Any, ceiling: Any) -> Any:
    """Correlation divided by its noise ceiling: ``corr / ceiling`` (dimensionless, ~1 for a
    perfect model; can exceed 1 by chance).

    ``corr``: a float, a per-neuron array, or a :class:`PsthCorrelation` (its per-neuron r).
    ``ceiling``: a float, a per-neuron array, or a :class:`NoiseCeiling`. Arrays divide per
    neuron and return an array (average it with ``np.nanmean`` yourself); a float ``corr``
    with a ``NoiseCeiling`` is divided by its mean ceiling. NotAvailable in either argument
    propagates; a ceiling <= 0 or NaN gives NaN. Use the ceiling computed with the same
    stacking (``by_condition``) as the correlation.
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
            ceiling = ceiling.ceiling
    c = np.asarray(corr, dtype=float)
    d = np.asarray(ceiling, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(d > 0, c / np.where(d > 0, d, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------------
# PCA
# ---------------------------------------------------------------------------------------------
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
