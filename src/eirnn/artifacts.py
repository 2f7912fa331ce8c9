"""The run folder: every array, table and JSON file a training run produces, in the layout of a
training report's saved files. `write_run_folder` writes it; `RunArtifacts.load` reads it back,
so figures and report.md can be rebuilt from a finished run's artifacts alone."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eirnn.data.perturbations import CONTROL
from eirnn.evaluation import Evaluation
from eirnn.metrics import Metric, NotAvailable, to_float

RUN_FOLDERS = ("weights", "outputs", "metrics", "population")
RUN_FILES = ("training_log.json", "config.json", "data.json", "metrics.json")
UNLABELED = -1  # neuron_ei_labels.npy value for data without E/I labels

PER_NEURON_FILES = {
    "per_neuron_correlation": "correlation",
    "per_neuron_condition_correlation": "condition_correlation",
    "per_neuron_noise_ceiling": "noise_ceiling",
    "per_neuron_mean_rate_model": "mean_rate_model_hz",
    "per_neuron_mean_rate_target": "mean_rate_target_hz",
    "per_neuron_variance_model": "psth_variance_model_hz2",
    "per_neuron_variance_target": "psth_variance_target_hz2",
    "per_neuron_fano_model": "fano_model",
    "per_neuron_fano_target": "fano_target",
    "neuron_ei_labels": "ei_label",
}


def _per_neuron_or_nan(result: Any, n_neurons: int, field: str = "per_neuron") -> np.ndarray:
    if isinstance(result, NotAvailable):
        return np.full(n_neurons, np.nan)
    return np.asarray(getattr(result, field), dtype=float)


def model_weights(model: Any) -> dict[str, np.ndarray]:
    """Effective (Dale-signed) weights and unit masks, as the report's weights/ folder holds them."""
    import torch

    with torch.no_grad():
        weights = {
            "W_rec": model.effective_recurrent_weights(),
            "W_in": model.input_weights(),
            "h0": model.initial_state(),
            "E_mask": model.e_mask,
            "I_mask": model.i_mask,
        }
        readout = model.readout_weights()
        # data without behaviour has no readout: an empty [0, n_E] matrix keeps the layout fixed
        weights["W_out"] = readout if readout is not None else torch.zeros(0, int(model.e_mask.sum()))
    return {name: value.detach().cpu().numpy() for name, value in weights.items()}


def attention_by_condition(model: Any, evaluation: Evaluation, inputs: np.ndarray) -> np.ndarray | None:
    """Mean attention weights per condition [conditions, heads, n_inputs, n_inputs], or None for
    embeddings without attention."""
    import torch

    if not hasattr(model.embedding, "attention_weights"):
        return None
    device = next(model.parameters()).device
    per_condition = []
    with torch.no_grad():
        for code in np.unique(evaluation.val_trial_conditions):
            vectors = inputs[evaluation.val_trial_conditions == code].reshape(-1, inputs.shape[-1])
            unique, counts = np.unique(vectors, axis=0, return_counts=True)
            weights = model.embedding.attention_weights(torch.as_tensor(unique, dtype=torch.float32, device=device))
            per_condition.append(np.tensordot(counts / counts.sum(), weights.cpu().numpy(), axes=1))
    return np.stack(per_condition)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _finite_or_none(value: float) -> float | None:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _per_neuron_arrays(evaluation: Evaluation) -> dict[str, np.ndarray]:
    """metrics/*.npy: one value per recorded neuron, NaN where the metric is not available."""
    n = evaluation.val_target_rates.shape[-1]
    labels = evaluation.ei_labels
    return {
        "per_neuron_correlation": evaluation.psth.per_neuron,
        "per_neuron_condition_correlation": evaluation.condition_psth.per_neuron,
        "per_neuron_noise_ceiling": _per_neuron_or_nan(evaluation.noise_ceiling, n),
        "per_neuron_mean_rate_model": evaluation.summary_model.mean_rate_hz,
        "per_neuron_mean_rate_target": evaluation.summary_target.mean_rate_hz,
        "per_neuron_variance_model": evaluation.summary_model.psth_variance_hz2,
        "per_neuron_variance_target": evaluation.summary_target.psth_variance_hz2,
        "per_neuron_fano_model": _per_neuron_or_nan(evaluation.fano_model, n),
        "per_neuron_fano_target": _per_neuron_or_nan(evaluation.fano_data, n),
        "neuron_ei_labels": np.full(n, UNLABELED) if labels is None else np.asarray(labels, dtype=int),
    }


def write_run_folder(
    out: str | Path,
    *,
    model: Any,
    evaluation: Evaluation,
    val_inputs: np.ndarray,
    history: list[dict[str, float]],
    fit_summary: dict[str, Any],
    config: dict[str, Any],
    data_facts: dict[str, Any],
    extra_metrics: dict[str, Metric] | None = None,
    recovery: Any = None,
    input_names: list[str] | None = None,
    behavior_names: list[str] | None = None,
) -> Path:
    """Write weights/, outputs/, metrics/, population/, training_log.json, config.json,
    data.json and metrics.json under `out`; `extra_metrics` (test-split scores, gt_* recovery
    numbers) join the final metrics, and a `eirnn.recovery.Recovery` its arrays in recovery/."""
    out = Path(out)
    if recovery is not None:
        _write_recovery(out / "recovery", recovery)
    for folder in RUN_FOLDERS:
        (out / folder).mkdir(parents=True, exist_ok=True)
    for name, array in model_weights(model).items():
        np.save(out / "weights" / f"{name}.npy", array)
    attention = attention_by_condition(model, evaluation, val_inputs)
    if attention is not None:
        np.save(out / "weights" / "attention_weights.npy", attention)

    outputs = {
        "val_model_rates": evaluation.val_model_rates,
        "val_target_rates": evaluation.val_target_rates,
        "val_model_psth": evaluation.val_model_psth,
        "val_target_psth": evaluation.val_target_psth,
        "val_trial_conditions": evaluation.val_trial_conditions,
        "val_model_condition_psth": evaluation.condition_psths(evaluation.val_model_rates),
        "val_target_condition_psth": evaluation.condition_psths(evaluation.val_target_rates),
    }
    # the inputs per condition (trial mean) let figures mark task events such as a go cue
    outputs["val_condition_inputs"] = evaluation.condition_psths(np.asarray(val_inputs, dtype=np.float32))
    if evaluation.time_ms is not None:
        outputs["time_ms"] = evaluation.time_ms
    if (evaluation.val_trial_types != CONTROL).any():
        outputs["val_trial_types"] = evaluation.val_trial_types.astype(str)
    if evaluation.model_behavior is not None:
        outputs["val_model_behavior"] = evaluation.model_behavior
    if evaluation.target_behavior is not None:
        outputs["val_target_behavior"] = evaluation.target_behavior
    if evaluation.single_trial is not None and evaluation.single_trial.heldout_neurons:
        outputs["heldout_neurons"] = np.asarray(evaluation.single_trial.heldout_neurons, dtype=np.int64)
    if evaluation.initial_state_offsets is not None:
        outputs["val_initial_state_offsets"] = evaluation.initial_state_offsets
    for name, array in outputs.items():
        np.save(out / "outputs" / f"{name}.npy", array)

    per_neuron = _per_neuron_arrays(evaluation)
    for name, array in per_neuron.items():
        np.save(out / "metrics" / f"{name}.npy", np.asarray(array))
    table = pd.DataFrame({column: per_neuron[name] for name, column in PER_NEURON_FILES.items()})
    table.index.name = "neuron"
    table.to_csv(out / "metrics" / "per_neuron_metrics.csv")

    population = {
        "pca_real": evaluation.pca_real,
        "pca_model": evaluation.pca_model,
        "pca_components": evaluation.pca.components,
        "pca_explained_variance": evaluation.pca.explained_variance_ratio,
    }
    for name, array in population.items():
        np.save(out / "population" / f"{name}.npy", array)

    names = {"input_names": input_names, "behavior_names": behavior_names}
    _write_json_files(out, evaluation, history, fit_summary, config, data_facts, extra_metrics, names)
    return out


def _write_json_files(
    out: Path,
    evaluation: Evaluation,
    history: list[dict[str, float]],
    fit_summary: dict[str, Any],
    config: dict[str, Any],
    data_facts: dict[str, Any],
    extra_metrics: dict[str, Metric] | None,
    names: dict[str, list[str] | None],
) -> None:
    """training_log.json, config.json, data.json and metrics.json (final metrics with the
    extra ones, reasons for missing ones, fit summary, input and behaviour names)."""
    extras = extra_metrics or {}
    summary = {
        "final": {k: _finite_or_none(to_float(v)) for k, v in {**evaluation.scalar_metrics(), **extras}.items()},
        "not_available": {
            **evaluation.not_available(),
            **{name: value.reason for name, value in extras.items() if isinstance(value, NotAvailable)},
        },
        "fit": fit_summary,
        "condition_labels": [str(label) for label in evaluation.condition_labels],
        "bin_ms": evaluation.bin_ms,
        **{key: [str(name) for name in value or []] for key, value in names.items()},
    }
    (out / "training_log.json").write_text(json.dumps(history, indent=1, default=_json_default))
    (out / "config.json").write_text(json.dumps(config, indent=2, default=_json_default))
    (out / "data.json").write_text(json.dumps(data_facts, indent=2, default=_json_default))
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=_json_default))


def _write_recovery(folder: Path, recovery: Any) -> None:
    """What the "What the fit recovers" figure draws: effective weights among the recorded
    neurons (fitted, true), the true labels, the perturbed groups and each perturbation's
    predicted and true condition-PSTH changes (Hz) of the other neurons; the same per perturbation
    type of the true network (`eirnn.perturbation_recovery`)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "fitted_weights": recovery.fitted_weights,
        "true_weights": recovery.true_weights,
        "true_is_inhibitory": recovery.true_is_inhibitory,
        **{f"group_{name}": neurons for name, neurons in recovery.groups.items()},
    }
    for name, (predicted, true) in recovery.effects.items():
        arrays[f"effect_predicted_{name}"] = predicted
        arrays[f"effect_true_{name}"] = true
    if recovery.type_effects:  # by perturbation type, numbered in the order of `type_labels`
        arrays["type_labels"] = np.array(list(recovery.type_effects), dtype=str)
        arrays["type_heldout"] = np.array([effect.heldout for effect in recovery.type_effects.values()])
        for index, effect in enumerate(recovery.type_effects.values()):
            arrays[f"type_effect_predicted_{index}"] = effect.predicted
            arrays[f"type_effect_true_{index}"] = effect.true
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(array))


@dataclass
class RunArtifacts:
    """A run folder read back: arrays by name (file stem) per folder, and the JSON files."""

    root: Path
    weights: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    population: dict[str, np.ndarray]
    history: list[dict[str, float]]
    config: dict[str, Any]
    data_facts: dict[str, Any]
    summary: dict[str, Any]
    recovery: dict[str, np.ndarray]  # empty unless the data carried its true circuit

    @classmethod
    def load(cls, root: str | Path) -> RunArtifacts:
        root = Path(root)

        def arrays(folder: str) -> dict[str, np.ndarray]:
            return {path.stem: np.load(path) for path in sorted((root / folder).glob("*.npy"))}

        def read(name: str) -> Any:
            return json.loads((root / name).read_text())

        return cls(
            root=root,
            weights=arrays("weights"),
            outputs=arrays("outputs"),
            metrics=arrays("metrics"),
            population=arrays("population"),
            history=read("training_log.json"),
            config=read("config.json"),
            data_facts=read("data.json"),
            summary=read("metrics.json"),
            recovery=arrays("recovery"),
        )

    @property
    def ei_labels(self) -> np.ndarray | None:
        labels = self.metrics["neuron_ei_labels"]
        return None if np.all(labels == UNLABELED) else labels

    @property
    def final_metrics(self) -> dict[str, float]:
        return {k: (float("nan") if v is None else v) for k, v in self.summary["final"].items()}
