"""An ensemble's numbers and report section from its fitted models and their answers (no
tracking): ensemble-mean rates and their spread, the parent run's scores, the calibration
against a ground truth when the data has one, and report.md/report.html with the section
"What the fits agree on"."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eirnn.agreement import COUNT_ANSWERS, AnswerAgreement, aggregate, calibrate
from eirnn.circuit_answers import CircuitAnswers, ask_circuit
from eirnn.evaluation import predict_rates
from eirnn.metrics import condition_psth_correlation, is_available
from eirnn.recovery import ground_truth_model, shuffled_within_blocks
from eirnn.report_html import write_html_report

FIGURE_FILE = "ensemble_agreement.png"


def ensemble_rates(models: Sequence[torch.nn.Module], inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread) across models of the predicted rates (Hz) [trials, time, neurons], noise off;
    spread is the standard deviation across models (ddof=0)."""
    rates = np.stack([predict_rates(model, inputs).rates.numpy().astype(np.float64) for model in models])
    return rates.mean(axis=0), rates.std(axis=0)


def count_agreed(agreement: dict[str, AnswerAgreement]) -> tuple[int, int]:
    """(agreed, asked) over every answer an ensemble gave (NaN: not asked)."""
    asked = [np.isfinite(entry.mean) for entry in agreement.values()]
    agreed = [entry.agreed & finite for entry, finite in zip(agreement.values(), asked)]
    return int(sum(mask.sum() for mask in agreed)), int(sum(mask.sum() for mask in asked))


def ensemble_scores(
    models: Sequence[torch.nn.Module], val: Any, fit_scores: Sequence[float], agreement: dict[str, AnswerAgreement]
) -> dict[str, float]:
    """The parent run's numbers: fits, answers agreed, coverage, the condition-resolved PSTH
    correlation of the ensemble-mean rates on the validation trials, and the mean and spread of
    the fits' own selection scores."""
    mean_rates, _ = ensemble_rates(models, val.inputs)
    corr = condition_psth_correlation(mean_rates, val.rates_hz, val.conditions)
    agreed, asked = count_agreed(agreement)
    scores = np.asarray(fit_scores, dtype=np.float64)
    return {
        "n_fits": float(len(models)),
        "n_answers": float(asked),
        "n_agreed": float(agreed),
        "coverage": agreed / asked if asked else float("nan"),
        "mean_cond_psth_corr": float(corr.mean) if is_available(corr.mean) else float("nan"),
        "fit_score_mean": float(np.nanmean(scores)),
        "fit_score_spread": float(np.nanstd(scores)),
    }


def true_answers(truth: Any, val: Any, seed: int = 0) -> CircuitAnswers:
    """The true network's answers on `val` (`ground_truth_model`), asked as every fit is asked: a
    fact of the data, computed once per ensemble."""
    twin = ground_truth_model(truth, float(val.bin_ms), np.asarray(val.inputs[:, 0], dtype=np.float64))
    return ask_circuit(twin, val, group_seed=seed, seed=seed)


def null_answers(model: torch.nn.Module, val: Any, seed: int, fit_index: int) -> CircuitAnswers:
    """The answers of fit `fit_index`'s block-shuffled null (`shuffled_within_blocks`, seed
    `seed + fit_index`), asked as the fit itself is asked."""
    return ask_circuit(shuffled_within_blocks(model, seed + fit_index), val, group_seed=seed, seed=seed)


def ground_truth_calibration(
    agreement: dict[str, AnswerAgreement], true: CircuitAnswers, nulls: Sequence[CircuitAnswers]
) -> dict[str, float]:
    """`eirnn.agreement.calibrate` of the ensemble against the true network's answers (`true_answers`),
    with the block-shuffled nulls of the same fits (`null_answers`) as the bar
    (`null_precision_on_agreed`)."""
    return calibrate(agreement, true, null=aggregate(nulls))


def _answer_rows(agreement: dict[str, AnswerAgreement]) -> list[str]:
    rows = ["| answer | asked | agreed | mean sign fraction |", "| --- | --- | --- | --- |"]
    for name, entry in agreement.items():
        finite = np.isfinite(entry.mean)
        if name in COUNT_ANSWERS:
            finite = np.isfinite(entry.consensus)
        rows.append(
            f"| `{name}` | {int(finite.sum())} | {int((entry.agreed & finite).sum())} | "
            f"{float(entry.sign_fraction[finite].mean()) if finite.any() else float('nan'):.2f} |"
        )
    return rows


def agreement_section(
    scores: dict[str, float], agreement: dict[str, AnswerAgreement], calibration: dict[str, float] | None
) -> str:
    """The Markdown of "What the fits agree on" (without the figure line)."""
    lines = [
        f"{int(scores['n_agreed'])} of {int(scores['n_answers'])} answers are agreed (coverage "
        f"{scores['coverage']:.2f}) by {int(scores['n_fits'])} fits"
        + (f" ({int(scores['n_fits_failed'])} more failed and are left out)" if scores.get("n_fits_failed") else "")
        + ". The rule and every answer are defined in "
        "docs/metrics.md (Ensembles). Ensemble-mean rates: cond_psth_corr "
        f"{scores['mean_cond_psth_corr']:.3f}; the fits' own selection scores {scores['fit_score_mean']:.3f} "
        f"+- {scores['fit_score_spread']:.3f} (mean +- SD).",
        "",
        "Agreement is not truth: on known circuits (benchmarks/README.md, Ensembles) the fits agree on "
        "the signs that Dale's law and the E/I labels fix, and block-shuffled nulls of the same fits get "
        "those signs right as often; with wrong or missing E/I labels the fits agree on wrong answers. "
        "Agreement does not protect against wrong labels.",
        "",
        *_answer_rows(agreement),
    ]
    if calibration is not None:
        lines += [
            "",
            "Against the true network of this recording (ground truth), pooled over the signed answers:",
            "",
            "| calibration | value |",
            "| --- | --- |",
            *(f"| {name} | {value:.3f} |" for name, value in calibration.items()),
        ]
    return "\n".join(lines)


def write_ensemble_report(
    folder: str | Path,
    scores: dict[str, float],
    agreement: dict[str, AnswerAgreement],
    answers: Sequence[CircuitAnswers],
    calibration: dict[str, float] | None,
    run_id: str = "",
    fits: Sequence[tuple[int, str, float]] = (),
    loading: str = "",
) -> Path:
    """report.md and report.html (figure embedded) in `folder`; returns report.md's path.
    `fits`: (fit index, child run id, selection score) per completed fit; `loading`: how to load the ensemble."""
    from eirnn.figures.agreement import write_agreement_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_agreement_figure(agreement, answers, folder / FIGURE_FILE)
    text = "\n\n".join(
        [
            f"# Ensemble report{f': run {run_id}' if run_id else ''}",
            "## What the fits agree on",
            agreement_section(scores, agreement, calibration),
            f"![What the fits agree on]({FIGURE_FILE})",
            "## Fits",
            "\n".join(
                ["| fit | child run | selection score |", "| --- | --- | --- |"]
                + [f"| fit-{index} | `{child}` | {score:.4f} |" for index, child, score in fits]
            ),
            *(["## Loading the ensemble", loading] if loading else []),
        ]
    )
    path = folder / "report.md"
    path.write_text(text + "\n", encoding="utf-8")
    write_html_report(path)
    return path
