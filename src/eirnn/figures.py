"""The training report's figures, drawn from a run folder alone (`RunArtifacts`), so that
`eirnn report RUN_ID` can redraw them from a finished run's artifacts.

`write_figures` draws every figure in `FIGURES` that the run supports and says, for each one it
skips, why (no spike counts, no single trials, no attention embedding, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from eirnn.artifacts import RunArtifacts
from eirnn.metrics import NotAvailable

DPI = 150
E_COLOR = "#c0392b"
I_COLOR = "#2471a3"
UNLABELED_COLOR = "#4d4d4d"
DATA_LINE = {"linestyle": "-", "linewidth": 2.2, "alpha": 0.55}
MODEL_LINE = {"linestyle": "--", "linewidth": 1.4, "alpha": 1.0}
WEIGHT_CMAP = "RdBu_r"
ATTENTION_CMAP = "viridis"
# a 99.5th-percentile colour limit keeps a few large weights from washing out the rest
WEIGHT_LIMIT_PERCENTILE = 99.5
# beyond this many conditions a panel (or legend entry) per condition stops being legible
MAX_CONDITIONS_SHOWN = 8
N_EXTREME_NEURONS = 2
N_GRID_NEURONS = 4
MAX_TICKS = 6
# a loss curve gets a log axis only when it falls by more than this factor
LOG_SCALE_SPAN = 10.0

Drawing = Figure | NotAvailable


@dataclass(frozen=True)
class Group:
    """Neurons (or model units) drawn in one colour: E, I, or all of them when unlabeled."""

    name: str
    mask: np.ndarray
    color: str


@dataclass
class RunView:
    """What several figures derive from a run: time axis, conditions, E/I groups, PSTHs."""

    artifacts: RunArtifacts
    time_ms: np.ndarray
    condition_names: list[str]
    neuron_groups: list[Group]
    unit_groups: list[Group]
    data_psths: np.ndarray  # [conditions, time, neurons] Hz, conditions in code order
    model_psths: np.ndarray

    @classmethod
    def from_artifacts(cls, artifacts: RunArtifacts) -> RunView:
        outputs = artifacts.outputs
        conditions = outputs["val_trial_conditions"]
        labels = artifacts.summary.get("condition_labels", [])
        names = [str(labels[code]) if 0 <= code < len(labels) else str(code) for code in np.unique(conditions)]
        data_psths = outputs["val_target_condition_psth"]
        return cls(
            artifacts=artifacts,
            time_ms=time_axis_ms(artifacts, data_psths.shape[1]),
            condition_names=names,
            neuron_groups=neuron_groups(artifacts.ei_labels, data_psths.shape[2]),
            unit_groups=unit_groups(artifacts.weights["E_mask"], artifacts.weights["I_mask"]),
            data_psths=data_psths,
            model_psths=outputs["val_model_condition_psth"],
        )

    def per_neuron(self, name: str) -> np.ndarray:
        return self.artifacts.metrics[name].astype(float)

    def neuron_group(self, neuron: int) -> Group:
        return next(group for group in self.neuron_groups if group.mask[neuron])

    def neuron_name(self, neuron: int) -> str:
        if self.artifacts.ei_labels is None:
            return f"neuron {neuron}"
        return f"neuron {neuron} ({self.neuron_group(neuron).name})"

    def reason(self, metric: str, fallback: str) -> str:
        return self.artifacts.summary.get("not_available", {}).get(metric, fallback)

    @property
    def shown_conditions(self) -> int:
        return min(len(self.condition_names), MAX_CONDITIONS_SHOWN)

    def condition_legend_title(self) -> str:
        total = len(self.condition_names)
        return (
            "condition" if total == self.shown_conditions else f"condition (first {self.shown_conditions} of {total})"
        )


def time_axis_ms(artifacts: RunArtifacts, n_bins: int) -> np.ndarray:
    """The data's own time stamps (outputs/time_ms.npy) when the run has them, else bin index
    times bin size."""
    stamps = artifacts.outputs.get("time_ms")
    if stamps is not None and len(stamps) == n_bins:
        return np.asarray(stamps, dtype=float)
    bin_ms = float(artifacts.data_facts.get("bin_ms", artifacts.summary.get("bin_ms", 1.0)))
    return np.arange(n_bins) * bin_ms


def neuron_groups(ei_labels: np.ndarray | None, n_neurons: int) -> list[Group]:
    if ei_labels is None:
        return [Group("all neurons, unlabeled", np.ones(n_neurons, bool), UNLABELED_COLOR)]
    return _nonempty([Group("E", ei_labels == 0, E_COLOR), Group("I", ei_labels == 1, I_COLOR)])


def unit_groups(e_mask: np.ndarray, i_mask: np.ndarray) -> list[Group]:
    return _nonempty([Group("E units", e_mask.astype(bool), E_COLOR), Group("I units", i_mask.astype(bool), I_COLOR)])


def _nonempty(groups: list[Group]) -> list[Group]:
    return [group for group in groups if group.mask.any()]


def condition_colors(n_conditions: int) -> list:
    if n_conditions <= 10:
        return list(colormaps["tab10"].colors[:n_conditions])
    return [colormaps["viridis"](i / (n_conditions - 1)) for i in range(n_conditions)]


# ------------------------------------------------------------------------------------------------
# shared drawing pieces
# ------------------------------------------------------------------------------------------------
def _figure(nrows: int, ncols: int, size: tuple[float, float], **kwargs) -> tuple[Figure, np.ndarray]:
    # a bare Figure (no pyplot) renders with Agg on savefig whatever backend the session uses, so
    # writing figures needs no display and leaves a notebook's inline plotting alone
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False, **kwargs)
    return figure, axes


def _data_model_handles() -> list[Line2D]:
    return [
        Line2D([], [], color=UNLABELED_COLOR, label="data", **DATA_LINE),
        Line2D([], [], color=UNLABELED_COLOR, label="model", **MODEL_LINE),
    ]


def _color_handles(names: list[str], colors: list) -> list[Line2D]:
    return [Line2D([], [], color=color, linewidth=2, label=name) for name, color in zip(names, colors)]


def _outside_legend(figure: Figure, handles: list, title: str) -> None:
    figure.legend(handles=handles, loc="outside right upper", title=title, fontsize="small", title_fontsize="small")


def _group_scatter(ax: Axes, x: np.ndarray, y: np.ndarray, groups: list[Group], *, identity: bool) -> None:
    """Group-coloured scatter of the neurons finite in x and y, with n per group in the legend."""
    finite = np.isfinite(x) & np.isfinite(y)
    for group in groups:
        keep = group.mask & finite
        ax.scatter(
            x[keep],
            y[keep],
            s=22,
            color=group.color,
            alpha=0.75,
            edgecolors="none",
            label=f"{group.name} (n={keep.sum()})",
        )
    if identity:
        low, high = min(x[finite].min(), y[finite].min()), max(x[finite].max(), y[finite].max())
        pad = 0.05 * (high - low or 1.0)
        limits = (low - pad, high + pad)
        ax.plot(limits, limits, color="0.5", linestyle=":", linewidth=1, label="identity (y = x)")
        ax.set(xlim=limits, ylim=limits, aspect="equal")
    ax.legend(fontsize="small")


def _group_histogram(ax: Axes, values: np.ndarray, groups: list[Group]) -> None:
    """Overlaid outlined histograms on shared bins, one per group, each with its mean marked."""
    finite = np.isfinite(values)
    bins = np.histogram_bin_edges(values[finite], bins="auto")
    for group in groups:
        kept = values[group.mask & finite]
        if kept.size == 0:
            continue
        ax.hist(kept, bins=bins, color=group.color, alpha=0.3, label=f"{group.name}: n = {kept.size}")
        ax.hist(kept, bins=bins, color=group.color, histtype="step", linewidth=1.5)
        ax.axvline(
            kept.mean(), color=group.color, linestyle="--", linewidth=1.5, label=f"{group.name}: mean {kept.mean():.3f}"
        )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")


def _sparse_ticks(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))


def _no_finite(values: np.ndarray) -> bool:
    return not np.isfinite(values).any()


def _neuron_condition_grid(view: RunView, rows: list[tuple[str, int]], legend_title: str) -> Figure:
    """One row per neuron: its PSTH pooled over conditions, then one panel per condition, data
    solid and model dashed in the neuron's E/I colour, one y scale per row."""
    artifacts = view.artifacts
    pooled = (artifacts.outputs["val_target_psth"], artifacts.outputs["val_model_psth"])
    columns = ["all conditions", *view.condition_names[: view.shown_conditions]]
    size = (1.9 * len(columns) + 2.0, 2.0 * len(rows) + 0.9)
    figure, axes = _figure(len(rows), len(columns), size, sharex=True, sharey="row")
    for (label, neuron), row in zip(rows, axes):
        color = view.neuron_group(neuron).color
        traces = [(pooled[0][:, neuron], pooled[1][:, neuron])] + [
            (view.data_psths[c, :, neuron], view.model_psths[c, :, neuron]) for c in range(view.shown_conditions)
        ]
        for ax, (data, model) in zip(row, traces):
            ax.plot(view.time_ms, data, color=color, **DATA_LINE)
            ax.plot(view.time_ms, model, color=color, **MODEL_LINE)
            ax.xaxis.set_major_locator(MaxNLocator(3))
        row[0].set_ylabel(f"{label}\nrate (Hz)", fontsize="small")
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize="medium")
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    group_handles = _color_handles([g.name for g in view.neuron_groups], [g.color for g in view.neuron_groups])
    _outside_legend(figure, _data_model_handles() + group_handles, legend_title)
    _note_hidden_conditions(figure, view)
    return figure


def _note_hidden_conditions(figure: Figure, view: RunView) -> None:
    total = len(view.condition_names)
    if view.shown_conditions < total:
        figure.supxlabel(f"first {view.shown_conditions} of {total} conditions shown", fontsize="small")


def _weight_heatmap(ax: Axes, matrix: np.ndarray, n_e: int, label: str, *, units_on_columns: bool) -> None:
    """Diverging map centred at 0, with E/I blocks marked by borders and coloured strips."""
    magnitude = np.abs(matrix[np.isfinite(matrix)])
    limit = float(np.percentile(magnitude, WEIGHT_LIMIT_PERCENTILE)) if magnitude.size else 0.0
    limit = limit or float(magnitude.max(initial=0.0)) or 1.0
    image = ax.imshow(matrix, cmap=WEIGHT_CMAP, vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    clipped = bool(magnitude.size) and magnitude.max() > limit
    ax.figure.colorbar(image, ax=ax, label=label, extend="both" if clipped else "neither", shrink=0.85, pad=0.04)
    n_units = matrix.shape[0]
    blocks = ((-0.5, n_e - 0.5, E_COLOR), (n_e - 0.5, n_units - 0.5, I_COLOR))
    ax.axhline(n_e - 0.5, color="black", linewidth=1.2)
    for start, stop, color in blocks:
        ax.add_patch(
            Rectangle(
                (1.005, start), 0.02, stop - start, transform=ax.get_yaxis_transform(), color=color, clip_on=False
            )
        )
    if units_on_columns:
        ax.axvline(n_e - 0.5, color="black", linewidth=1.2)
        for start, stop, color in blocks:
            ax.add_patch(
                Rectangle(
                    (start, 1.005), stop - start, 0.02, transform=ax.get_xaxis_transform(), color=color, clip_on=False
                )
            )
    _sparse_ticks(ax)


def _unit_axis_label(what: str, n_e: int, n_units: int) -> str:
    return f"{what} (E: 0-{n_e - 1}, I: {n_e}-{n_units - 1})"


# ------------------------------------------------------------------------------------------------
# the figures
# ------------------------------------------------------------------------------------------------
def training_curves(view: RunView) -> Drawing:
    history = view.artifacts.history
    if not history:
        return NotAvailable("the training log is empty")
    epochs = np.array([entry["epoch"] for entry in history])
    best_epoch = view.artifacts.summary.get("fit", {}).get("best_epoch")
    marker = "o" if len(epochs) <= 30 else None
    figure, axes = _figure(1, 2, (12, 4.5))
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
        if not _no_finite(values):
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
    if _no_finite(correlation):
        return NotAvailable("the PSTH correlation is undefined for every neuron")
    figure, axes = _figure(1, 1, (7.5, 4.8))
    ax = axes[0, 0]
    _group_histogram(ax, correlation, view.neuron_groups)
    undefined = int((~np.isfinite(correlation)).sum())
    if undefined:
        ax.set_title(f"{undefined} neurons with a constant PSTH left out (r undefined)", fontsize="medium")
    ax.set(xlabel="PSTH correlation r, model vs data (dimensionless)", ylabel="number of neurons")
    return figure


def correlation_scatter(view: RunView) -> Drawing:
    correlation = view.per_neuron("per_neuron_correlation")
    rate = view.per_neuron("per_neuron_mean_rate_target")
    if _no_finite(correlation):
        return NotAvailable("the PSTH correlation is undefined for every neuron")
    figure, axes = _figure(1, 1, (7.5, 4.8))
    ax = axes[0, 0]
    _group_scatter(ax, rate, correlation, view.neuron_groups, identity=False)
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
    return _neuron_condition_grid(view, rows, "rows: best and worst r")


def condition_psth_grid(view: RunView) -> Drawing:
    variance = np.nan_to_num(view.per_neuron("per_neuron_variance_target"), nan=-np.inf)
    correlation = view.per_neuron("per_neuron_condition_correlation")
    neurons = [int(j) for j in np.argsort(-variance)[:N_GRID_NEURONS]]
    rows = [(f"{view.neuron_name(j)}\ncondition r = {correlation[j]:.3f}", j) for j in neurons]
    return _neuron_condition_grid(view, rows, "rows: largest data\nPSTH variance")


def weight_matrices(view: RunView) -> Drawing:
    weights = view.artifacts.weights
    n_e = int(weights["E_mask"].sum())
    recurrent, inputs = weights["W_rec"], weights["W_in"]
    n_units = recurrent.shape[0]
    figure, axes = _figure(1, 2, (13, 6.2), width_ratios=[1.0, 0.55])
    rec_ax, in_ax = axes[0]
    _weight_heatmap(rec_ax, recurrent, n_e, "effective recurrent weight (a.u.)", units_on_columns=True)
    rec_ax.set(
        xlabel=_unit_axis_label("presynaptic unit", n_e, n_units),
        ylabel=_unit_axis_label("postsynaptic unit", n_e, n_units),
    )
    rec_ax.set_title(f"W_rec ({n_units} x {n_units})", pad=14)
    _weight_heatmap(in_ax, inputs, n_e, "input weight (a.u.)", units_on_columns=False)
    in_ax.set(xlabel="input embedding dimension", ylabel=_unit_axis_label("unit", n_e, n_units))
    in_ax.set_title(f"W_in ({inputs.shape[0]} x {inputs.shape[1]})", pad=14)
    return figure


def h0_distribution(view: RunView) -> Drawing:
    config = view.artifacts.config
    if not config.get("learnable_h0", True):
        return NotAvailable(
            f"h0 was not learned (learnable_h0 = false): every unit starts at h0_init = {config.get('h0_init')}"
        )
    figure, axes = _figure(1, 1, (7.5, 4.8))
    ax = axes[0, 0]
    _group_histogram(ax, view.artifacts.weights["h0"].astype(float).ravel(), view.unit_groups)
    ax.set(xlabel="learned initial state h0 (a.u.)", ylabel="number of model units")
    return figure


def attention_patterns(view: RunView) -> Drawing:
    attention = view.artifacts.weights.get("attention_weights")
    if attention is None:
        embedding = view.artifacts.config.get("input_embed_type", "non-attention")
        return NotAvailable(f"the model uses a {embedding} embedding, not attention")
    _, n_heads, _, n_keys = attention.shape
    shown = view.shown_conditions
    figure, axes = _figure(n_heads, shown, (1.9 * shown + 1.8, 2.0 * n_heads + 1.0), sharex=True, sharey=True)
    # limits from the weights themselves: near-uniform attention would look flat on a 0-1 scale
    low, high = float(attention[:shown].min()), float(attention[:shown].max())
    image = None
    for head, row in enumerate(axes):
        for condition, ax in enumerate(row):
            image = ax.imshow(
                attention[condition, head], cmap=ATTENTION_CMAP, vmin=low, vmax=high, interpolation="nearest"
            )
            _sparse_ticks(ax)
        row[0].set_ylabel(f"head {head + 1}\nquery input", fontsize="small")
    for ax, name in zip(axes[0], view.condition_names):
        ax.set_title(name, fontsize="medium")
    for ax in axes[-1]:
        ax.set_xlabel("key input", fontsize="small")
    label = f"attention weight (rows sum to 1; uniform = {1 / n_keys:.3f})"
    figure.colorbar(image, ax=axes, label=label, shrink=0.8)
    _note_hidden_conditions(figure, view)
    return figure


def pca_trajectories(view: RunView) -> Drawing:
    population = view.artifacts.population
    real, model = population["pca_real"], population["pca_model"]
    n_components = min(3, real.shape[-1])
    if n_components == 0:
        return NotAvailable("the population PCA has no components")
    explained = population["pca_explained_variance"]
    colors = condition_colors(view.shown_conditions)
    figure, axes = _figure(n_components, 2, (12, 2.8 * n_components + 0.8), sharex=True, sharey="row")
    for component, row in enumerate(axes):
        for ax, projection in zip(row, (real, model)):
            for condition, color in enumerate(colors):
                ax.plot(view.time_ms, projection[condition, :, component], color=color, linewidth=1.5)
        row[0].set_ylabel(f"PC{component + 1} ({explained[component]:.0%} of data variance)\nprojection (Hz)")
    axes[0, 0].set_title("data")
    axes[0, 1].set_title("model")
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    _outside_legend(figure, _color_handles(view.condition_names, colors), view.condition_legend_title())
    return figure


def pca_state_space(view: RunView) -> Drawing:
    population = view.artifacts.population
    real, model = population["pca_real"], population["pca_model"]
    if real.shape[-1] < 2:
        return NotAvailable(f"the population PCA has {real.shape[-1]} component(s), a state space needs 2")
    explained = population["pca_explained_variance"]
    colors = condition_colors(view.shown_conditions)
    figure, axes = _figure(1, 2, (12, 5.6), sharex=True, sharey=True)
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
    _outside_legend(figure, markers + _color_handles(view.condition_names, colors), view.condition_legend_title())
    return figure


def fano_factor_comparison(view: RunView) -> Drawing:
    data, model = view.per_neuron("per_neuron_fano_target"), view.per_neuron("per_neuron_fano_model")
    if _no_finite(data):
        return NotAvailable(view.reason("fano_data", "the data Fano factor is undefined for every neuron"))
    if _no_finite(model):
        return NotAvailable(view.reason("fano_model", "the model Fano factor is undefined for every neuron"))
    if not (np.isfinite(data) & np.isfinite(model)).any():
        return NotAvailable("no neuron has both a data and a model Fano factor")
    figure, axes = _figure(1, 1, (6.5, 6.2))
    ax = axes[0, 0]
    _group_scatter(ax, data, model, view.neuron_groups, identity=True)
    ax.set(
        xlabel="Fano factor, data (count variance / mean per bin, dimensionless)",
        ylabel="Fano factor, model (dimensionless)",
        title="1 = Poisson spiking",
    )
    return figure


def correlation_vs_noise_ceiling(view: RunView) -> Drawing:
    ceiling = view.per_neuron("per_neuron_noise_ceiling")
    if _no_finite(ceiling):
        return NotAvailable(view.reason("noise_ceiling", "the noise ceiling is undefined for every neuron"))
    figure, axes = _figure(1, 1, (6.5, 6.2))
    ax = axes[0, 0]
    _group_scatter(ax, ceiling, view.per_neuron("per_neuron_correlation"), view.neuron_groups, identity=True)
    ax.set(
        xlabel="noise ceiling: best r a model can reach (split-half, dimensionless)",
        ylabel="PSTH correlation r (dimensionless)",
    )
    return figure


# ------------------------------------------------------------------------------------------------
# writing them
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    draw: Callable[[RunView], Drawing]


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("training_curves.png", "Training curves", training_curves),
    FigureSpec("per_neuron_correlation_histogram.png", "Per-neuron PSTH correlation", correlation_histogram),
    FigureSpec("per_neuron_correlation_scatter.png", "Correlation against mean firing rate", correlation_scatter),
    FigureSpec("best_worst_neurons.png", "Best and worst fitted neurons, PSTH per condition", best_worst_neurons),
    FigureSpec("weight_matrices.png", "Learned weights (Dale-signed)", weight_matrices),
    FigureSpec("h0_distribution.png", "Learned initial state h0", h0_distribution),
    FigureSpec("attention_patterns.png", "Input attention per condition", attention_patterns),
    FigureSpec("pca_trajectories.png", "Population trajectories: PC1-3 against time", pca_trajectories),
    FigureSpec("pca_state_space.png", "Population state space: PC1 against PC2", pca_state_space),
    FigureSpec("fano_factor_comparison.png", "Fano factor, model against data", fano_factor_comparison),
    FigureSpec("condition_psth_grid.png", "Condition PSTHs, data and model", condition_psth_grid),
    FigureSpec("correlation_vs_noise_ceiling.png", "Correlation against noise ceiling", correlation_vs_noise_ceiling),
)
FIGURE_TITLES = {spec.name: spec.title for spec in FIGURES}


@dataclass
class FigureSet:
    """The figures written (file name -> path) and those skipped (file name -> why), in FIGURES order."""

    written: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def empty(cls, reason: str) -> FigureSet:
        """No figure drawn, each for the same reason (e.g. figures turned off)."""
        return cls(skipped={spec.name: reason for spec in FIGURES})

    def skip_lines(self) -> list[str]:
        return [f"{name}: {reason}" for name, reason in self.skipped.items()]


def write_figures(artifacts: RunArtifacts, out_dir: str | Path) -> FigureSet:
    """Draw every figure the run supports into `out_dir` (PNG, 150 dpi); say why each other one is skipped."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    view = RunView.from_artifacts(artifacts)
    figures = FigureSet()
    for spec in FIGURES:
        drawing = spec.draw(view)
        path = out_dir / spec.name
        if isinstance(drawing, NotAvailable):
            figures.skipped[spec.name] = drawing.reason
            path.unlink(missing_ok=True)  # a figure left from an earlier drawing would contradict the report
            continue
        drawing.suptitle(spec.title, fontsize="x-large")
        drawing.savefig(path, dpi=DPI, metadata={"Software": None})
        figures.written[spec.name] = path
    return figures
