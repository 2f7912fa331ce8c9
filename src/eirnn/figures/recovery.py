"""The "What the fit recovers" figure: fitted against true effective weights by block, and
predicted against true effects of perturbations (data with a known circuit only)."""

from __future__ import annotations

import numpy as np

from eirnn.figures.drawing import E_COLOR, I_COLOR, Drawing, RunView, new_figure
from eirnn.metrics import NotAvailable

BLOCK_COLORS = {"EE": E_COLOR, "EI": "#e59866", "IE": "#7fb3d5", "II": I_COLOR}
PERTURBATIONS = ("silence_I", "boost_I", "silence_E", "boost_E")


def recovery_figure(view: RunView) -> Drawing:
    recovery = view.artifacts.recovery
    if not recovery:
        return NotAvailable("the data carries no ground-truth circuit (only synthetic recordings do)")
    metrics = view.artifacts.final_metrics
    figure, axes = new_figure(1, 1 + len(PERTURBATIONS), (4.2 * (1 + len(PERTURBATIONS)), 4.4))
    fitted, true = recovery["fitted_weights"], recovery["true_weights"]
    inhibitory = recovery["true_is_inhibitory"].astype(bool)
    off_diagonal = ~np.eye(len(true), dtype=bool)
    ax = axes[0, 0]
    for block, color in BLOCK_COLORS.items():
        post = inhibitory if block[0] == "I" else ~inhibitory
        pre = inhibitory if block[1] == "I" else ~inhibitory
        pairs = off_diagonal & post[:, None] & pre[None, :]
        r = metrics.get(f"gt_weight_corr_{block}", float("nan"))
        ax.scatter(true[pairs], fitted[pairs], s=6, alpha=0.5, color=color, label=f"{block}: r = {r:.2f}")
    ax.axhline(0, color="0.7", linewidth=0.8)
    ax.axvline(0, color="0.7", linewidth=0.8)
    ax.set(
        xlabel="true effective weight (per Hz)",
        ylabel="fitted effective weight (per Hz)",
        title=f"Weights among recorded neurons\nr = {metrics.get('gt_weight_corr', float('nan')):.2f} "
        f"(null {metrics.get('gt_null_weight_corr', float('nan')):.2f})",
    )
    ax.legend(title="onto-from block", fontsize=8, loc="best")
    for ax, name in zip(axes[0, 1:], PERTURBATIONS):
        predicted, actual = recovery[f"effect_predicted_{name}"], recovery[f"effect_true_{name}"]
        ax.scatter(actual.ravel(), predicted.ravel(), s=2, alpha=0.25, color="0.3", rasterized=True)
        finite = np.isfinite(actual) & np.isfinite(predicted)
        if finite.any():
            low = min(actual[finite].min(), predicted[finite].min())
            high = max(actual[finite].max(), predicted[finite].max())
            ax.plot([low, high], [low, high], color="0.6", linewidth=0.8)
        kind, group = name.split("_")
        ax.set(
            xlabel="true change of condition PSTH (Hz)",
            ylabel="predicted change (Hz)",
            title=f"{kind} a group of true {group} neurons\nr = "
            f"{metrics.get(f'gt_perturbation_corr_{name}', float('nan')):.2f}, right sign "
            f"{metrics.get(f'gt_perturbation_sign_agreement_{name}', float('nan')):.0%}",
        )
    return figure
