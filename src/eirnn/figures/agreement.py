"""The ensemble figure "What the fits agree on": predicted effects per neuron with their spread
across fits (agreed answers filled, not agreed open), and the fixed points of every fit per
condition."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from eirnn.agreement import AnswerAgreement
from eirnn.circuit_answers import CircuitAnswers

# the first four with answers: unlabelled data has no recorded I neuron, and every recorded
# neuron is perturbed by silencing E, so the groups' panels take the place of E's
SHOWN_PERTURBATIONS = ("silence_E", "boost_E", "silence_I", "boost_I", "silence_group1", "boost_group1")
N_PANELS = 4
AGREED_COLOR, OPEN_COLOR = "#1f77b4", "#999999"


def _effect_panel(ax, entry: AnswerAgreement) -> None:
    """One point per (neuron, condition): ensemble mean (Hz) with +- spread, neurons along x."""
    n_conditions, n_neurons = entry.mean.shape
    offsets = np.linspace(-0.3, 0.3, n_conditions) if n_conditions > 1 else np.zeros(1)
    for condition in range(n_conditions):
        x = np.arange(n_neurons) + offsets[condition]
        for agreed, color, fill in ((True, AGREED_COLOR, AGREED_COLOR), (False, OPEN_COLOR, "none")):
            keep = (entry.agreed[condition] == agreed) & np.isfinite(entry.mean[condition])
            ax.errorbar(
                x[keep],
                entry.mean[condition, keep],
                yerr=entry.spread[condition, keep],
                fmt="o",
                ms=3,
                color=color,
                mfc=fill,
                elinewidth=0.6,
                capsize=0,
            )
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_yscale("symlog", linthresh=1.0)
    share = entry.agreed[np.isfinite(entry.mean)].mean() if np.isfinite(entry.mean).any() else float("nan")
    ax.set_title(f"{entry.name}: {share:.0%} agreed", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("recorded neuron")
    ax.set_ylabel("mean PSTH change (Hz)")


def _fixed_point_panel(ax, answers: Sequence[CircuitAnswers]) -> None:
    """Mean recorded rate (Hz) of each fixed point, per condition; one column of points per fit
    within each condition, stable filled, unstable open."""
    n_fits = len(answers)
    for fit, fit_answers in enumerate(answers):
        for condition, (points, rates) in enumerate(zip(fit_answers.fixed_points, fit_answers.fixed_point_rates)):
            if not points.n_points:
                continue
            x = np.full(points.n_points, condition + (fit - (n_fits - 1) / 2) * 0.6 / max(n_fits, 1))
            mean_rate = rates.mean(axis=1)
            ax.scatter(x[points.stable], mean_rate[points.stable], s=12, color=AGREED_COLOR)
            ax.scatter(x[~points.stable], mean_rate[~points.stable], s=12, facecolors="none", edgecolors="C3")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("condition")
    ax.set_ylabel("fixed point: mean recorded rate (Hz)")
    ax.set_title("fixed points per condition (each fit a column; open = unstable)", fontsize=9)


def agreement_figure(agreement: dict[str, AnswerAgreement], answers: Sequence[CircuitAnswers]) -> Figure:
    shown = [name for name in SHOWN_PERTURBATIONS if name in agreement and np.isfinite(agreement[name].mean).any()]
    shown = shown[:N_PANELS]
    rows = (len(shown) + 1) // 2
    figure = Figure(figsize=(12, 3.0 * (rows + 1)), layout="constrained")
    grid = figure.add_gridspec(rows + 1, 2)
    for index, name in enumerate(shown):
        _effect_panel(figure.add_subplot(grid[index // 2, index % 2]), agreement[name])
    _fixed_point_panel(figure.add_subplot(grid[rows, :]), answers)
    figure.suptitle("What the fits agree on: ensemble mean +- spread across fits (filled = agreed)")
    return figure


def write_agreement_figure(
    agreement: dict[str, AnswerAgreement], answers: Sequence[CircuitAnswers], path: Path
) -> Path:
    agreement_figure(agreement, answers).savefig(path, dpi=110)
    return path
