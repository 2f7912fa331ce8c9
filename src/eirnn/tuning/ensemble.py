"""Ensembles of fits: the same data and settings fitted `n_fits` times (model seed, optionally
a bootstrap resample of the training trials and the hidden-unit count varying), every fit a
child run `fit-N` of one parent run, and what the fits agree on summarised on the parent.

The fits are trials of an Optuna study (`eirnn.tuning.ensemble_fits`) in an RDB storage
(default: SQLite beside the tracking store), so that heartbeats catch a worker that died and its
fit is run again. The invocation that opens the parent (the lead) enqueues the fits, runs them
on `n_workers` local single-thread processes, takes over any fit left behind by a worker that
died, and writes the summary (`eirnn.tuning.ensemble_summary`). On several machines: the lead
with n_workers=0 waits; `eirnn ensemble --parent-run-id ID --storage URL` starts workers
elsewhere (a plain command, so a scheduler can launch it). With launcher "slurm" the lead submits
`n_workers` such commands as SLURM jobs and tops them up while fits are missing
(`eirnn.tuning.slurm_workers`).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from eirnn.config import ConfigError, TrainConfig, config_from_args
from eirnn.console import print_block
from eirnn.ensemble_report import true_answers
from eirnn.logged_names import ENSEMBLE_TAG, RUN_NAME_TAG
from eirnn.pipeline import load_configured_data_and_truth, split
from eirnn.tracking.run_records import experiment_id_for, log_new_params
from eirnn.tracking.run_summary import run_url
from eirnn.tuning.dead_trials import end_runs_of_requeued_trials, fail_dead_trials
from eirnn.tuning.ensemble_fits import (
    POLL_S,
    EnsembleJob,
    completed_fits,
    enqueue_fits,
    fit_settings,
    run_fits,
    unfinished_fits,
)
from eirnn.tuning.ensemble_options import ENSEMBLE_HEARTBEAT_S, parse_ratios
from eirnn.tuning.ensemble_summary import EnsembleResult, summarize_ensemble
from eirnn.tuning.launcher import SlurmSettings, SlurmWorkers, slurm_settings_from_args
from eirnn.tuning.slurm_workers import check_slurm_storage, keep_workers, submit_ensemble_workers
from eirnn.tuning.storage import open_storage, store_folder
from eirnn.tuning.workers import _trial_environment, ending_parent_on_error

DEFAULT_STORAGE_FILE = "eirnn-ensembles.db"


@dataclass
class EnsembleSettings:
    """What `eirnn ensemble` adds to a TrainConfig. `ei_ratios`: E:I ratios the fits cycle
    through (hidden units vary with them; empty: the config's). `storage`: an RDB URL (empty:
    SQLite beside a local tracking store, else in the working folder)."""

    n_fits: int = 8
    n_workers: int = 1
    bootstrap_trials: bool = False
    ei_ratios: tuple[float, ...] = field(default_factory=tuple)
    storage: str = ""
    parent_run_id: str = ""
    heartbeat_s: int = ENSEMBLE_HEARTBEAT_S
    run_name: str = "ensemble"
    launcher: str = "local"  # local processes, or SLURM jobs of `slurm` (eirnn.tuning.slurm_workers)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)


def ensemble_storage(spec: str) -> str:
    """An RDB URL: heartbeats, which find dead workers, need one (a journal file has none)."""
    if spec:
        if "://" not in spec:
            raise ConfigError(
                f"storage: an ensemble needs an RDB URL (sqlite:///..., postgresql://...), found {spec!r}"
            )
        return spec
    return f"sqlite:///{store_folder() / DEFAULT_STORAGE_FILE}"


def study_name_of(parent_run_id: str) -> str:
    return f"ensemble-{parent_run_id}"


def _open_parent(client: MlflowClient, config: TrainConfig, settings: EnsembleSettings) -> str:
    run_id = os.environ.get("MLFLOW_RUN_ID") or client.create_run(experiment_id_for(config)).info.run_id
    client.set_tag(run_id, RUN_NAME_TAG, settings.run_name)
    client.set_tag(run_id, ENSEMBLE_TAG, settings.run_name)
    ratios = ",".join(f"{ratio:g}" for ratio in settings.ei_ratios)
    extra = {"n_fits": settings.n_fits, "n_workers": settings.n_workers, "bootstrap_trials": settings.bootstrap_trials}
    log_new_params(client, run_id, {**extra, "ei_ratios": ratios, **config.to_dict()})
    return run_id


def _local_workers(jobs: list[EnsembleJob]) -> None:
    """Run the jobs on spawned processes; one that dies leaves its fit to the heartbeat check."""
    context = multiprocessing.get_context("spawn")  # torch and database connections do not survive a fork
    workers = [
        context.Process(target=run_fits, args=(job,), name=f"eirnn-fit-worker-{n}") for n, job in enumerate(jobs)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for worker in workers:
        if worker.exitcode:
            print(f"{worker.name} ended with exit code {worker.exitcode}; its fit is run again", flush=True)


def _wait_for_fits(
    study: optuna.Study, parent_run_id: str, n_fits: int, on_poll: Callable[[int], None] | None = None
) -> None:
    """Wait until every fit has finished; `on_poll(finished)` after each look (SLURM: top up)."""
    shown = None
    while left := unfinished_fits(study, parent_run_id):
        if left != shown:
            print(f"waiting for fits {sorted(left)}", flush=True)
            shown = left
        fail_dead_trials(study)
        if on_poll is not None:
            on_poll(n_fits - len(left))
        time.sleep(POLL_S)


def _check_settings(config: TrainConfig, settings: EnsembleSettings) -> None:
    fewest_workers = 1 if settings.launcher == "slurm" else 0  # a SLURM lead runs no fits itself
    if settings.n_fits < 1 or settings.n_workers < fewest_workers:
        raise ConfigError(
            f"n-fits must be >= 1 and n-workers >= {fewest_workers}, found {settings.n_fits} and {settings.n_workers}"
        )
    if config.resume:
        raise ConfigError("resume: the fits of an ensemble cannot resume a run")


def _run_workers(
    study: optuna.Study, job: EnsembleJob, settings: EnsembleSettings
) -> tuple[SlurmWorkers | None, Callable[[int], None] | None]:
    """Run the fits on local workers (returns no SLURM workers), or submit the SLURM workers
    (returns them and the lead's check that tops them up)."""
    if settings.launcher == "slurm":
        workers, commands_for = submit_ensemble_workers(job, settings.n_fits, settings.n_workers, settings.slurm)
        print(
            f"{len(commands_for(settings.n_fits))} worker(s) submitted to SLURM as job {workers.job_ids[0]}, "
            f"output in {workers.log_dir}",
            flush=True,
        )
        return workers, keep_workers(study, settings.n_fits, workers, commands_for, task="fit")
    with _trial_environment():
        if settings.n_workers > 1:
            _local_workers([job] * settings.n_workers)
        if settings.n_workers >= 1:
            run_fits(job)  # the fits a dead worker left behind, once their heartbeat has stopped
    return None, None


def _ask_truth_meanwhile(
    thread: ThreadPoolExecutor, truth: Any, dataset: Any, config: TrainConfig
) -> Future[Any] | None:
    """The true network's answers for the calibration (a fact of the data, asked once), on a thread
    of the lead while the fits run: the lead would otherwise ask them after the last fit, alone."""
    if truth is None:
        return None
    return thread.submit(true_answers, truth, split(dataset, config)[1], config.seed)


def run_ensemble(
    config: TrainConfig, settings: EnsembleSettings, dataset: Any = None, truth: Any = None
) -> EnsembleResult | None:
    """Fit `settings.n_fits` models and summarise what they agree on (the lead), or, with
    `settings.parent_run_id`, run fits of that ensemble as a worker (returns None)."""
    _check_settings(config, settings)
    leading = not settings.parent_run_id
    storage_spec = ensemble_storage(settings.storage)
    if settings.launcher == "slurm":
        check_slurm_storage(storage_spec, leading)
    if dataset is None:
        dataset, truth = load_configured_data_and_truth(config)
    storage = open_storage(storage_spec, settings.heartbeat_s)
    client = MlflowClient()
    if leading:
        parent_run_id = _open_parent(client, config, settings)
        study = optuna.create_study(study_name=study_name_of(parent_run_id), storage=storage)
        enqueue_fits(
            study, fit_settings(config, settings.n_fits, settings.bootstrap_trials, settings.ei_ratios), parent_run_id
        )
    else:
        parent_run_id = settings.parent_run_id
        study = optuna.load_study(study_name=study_name_of(parent_run_id), storage=storage)
    # one thread per local worker: several single-thread fits beat one on every core
    threads = config.threads or (settings.slurm.cpus_per_worker if settings.launcher == "slurm" else 1)
    job = EnsembleJob(
        study.study_name,
        storage_spec,
        config.replace(threads=threads),
        parent_run_id,
        dataset,
        mlflow.get_tracking_uri(),
        settings.heartbeat_s,
        asks_null=truth is not None,
    )
    print(
        f"ensemble {settings.run_name!r}: {settings.n_fits} fits, parent run {parent_run_id}, storage {storage_spec}; "
        f"more workers: eirnn ensemble --parent-run-id {parent_run_id} --storage {storage_spec} (same settings)",
        flush=True,
    )
    with ending_parent_on_error(client, parent_run_id, leading), ThreadPoolExecutor(1) as lead_thread:
        true = _ask_truth_meanwhile(lead_thread, truth, dataset, config) if leading else None
        workers, on_poll = None, None
        try:
            workers, on_poll = _run_workers(study, job, settings)
            if not leading:
                return None
            _wait_for_fits(study, parent_run_id, settings.n_fits, on_poll)
        finally:
            if workers is not None:  # workers still queued once the fits are done (or given up) have nothing to do
                workers.cancel()
        end_runs_of_requeued_trials(client, study, parent_run_id)
        completed = completed_fits(study, parent_run_id)
        result = summarize_ensemble(
            client, completed, parent_run_id, config, dataset, None if true is None else true.result(), settings.n_fits
        )
        client.set_terminated(parent_run_id, "FINISHED")
        return result


def run_ensemble_from_args(args: Any) -> EnsembleResult | None:
    """`eirnn ensemble`: the ensemble flags (eirnn.tuning.ensemble_options) into EnsembleSettings,
    the rest into a TrainConfig."""
    config = config_from_args(args)
    settings = EnsembleSettings(
        n_fits=args.n_fits,
        n_workers=args.n_workers,
        bootstrap_trials=args.bootstrap_trials,
        ei_ratios=parse_ratios(args.ei_ratios),
        storage=args.storage,
        parent_run_id=args.parent_run_id,
        heartbeat_s=args.heartbeat_seconds,
        run_name=config.run_name or "ensemble",
        launcher=args.launcher,
        slurm=slurm_settings_from_args(args),
    )
    result = run_ensemble(config, settings)
    if result is None:
        print(f"fits done; the lead of parent run {settings.parent_run_id} writes the summary")
        return None
    experiment_id = MlflowClient().get_run(result.parent_run_id).info.experiment_id
    print_block(closing_block(result, config, run_url(experiment_id, result.parent_run_id)))
    return result


def closing_block(result: EnsembleResult, config: TrainConfig, url: str) -> str:
    """What the user reads last: how many answers the fits agree on, where to look, how to load."""
    scores = result.scores
    failed = int(scores["n_fits_failed"])
    fits = f"{int(scores['n_fits'])} fits" + (f" ({failed} more failed: see their runs)" if failed else "")
    lines = [
        f"ensemble of {fits}: {int(scores['n_agreed'])} of {int(scores['n_answers'])} "
        f"circuit answers agreed (coverage {scores['coverage']:.2f}; rule and answers: docs/metrics.md, Ensembles)",
        f"  fits' {config.selection_metric}: {scores['fit_score_mean']:.3f} +- {scores['fit_score_spread']:.3f}; "
        f"ensemble-mean rates: cond_psth_corr {scores['mean_cond_psth_corr']:.3f}",
    ]
    if result.calibration is not None:
        calibration = result.calibration
        lines.append(
            f"  against the true circuit: agreed answers {calibration['precision_agreed']:.3f} right "
            f"(block-shuffled null {calibration['null_precision_on_agreed']:.3f}), not agreed "
            f"{calibration['precision_not_agreed']:.3f}"
        )
    lines += [
        f"  report: the parent run's report.html, {url}",
        f"  load: eirnn.load_model({config.registered_model_name!r}, version={result.model_version}).predict(inputs)"
        " -> (mean Hz, spread Hz)",
    ]
    return "\n".join(lines)
