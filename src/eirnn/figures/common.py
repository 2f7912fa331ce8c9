"""What every report figure shares: a view of the run (time axis, conditions, E/I groups,
PSTHs), colours and line styles, and the drawing helpers."""

from __future__ import annotations

from dataclasses import dataclass

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
    return nonempty([Group("E", ei_labels == 0, E_COLOR), Group("I", ei_labels == 1, I_COLOR)])


def unit_groups(e_mask: np.ndarray, i_mask: np.ndarray) -> list[Group]:
    return nonempty([Group("E units", e_mask.astype(bool), E_COLOR), Group("I units", i_mask.astype(bool), I_COLOR)])


def nonempty(groups: list[Group]) -> list[Group]:
    return [group for group in groups if group.mask.any()]


def condition_colors(n_conditions: int) -> list:
    if n_conditions <= 10:
        return list(colormaps["tab10"].colors[:n_conditions])
    return [colormaps["viridis"](i / (n_conditions - 1)) for i in range(n_conditions)]


def new_figure(nrows: int, ncols: int, size: tuple[float, float], **kwargs) -> tuple[Figure, np.ndarray]:
    # a bare Figure (no pyplot) renders with Agg on savefig whatever backend the session uses, so
    # writing figures needs no display and leaves a notebook's inline plotting alone
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False, **kwargs)
    return figure, axes


def data_model_handles() -> list[Line2D]:
    return [
        Line2D([], [], color=UNLABELED_COLOR, label="data", **DATA_LINE),
        Line2D([], [], color=UNLABELED_COLOR, label="model", **MODEL_LINE),
    ]


def color_handles(names: list[str], colors: list) -> list[Line2D]:
    return [Line2D([], [], color=color, linewidth=2, label=name) for name, color in zip(names, colors)]


def outside_legend(figure: Figure, handles: list, title: str) -> None:
    figure.legend(handles=handles, loc="outside right upper", title=title, fontsize="small", title_fontsize="small")


def group_scatter(ax: Axes, x: np.ndarray, y: np.ndarray, groups: list[Group], *, identity: bool) -> None:
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


def group_histogram(ax: Axes, values: np.ndarray, groups: list[Group]) -> None:
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


def sparse_ticks(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))


def no_finite(values: np.ndarray) -> bool:
    return not np.isfinite(values).any()


def neuron_condition_grid(view: RunView, rows: list[tuple[str, int]], legend_title: str) -> Figure:
    """One row per neuron: its PSTH pooled over conditions, then one panel per condition, data
    solid and model dashed in the neuron's E/I colour, one y scale per row."""
    artifacts = view.artifacts
    pooled = (artifacts.outputs["val_target_psth"], artifacts.outputs["val_model_psth"])
    columns = ["all conditions", *view.condition_names[: view.shown_conditions]]
    size = (1.9 * len(columns) + 2.0, 2.0 * len(rows) + 0.9)
    figure, axes = new_figure(len(rows), len(columns), size, sharex=True, sharey="row")
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
    group_handles = color_handles([g.name for g in view.neuron_groups], [g.color for g in view.neuron_groups])
    outside_legend(figure, data_model_handles() + group_handles, legend_title)
    note_hidden_conditions(figure, view)
    return figure


def note_hidden_conditions(figure: Figure, view: RunView) -> None:
    total = len(view.condition_names)
    if view.shown_conditions < total:
        figure.supxlabel(f"first {view.shown_conditions} of {total} conditions shown", fontsize="small")


def weight_heatmap(ax: Axes, matrix: np.ndarray, n_e: int, label: str, *, units_on_columns: bool) -> None:
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
    sparse_ticks(ax)


def unit_axis_label(what: str, n_e: int, n_units: int) -> str:
    return f"{what} (E: 0-{n_e - 1}, I: {n_e}-{n_units - 1})"
