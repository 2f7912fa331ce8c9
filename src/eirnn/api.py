"""The public entry points: `eirnn.train`, its `TrainingResult`, and `eirnn.split`.

    import eirnn
    result = eirnn.train("recording.mat", max_epochs=300, tau=50.0)
    result.metrics["cond_psth_corr"], result.model_version, result.is_champion

`eirnn.train` does what `eirnn train` does: one MLflow run (in the tracking store that
`MLFLOW_TRACKING_URI` or `mlflow.set_tracking_uri` names) with the settings as params, metrics
per epoch, the run folder, figures and report.md as artifacts, the model logged and registered
under the champion rule. With `tracking=False` (`eirnn train --no-tracking`) the same run goes
into a plain folder and no tracking store is created. `eirnn.training_run` (the run) and
`eirnn.tracking` (its MLflow sink) are the internals behind it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eirnn.config import ConfigError, TrainConfig

if TYPE_CHECKING:
    from eirnn.data import NeuralDataset
    from eirnn.evaluation import Evaluation
    from eirnn.model import EIRNN
    from eirnn.tracking.mlflow_run import TrainingOutcome
    from eirnn.training import FitResult
    from eirnn.training_run import RunResult
    from eirnn.tuning.ensemble_summary import EnsembleResult


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """What `eirnn.train` returns.

    run_id: the MLflow run that holds params, metrics and artifacts (None with `tracking=False`).
    model: the fitted network with its best weights (the epoch of the best validation PSTH
        correlation), in eval mode on the CPU.
    config: the settings it was trained with.
    metrics: the final scalar metrics by the core's names (psth_corr, cond_psth_corr,
        noise_ceiling, psth_r2, bits_per_spike, ..., best_val_psth_corr, best_epoch), logged on the
        run as `final/NAME` (counts, flags and times as `eirnn.fit.NAME` tags); NaN where the data
        cannot support a metric (`evaluation` says why).
    history: one dict per epoch (train_loss, val_loss, val_psth_corr, ..., epoch).
    fit: the training summary (best epoch, stop reason, seconds, best weights).
    evaluation: every metric on the validation trials, with its reason where not available.
    dataset, train, val: the data and its train/validation split (the same trials when the data
        has one pseudo-trial per condition and nothing can be held out).
    model_uri: the logged MLflow model; model_version: its registered version (None when
        `register=False`); champion_version: the version the `champion` alias points to now
        (all three None with `tracking=False`).
    folder: the run folder with `tracking=False` (metrics.json, figures/, report.md, model/);
        None for a tracked run, whose run folder is its MLflow artifacts.
    """

    run_id: str | None
    model: EIRNN
    config: TrainConfig
    metrics: dict[str, float]
    history: list[dict[str, float]]
    fit: FitResult
    evaluation: Evaluation
    dataset: NeuralDataset
    train: NeuralDataset
    val: NeuralDataset
    model_uri: str | None
    model_version: str | None
    champion_version: str | None
    folder: Path | None = None

    @property
    def is_champion(self) -> bool:
        """Whether this run's registered version became the registry's champion."""
        return self.model_version is not None and self.model_version == self.champion_version

    @classmethod
    def from_outcome(cls, outcome: TrainingOutcome) -> TrainingResult:
        """A tracked run's result."""
        tracked = dict(model_uri=outcome.model_uri, model_version=outcome.model_version)
        return cls._from_run(outcome.result, outcome.run_id, **tracked, champion_version=outcome.champion_version)

    @classmethod
    def from_folder_run(cls, result: RunResult) -> TrainingResult:
        """The result of a run kept in a plain folder."""
        return cls._from_run(
            result, None, model_uri=None, model_version=None, champion_version=None, folder=result.folder
        )

    @classmethod
    def _from_run(cls, result: RunResult, run_id: str | None, **where: Any) -> TrainingResult:
        prepared = result.prepared
        return cls(
            run_id=run_id,
            model=prepared.model.eval(),
            config=result.config,
            metrics=result.final_metrics,
            history=result.fit.history,
            fit=result.fit,
            evaluation=result.evaluation,
            dataset=prepared.dataset,
            train=prepared.train,
            val=prepared.val,
            **where,
        )


def make_config(data: str | Path | None = None, **settings: Any) -> TrainConfig:
    """A TrainConfig from keyword settings (its field names), with `data` as the data file;
    an unknown name is a ConfigError that lists the known ones."""
    known = {spec.name for spec in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"unknown settings {', '.join(unknown)}; TrainConfig has: {', '.join(sorted(known))}")
    if data is not None:
        settings["data"] = str(data)
    return TrainConfig(**settings)


def train(
    data: str | Path | NeuralDataset | None = None,
    *,
    register: bool = True,
    callbacks: Sequence[Any] = (),
    tracking: bool = True,
    out: str | Path | None = None,
    **settings: Any,
) -> TrainingResult:
    """Fit a model to `data` under one MLflow run (or into a plain folder) and return the result.

    data: a data file (.npz, .mat, NWB; as `eirnn train --data`), a `NeuralDataset` already
        loaded, or None for the built-in synthetic recording.
    settings: `TrainConfig` fields by name (`eirnn train --help` lists them), e.g.
        ``max_epochs=300, tau=50.0, loss="poisson", experiment_name="m1"``.
    register: register the logged model under `registered_model_name` and apply the champion
        rule (the alias moves only to a version with a better validation selection score, among
        versions selected on the same metric and fitted to the same data).
    callbacks: objects with ``on_epoch_end(epoch, metrics) -> bool | None`` (True stops training).
    tracking: False runs the same pipeline with no MLflow run and no tracking store: the run
        folder (metrics.json, figures/, report.md, split.json, checkpoints/, model/) goes to
        `out` (default ``eirnn-runs/NAME-TIME``), and `register` does not apply.
    out: the run folder when `tracking` is False.

    A tracked run that fails ends FAILED in MLflow with the error in its `eirnn.error` tag, and
    the error propagates.

    Examples
    --------
    A short fit of a small built-in recording, kept in a folder (no tracking store):

    >>> import tempfile
    >>> import eirnn
    >>> from eirnn.data.synthetic import make_recording
    >>> dataset, _ = make_recording(seed=0, n_e=8, n_i=3, n_trials=40, n_bins=20)
    >>> result = eirnn.train(
    ...     dataset,
    ...     tracking=False,
    ...     out=tempfile.mkdtemp(),
    ...     max_epochs=2,
    ...     input_embed_dim=8,
    ...     attention_heads=2,
    ...     threads=1,
    ...     log_figures=False,
    ... )
    >>> result.run_id, result.fit.total_epochs, (result.folder / "report.md").is_file()
    (None, 2, True)
    >>> -1 <= result.metrics["cond_psth_corr"] <= 1
    True
    """
    dataset = None
    if data is not None and not isinstance(data, str | Path):
        dataset, data = data, None
    config = make_config(data, **settings)
    if not tracking:
        from eirnn.training_run import train_into_folder

        return TrainingResult.from_folder_run(train_into_folder(config, out, dataset=dataset, callbacks=callbacks))
    from eirnn.tracking.mlflow_run import train_and_log

    outcome = train_and_log(config, dataset=dataset, callbacks=callbacks, register=register)
    return TrainingResult.from_outcome(outcome)


def ensemble(
    data: str | Path | NeuralDataset | None = None,
    *,
    n_fits: int = 8,
    n_workers: int = 1,
    bootstrap_trials: bool = False,
    ei_ratios: Sequence[float] = (),
    storage: str = "",
    **settings: Any,
) -> EnsembleResult:
    """Fit `data` `n_fits` times under one MLflow parent run (children `fit-N`) and return what the
    fits agree on, as `eirnn ensemble` does.

    The model seed varies between fits (`seed`, `seed + 1`, ...); `bootstrap_trials` gives each fit
    its own resample of the training trials; `ei_ratios` varies the hidden units. `n_workers` local
    single-thread processes run the fits; a fit whose worker dies is run again. `settings` are
    `TrainConfig` fields. The answers and the verdict rule: docs/metrics.md (Ensembles).

    Examples
    --------
    Two one-epoch fits of a small recording in a fresh tracking store (the ensemble's optuna
    storage goes beside it), each asked the circuit questions (`eirnn.circuit_answers`):

    >>> import tempfile
    >>> import mlflow
    >>> import eirnn
    >>> from eirnn.data.synthetic import make_recording
    >>> folder = tempfile.mkdtemp()
    >>> previous = mlflow.get_tracking_uri()
    >>> mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    >>> _ = mlflow.create_experiment("docs", artifact_location=f"{folder}/artifacts")
    >>> dataset, _ = make_recording(seed=0, n_e=6, n_i=2, n_trials=16, n_bins=20, n_conditions=2, n_inputs=4)
    >>> result = eirnn.ensemble(
    ...     dataset,
    ...     n_fits=2,
    ...     experiment_name="docs",
    ...     registered_model_name="docs-ensemble",
    ...     max_epochs=1,
    ...     input_embed_dim=8,
    ...     attention_heads=2,
    ...     threads=1,
    ... )  # doctest: +ELLIPSIS
    ensemble 'ensemble': 2 fits, parent run ...
    >>> len(result.fit_run_ids), len(result.answers), result.scores["n_fits"]
    (2, 2, 2.0)
    >>> 0 <= result.scores["coverage"] <= 1, result.agreement["silence_I"].agreed.shape  # [conditions, neurons]
    (True, (2, 8))
    >>> mlflow.set_tracking_uri(previous)
    """
    from eirnn.pipeline import load_configured_data_and_truth
    from eirnn.tuning.ensemble import EnsembleSettings, run_ensemble

    dataset = None
    if data is not None and not isinstance(data, str | Path):
        dataset, data = data, None
    config = make_config(data, **{"log_figures": False, **settings})
    truth = None  # a data set handed over in memory carries no ground truth
    if dataset is None:
        dataset, truth = load_configured_data_and_truth(config)
    ensemble_settings = EnsembleSettings(
        n_fits=n_fits,
        n_workers=n_workers,
        bootstrap_trials=bootstrap_trials,
        ei_ratios=tuple(float(ratio) for ratio in ei_ratios),
        storage=storage,
        run_name=config.run_name or "ensemble",
    )
    return run_ensemble(config, ensemble_settings, dataset=dataset, truth=truth)  # type: ignore[return-value]


def split(dataset: NeuralDataset, config: TrainConfig | None = None) -> tuple[NeuralDataset, NeuralDataset]:
    """(train, validation) trials as a run with `config` split them (e.g. a loaded model's
    ``train_config``): stratified by condition with the split seed (`split_seed`, default `seed`)
    and `config.val_fraction`, without the test trials when `config.test_fraction` > 0.
    Condition-averaged data (one pseudo-trial per condition) is returned as (dataset, dataset).

    Examples
    --------
    >>> import eirnn
    >>> from eirnn.data.synthetic import make_recording
    >>> dataset, _ = make_recording(seed=0, n_e=8, n_i=3, n_trials=40, n_bins=20)
    >>> train, val = eirnn.split(dataset)  # the default settings: val_fraction 0.2
    >>> train.n_trials, val.n_trials, set(train.trial_ids) & set(val.trial_ids)
    (32, 8, set())
    """
    from eirnn.pipeline import split as split_trials

    return split_trials(dataset, config if config is not None else TrainConfig())
