"""What a tracked run logs, by name: params, metrics, tags and artifact paths.

`tests/test_logged_names.py` compares a default (tiny) run with the lists in
`tests/expected/default_run_logged_names.json`, which this module recorded on the code before the
run moved into the science core:

    PYTHONPATH=src python tests/default_run_names.py tests/expected/default_run_logged_names.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from conftest import SMALL_MODEL, tiny_recording

# a default run on the tiny recording: every setting at its default except what keeps it short
TINY_RUN = {**SMALL_MODEL, "max_epochs": 3}
# tags whose names depend on the machine or on git (a checkout from an archive has no commit)
MACHINE_TAGS = ("mlflow.source.git.commit", "eirnn.git_commit")


def _artifact_paths(client, run_id: str, path: str = "") -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found.extend(_artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return found


def logged_names(run_id: str) -> dict[str, list[str]]:
    """Sorted names of the run's params, metrics, tags (without MLflow's own `mlflow.*` system
    tags, which depend on how the run was started) and artifact files."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run = client.get_run(run_id)
    tags = [name for name in run.data.tags if not name.startswith("mlflow.") or name == "mlflow.note.content"]
    return {
        "params": sorted(run.data.params),
        "metrics": sorted(run.data.metrics),
        "tags": sorted(name for name in tags if name not in MACHINE_TAGS),
        "artifacts": sorted(_artifact_paths(client, run_id)),
    }


def record_default_run(folder: Path) -> dict[str, list[str]]:
    """Write the tiny recording, train a default run on it into a SQLite store under `folder`
    and return its logged names."""
    import mlflow

    import eirnn
    from eirnn.data.binned_files import write_dataset

    dataset, _ = tiny_recording()
    data = folder / "tiny.npz"
    write_dataset(dataset, data)
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    os.chdir(folder)
    result = eirnn.train(data, **TINY_RUN)
    return logged_names(result.run_id)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        names = record_default_run(Path(scratch))
    Path(sys.argv[1]).write_text(json.dumps(names, indent=1) + "\n")
