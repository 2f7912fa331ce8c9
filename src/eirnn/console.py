"""What `eirnn train` and `eirnn tune` print: one screen on the data and the model before
training, and a closing block that says where everything went."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from eirnn.config import TrainConfig

RULE = "-" * 72


def quiet_tracking_logs() -> None:
    """MLflow's store creation logs a dozen database-migration lines at INFO; the user's first
    output should be about their data."""
    for name in (
        "alembic",
        "mlflow.store.db.utils",
        "mlflow.tracking.fluent",
        "mlflow.store.tracking.sqlalchemy_store",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def _rows(rows: list[tuple[str, str]]) -> str:
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"  {key.ljust(width)}  {value}" for key, value in rows)


def data_summary(prepared: Any, config: TrainConfig) -> str:
    """The data, its split and the model about to be trained, in about ten lines."""
    model = prepared.model
    n_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rows = [
        *_data_rows(prepared.dataset, prepared.train, prepared.val, config),
        (
            "model",
            f"{model.n_units} units ({model.n_e} E, {model.n_i} I), {config.input_embed_type} embedding "
            f"{config.input_embed_dim}, {config.activation}, tau {config.tau:g} ms; {n_parameters:,} parameters",
        ),
        *_training_rows(config),
    ]
    return "\n".join([RULE, _rows(rows), RULE])


def study_data_summary(dataset: Any, config: TrainConfig) -> str:
    """The data and its split before a study (each trial builds its own model)."""
    from eirnn.pipeline import split

    train, val = split(dataset, config)
    return "\n".join([RULE, _rows([*_data_rows(dataset, train, val, config), *_training_rows(config)]), RULE])


def _data_rows(data: Any, train: Any, val: Any, config: TrainConfig) -> list[tuple[str, str]]:
    from eirnn.pipeline import dataset_sha256

    neurons = f"{data.n_neurons} ({data.n_e} E, {data.n_i} I)" if data.is_labeled else f"{data.n_neurons} (unlabeled)"
    split = (
        f"{train.n_trials} training / {val.n_trials} validation trials (stratified by condition, seed {config.seed})"
        if train is not val
        else f"{train.n_trials} condition-averaged trials: fitted and scored on the same trials"
    )
    return [
        ("data", f"{data.meta.get('source_file') or data.name}  (sha256 {dataset_sha256(data)[:12]})"),
        ("neurons", neurons),
        ("trials", f"{data.n_trials} in {data.n_conditions} conditions; {split}"),
        ("time", f"{data.n_bins} bins x {data.bin_ms:g} ms = {data.n_bins * data.bin_ms:g} ms per trial"),
        ("signal", ("spike counts" if data.has_counts else "firing rates (Hz)") + f"; {data.n_inputs} inputs"),
        ("behaviour", f"{data.n_outputs} ({', '.join(data.behavior_names)})" if data.n_outputs else "none"),
    ]


def _training_rows(config: TrainConfig) -> list[tuple[str, str]]:
    batch = f"batches of {config.batch_size}" if config.batch_size else "full batch"
    return [
        (
            "training",
            f"up to {config.max_epochs} epochs (patience {config.patience}), {config.loss} loss, "
            f"lr {config.learning_rate:g}, {batch}, {config.device}",
        ),
    ]


def ui_hint(experiment_id: str, run_id: str | None = None) -> list[tuple[str, str]]:
    """How to see it: the command that serves this store, and the model-training address."""
    import mlflow

    from eirnn.tracking.run_summary import experiment_url, run_url

    uri = mlflow.get_tracking_uri()
    url = run_url(experiment_id, run_id) if run_id else experiment_url(experiment_id)
    if uri.startswith(("http://", "https://")):
        return [("open", url)]
    return [("ui", f"eirnn ui --open   (or: mlflow ui --backend-store-uri {uri})"), ("open", url)]


def closing_block(summary: Any) -> str:
    """The end of `eirnn train`: run, score against the ceiling, epochs, report, UI, registry."""
    rows = [
        ("run", f"{summary.run_name}  (id {summary.run_id})"),
        ("experiment", f"{summary.experiment_name}  (id {summary.experiment_id})"),
        ("score", summary.score_line),
        ("epochs", summary.stop_line),
        ("report", f"{summary.report_path} in the run's artifacts; locally: eirnn report {summary.run_id}"),
        ("registry", summary.registry_line),
        *ui_hint(summary.experiment_id, summary.run_id),
        *([("note", summary.experiment_hint)] if summary.experiment_hint else []),
    ]
    return "\n".join([RULE, "eirnn train: done", _rows(rows), RULE])


def folder_closing_block(result: Any) -> str:
    """The end of `eirnn train --no-tracking`: the folder, score against the ceiling, epochs."""
    from eirnn.metrics import NOISE_CEILING_OF

    config, fit = result.config, result.fit
    ceiling_name = NOISE_CEILING_OF.get(config.selection_metric)
    ceiling = result.final_metrics.get(ceiling_name) if ceiling_name else None
    against = f" (noise ceiling {ceiling:.3f})" if ceiling is not None and ceiling == ceiling else ""
    rows = [
        ("folder", str(result.folder)),
        ("score", f"{config.selection_metric} {fit.best_selection_score:.3f}{against}"),
        ("epochs", f"best {fit.best_epoch} of {fit.total_epochs} ({fit.stop_reason})"),
        ("report", f"{result.folder / 'report.md'}; redraw: eirnn report {result.folder}"),
    ]
    return "\n".join([RULE, "eirnn train: done (not tracked)", _rows(rows), RULE])


def print_block(text: str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(text + "\n")
    stream.flush()
