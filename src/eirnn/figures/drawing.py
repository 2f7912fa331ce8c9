"""What every report figure shares: a view of the run (time axis, conditions, E/I groups,
PSTHs), colours and line styles, and the drawing helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
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
MAX_EVENT_JITTER_BINS = 3
# PSTH panels show data and model smoothed alike with a Gaussian of this width (standard
# deviation): raw 25 ms bins of a few trials are mostly spike-count noise
SMOOTHING_MS = 40.0

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
    data_sem: np.ndarray  # s.e.m. across each condition's trials of the smoothed data PSTH (Hz)
    events: dict[str, float]  # task events: input name -> onset (ms) shared by every condition

    @classmethod
    def from_artifacts(cls, artifacts: RunArtifacts) -> RunView:
        outputs = artifacts.outputs
        conditions = outputs["val_trial_conditions"]
        labels = artifacts.summary.get("condition_labels", [])
        names = [str(labels[code]) if 0 <= code < len(labels) else str(code) for code in np.unique(conditions)]
        data_psths = outputs["val_target_condition_psth"]
        time_ms = time_axis_ms(artifacts, data_psths.shape[1])
        return cls(
            artifacts=artifacts,
            time_ms=time_ms,
            condition_names=[f"condition {name}" if name.isdigit() else name for name in names],
            neuron_groups=neuron_groups(artifacts.ei_labels, data_psths.shape[2]),
            unit_groups=unit_groups(artifacts.weights["E_mask"], artifacts.weights["I_mask"]),
            data_psths=data_psths,
            model_psths=outputs["val_model_condition_psth"],
            data_sem=condition_sem(smooth(outputs["val_target_rates"], time_ms), conditions),
            events=task_events(outputs.get("val_condition_inputs"), artifacts.summary.get("input_names", []), time_ms),
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


def smooth(array: np.ndarray, time_ms: np.ndarray, axis: int = 1) -> np.ndarray:
    """Gaussian smoothing over time (SMOOTHING_MS standard deviation), edges held."""
    from scipy.ndimage import gaussian_filter1d

    bin_ms = float(np.median(np.diff(time_ms))) if len(time_ms) > 1 else SMOOTHING_MS
    return gaussian_filter1d(np.asarray(array, dtype=float), SMOOTHING_MS / bin_ms, axis=axis, mode="nearest")


def condition_sem(rates: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """[conditions, time, neurons]: standard error of the trial mean (NaN for a single trial)."""
    sem = []
    for code in np.unique(conditions):
        trials = rates[conditions == code]
        spread = trials.std(axis=0, ddof=1) if len(trials) > 1 else np.full(trials.shape[1:], np.nan)
        sem.append(spread / np.sqrt(len(trials)))
    return np.stack(sem)


def task_events(inputs: np.ndarray | None, names: list[str], time_ms: np.ndarray) -> dict[str, float]:
    """Inputs that switch on at about the same time in every condition (a go cue; a cue whose
    channel differs per condition, as `cue_0`..`cue_7`, counts as one input `cue`): name ->
    median onset in ms. An input on from the first bin or absent from a condition is no event."""
    if inputs is None or inputs.shape[1] != len(time_ms):
        return {}
    channels: dict[str, list[int]] = {}
    for channel in range(inputs.shape[2]):
        name = names[channel] if channel < len(names) else f"input {channel}"
        stem, _, suffix = name.rpartition("_")
        channels.setdefault(stem if stem and suffix.isdigit() else name, []).append(channel)
    events = {}
    for name, members in channels.items():
        trace = np.abs(inputs[:, :, members]).max(axis=2)
        peak = trace.max(axis=1)
        if not (peak > 0).all():
            continue
        onsets = np.array([int(np.argmax(row >= 0.5 * top)) for row, top in zip(trace, peak)])
        # trial-averaged onsets jitter by a bin or two when single trials do
        if onsets.min() > 0 and onsets.max() - onsets.min() <= MAX_EVENT_JITTER_BINS:
            events[name] = float(time_ms[int(np.median(onsets))])
    return events


def mark_events(ax: Axes, events: dict[str, float], *, label: bool) -> None:
    for name, onset in events.items():
        ax.axvline(onset, color="0.4", linestyle=":", linewidth=1)
        if label:
            ax.annotate(
                name,
                (onset, 1.0),
                xycoords=("data", "axes fraction"),
                fontsize="x-small",
                xytext=(2, -10),
                textcoords="offset points",
                color="0.3",
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
    handles, _ = ax.get_legend_handles_labels()
    if len([group for group in groups if (group.mask & finite).any()]) > 1:
        # two translucent fills mix where the groups overlap: say what the mixed colour means
        mixed = np.mean([to_rgb(group.color) for group in groups], axis=0)
        handles.append(Patch(color=mixed, alpha=0.45, label="overlap of " + " and ".join(g.name for g in groups)))
    ax.legend(handles=handles, fontsize="small")


def sparse_ticks(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))


def no_finite(values: np.ndarray) -> bool:
    return not np.isfinite(values).any()


def neuron_condition_grid(view: RunView, rows: list[tuple[str, int]], legend_title: str) -> Figure:
    """One panel per neuron, two panels a row: each condition's PSTH in its own colour, data solid
    with a band of one standard error across trials, model dashed; task events dotted. Readable at
    the width of MLflow's artifact viewer, whatever the number of conditions shown."""
    shown = view.shown_conditions
    colors = condition_colors(shown)
    n_columns = min(2, len(rows))
    n_rows = -(-len(rows) // n_columns)
    figure, axes = new_figure(n_rows, n_columns, (6.2 * n_columns + 2.2, 3.6 * n_rows + 0.6), sharex=True)
    data_psths, model_psths = smooth(view.data_psths, view.time_ms), smooth(view.model_psths, view.time_ms)
    for ax, (label, neuron) in zip(axes.ravel(), rows):
        for condition, color in enumerate(colors):
            data, sem = data_psths[condition, :, neuron], view.data_sem[condition, :, neuron]
            ax.fill_between(view.time_ms, data - sem, data + sem, color=color, alpha=0.15, linewidth=0)
            ax.plot(view.time_ms, data, color=color, **DATA_LINE)
            ax.plot(view.time_ms, model_psths[condition, :, neuron], color=color, **MODEL_LINE)
        mark_events(ax, view.events, label=True)
        ax.set_title(label, fontsize="medium", color=view.neuron_group(neuron).color)
        ax.set_ylabel("rate (Hz)")
        ax.yaxis.set_major_locator(MaxNLocator(MAX_TICKS))
    for ax in axes.ravel()[len(rows) :]:
        ax.set_visible(False)
    bin_ms = float(np.median(np.diff(view.time_ms))) if len(view.time_ms) > 1 else 0.0
    for ax in axes[-1]:
        ax.set_xlabel(f"time (ms; {bin_ms:g} ms bins, both smoothed: Gaussian s.d. {SMOOTHING_MS:g} ms)")
    handles = [
        *data_model_handles(),
        Patch(color="0.6", alpha=0.3, label="data ± 1 s.e.m. (trials)"),
        *color_handles(view.condition_names[:shown], colors),
    ]
    outside_legend(figure, handles, f"{legend_title}\n{view.condition_legend_title()}")
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
