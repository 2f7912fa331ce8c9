"""Evaluate a fitted model on a dataset (usually the validation trials): every number and array
that a training report needs. Definitions live in `eirnn.metrics` (docs/metrics.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eirnn import metrics
from eirnn.data.perturbations import CONTROL, perturbation_steps, trial_types
from eirnn.metrics import Metric, NotAvailable, to_float
from eirnn.model.encoder import encoder_spikes

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
    val_trial_types: np.ndarray  # [trials] perturbation type ("control", a label...)
    control_condition_psth: Metric  # cond_psth_corr on the control trials
    perturbed_condition_psth: Metric  # on the perturbed trials, PSTHs by condition x perturbation type
    single_trial: SingleTrialScores | None = None  # NLB scores (co_bps, fp_bps, vel_r2)
    initial_state_offsets: np.ndarray | None = None  # [trials, n_units]: inferred x[0] - h0 (unit order)

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
            "control_cond_psth_corr": self.control_condition_psth,
            "perturbed_cond_psth_corr": self.perturbed_condition_psth,
            **(self.single_trial.metric_values() if self.single_trial is not None else {}),
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


def control_and_perturbed_scores(
    model_rates: np.ndarray, target_rates: np.ndarray, conditions: np.ndarray, types: np.ndarray, labels: Any
) -> tuple[Metric, Metric]:
    """Mean condition-PSTH correlation on the control trials, and on the perturbed trials with
    their PSTHs taken per (condition, perturbation type)."""
    control = types == CONTROL
    scores: list[Metric] = []
    for mask, what in ((control, "control"), (~control, "perturbation")):
        if not mask.any():
            scores.append(NotAvailable(f"no {what} trials among the validation trials"))
            continue
        strata = np.unique(
            np.char.add(conditions[mask].astype(str), np.char.add("|", types[mask])), return_inverse=True
        )[1]
        scores.append(metrics.condition_psth_correlation(model_rates[mask], target_rates[mask], strata, labels).mean)
    return scores[0], scores[1]


def predict_rates(
    model: torch.nn.Module,
    inputs: np.ndarray,
    *,
    noise: bool = False,
    seed: int = 0,
    spikes: Any = None,
    perturbation: Any = None,
):
    """Model output for `inputs` [trials, time, n_inputs]; noise uses a generator seeded by `seed`.
    `spikes` [trials, time, neurons]: the trials' counts, from which an inferred-state model infers
    each trial's initial state (without them it starts every trial from the shared h0);
    `perturbation`: the trials' `PerturbationSteps` (None: none)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    with torch.no_grad():
        as_tensor = lambda array: torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)  # noqa: E731
        prepared = model.prepare_inputs(
            as_tensor(inputs), None if spikes is None else as_tensor(spikes), perturbation=perturbation
        )
        return model(prepared, noise=noise, generator=generator)


def trial_spikes(model: torch.nn.Module, dataset: Any) -> Any:
    """What `predict_rates` passes an inferred-state model for `dataset`'s trials, else None."""
    if not getattr(model, "infers_initial_state", False):
        return None
    return encoder_spikes(dataset, "cpu").numpy()


def evaluate(
    model: torch.nn.Module,
    dataset: Any,
    *,
    seed: int = 0,
    ceiling_seed: int | None = None,
    ceiling_splits: int = CEILING_SPLITS,
    train: Any = None,
) -> Evaluation:
    """Score `model` on `dataset`. Deterministic for given seeds: the model's noisy draws (for its
    Fano factor) come from `seed`; the noise ceilings, a property of the data alone, from
    generators of their own seeded by `ceiling_seed` (default `seed`), so that the same data
    give the same ceiling whatever model is scored. An inferred-state model reads each trial's
    spikes (held-in neurons, observed bins). `train` (the training trials) adds vel_r2, whose
    decoder NLB fits on the training trials' predicted rates.

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
    spikes = trial_spikes(model, dataset)
    steps = perturbation_steps(dataset)
    output = predict_rates(model, dataset.inputs, noise=False, spikes=spikes, perturbation=steps)
    model_rates = output.rates.cpu().numpy().astype(np.float64)
    target_rates = np.asarray(dataset.rates_hz, dtype=np.float64)
    conditions = np.asarray(dataset.conditions)
    labels = dataset.ei_labels
    model_psths = metrics.condition_psths(model_rates, conditions)
    target_psths = metrics.condition_psths(target_rates, conditions)
    bits, fano_data, fano_model = _count_scores(model, dataset, model_rates, seed, spikes, steps)
    flat_target = target_psths.reshape(-1, target_psths.shape[-1])
    n_components = min(PCA_COMPONENTS, *flat_target.shape)
    behavior = _numpy_or_none(output.behavior)
    pooled_ceiling, condition_ceiling = data_noise_ceilings(target_rates, conditions, ceiling_seed, ceiling_splits)
    types = trial_types(dataset) if hasattr(dataset, "perturbations") else np.full(len(conditions), CONTROL)
    control_score, perturbed_score = control_and_perturbed_scores(model_rates, target_rates, conditions, types, labels)
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
        single_trial=single_trial_scores(model, model_rates, dataset, train),
        initial_state_offsets=_numpy_or_none(output.initial_state_offset),
        val_trial_types=types,
        control_condition_psth=control_score,
        perturbed_condition_psth=perturbed_score,
    )


def _count_scores(
    model: torch.nn.Module, dataset: Any, model_rates: np.ndarray, seed: int, spikes: Any, steps: Any
) -> tuple[Metric, Metric, Any]:
    """(bits per spike, the data's Fano factor, the model's Fano factor from its noisy draws)."""
    conditions = np.asarray(dataset.conditions)
    if dataset.counts is not None:
        bits = metrics.bits_per_spike(model_rates * dataset.bin_s, dataset.counts)
        fano_data = metrics.fano_factor(dataset.counts, conditions)
    else:
        bits = NotAvailable("the data has rates only, no spike counts")
        fano_data = NotAvailable("the data has rates only, no spike counts")
    noisy = predict_rates(model, dataset.inputs, noise=True, seed=seed, spikes=spikes, perturbation=steps)
    rng = np.random.default_rng(seed)
    return bits, fano_data, metrics.model_fano_factor(noisy.rates.cpu().numpy(), dataset.bin_s, conditions, rng=rng)


def _numpy_or_none(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.cpu().numpy()


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


@dataclass(frozen=True)
class SingleTrialScores:
    """The Neural Latents Benchmark scores of single-trial predictions (docs/metrics.md)."""

    co_bps: Metric
    fp_bps: Metric
    vel_r2: Metric
    heldout_neurons: tuple[int, ...]
    forward_bins: int

    def metric_values(self) -> dict[str, Metric]:
        return {"co_bps": self.co_bps, "fp_bps": self.fp_bps, "vel_r2": self.vel_r2}


def single_trial_scores(model: torch.nn.Module, model_rates: np.ndarray, dataset: Any, train: Any) -> SingleTrialScores:
    """co_bps on the model's held-out neurons over the observed bins, fp_bps over the last
    `forward_bins` bins, vel_r2 from a decoder fitted on `train`'s predicted rates (NLB's layout)."""
    hparams = getattr(model, "hparams", {})
    heldout = tuple(hparams.get("heldout_neurons") or ())
    forward_bins = int(hparams.get("forward_bins") or 0)
    observed = model_rates.shape[1] - forward_bins
    per_bin = model_rates * dataset.bin_s
    counts = dataset.counts
    co_bps = metrics.co_bps(per_bin[:, :observed], None if counts is None else counts[:, :observed], heldout)
    vel_r2: Metric = NotAvailable("the data has no behaviour")
    if train is not None and dataset.behavior is not None:
        train_rates = predict_rates(model, train.inputs, spikes=trial_spikes(model, train)).rates.cpu().numpy()
        vel_r2 = metrics.vel_r2(
            train_rates[:, :observed] * train.bin_s,
            train.behavior[:, :observed],
            per_bin[:, :observed],
            dataset.behavior[:, :observed],
        )
    return SingleTrialScores(co_bps, metrics.fp_bps(per_bin, counts, forward_bins), vel_r2, heldout, forward_bins)
