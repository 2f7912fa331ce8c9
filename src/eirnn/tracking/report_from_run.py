"""`eirnn report RUN_ID`: rebuild figures and report.md from a finished run's artifacts alone."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from eirnn.artifacts import RUN_FILES, RUN_FOLDERS
from eirnn.report import rebuild_report


def rebuild_report_of_run(run_id: str, out: str | Path = "") -> Path:
    """Download the run's arrays and JSON files into `out` (default `report-RUN_ID`) and write
    figures/, report.md and report.html there, exactly as the run wrote them."""
    out = Path(out or f"report-{run_id}")
    out.mkdir(parents=True, exist_ok=True)
    for path in (*RUN_FOLDERS, *RUN_FILES):
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(out))
    model_name = MlflowClient().get_run(run_id).data.params.get("registered_model_name")
    return rebuild_report(out, out, run_id=run_id, model_name=model_name)
