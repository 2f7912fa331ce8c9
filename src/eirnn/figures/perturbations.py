"""The "Perturbation trials" figure: predicted against true effects per perturbation type of the
true circuit (data with a known circuit), and control against perturbed PSTHs of a few neurons."""

from __future__ import annotations

import numpy as np

from eirnn.data.perturbations import CONTROL
from eirnn.figures.drawing import (
    DATA_LINE,
    MODEL_LINE,
    Drawing,
    RunView,
    data_model_handles,
    new_figure,
    outside_legend,
    smooth,
    time_axis_ms,
)
from eirnn.metrics import NotAvailable

N_NEURONS_SHOWN = 3
CONTROL_COLOR, PERTURBED_COLOR = "0.35", "#8e44ad"


def perturbation_figure(view: RunView) -> Drawing:
    artifacts = view.artifacts
    types = artifacts.outputs.get("val_trial_types")
    labels = artifacts.recovery.get("type_labels")
    if types is None and labels is None:
        return NotAvailable("the validation trials have no perturbations and the data no known circuit")
    n_effects = 0 if labels is None else len(labels)
    n_columns = max(n_effects, N_NEURONS_SHOWN)
    n_rows = (n_effects > 0) + (types is not None)
    figure, axes = new_figure(n_rows, n_columns, (3.8 * n_columns, 3.6 * n_rows))
    for ax in axes.ravel():
        ax.set_visible(False)
    if n_effects:
        _effects(view, axes[0], labels)
    if types is not None:
        _psths(view, axes[-1], types)
        outside_legend(figure, data_model_handles(), "control (grey) / perturbed (purple)")
    return figure


def _effects(view: RunView, axes: np.ndarray, labels: np.ndarray) -> None:
    recovery = view.artifacts.recovery
    for index, (ax, label) in enumerate(zip(axes, labels.tolist())):
        ax.set_visible(True)
        predicted, true = recovery[f"type_effect_predicted_{index}"], recovery[f"type_effect_true_{index}"]
        ax.scatter(true.ravel(), predicted.ravel(), s=2, alpha=0.25, color="0.3", rasterized=True)
        finite = np.isfinite(true) & np.isfinite(predicted)
        if finite.any():
            low, high = (
                min(true[finite].min(), predicted[finite].min()),
                max(true[finite].max(), predicted[finite].max()),
            )
            ax.plot([low, high], [low, high], color="0.6", linewidth=0.8)
        r = np.corrcoef(true[finite], predicted[finite])[0, 1] if finite.sum() > 2 else float("nan")
        status = "held out" if recovery["type_heldout"][index] else "trained on"
        ax.set(
            xlabel="true change of condition PSTH (Hz)",
            ylabel="predicted change (Hz)",
            title=f"{label} ({status})\nr = {r:.2f}",
        )


def _psths(view: RunView, axes: np.ndarray, types: np.ndarray) -> None:
    """Mean rate of the neurons most changed by the most frequent perturbation type, over its
    trials and over the control trials, data and model."""
    outputs = view.artifacts.outputs
    model, target = outputs["val_model_rates"], outputs["val_target_rates"]
    perturbed_types, counts = np.unique(types[types != CONTROL], return_counts=True)
    shown = perturbed_types[np.argmax(counts)]
    control, perturbed = types == CONTROL, types == shown
    if not control.any():
        control = ~perturbed
    change = np.abs(target[perturbed].mean(axis=(0, 1)) - target[control].mean(axis=(0, 1)))
    neurons = np.argsort(-change)[:N_NEURONS_SHOWN]
    time_ms = time_axis_ms(view.artifacts, target.shape[1])
    for ax, neuron in zip(axes, neurons.tolist()):
        ax.set_visible(True)
        for trials, color in ((control, CONTROL_COLOR), (perturbed, PERTURBED_COLOR)):
            data = smooth(target[trials, :, neuron].mean(axis=0)[None], time_ms)[0]
            ax.plot(time_ms, data, color=color, **DATA_LINE)
            ax.plot(time_ms, model[trials, :, neuron].mean(axis=0), color=color, **MODEL_LINE)
        ax.set(
            xlabel="time (ms)",
            ylabel="rate (Hz; data smoothed)",
            title=f"{view.neuron_name(neuron)}\ncontrol ({int(control.sum())} trials) vs {shown} "
            f"({int(perturbed.sum())})",
        )
