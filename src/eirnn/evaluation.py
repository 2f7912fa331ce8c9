"""Evaluate a fitted model on a dataset (usually the validation trials): every number and array
that a training report needs. Definitions live in `eirnn.metrics` (docs/metrics.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eirnn import metrics
from eirnn.metrics import Metric, NotAvailable, to_float

PCA_COMPONENTS = 10
# enough random splits that the ceiling's standard error over splits is ~0.001 on the built-in recording
CEILING_SPLITS = 100
# the noise ceilings draw from streams of their own seed: a metric of the data, not of the model
POOLED_CEILING_STREAM, CONDITION_CEILING_STREAM = 1, 2


@dataclass(eq=False)
class Evaluation:
    psth: metrics.PsthCorrelation
    condition_psth: metrics.PsthCorrelation
    psth_r2: Metric
    bits_per_spike: Metric
    fano_model: Any  # FanoResult or NotAvailable
    fano_data: Any
    noise_ceiling: Any  # NoiseCeiling (pooled over conditions, as psth_corr) or NotAvailable
    condition_noise_ceiling: Any  # NoiseCeiling (conditions x time, as cond_psth_corr) or NotAvailable
    summary_model: metrics.NeuronSummary
    summary_target: metrics.NeuronSummary
    pca: metrics.PCAResult
    ei_labels: np.ndarray | None
    bin_ms: float
    val_model_rates: np.ndarray  # [trials, time, neurons] Hz, noise off
    val_target_rates: np.ndarray  # [trials, time, neurons] Hz
    val_trial_conditions: np.ndarray  # [trials] condition codes
    condition_labels: list
    model_behavior: np.ndarray | None  # [trials, time, n_out]
    target_behavior: np.ndarray | None
    time_ms: np.ndarray | None  # [time], the data's own time stamps

    @property
    def val_model_psth(self) -> np.ndarray:
        return self.val_model_rates.mean(axis=0)

    @property
    def val_target_psth(self) -> np.ndarray:
        return self.val_target_rates.mean(axis=0)

    def condition_psths(self, rates: np.ndarray) -> np.ndarray:
        """[conditions, time, neurons], conditions in code order."""
        return metrics.condition_psths(rates, self.val_trial_conditions)

    @property
    def pca_real(self) -> np.ndarray:
        return self._project(self.val_target_rates)

    @property
    def pca_model(self) -> np.ndarray:
        return self._project(self.val_model_rates)

    def _project(self, rates: np.ndarray) -> np.ndarray:
        psths = self.condition_psths(rates)
        flat = metrics.pca_project(psths.reshape(-1, psths.shape[-1]), self.pca)
        return flat.reshape(psths.shape[0], psths.shape[1], -1)

    def normalized(self, correlation: metrics.PsthCorrelation, ceiling: Any) -> Metric:
        return metrics.normalized_mean_correlation(correlation, ceiling)

    def metric_values(self) -> dict[str, Any]:
        """The final metrics by name: a float, or NotAvailable with the reason."""
        return {
            "psth_corr": self.psth.mean,
            "psth_corr_E": self.psth.mean_e,
            "psth_corr_I": self.psth.mean_i,
            "cond_psth_corr": self.condition_psth.mean,
            "psth_r2": self.psth_r2,
            "bits_per_spike": self.bits_per_spike,
            "fano_model": _mean_of(self.fano_model),
            "fano_data": _mean_of(self.fano_data),
            "noise_ceiling": _mean_of(self.noise_ceiling),
            "noise_ceiling_sem": _ceiling_fact(self.noise_ceiling, "sem"),
            "noise_ceiling_n_excluded": _ceiling_fact(self.noise_ceiling, "n_excluded"),
            "normalized_psth_corr": self.normalized(self.psth, self.noise_ceiling),
            "cond_noise_ceiling": _mean_of(self.condition_noise_ceiling),
            "cond_noise_ceiling_sem": _ceiling_fact(self.condition_noise_ceiling, "sem"),
            "cond_noise_ceiling_n_excluded": _ceiling_fact(self.condition_noise_ceiling, "n_excluded"),
            "normalized_cond_psth_corr": self.normalized(self.condition_psth, self.condition_noise_ceiling),
        }

    def scalar_metrics(self) -> dict[str, float]:
        """The final metrics as floats (NaN where the data cannot support them)."""
        return {name: to_float(value) for name, value in self.metric_values().items()}

    def not_available(self) -> dict[str, str]:
        """Why each missing metric is missing, by metric name."""
        return {name: value.reason for name, value in self.metric_values().items() if isinstance(value, NotAvailable)}


def _mean_of(result: Any) -> Metric:
    return result if isinstance(result, NotAvailable) else result.mean


def _ceiling_fact(ceiling: Any, fact: str) -> Metric:
    """The ceiling's standard error, or how many neurons it leaves out of normalised means
    (undefined or near-zero ceiling)."""
    if isinstance(ceiling, NotAvailable):
        return ceiling
    return ceiling.sem if fact == "sem" else float(ceiling.n_undefined + ceiling.n_near_zero)


def predict_rates(model: torch.nn.Module, inputs: np.ndarray, *, noise: bool = False, seed: int = 0):
    """Model output for `inputs` [trials, time, n_inputs]; noise uses a generator seeded by `seed`."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    with torch.no_grad():
        prepared = model.prepare_inputs(torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=device))
        return model(prepared, noise=noise, generator=generator)


def evaluate(
    model: torch.nn.Module,
    dataset: Any,
    *,
    seed: int = 0,
    ceiling_seed: int | None = None,
    ceiling_splits: int = CEILING_SPLITS,
) -> Evaluation:
    """Score `model` on `dataset`. Deterministic for given seeds: the model's noisy draws (for its
    Fano factor) come from `seed`; the noise ceilings, a property of the data alone, from
    generators of their own seeded by `ceiling_seed` (default `seed`), so that the same data
    give the same ceiling whatever model is scored.

    Examples
    --------
    An untrained model of a small built-in recording, scored on all its trials:

    >>> from eirnn import evaluate
    >>> from eirnn.data.synthetic import make_recording
    >>> from eirnn.model import create_model_for_dataset
    >>> dataset, _ = make_recording(seed=0, n_e=8, n_i=3, n_trials=40, n_bins=20)
    >>> model = create_model_for_dataset(dataset, input_embed_dim=8, attention_heads=2)
    >>> scores = evaluate(model, dataset).scalar_metrics()
    >>> -1 <= scores["psth_corr"] <= 1, scores["noise_ceiling"] > 0
    (True, True)
    """
    ceiling_seed = seed if ceiling_seed is None else ceiling_seed
    output = predict_rates(model, dataset.inputs, noise=False)
    model_rates = output.rates.cpu().numpy().astype(np.float64)
    target_rates = np.asarray(dataset.rates_hz, dtype=np.float64)
    conditions = np.asarray(dataset.conditions)
    labels = dataset.ei_labels
    rng = np.random.default_rng(seed)

    model_psths = metrics.condition_psths(model_rates, conditions)
    target_psths = metrics.condition_psths(target_rates, conditions)
    if dataset.counts is not None:
        bits = metrics.bits_per_spike(model_rates * dataset.bin_s, dataset.counts)
        fano_data = metrics.fano_factor(dataset.counts, conditions)
    else:
        bits = NotAvailable("the data has rates only, no spike counts")
        fano_data = NotAvailable("the data has rates only, no spike counts")
    stochastic = predict_rates(model, dataset.inputs, noise=True, seed=seed).rates.cpu().numpy()
    fano_model = metrics.model_fano_factor(stochastic, dataset.bin_s, conditions, rng=rng)
    flat_target = target_psths.reshape(-1, target_psths.shape[-1])
    n_components = min(PCA_COMPONENTS, *flat_target.shape)
    behavior = output.behavior.cpu().numpy() if output.behavior is not None else None
    pooled_ceiling, condition_ceiling = data_noise_ceilings(target_rates, conditions, ceiling_seed, ceiling_splits)
    return Evaluation(
        psth=metrics.psth_correlation(model_rates, target_rates, labels),
        # what metrics.condition_psth_correlation computes, from the condition PSTHs already at hand
        condition_psth=metrics.correlation_of_psths(
            model_psths.reshape(-1, model_psths.shape[-1]), flat_target, labels
        ),
        psth_r2=metrics.psth_r2(model_psths, target_psths),
        bits_per_spike=bits,
        fano_model=fano_model,
        fano_data=fano_data,
        noise_ceiling=pooled_ceiling,
        condition_noise_ceiling=condition_ceiling,
        summary_model=metrics.per_neuron_summary(model_rates),
        summary_target=metrics.per_neuron_summary(target_rates),
        pca=metrics.pca_fit(flat_target, n_components=n_components),
        ei_labels=labels,
        bin_ms=float(dataset.bin_ms),
        val_model_rates=model_rates.astype(np.float32),
        val_target_rates=target_rates.astype(np.float32),
        val_trial_conditions=conditions,
        condition_labels=list(dataset.condition_labels),
        model_behavior=behavior,
        target_behavior=dataset.behavior,
        time_ms=dataset.time_ms,
    )


_CEILING_CACHE_SIZE = 8
_noise_ceilings: dict[tuple, tuple[Any, Any]] = {}


def data_noise_ceilings(target: np.ndarray, conditions: np.ndarray, seed: int, splits: int) -> tuple[Any, Any]:
    """The noise ceilings of these target rates, pooled over conditions and by condition, each
    from its own seeded stream. They depend on the data alone, so a process that scores many
    models on the same trials (the trials of a study, a notebook's sweep) computes them once:
    the cache key is the data's content, hashed once for both, not the arrays' identity."""

    def compute() -> tuple[Any, Any]:
        streams = ((False, POOLED_CEILING_STREAM), (True, CONDITION_CEILING_STREAM))
        return tuple(
            metrics.noise_ceiling(
                target,
                conditions,
                by_condition=by_condition,
                n_splits=splits,
                rng=np.random.default_rng([seed, stream]),
            )
            for by_condition, stream in streams
        )

    if target.dtype.hasobject or conditions.dtype.hasobject:
        return compute()
    digest = hashlib.blake2b(np.ascontiguousarray(target).view(np.uint8), digest_size=16)
    digest.update(np.ascontiguousarray(conditions).view(np.uint8))
    key = (digest.hexdigest(), target.shape, conditions.shape, conditions.dtype.str, seed, splits)
    if key not in _noise_ceilings:
        if len(_noise_ceilings) >= _CEILING_CACHE_SIZE:
            _noise_ceilings.pop(next(iter(_noise_ceilings)))
        _noise_ceilings[key] = compute()
    return _noise_ceilings[key]
