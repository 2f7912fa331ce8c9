"""Figures of how well the model fits the recording: training curves, per-neuron correlations,
PSTHs of single neurons, Fano factors, correlation against the noise ceiling."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from eirnn.figures.common import (
    E_COLOR,
    I_COLOR,
    LOG_SCALE_SPAN,
    MAX_TICKS,
    N_EXTREME_NEURONS,
    N_GRID_NEURONS,
    Drawing,
    RunView,
    group_histogram,
    group_scatter,
    neuron_condition_grid,
    new_figure,
    no_finite,
)
from eirnn.metrics import NotAvailable


def training_curves(view: RunView) -> Drawing:
    history = view.artifacts.history
    if not history:
        return NotAvailable("the training log is empty")
    epochs = np.array([entry["epoch"] for entry in history])
    best_epoch = view.artifacts.summary.get("fit", {}).get("best_epoch")
    marker = "o" if len(epochs) <= 30 else None
    figure, axes = new_figure(1, 2, (12, 4.5))
    loss_ax, corr_ax = axes[0]
    losses = np.array([[entry["train_loss"], entry["val_loss"]] for entry in history])
    for column, label, color in ((0, "training", "0.55"), (1, "validation", "black")):
        loss_ax.plot(epochs, losses[:, column], color=color, marker=marker, markersize=3, label=label)
    if np.all(losses > 0) and losses.max() / losses.min() > LOG_SCALE_SPAN:
        loss_ax.set_yscale("log")
    loss_name = {"poisson": "Poisson NLL (nats per bin and neuron)"}.get(
        view.artifacts.config.get("loss"), "variance-normalised rate MSE (dimensionless)"
    )
    loss_ax.set(xlabel="epoch", ylabel=f"loss: {loss_name}", title="Loss")

    curves = [("val_psth_corr", "all neurons", "black")]
    if view.artifacts.ei_labels is not None:
        curves += [("val_psth_corr_E", "E neurons", E_COLOR), ("val_psth_corr_I", "I neurons", I_COLOR)]
    for key, label, color in curves:
        values = np.array([entry.get(key, np.nan) for entry in history], dtype=float)
        if not no_finite(values):
            corr_ax.plot(epochs, values, color=color, marker=marker, markersize=3, label=label)
    corr_ax.set(xlabel="epoch", ylabel="validation PSTH correlation r (dimensionless)", title="Validation correlation")
    if best_epoch in epochs:
        best_r = history[int(np.flatnonzero(epochs == best_epoch)[0])]["val_psth_corr"]
        for ax in (loss_ax, corr_ax):
            ax.axvline(best_epoch, color="0.3", linestyle=":", linewidth=1.2, label=f"best epoch ({best_epoch})")
        corr_ax.plot(
            best_epoch,
            best_r,
            marker="*",
            markersize=14,
            color="gold",
            markeredgecolor="black",
            linestyle="none",
            label=f"best r = {best_r:.4f}",
        )
    for ax in (loss_ax, corr_ax):
        ax.xaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))
        ax.legend(fontsize="small")
    return figure


def correlation_histogram(view: RunView) -> Drawing:
    correlation = view.per_neuron("per_neuron_correlation")
    if no_finite(correlation):
        return NotAvailable("the PSTH correlation is undefined for every neuron")
    figure, axes = new_figure(1, 1, (7.5, 4.8))
    ax = axes[0, 0]
    group_histogram(ax, correlation, view.neuron_groups)
    undefined = int((~np.isfinite(correlation)).sum())
    if undefined:
        ax.set_title(f"{undefined} neurons with a constant PSTH left out (r undefined)", fontsize="medium")
    ax.set(xlabel="PSTH correlation r, model vs data (dimensionless)", ylabel="number of neurons")
    return figure


def correlation_scatter(view: RunView) -> Drawing:
    correlation = view.per_neuron("per_neuron_correlation")
    rate = view.per_neuron("per_neuron_mean_rate_target")
    if no_finite(correlation):
        return NotAvailable("the PSTH correlation is undefined for every neuron")
    figure, axes = new_figure(1, 1, (7.5, 4.8))
    ax = axes[0, 0]
    group_scatter(ax, rate, correlation, view.neuron_groups, identity=False)
    finite = rate[np.isfinite(rate)]
    # firing rates span decades on real data; a log axis keeps the slow neurons apart
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
        ax.set_xscale("log")
    ax.set(xlabel="mean firing rate of the data (Hz)", ylabel="PSTH correlation r (dimensionless)")
    return figure


def best_worst_neurons(view: RunView) -> Drawing:
    correlation = view.per_neuron("per_neuron_correlation")
    ranked = [int(j) for j in np.argsort(-np.nan_to_num(correlation, nan=-np.inf)) if np.isfinite(correlation[j])]
    if not ranked:
        return NotAvailable("the PSTH correlation is undefined for every neuron")
    count = max(1, min(N_EXTREME_NEURONS, len(ranked) // 2))
    picks = [("best", ranked[k]) for k in range(count)] + [("worst", ranked[-1 - k]) for k in range(count)]
    rows = [(f"{kind}: {view.neuron_name(j)}\nr = {correlation[j]:.3f}", j) for kind, j in picks]
    return neuron_condition_grid(view, rows, "rows: best and worst r")


def condition_psth_grid(view: RunView) -> Drawing:
    variance = np.nan_to_num(view.per_neuron("per_neuron_variance_target"), nan=-np.inf)
    correlation = view.per_neuron("per_neuron_condition_correlation")
    neurons = [int(j) for j in np.argsort(-variance)[:N_GRID_NEURONS]]
    rows = [(f"{view.neuron_name(j)}\ncondition r = {correlation[j]:.3f}", j) for j in neurons]
    return neuron_condition_grid(view, rows, "rows: largest data\nPSTH variance")


def fano_factor_comparison(view: RunView) -> Drawing:
    data, model = view.per_neuron("per_neuron_fano_target"), view.per_neuron("per_neuron_fano_model")
    if no_finite(data):
        return NotAvailable(view.reason("fano_data", "the data Fano factor is undefined for every neuron"))
    if no_finite(model):
        return NotAvailable(view.reason("fano_model", "the model Fano factor is undefined for every neuron"))
    if not (np.isfinite(data) & np.isfinite(model)).any():
        return NotAvailable("no neuron has both a data and a model Fano factor")
    figure, axes = new_figure(1, 1, (6.5, 6.2))
    ax = axes[0, 0]
    group_scatter(ax, data, model, view.neuron_groups, identity=True)
    ax.set(
        xlabel="Fano factor, data (count variance / mean per bin, dimensionless)",
        ylabel="Fano factor, model (dimensionless)",
        title="1 = Poisson spiking",
    )
    return figure


def correlation_vs_noise_ceiling(view: RunView) -> Drawing:
    ceiling = view.per_neuron("per_neuron_noise_ceiling")
    if no_finite(ceiling):
        return NotAvailable(view.reason("noise_ceiling", "the noise ceiling is undefined for every neuron"))
    figure, axes = new_figure(1, 1, (6.5, 6.2))
    ax = axes[0, 0]
    group_scatter(ax, ceiling, view.per_neuron("per_neuron_correlation"), view.neuron_groups, identity=True)
    ax.set(
        xlabel="noise ceiling: best r a model can reach (split-half, dimensionless)",
        ylabel="PSTH correlation r (dimensionless)",
    )
    return figure
