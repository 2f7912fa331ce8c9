"""Single-trial figures of a run with held-out neurons or inferred initial states: held-out
neurons' predicted rates against their spikes on single trials, and the inferred states."""

from __future__ import annotations

import numpy as np

from eirnn.figures.drawing import (
    MODEL_LINE,
    Drawing,
    RunView,
    color_handles,
    condition_colors,
    new_figure,
    outside_legend,
    sparse_ticks,
)
from eirnn.metrics import NotAvailable, pca_fit, pca_project

N_TRIALS_SHOWN = 4
N_HELDOUT_SHOWN = 3
N_TRAJECTORY_TRIALS = 5


def heldout_single_trials(view: RunView) -> Drawing:
    """Rows: the most active held-out neurons; columns: trials of the first condition. Spikes as
    bars (count / bin width, Hz), the model's rate from the trial's inferred state as a line."""
    outputs = view.artifacts.outputs
    if "heldout_neurons" not in outputs:
        return NotAvailable("the run held out no neurons (heldout_neurons is empty)")
    heldout = outputs["heldout_neurons"]
    target, model = outputs["val_target_rates"], outputs["val_model_rates"]
    conditions = outputs["val_trial_conditions"]
    trials = np.flatnonzero(conditions == np.unique(conditions)[0])[:N_TRIALS_SHOWN]
    shown = heldout[np.argsort(-np.nanmean(target[:, :, heldout], axis=(0, 1)))][:N_HELDOUT_SHOWN]
    figure, axes = new_figure(len(shown), len(trials), (3.2 * len(trials), 2.3 * len(shown)), sharex=True)
    width = float(np.median(np.diff(view.time_ms))) if len(view.time_ms) > 1 else 1.0
    for row, neuron in enumerate(shown):
        for column, trial in enumerate(trials):
            ax = axes[row, column]
            ax.bar(view.time_ms, target[trial, :, neuron], width=width, color="0.75", label="spikes")
            group = view.neuron_group(int(neuron))
            ax.plot(view.time_ms, model[trial, :, neuron], color=group.color, **MODEL_LINE, label="model")
            ax.set_title(f"{view.neuron_name(int(neuron))}, trial {trial}", fontsize="small")
            sparse_ticks(ax)
        axes[row, 0].set_ylabel("rate (Hz)")
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    axes[0, -1].legend(fontsize="small")
    return figure


def inferred_states(view: RunView) -> Drawing:
    """Left: each validation trial's inferred initial-state offset, PC1 against PC2, by condition.
    Right: single-trial model trajectories (recorded neurons' rates projected on the data's
    condition-PSTH PCs) of a few trials per condition."""
    outputs = view.artifacts.outputs
    if "val_initial_state_offsets" not in outputs:
        return NotAvailable("the model starts every trial from the shared h0 (initial_state=shared)")
    offsets, conditions = outputs["val_initial_state_offsets"], outputs["val_trial_conditions"]
    codes = np.unique(conditions)[: view.shown_conditions]
    colors = condition_colors(len(codes))
    states = pca_project(offsets, pca_fit(offsets, n_components=min(2, *offsets.shape)))
    population = view.artifacts.population
    rates = outputs["val_model_rates"]
    trajectories = (rates - rates.mean(axis=(0, 1))) @ population["pca_components"][:2].T
    figure, axes = new_figure(1, 2, (11.5, 5.0))
    for code, color in zip(codes, colors):
        mine = conditions == code
        axes[0, 0].scatter(states[mine, 0], states[mine, -1], s=14, color=color, alpha=0.8, edgecolors="none")
        for trial in np.flatnonzero(mine)[:N_TRAJECTORY_TRIALS]:
            axes[0, 1].plot(trajectories[trial, :, 0], trajectories[trial, :, 1], color=color, linewidth=0.9)
    axes[0, 0].set(xlabel="PC1 of x[0] - h0", ylabel="PC2 of x[0] - h0", title="inferred initial states (per trial)")
    axes[0, 1].set(xlabel="PC1 (Hz, centred)", ylabel="PC2 (Hz, centred)", title="single-trial model trajectories")
    outside_legend(figure, color_handles(view.condition_names[: len(codes)], colors), view.condition_legend_title())
    return figure
