"""Figures of the fitted circuit: weights, initial state, input attention, population dynamics (PCA)."""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from eirnn.figures.drawing import (
    ATTENTION_CMAP,
    MAX_TICKS,
    Drawing,
    RunView,
    color_handles,
    condition_colors,
    group_histogram,
    new_figure,
    note_hidden_conditions,
    outside_legend,
    unit_axis_label,
    weight_heatmap,
)
from eirnn.metrics import NotAvailable

MAX_NAMED_INPUTS = 20  # beyond this, input names on the attention axes overlap


def weight_matrices(view: RunView) -> Drawing:
    weights = view.artifacts.weights
    n_e = int(weights["E_mask"].sum())
    recurrent, inputs = weights["W_rec"], weights["W_in"]
    n_units = recurrent.shape[0]
    figure, axes = new_figure(1, 2, (13, 6.2), width_ratios=[1.0, 0.55])
    rec_ax, in_ax = axes[0]
    weight_heatmap(rec_ax, recurrent, n_e, "effective recurrent weight (a.u.)", units_on_columns=True)
    rec_ax.set(
        xlabel=unit_axis_label("presynaptic unit", n_e, n_units),
        ylabel=unit_axis_label("postsynaptic unit", n_e, n_units),
    )
    rec_ax.set_title(f"W_rec ({n_units} x {n_units})", pad=14)
    weight_heatmap(in_ax, inputs, n_e, "input weight (a.u.)", units_on_columns=False)
    in_ax.set(xlabel="input embedding dimension", ylabel=unit_axis_label("unit", n_e, n_units))
    in_ax.set_title(f"W_in ({inputs.shape[0]} x {inputs.shape[1]})", pad=14)
    return figure


def h0_distribution(view: RunView) -> Drawing:
    config = view.artifacts.config
    if not config.get("learnable_h0", True):
        return NotAvailable(
            f"h0 was not learned (learnable_h0 = false): every unit starts at h0_init = {config.get('h0_init')}"
        )
    figure, axes = new_figure(1, 1, (7.5, 4.8))
    ax = axes[0, 0]
    group_histogram(ax, view.artifacts.weights["h0"].astype(float).ravel(), view.unit_groups)
    ax.set(xlabel="learned initial state h0 (a.u.)", ylabel="number of model units")
    return figure


def attention_patterns(view: RunView) -> Drawing:
    attention = view.artifacts.weights.get("attention_weights")
    if attention is None:
        embedding = view.artifacts.config.get("input_embed_type", "non-attention")
        return NotAvailable(f"the model uses a {embedding} embedding, not attention")
    _, n_heads, _, n_keys = attention.shape
    shown = view.shown_conditions
    figure, axes = new_figure(n_heads, shown, (1.9 * shown + 1.8, 2.0 * n_heads + 1.0))
    # limits from the weights' own 2nd-98th percentiles: near-uniform attention looks flat on a
    # 0-1 scale, and a few strong self-attention entries would wash out the rest
    low, high = (float(v) for v in np.percentile(attention[:shown], [2, 98]))
    names = view.artifacts.summary.get("input_names") or []
    labelled = len(names) == n_keys and n_keys <= MAX_NAMED_INPUTS
    image = None
    for head, row in enumerate(axes):
        for condition, ax in enumerate(row):
            image = ax.imshow(
                attention[condition, head], cmap=ATTENTION_CMAP, vmin=low, vmax=high, interpolation="nearest"
            )
        row[0].set_ylabel(f"head {head + 1}\nquery input", fontsize="small")
    # ticks only where labels show (bottom row, left column): 32 panels' worth of ticks, each a
    # copied Tick artist, were most of this figure's drawing time
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[-1]:
        if labelled:
            ax.set_xticks(range(n_keys), names, rotation=90, fontsize="xx-small")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))
    for ax in axes[:, 0]:
        if labelled:
            ax.set_yticks(range(n_keys), names, fontsize="xx-small")
        else:
            ax.yaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))
    for ax, name in zip(axes[0], view.condition_names):
        ax.set_title(name, fontsize="medium")
    for ax in axes[-1]:
        ax.set_xlabel("key input", fontsize="small")
    label = f"attention weight (rows sum to 1)\nuniform = {1 / n_keys:.3f}; colours: 2nd-98th pct"
    figure.colorbar(image, ax=axes, label=label, shrink=0.8, extend="both")
    note_hidden_conditions(figure, view)
    return figure


def recurrent_spectrum(view: RunView) -> Drawing:
    weights = view.artifacts.weights
    recurrent = weights["W_rec"].astype(float)
    eigenvalues = np.linalg.eigvals(recurrent)
    # tau dh/dt = -h + W r(h): linearised with unit gain, a mode grows when Re(lambda) > 1
    figure, axes = new_figure(1, 1, (7.0, 6.2))
    ax = axes[0, 0]
    unstable = eigenvalues.real > 1
    ax.scatter(eigenvalues.real[~unstable], eigenvalues.imag[~unstable], s=18, color="0.25", label="eigenvalue")
    if unstable.any():
        ax.scatter(
            eigenvalues.real[unstable],
            eigenvalues.imag[unstable],
            s=28,
            color="crimson",
            label=f"Re λ > 1 ({int(unstable.sum())})",
        )
    ax.axvline(1.0, color="crimson", linestyle="--", linewidth=1.2, label="stability line Re λ = 1")
    radius = float(np.abs(eigenvalues).max())
    circle = np.linspace(0, 2 * np.pi, 200)
    ax.plot(
        radius * np.cos(circle),
        radius * np.sin(circle),
        color="0.6",
        linestyle=":",
        linewidth=1,
        label=f"spectral radius {radius:.2f}",
    )
    ax.axhline(0, color="0.85", linewidth=0.8)
    ax.set(
        aspect="equal",
        xlabel="Re λ (W_rec, effective Dale-signed weights)",
        ylabel="Im λ",
        title=f"max Re λ = {eigenvalues.real.max():.3f}; linear modes grow right of the dashed line",
    )
    ax.title.set_size("medium")
    ax.legend(fontsize="small", loc="upper left")
    return figure


def pca_trajectories(view: RunView) -> Drawing:
    population = view.artifacts.population
    real, model = population["pca_real"], population["pca_model"]
    n_components = min(3, real.shape[-1])
    if n_components == 0:
        return NotAvailable("the population PCA has no components")
    explained = population["pca_explained_variance"]
    colors = condition_colors(view.shown_conditions)
    figure, axes = new_figure(n_components, 2, (12, 2.8 * n_components + 0.8), sharex=True, sharey="row")
    for component, row in enumerate(axes):
        for ax, projection in zip(row, (real, model)):
            for condition, color in enumerate(colors):
                ax.plot(view.time_ms, projection[condition, :, component], color=color, linewidth=1.5)
        row[0].set_ylabel(f"PC{component + 1} ({explained[component]:.0%} of data variance)\nprojection (Hz)")
    axes[0, 0].set_title("data")
    axes[0, 1].set_title("model")
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    outside_legend(figure, color_handles(view.condition_names, colors), view.condition_legend_title())
    return figure


def pca_state_space(view: RunView) -> Drawing:
    population = view.artifacts.population
    real, model = population["pca_real"], population["pca_model"]
    if real.shape[-1] < 2:
        return NotAvailable(f"the population PCA has {real.shape[-1]} component(s), a state space needs 2")
    explained = population["pca_explained_variance"]
    colors = condition_colors(view.shown_conditions)
    figure, axes = new_figure(1, 2, (12, 5.6), sharex=True, sharey=True)
    for ax, projection, source in zip(axes[0], (real, model), ("data", "model")):
        for condition, color in enumerate(colors):
            path = projection[condition, :, :2]
            ax.plot(path[:, 0], path[:, 1], color=color, linewidth=1.5)
            ax.plot(*path[0], marker="o", color=color, markersize=6)
            ax.plot(*path[-1], marker="s", color=color, markersize=6, markeredgecolor="black")
        ax.set(
            title=source,
            xlabel=f"PC1 ({explained[0]:.0%} of data variance, Hz)",
            ylabel=f"PC2 ({explained[1]:.0%} of data variance, Hz)",
        )
    markers = [
        Line2D([], [], marker="o", color="0.4", linestyle="none", label="start"),
        Line2D([], [], marker="s", color="0.4", markeredgecolor="black", linestyle="none", label="end"),
    ]
    outside_legend(figure, markers + color_handles(view.condition_names, colors), view.condition_legend_title())
    return figure
