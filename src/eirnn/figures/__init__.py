"""The training report's figures, drawn from a run folder alone (`RunArtifacts`), so that
`eirnn report RUN_ID` can redraw them from a finished run's artifacts.

`write_figures` draws every figure in `FIGURES` that the run supports and says, for each one it
skips, why (no spike counts, no single trials, no attention embedding, ...).

Modules: ``common`` (the run view and drawing helpers), ``fit_quality`` and ``circuit`` (the
figures), ``registry`` (the figure list and ``write_figures``); this package re-exports their names.
"""

from eirnn.figures.circuit import (
    attention_patterns,
    h0_distribution,
    pca_state_space,
    pca_trajectories,
    weight_matrices,
)
from eirnn.figures.drawing import Drawing, Group, RunView, condition_colors, neuron_groups, time_axis_ms, unit_groups
from eirnn.figures.fit_quality import (
    best_worst_neurons,
    condition_psth_grid,
    correlation_histogram,
    correlation_scatter,
    correlation_vs_noise_ceiling,
    fano_factor_comparison,
    training_curves,
)
from eirnn.figures.report_figures import FIGURE_TITLES, FIGURES, FigureSet, FigureSpec, write_figures

__all__ = [
    "FIGURES",
    "FIGURE_TITLES",
    "Drawing",
    "FigureSet",
    "FigureSpec",
    "Group",
    "RunView",
    "attention_patterns",
    "best_worst_neurons",
    "condition_colors",
    "condition_psth_grid",
    "correlation_histogram",
    "correlation_scatter",
    "correlation_vs_noise_ceiling",
    "fano_factor_comparison",
    "h0_distribution",
    "neuron_groups",
    "pca_state_space",
    "pca_trajectories",
    "time_axis_ms",
    "training_curves",
    "unit_groups",
    "weight_matrices",
    "write_figures",
]
