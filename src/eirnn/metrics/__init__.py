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

Modules, one per family (this package re-exports all their public names):

* ``availability``: :class:`NotAvailable`, :func:`is_available`, :func:`to_float`, input checks.
* ``psth``: trial averaging (:func:`condition_psths`) and per-neuron Pearson r.
* ``correlation``: :func:`psth_correlation`, :func:`condition_psth_correlation`,
  :func:`correlation_of_psths`, :func:`psth_r2`.
* ``likelihood``: :func:`bits_per_spike`.
* ``single_trial``: :func:`co_bps`, :func:`fp_bps`, :func:`vel_r2` (Neural Latents Benchmark).
* ``variability``: :func:`fano_factor`, :func:`model_fano_factor`.
* ``reliability``: :func:`noise_ceiling`, :func:`normalized_correlation`.
* ``population``: :func:`per_neuron_summary`, :func:`pca_fit`, :func:`pca_project`.
"""

from eirnn.metrics.availability import Metric, NotAvailable, is_available, to_float
from eirnn.metrics.correlation import (
    PsthCorrelation,
    condition_psth_correlation,
    correlation_of_psths,
    pearson_r,
    psth_correlation,
    psth_r2,
)
from eirnn.metrics.likelihood import NLB_MIN_RATE, bits_per_spike
from eirnn.metrics.population import NeuronSummary, PCAResult, pca_fit, pca_project, per_neuron_summary
from eirnn.metrics.psth import condition_psths
from eirnn.metrics.reliability import (
    NEAR_ZERO_CEILING,
    NOISE_CEILING_OF,
    NoiseCeiling,
    noise_ceiling,
    normalized_correlation,
    normalized_mean_correlation,
)
from eirnn.metrics.single_trial import co_bps, fp_bps, vel_r2
from eirnn.metrics.variability import FanoResult, fano_factor, model_fano_factor

__all__ = [
    "NEAR_ZERO_CEILING",
    "NLB_MIN_RATE",
    "NOISE_CEILING_OF",
    "FanoResult",
    "Metric",
    "NeuronSummary",
    "NoiseCeiling",
    "NotAvailable",
    "PCAResult",
    "PsthCorrelation",
    "bits_per_spike",
    "co_bps",
    "condition_psth_correlation",
    "condition_psths",
    "correlation_of_psths",
    "fano_factor",
    "fp_bps",
    "is_available",
    "model_fano_factor",
    "noise_ceiling",
    "normalized_correlation",
    "normalized_mean_correlation",
    "pca_fit",
    "pca_project",
    "pearson_r",
    "per_neuron_summary",
    "psth_correlation",
    "psth_r2",
    "to_float",
    "vel_r2",
]
