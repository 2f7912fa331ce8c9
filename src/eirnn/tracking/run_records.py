"""What every eirnn run (a training run, a study's parent run) writes to the tracking store the
same way: its experiment, params it does not have yet, and the error that ended it."""

from __future__ import annotations

import os
import traceback
from typing import Any

from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from eirnn.config import TrainConfig, mlproject_default
from eirnn.logged_names import ERROR_TAG, TRACEBACK_TAG

MAX_TAG_LENGTH = 5000
MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch request


def experiment_id_for(config: TrainConfig, parent_run_id: str | None = None) -> str:
    """A child run lives in its parent's experiment (MLflow refuses anything else); otherwise
    MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME or `config.experiment_name`, created if new.
    Passed explicitly rather than through mlflow.set_experiment, which is process-wide state."""
    client = MlflowClient()
    if parent_run_id:
        return client.get_run(parent_run_id).info.experiment_id
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or config.experiment_name
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def log_new_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    """Log params the run does not have yet. `mlflow run` logs its parameters itself, in the
    user's spelling ("50" for tau=50.0), and MLflow refuses a changed value for a logged key."""
    existing = client.get_run(run_id).data.params
    # batched: one store transaction per param was a sizeable part of a tuning trial's overhead
    new = [Param(key, mlproject_default(value)) for key, value in params.items() if key not in existing]
    for first in range(0, len(new), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=new[first : first + MAX_PARAMS_PER_BATCH])


def record_error(client: MlflowClient, run_id: str, error: BaseException, *, with_traceback: bool = True) -> None:
    """The error that ends a run, in its `eirnn.error` tag (and the traceback in `eirnn.traceback`)."""
    client.set_tag(run_id, ERROR_TAG, f"{type(error).__name__}: {error}"[:MAX_TAG_LENGTH])
    if with_traceback:
        client.set_tag(run_id, TRACEBACK_TAG, traceback.format_exc()[-MAX_TAG_LENGTH:])
