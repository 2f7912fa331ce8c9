"""Model registry: register a run's model, keep the alias `champion` on the best version, load a
registered model by name."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from eirnn.tracking.metric_names import SELECTION_METRIC

CHAMPION = "champion"
MAX_ALIAS_ROUNDS = 20


def version_score(client: MlflowClient, version: Any) -> float:
    """A version's best validation PSTH correlation, read from its source run."""
    if not version.run_id:
        return -math.inf
    try:
        value = client.get_run(version.run_id).data.metrics.get(SELECTION_METRIC)
    except MlflowException:
        return -math.inf  # source run deleted
    return value if value is not None and math.isfinite(value) else -math.inf


def _current_champion(client: MlflowClient, name: str) -> str | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION).version
    except MlflowException:
        return None


def update_champion(name: str, client: MlflowClient | None = None) -> str:
    """Point `champion` at the version whose source run has the highest selection metric
    (`metric_names.SELECTION_METRIC`).

    Every finishing run calls this after its own version is registered and tagged. Two runs
    finishing together can each read the registry before the other's write; each therefore
    re-reads after writing and repeats until the alias stands on the best version it can see.
    The last writer's final read includes every registered version, so the alias cannot stay
    on the worse model. Returns the champion's version.
    """
    client = client or MlflowClient()
    for _ in range(MAX_ALIAS_ROUNDS):
        versions = client.search_model_versions(f"name = '{name}'")
        # ties keep the older version: a newcomer must beat the champion, not match it
        best = max(versions, key=lambda v: (version_score(client, v), -int(v.version)))
        if _current_champion(client, name) == best.version:
            break
        client.set_registered_model_alias(name, CHAMPION, best.version)
    return str(best.version)


def load_model(name: str = "eirnn", *, alias: str | None = None, version: int | str | None = None) -> Any:
    """The registered network `name` (alias `champion` unless `alias` or `version` is given),
    in eval mode on the CPU, with `train_config` (TrainConfig) and `data_facts` (dict) attached.

    Set the tracking URI first (MLFLOW_TRACKING_URI or mlflow.set_tracking_uri) when the store
    is not ./mlflow.db.
    """
    from eirnn.config import TrainConfig

    if alias is not None and version is not None:
        raise ValueError("give alias or version, not both")
    reference = f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias or CHAMPION}"
    from eirnn.tracking.serving import find_network_files, load_network

    # tensors (weights_only) and JSON only: nothing from the store is unpickled or executed
    network = load_network(*find_network_files(mlflow.artifacts.download_artifacts(artifact_uri=reference)))
    client = MlflowClient()
    model_version = (
        client.get_model_version(name, str(version))
        if version is not None
        else client.get_model_version_by_alias(name, alias or CHAMPION)
    )
    run_folder = mlflow.artifacts.download_artifacts(run_id=model_version.run_id, artifact_path="config.json")
    network.train_config = TrainConfig.from_dict(json.loads(Path(run_folder).read_text()))
    data_file = mlflow.artifacts.download_artifacts(run_id=model_version.run_id, artifact_path="data.json")
    network.data_facts = json.loads(Path(data_file).read_text())
    network.registry_version = model_version.version
    return network
