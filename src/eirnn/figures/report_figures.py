"""The report's figure list, in report order, and `write_figures`, which draws them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eirnn.artifacts import RunArtifacts
from eirnn.figures.circuit import (
    attention_patterns,
    h0_distribution,
    pca_state_space,
    pca_trajectories,
    recurrent_spectrum,
    weight_matrices,
)
from eirnn.figures.drawing import DPI, Drawing, RunView
from eirnn.figures.fit_quality import (
    behavior_readout,
    best_worst_neurons,
    condition_psth_grid,
    correlation_histogram,
    correlation_scatter,
    correlation_vs_noise_ceiling,
    fano_factor_comparison,
    psth_variance_comparison,
    training_curves,
)
from eirnn.figures.perturbations import perturbation_figure
from eirnn.figures.recovery import recovery_figure
from eirnn.figures.single_trial import heldout_single_trials, inferred_states
from eirnn.metrics import NotAvailable


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
    FigureSpec(
        "psth_variance_comparison.png", "PSTH variance per neuron, model against data", psth_variance_comparison
    ),
    FigureSpec("recurrent_spectrum.png", "Eigenvalues of W_rec against the stability line", recurrent_spectrum),
    FigureSpec("behavior_readout.png", "Behaviour readout against its target", behavior_readout),
    FigureSpec("recovery.png", "What the fit recovers of the true circuit", recovery_figure),
    FigureSpec(
        "heldout_single_trials.png", "Held-out neurons on single trials: spikes and model", heldout_single_trials
    ),
    FigureSpec("inferred_states.png", "Inferred initial states and single-trial trajectories", inferred_states),
    FigureSpec(
        "perturbations.png", "Perturbation trials: effects per type, control and perturbed PSTHs", perturbation_figure
    ),
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
