"""Model registry: tag a run's registered model, keep the alias `champion` on the best comparable
version (same selection metric, same data), load a registered model by name."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from eirnn.config import LOWER_IS_BETTER
from eirnn.logged_names import (
    DATA_SHA256_TAG,
    ERROR_TAG,
    SCORE_TAG,
    SELECTION_METRIC,
    SELECTION_METRIC_TAG,
    STOP_REASON_TAG,
    final_metric,
)

CHAMPION = "champion"
SCORE_METRIC = SELECTION_METRIC
# versions registered before selection_metric existed were chosen on the pooled correlation,
# logged under this name (or, before the metric-name table, without the prefix)
LEGACY_SCORE_METRICS = (final_metric("best_val_psth_corr"), "best_val_psth_corr")
LEGACY_SELECTION_METRIC = "psth_corr"
# a broken run never holds the alias: the run failed or was killed, or training diverged
BROKEN_RUN_STATUSES = ("FAILED", "KILLED")
BROKEN_STOP_REASONS = ("diverged",)
MAX_ALIAS_ROUNDS = 20


@dataclass(frozen=True)
class Candidate:
    """A registered version as the champion rule sees it: its comparison group (selection metric,
    data sha256) and its score, oriented so that higher is better (-inf: may not be champion)."""

    version: str
    group: tuple[str, str]
    score: float

    @property
    def eligible(self) -> bool:
        return self.score > -math.inf


def version_group(version: Any) -> tuple[str, str]:
    tags = version.tags or {}
    return tags.get(SELECTION_METRIC_TAG, LEGACY_SELECTION_METRIC), tags.get(DATA_SHA256_TAG, "")


def version_score(client: MlflowClient, version: Any) -> float:
    """A version's best validation selection score, read from its source run, higher = better;
    -inf when the run is gone, failed, was killed, diverged or has no finite score."""
    if not version.run_id:
        return -math.inf
    try:
        run = client.get_run(version.run_id)
    except MlflowException:
        return -math.inf  # source run deleted
    tags = run.data.tags
    if run.info.status in BROKEN_RUN_STATUSES or ERROR_TAG in tags or tags.get(STOP_REASON_TAG) in BROKEN_STOP_REASONS:
        return -math.inf
    metric, _ = version_group(version)
    tagged = SELECTION_METRIC_TAG in (version.tags or {})
    names = (SCORE_METRIC,) if tagged else LEGACY_SCORE_METRICS
    value = next((run.data.metrics[name] for name in names if name in run.data.metrics), None)
    # the SQL stores keep an infinite metric as the largest float
    if value is None or not math.isfinite(value) or abs(value) >= sys.float_info.max:
        return -math.inf
    return -value if metric in LOWER_IS_BETTER else value


def group_alias(group: tuple[str, str]) -> str | None:
    """The alias of the best version in one group, e.g. `champion-cond-psth-corr-3fa2b1c9d0e1`."""
    metric, sha = group
    return f"{CHAMPION}-{metric.replace('_', '-')}-{sha[:12]}" if sha else None


def _alias_target(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _best(candidates: list[Candidate], group: tuple[str, str]) -> Candidate | None:
    contenders = [c for c in candidates if c.group == group and c.eligible]
    # ties keep the older version: a newcomer must beat the champion, not match it
    return max(contenders, key=lambda c: (c.score, -int(c.version)), default=None)


def update_champion(name: str, client: MlflowClient | None = None, version: str | None = None) -> str | None:
    """Keep `champion` on the best version among those comparable with the current champion.

    Versions are comparable when they were selected on the same metric and fitted to the same
    data (sha256): a model of another recording, or one chosen on another score, never displaces
    the champion. With no valid champion, `version`'s group (the newest version's by default)
    takes the alias. Each group's best version also carries `group_alias(group)`. Versions from
    failed, killed or diverged runs, or without a finite score, are never champion.

    Every finishing run calls this after its own version is registered and tagged. Two runs
    finishing together can each read the registry before the other's write; each therefore
    re-reads after writing and repeats until the aliases stand on the best versions it can see.
    Returns the champion's version, or None when no version may be champion.
    """
    client = client or MlflowClient()
    champion: str | None = None
    for _ in range(MAX_ALIAS_ROUNDS):
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            return None
        candidates = [Candidate(str(v.version), version_group(v), version_score(client, v)) for v in versions]
        by_version = {c.version: c for c in candidates}
        newest = str(version) if version is not None else max(by_version, key=int)
        current = by_version.get(_alias_target(client, name, CHAMPION) or "")
        group = current.group if current is not None and current.eligible else by_version[newest].group
        best = _best(candidates, group)
        changed = False
        if best is not None and (current is None or current.version != best.version):
            client.set_registered_model_alias(name, CHAMPION, best.version)
            changed = True
        own_group = by_version[newest].group
        own_best, alias = _best(candidates, own_group), group_alias(own_group)
        if own_best is not None and alias and _alias_target(client, name, alias) != own_best.version:
            client.set_registered_model_alias(name, alias, own_best.version)
            changed = True
        champion = best.version if best is not None else (current.version if current is not None else None)
        if not changed:
            break
    return champion


@dataclass(frozen=True)
class Standing:
    """Where a new version stands after the champion rule: the global `champion`, the best version
    of its own group (selection metric, data sha256) under `group_alias`, and both groups."""

    version: str
    own_group: tuple[str, str]
    group_alias: str | None
    group_champion: str | None
    champion: str | None
    champion_group: tuple[str, str] | None


def standing(client: MlflowClient, name: str, version: str) -> Standing:
    """Read the aliases after `update_champion` for the closing block and the run's description."""
    own_group = version_group(client.get_model_version(name, version))
    alias = group_alias(own_group)
    champion = _alias_target(client, name, CHAMPION)
    champion_group = version_group(client.get_model_version(name, champion)) if champion else None
    group_champion = _alias_target(client, name, alias) if alias else None
    return Standing(str(version), own_group, alias, group_champion, champion, champion_group)


def tag_version(client: MlflowClient, name: str, version: str, run_id: str, selection_metric: str) -> None:
    """Tag a new version with what the champion rule compares (selection metric, data sha256,
    score) and the run's held-out test scores, so that the registry UI shows them."""
    run = client.get_run(run_id)
    metrics = run.data.metrics
    tags = {
        SELECTION_METRIC_TAG: selection_metric,
        DATA_SHA256_TAG: run.data.params.get("data.sha256", ""),
        SCORE_TAG: str(metrics.get(SCORE_METRIC)),
        "best_val_psth_corr": str(metrics.get(final_metric("best_val_psth_corr"))),
    }
    test_prefix = final_metric("test_")
    tags.update(
        {
            key.removeprefix(final_metric("")): str(value)
            for key, value in metrics.items()
            if key.startswith(test_prefix)
        }
    )
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def version_of_run(client: MlflowClient, name: str, run_id: str) -> Any:
    """The version of `name` registered from run `run_id`, or None."""
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return versions[0] if versions else None


def register_model(
    model_uri: str, run_id: str, name: str, selection_metric: str, client: MlflowClient | None = None
) -> tuple[str, str | None]:
    """Register a logged model as a new version of `name`, tag it with what the champion rule
    compares (selection metric, data hash, score) and its test scores, and apply the rule.
    Returns (version, champion version).

    A run gets one version of `name`: a run that has one already (a resumed study that finds
    the same best trial, a run stopped after it registered and then resumed) keeps it."""
    client = client or MlflowClient()
    earlier = version_of_run(client, name, run_id)
    version = str(earlier.version) if earlier else str(mlflow.register_model(model_uri, name).version)
    tag_version(client, name, version, run_id, selection_metric)
    return version, update_champion(name, client, version)


def load_model(name: str = "eirnn", *, alias: str | None = None, version: int | str | None = None) -> Any:
    """The registered network `name` (alias `champion` unless `alias` or `version` is given),
    in eval mode on the CPU, with `train_config` (TrainConfig) and `data_facts` (dict) attached;
    a registered ensemble (`eirnn ensemble`) loads as a `NetworkEnsemble` of its fits.

    Set the tracking URI first (MLFLOW_TRACKING_URI or mlflow.set_tracking_uri) when the store
    is not ./mlflow.db.

    Examples
    --------
    Train and register a small model in a fresh tracking store, then load it back:

    >>> import tempfile
    >>> import mlflow
    >>> import eirnn
    >>> from eirnn.data.synthetic import make_recording
    >>> folder = tempfile.mkdtemp()
    >>> previous = mlflow.get_tracking_uri()
    >>> mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    >>> _ = mlflow.create_experiment("docs", artifact_location=f"{folder}/artifacts")
    >>> dataset, _ = make_recording(seed=0, n_e=8, n_i=3, n_trials=40, n_bins=20)
    >>> _ = eirnn.train(
    ...     dataset,
    ...     experiment_name="docs",
    ...     registered_model_name="docs-example",
    ...     max_epochs=1,
    ...     input_embed_dim=8,
    ...     attention_heads=2,
    ...     threads=1,
    ...     log_figures=False,
    ... )
    >>> model = eirnn.load_model("docs-example")
    >>> model.train_config.max_epochs, model.data_facts["n_neurons"]
    (1, 11)
    >>> mlflow.set_tracking_uri(previous)
    """
    from eirnn.config import TrainConfig

    if alias is not None and version is not None:
        raise ValueError("give alias or version, not both")
    reference = f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias or CHAMPION}"
    from eirnn.model.network_files import find_network_files, load_network
    from eirnn.tracking.serving import load_ensemble

    # tensors (weights_only) and JSON only: nothing from the store is unpickled or executed
    folder = mlflow.artifacts.download_artifacts(artifact_uri=reference)
    ensemble = load_ensemble(folder)
    network = ensemble if ensemble is not None else load_network(*find_network_files(folder))
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
