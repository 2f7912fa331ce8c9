"""A finished run in a few numbers: the run's description in the MLflow UI (`mlflow.note.content`)
and the closing block `eirnn train` prints are both drawn from one `RunSummary`. UI links carry
`?workflowType=machine_learning`: MLflow 3 opens an experiment in its GenAI view unless the
address (or the browser's stored choice) says otherwise."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import mlflow

from eirnn.tracking.model_registry import Standing

DEFAULT_UI_ADDRESS = "http://127.0.0.1:5000"
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def ui_base_address() -> str:
    """The UI that shows this store: the tracking server itself for an http(s) store, else where
    `mlflow ui` (or `eirnn ui`) serves it by default."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return os.environ.get("EIRNN_UI_ADDRESS", DEFAULT_UI_ADDRESS).rstrip("/")


def experiment_url(experiment_id: str, base: str | None = None) -> str:
    return f"{base or ui_base_address()}/#/experiments/{experiment_id}?{MODEL_TRAINING_VIEW}"


def run_url(experiment_id: str, run_id: str, base: str | None = None) -> str:
    return f"{base or ui_base_address()}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"


def _number(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


@dataclass
class RunSummary:
    run_id: str
    run_name: str
    experiment_id: str
    experiment_name: str
    score_name: str  # the selection metric
    score: float  # its best validation value (the kept weights)
    ceiling: float | None  # its noise ceiling on the same trials (None: the score has none)
    pooled_score: float | None  # the condition-blind validation PSTH r at the kept weights
    best_epoch: int
    total_epochs: int
    max_epochs: int
    stop_reason: str
    data_name: str
    data_sha256: str
    data_shape: str
    model_name: str | None = None
    model_version: str | None = None
    champion_version: str | None = None
    report_path: str = "report.html"
    # set when the run is not in the configured experiment (`mlflow run` without --experiment-name)
    experiment_hint: str = ""
    # the aliases after the champion rule (`eirnn.tracking.model_registry.standing`), when registered
    standing: Standing | None = None

    @property
    def score_line(self) -> str:
        ratio = (
            f" ({self.score / self.ceiling:.0%} of it)"
            if self.ceiling and math.isfinite(self.ceiling) and math.isfinite(self.score)
            else ""
        )
        if self.ceiling is None:
            return f"validation {self.score_name} {_number(self.score)} (a score without a noise ceiling)"
        return f"validation {self.score_name} {_number(self.score)} vs noise ceiling {_number(self.ceiling)}{ratio}"

    @property
    def stop_line(self) -> str:
        why = {
            "patience": f"early stopping: validation {self.score_name} stopped rising for `patience` epochs",
            "max_epochs": "reached max_epochs",
            "callback": "stopped by a callback (pruned or interrupted)",
        }.get(self.stop_reason, self.stop_reason)
        return (
            f"{self.total_epochs} of {self.max_epochs} epochs, best at epoch {self.best_epoch} (counted from 0; {why})"
        )

    @property
    def registry_line(self) -> str:
        if not self.model_version:
            return "not registered"
        this = f"{self.model_name} version {self.model_version}"
        if self.champion_version == self.model_version:
            return f"{this}, now the champion"
        standing = self.standing
        if standing is None or standing.champion_group == standing.own_group or standing.champion is None:
            if self.champion_version is None:
                return f"{this}; no version may be champion (failed, killed, diverged or without a finite score)"
            return f"{this}; champion stays version {self.champion_version} (its score is at least as high)"
        metric, sha = standing.own_group
        other_metric, other_sha = standing.champion_group
        group = f"{metric} on data {sha[:12]}" if sha else metric
        if standing.group_champion == self.model_version:
            own = f"the best of its group ({group}): alias {standing.group_alias}"
        elif standing.group_champion is not None:
            own = (
                f"its group's ({group}) champion stays version {standing.group_champion}, alias "
                f"{standing.group_alias} (its score is at least as high)"
            )
        else:
            own = f"not the best of its group ({group}): its score is not finite"
        elsewhere = (
            f"fitted to another recording (data {other_sha[:12]})"
            if other_sha != sha
            else f"selected on another metric ({other_metric})"
        )
        return (
            f"{this}, {own}; the `champion` alias stays on version {standing.champion}, {elsewhere}, "
            "which this run does not compete with"
        )

    @property
    def url(self) -> str:
        return run_url(self.experiment_id, self.run_id)

    def note_markdown(self) -> str:
        """The run's description in the MLflow UI."""
        cond = f"; pooled PSTH r {_number(self.pooled_score)}" if self.pooled_score is not None else ""
        return "\n".join(
            [
                f"**{self.score_line}**{cond}",
                "",
                f"- Epochs: {self.stop_line}",
                f"- Data: {self.data_name} ({self.data_shape}), sha256 `{self.data_sha256[:12]}`",
                f"- Registry: {self.registry_line}",
                f"- Report: artifact `{self.report_path}` (figures embedded); `report.md` beside it",
                *([f"- Note: {self.experiment_hint}"] if self.experiment_hint else []),
            ]
        )
