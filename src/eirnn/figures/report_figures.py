"""The report's figure list, in report order, and `write_figures`, which draws them."""

from __future__ import annotations

import gc
import multiprocessing
import sys
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


def write_figures(artifacts: RunArtifacts, out_dir: str | Path, *, processes: int = 1) -> FigureSet:
    """Draw every figure the run supports into `out_dir` (PNG, 150 dpi); say why each other one is skipped.

    With `processes` > 1 (on Linux), that many processes draw them, each taking the next figure
    not yet taken: the files are the same, since each figure depends on the run folder alone."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    view = RunView.from_artifacts(artifacts)
    outcomes = _draw_shared(view, out_dir, processes) if processes > 1 and sys.platform == "linux" else {}
    for index, spec in enumerate(FIGURES):
        if index not in outcomes:  # drawn here: alone, or what a child process left undone
            outcomes[index] = _draw(spec, view, out_dir)
    figures = FigureSet()
    for index, spec in enumerate(FIGURES):
        if outcomes[index] is None:
            figures.written[spec.name] = out_dir / spec.name
        else:
            figures.skipped[spec.name] = outcomes[index]
    return figures


def _draw(spec: FigureSpec, view: RunView, out_dir: Path) -> str | None:
    """Draw one figure into out_dir; None when written, else why it does not apply."""
    drawing = spec.draw(view)
    path = out_dir / spec.name
    if isinstance(drawing, NotAvailable):
        path.unlink(missing_ok=True)  # a figure left from an earlier drawing would contradict the report
        return drawing.reason
    drawing.suptitle(spec.title, fontsize="x-large")
    drawing.savefig(path, dpi=DPI, metadata={"Software": None})
    return None


def _draw_shared(view: RunView, out_dir: Path, processes: int) -> dict[int, str | None]:
    """Figures drawn by this process and `processes - 1` forked children (Matplotlib's drawing is
    Python under the GIL: threads would take turns), each taking the next figure from a shared
    counter; index -> `_draw`'s outcome. A figure a child took and did not report (it died) is
    missing from the result, for the caller to draw."""
    context = multiprocessing.get_context("fork")  # the children share the loaded run, nothing to pickle
    next_figure = context.Value("i", 0)
    receiver, sender = context.Pipe(duplex=False)
    children = [
        context.Process(target=_draw_taken, args=(view, out_dir, next_figure, sender), daemon=True)
        for _ in range(processes - 1)
    ]
    # the run's objects out of the children's garbage collection: collecting would write to their
    # pages, which a forked child shares with this process until it writes (copy on write)
    gc.freeze()
    for child in children:
        child.start()
    gc.unfreeze()
    sender.close()  # the children hold their copies: the pipe ends when the last of them exits
    outcomes: dict[int, str | None] = {}
    _draw_taken(view, out_dir, next_figure, None, outcomes)
    while True:
        try:
            index, outcome = receiver.recv()
        except EOFError:
            break
        outcomes[index] = outcome
    for child in children:
        child.join()
    return outcomes


def _draw_taken(view: RunView, out_dir: Path, next_figure, sender, outcomes: dict | None = None) -> None:
    """Draw figures until none is left to take; report each to `sender` (a child) or `outcomes`."""
    while True:
        with next_figure.get_lock():
            index = next_figure.value
            next_figure.value += 1
        if index >= len(FIGURES):
            return
        outcome = _draw(FIGURES[index], view, out_dir)
        if sender is None:
            outcomes[index] = outcome
        else:
            sender.send((index, outcome))
