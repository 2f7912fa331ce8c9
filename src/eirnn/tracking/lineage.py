"""Where a run came from: the code (git commit and version of the installed eirnn, wherever the
command runs) and the data (MLflow dataset inputs for the training and validation trials)."""

from __future__ import annotations

import json
import subprocess
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from eirnn.data.binned_files import arrays_sha256
from eirnn.logged_names import GIT_COMMIT_TAG, GIT_SOURCE_TAG, SHA256_INPUT_TAG, VERSION_TAG
from eirnn.pipeline import dataset_sha256

# MLflow's dataset digest column holds 36 characters; the full sha256 goes in an input tag
DIGEST_LENGTH = 16


def package_version() -> str:
    from eirnn import __version__

    return __version__


def package_git_commit() -> str | None:
    """The commit of the eirnn source that is running: the checkout holding the imported
    package (an editable install or PYTHONPATH), else the commit pip recorded when installing
    from a git URL; None for a plain wheel."""
    import eirnn

    source = Path(eirnn.__file__).resolve().parent
    try:
        return subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        direct_url = metadata.distribution("eirnn").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    return json.loads(direct_url).get("vcs_info", {}).get("commit_id") if direct_url else None


def code_tags() -> dict[str, str]:
    commit = package_git_commit()
    tags = {VERSION_TAG: package_version()}
    if commit:
        # mlflow.source.git.commit is what the UI's Source column shows
        tags.update({GIT_COMMIT_TAG: commit, GIT_SOURCE_TAG: commit})
    return tags


def data_name(data_path: str, dataset: Any) -> str:
    """What a run calls its data: the file's name; for data handed over in memory, the name of
    the file it was read from, else the built-in recording's or the dataset's own name."""
    source_file = data_path or dataset.meta.get("source_file")
    return Path(str(source_file)).name if source_file else dataset.name


def log_datasets(client: MlflowClient, run_id: str, data_path: str, full: Any, splits: dict[str, Any]) -> None:
    """One MLflow dataset input per split (context `training` / `validation`), named after the
    file (or the built-in recording), with the split's own digest, the file as source, the
    arrays' tensor schema, and the whole file's sha256 as an input tag."""
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource

    name = data_name(data_path, full)
    file_path = data_path or str(full.meta.get("source_file") or "")
    if Path(file_path).is_file():
        source = str(Path(file_path).resolve())  # MLflow resolves a path to a local file source
    elif "generator" in full.meta:
        source = CodeDatasetSource({"eirnn.generator": f"{full.meta['generator']}(seed={full.meta.get('seed')})"})
    else:
        source = CodeDatasetSource({"eirnn.source": "a NeuralDataset built in memory"})
    file_hash = dataset_sha256(full)
    inputs = []
    for context, split in splits.items():
        targets = split.counts if split.has_counts else split.rates_hz
        with warnings.catch_warnings():
            # a local path matches two registered source types, both the local file source
            warnings.simplefilter("ignore", UserWarning)
            logged = mlflow.data.from_numpy(
                features={"inputs": np.asarray(split.inputs)},
                targets=np.asarray(targets),
                source=source,
                name=name,
                digest=arrays_sha256(split)[:DIGEST_LENGTH],
            )
        tags = [InputTag("mlflow.data.context", context), InputTag(SHA256_INPUT_TAG, file_hash)]
        inputs.append(DatasetInput(logged._to_mlflow_entity(), tags))
    try:
        client.log_inputs(run_id, datasets=inputs)
    except MlflowException as error:
        # workers starting together insert the same dataset at once, and all but one of them
        # lose the race on the server's unique key; the dataset exists now, so one retry links it
        if "dataset_pk" not in str(error) and "UNIQUE constraint" not in str(error):
            raise
        client.log_inputs(run_id, datasets=inputs)
