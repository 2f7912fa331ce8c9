"""Figures of how well the model fits the recording: training curves, per-neuron correlations,
PSTHs of single neurons, Fano factors, correlation against the noise ceiling."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from eirnn.figures.drawing import (
    DATA_LINE,
    E_COLOR,
    I_COLOR,
    LOG_SCALE_SPAN,
    MAX_TICKS,
    MODEL_LINE,
    N_EXTREME_NEURONS,
    N_GRID_NEURONS,
    Drawing,
    Group,
    RunView,
    color_handles,
    condition_colors,
    data_model_handles,
    group_histogram,
    group_scatter,
    mark_events,
    neuron_condition_grid,
    new_figure,
    no_finite,
    outside_legend,
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

    curves = [
        ("val_cond_psth_corr", "all neurons, per condition", "darkviolet"),
        ("val_psth_corr", "all neurons", "black"),
    ]
    if view.artifacts.ei_labels is not None:
        curves += [("val_psth_corr_E", "E neurons", E_COLOR), ("val_psth_corr_I", "I neurons", I_COLOR)]
    for key, label, color in curves:
        values = np.array([entry.get(key, np.nan) for entry in history], dtype=float)
        if not no_finite(values):
            corr_ax.plot(epochs, values, color=color, marker=marker, markersize=3, label=label)
    corr_ax.set(xlabel="epoch", ylabel="validation PSTH correlation r (dimensionless)", title="Validation correlation")
    if best_epoch in epochs:
        # the star marks the score that chose the epoch, where it is a correlation drawn here
        selection = view.artifacts.config.get("selection_metric", "psth_corr")
        star_key = {"cond_psth_corr": "val_cond_psth_corr"}.get(selection, "val_psth_corr")
        best_r = history[int(np.flatnonzero(epochs == best_epoch)[0])].get(star_key, np.nan)
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
            label=f"best epoch's {star_key.removeprefix('val_')} = {best_r:.4f}",
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
    # ranked on the condition-resolved r: a neuron whose pooled PSTH fits can still miss every
    # condition's own time course, and the panels show exactly those per-condition traces
    by_condition = view.per_neuron("per_neuron_condition_correlation")
    pooled = view.per_neuron("per_neuron_correlation")
    ranked = [int(j) for j in np.argsort(-np.nan_to_num(by_condition, nan=-np.inf)) if np.isfinite(by_condition[j])]
    if not ranked:
        return NotAvailable("the condition PSTH correlation is undefined for every neuron")
    count = max(1, min(N_EXTREME_NEURONS, len(ranked) // 2))
    picks = [("best", ranked[k]) for k in range(count)] + [("worst", ranked[-1 - k]) for k in range(count)]
    rows = [
        (f"{kind}: {view.neuron_name(j)}, condition r = {by_condition[j]:.3f} (pooled r = {pooled[j]:.3f})", j)
        for kind, j in picks
    ]
    return neuron_condition_grid(view, rows, "ranked by condition r")


def condition_psth_grid(view: RunView) -> Drawing:
    variance = np.nan_to_num(view.per_neuron("per_neuron_variance_target"), nan=-np.inf)
    correlation = view.per_neuron("per_neuron_condition_correlation")
    neurons = [int(j) for j in np.argsort(-variance)[:N_GRID_NEURONS]]
    rows = [(f"{view.neuron_name(j)}, condition r = {correlation[j]:.3f}", j) for j in neurons]
    return neuron_condition_grid(view, rows, "the neurons with the\nlargest data PSTH variance")


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
    correlation = view.per_neuron("per_neuron_correlation")
    figure, axes = new_figure(1, 1, (6.5, 6.2))
    ax = axes[0, 0]
    group_scatter(ax, ceiling, correlation, view.neuron_groups, identity=True)
    both = np.isfinite(ceiling) & np.isfinite(correlation)
    above = int((correlation[both] > ceiling[both]).sum())
    ax.set(
        xlabel="noise ceiling: sqrt of split-half reliability of the data PSTH (Spearman-Brown; dimensionless)",
        ylabel="PSTH correlation r, model vs data (dimensionless)",
    )
    # the ceiling is itself estimated from half the trials at a time, so it is noisy too: a
    # neuron above the line is within that noise, not a model beating the data
    ax.set_title(
        f"{above} of {int(both.sum())} neurons above y = x: the ceiling is an estimate, not a bound",
        fontsize="medium",
    )
    ax.xaxis.label.set_size("small")
    return figure


def psth_variance_comparison(view: RunView) -> Drawing:
    data = view.per_neuron("per_neuron_variance_target")
    model = view.per_neuron("per_neuron_variance_model")
    positive = np.isfinite(data) & np.isfinite(model) & (data > 0) & (model > 0)
    if not positive.any():
        return NotAvailable("no neuron has a PSTH that varies over time in both data and model")
    figure, axes = new_figure(1, 1, (6.5, 6.2))
    ax = axes[0, 0]
    masked = [Group(g.name, g.mask & positive, g.color) for g in view.neuron_groups]
    group_scatter(ax, data, model, masked, identity=False)
    # variances span decades: log axes, equal limits padded by a factor, not an offset
    low, high = (
        min(data[positive].min(), model[positive].min()) / 1.5,
        max(data[positive].max(), model[positive].max()) * 1.5,
    )
    ax.plot((low, high), (low, high), color="0.5", linestyle=":", linewidth=1, label="identity (y = x)")
    ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), aspect="equal")
    ax.legend(fontsize="small")
    ratio = np.median(model[positive] / data[positive])
    ax.set(
        xlabel="PSTH variance over time, data (Hz²)",
        ylabel="PSTH variance over time, model (Hz²)",
        title=f"median model / data = {ratio:.2f} (below 1: the model's rates are too flat)",
    )
    ax.title.set_size("medium")
    return figure


def behavior_readout(view: RunView) -> Drawing:
    outputs = view.artifacts.outputs
    model, target = outputs.get("val_model_behavior"), outputs.get("val_target_behavior")
    if model is None or target is None or model.shape[-1] == 0:
        return NotAvailable("the data has no behaviour, so the model has no readout")
    conditions = outputs["val_trial_conditions"]
    codes = np.unique(conditions)[: view.shown_conditions]
    colors = condition_colors(len(codes))
    names = view.artifacts.summary.get("behavior_names") or [f"output {k}" for k in range(model.shape[-1])]
    n_outputs = model.shape[-1]
    figure, axes = new_figure(1, n_outputs, (6.0 * n_outputs + 2.2, 4.2))
    for k, ax in enumerate(axes[0]):
        for code, color in zip(codes, colors):
            trials = conditions == code
            ax.plot(view.time_ms, target[trials, :, k].mean(axis=0), color=color, **DATA_LINE)
            ax.plot(view.time_ms, model[trials, :, k].mean(axis=0), color=color, **MODEL_LINE)
        mark_events(ax, view.events, label=True)
        error = model[..., k] - target[..., k]
        explained = 1 - np.mean(error**2) / np.var(target[..., k]) if np.var(target[..., k]) > 0 else np.nan
        ax.set(xlabel="time (ms)", ylabel=f"{names[k] if k < len(names) else k} (data units)")
        ax.set_title(f"{names[k] if k < len(names) else k}: R² = {explained:.3f} (single trials)", fontsize="medium")
    handles = [*data_model_handles(), *color_handles(view.condition_names[: len(codes)], colors)]
    outside_legend(figure, handles, f"trial mean per condition\n{view.condition_legend_title()}")
    return figure
