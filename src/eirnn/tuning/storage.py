"""Where a study lives: an RDB URL (PostgreSQL, SQLite) or an Optuna journal file."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import mlflow
import optuna
from sqlalchemy.engine import make_url

from eirnn.tuning.tune_options import HEARTBEAT_S

DEFAULT_JOURNAL_FILE = "optuna.journal"


def resolve_storage(spec: str) -> str:
    """An RDB URL or journal file as given; empty: optuna.journal beside a local SQLite tracking
    store (`mlflow run` starts the study in the project folder, not where the store is), or in
    the working folder for any other store."""
    if spec:
        return spec
    return str(store_folder() / DEFAULT_JOURNAL_FILE)


def store_folder() -> Path:
    """The folder of a local SQLite tracking store, or the working folder for any other store."""
    uri = mlflow.get_tracking_uri()
    database = make_url(uri).database if uri.startswith("sqlite:") else None
    return Path(database).resolve().parent if database and database != ":memory:" else Path.cwd()


def open_storage(spec: str, heartbeat_s: int = HEARTBEAT_S) -> optuna.storages.BaseStorage:
    spec = resolve_storage(spec)
    if "://" in spec:
        from eirnn.tuning.dead_trials import RetryDeadTrial

        # heartbeats let any process of the study fail, end and re-queue the trials of a worker
        # that died, once they are silent for twice the interval
        with warnings.catch_warnings():  # heartbeats and their retry callback are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                spec, heartbeat_interval=heartbeat_s, heartbeat_stale_trial_callback=RetryDeadTrial(2 * heartbeat_s)
            )
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(spec))


def storage_kind(spec: str) -> str:
    return re.split(r"[+:]", spec, maxsplit=1)[0] if "://" in spec else "journal"
