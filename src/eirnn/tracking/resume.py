"""What `eirnn train --resume RUN_ID` checks before it continues a run: the run exists and is
not FINISHED, the settings are the run's own, and the data file is the one the run started on
(its sha256). Each refusal is one line that says what to do instead."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from eirnn.config import ConfigError, TrainConfig
from eirnn.data import DatasetError
from eirnn.logged_names import EPOCH_METRICS
from eirnn.training import RESUME_FILE


def resume_command(run_id: str) -> str:
    return f"eirnn train --resume {run_id}"


def resumable_run(client: MlflowClient, run_id: str) -> Any:
    """The run to continue; refused when absent or FINISHED (its model is registered already)."""
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(
            f"resume: expected the id of a run in the tracking store; found {run_id!r} ({error})"
        ) from None
    if run.info.status == "FINISHED":
        raise ConfigError(
            f"resume: expected a KILLED, FAILED or interrupted run; found run {run_id} FINISHED (its model is "
            "already logged); start a new run instead"
        )
    return run


def resumed_config(requested: TrainConfig, run: Any) -> TrainConfig:
    """The run's own settings. A setting given with --resume that differs from the run's is
    refused: the continued run would no longer be what its params say."""
    logged = TrainConfig.from_dict({**run.data.params, "resume": requested.resume})
    defaults = TrainConfig()
    for spec in fields(TrainConfig):
        value, theirs = getattr(requested, spec.name), getattr(logged, spec.name)
        if spec.name != "resume" and value != getattr(defaults, spec.name) and value != theirs:
            raise ConfigError(
                f"{spec.name}: --resume continues with the run's own settings; found {value!r}, the run has "
                f"{theirs!r} (start a new run to change it)"
            )
    return logged


def check_same_data(run: Any, dataset: Any, sha256: str) -> None:
    """Refuse to continue on data (`sha256`, as logged in `data.sha256`) that changed since the run started."""
    logged, now = run.data.params.get("data.sha256", ""), sha256
    if logged and logged != now:
        raise DatasetError(
            f"{dataset.source}: variable 'data.sha256': expected the data run {run.info.run_id} started on "
            f"(sha256 {logged[:16]}...); found sha256 {now[:16]}...: the file changed, start a new run"
        )


def resume_point(client: MlflowClient, run_id: str, workdir: Path) -> tuple[Path, dict[str, int]]:
    """The run's last checkpoint, downloaded, and the last step already logged per epoch metric."""
    try:
        checkpoint = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"checkpoints/{RESUME_FILE}", dst_path=str(workdir)
        )
    except (MlflowException, OSError):
        raise ConfigError(
            f"resume: expected checkpoints/{RESUME_FILE} in run {run_id}; found none (the run stopped before "
            "its first checkpoint): start a new run"
        ) from None
    logged = {
        name: max((m.step for m in client.get_metric_history(run_id, name)), default=-1)
        for name in EPOCH_METRICS.values()
    }
    return Path(checkpoint), logged
