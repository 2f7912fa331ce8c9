"""`--launcher slurm` for `eirnn tune` and `eirnn ensemble`: the lead opens the parent run and
the study as ever, then submits its workers as one SLURM job array (`eirnn.tuning.launcher`);
each task is an `eirnn tune --parent-run-id` (or `eirnn ensemble --parent-run-id`) worker on the
same database storage and tracking store. While the lead waits it fails the trials (fits) of
dead workers (heartbeats, `eirnn.tuning.dead_trials`: a worker cancelled or killed at its wall
time leaves a RUNNING trial that is failed and queued again) and, once no job is alive and no
trial runs, submits workers for the trials still missing, the re-queued ones first."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import optuna
from optuna.trial import TrialState

from eirnn.config import ConfigError
from eirnn.tuning.ensemble_fits import EnsembleJob
from eirnn.tuning.launcher import SlurmSettings, SlurmWorkers
from eirnn.tuning.search_space import SearchSpace, dump_search_space
from eirnn.tuning.settings import StudySettings
from eirnn.tuning.storage import storage_kind
from eirnn.tuning.workers import WorkerJob, split_trials


def check_slurm_storage(storage_spec: str, leading: bool) -> None:
    """SLURM workers need what several machines need: a database storage (heartbeats find the
    workers that died) and a lead to watch them."""
    if not leading:
        raise ConfigError("launcher: slurm submits the workers of a lead; start it without --parent-run-id")
    if "://" not in storage_spec or storage_kind(storage_spec) == "sqlite":
        raise ConfigError(
            "storage: --launcher slurm needs a database server the nodes reach (postgresql://...), "
            f"found {storage_spec!r}"
        )


def worker_command(job: WorkerJob, n_trials: int, space_file: Path) -> list[str]:
    """The `eirnn tune` command line of one worker of the lead's study, with the lead's settings."""
    pruner = job.pruner
    return [
        sys.executable,
        "-m",
        "eirnn.cli",
        "tune",
        f"--study-name={job.study_name}",
        f"--storage={job.storage}",
        f"--parent-run-id={job.parent_run_id}",
        f"--n-trials={n_trials}",
        "--n-workers=1",
        f"--search-space={space_file}",
        f"--pruner={pruner.kind}",
        f"--pruner-startup-trials={pruner.startup_trials}",
        *([f"--pruner-warmup-epochs={pruner.warmup_epochs}"] if pruner.warmup_epochs is not None else []),
        f"--heartbeat-seconds={job.heartbeat_s}",
        *job.config.command_line(),
    ]


def submit_study_workers(
    jobs: list[WorkerJob], settings: StudySettings, space: SearchSpace, threads: int
) -> tuple[SlurmWorkers, Callable[[int], list[list[str]]]]:
    """Submit one SLURM worker per local job, each on `threads` torch threads (0: its CPUs);
    returns the workers and the commands that share `n` missing trials among as many workers,
    for `SlurmWorkers.top_up`."""
    template = dataclasses.replace(
        jobs[0], config=jobs[0].config.replace(threads=threads or settings.slurm.cpus_per_worker)
    )
    workers = SlurmWorkers(settings.slurm, job_name=f"eirnn-tune-{template.parent_run_id}")
    workers.log_dir.mkdir(parents=True, exist_ok=True)
    space_file = workers.log_dir / f"{workers.job_name}-search_space.yaml"
    space_file.write_text(dump_search_space(space))

    def commands_for(n_trials: int) -> list[list[str]]:
        return [worker_command(template, share, space_file) for share in split_trials(n_trials, len(jobs))]

    workers.submit(commands_for(settings.n_trials), env=worker_environment())
    return workers, commands_for


def ensemble_worker_command(job: EnsembleJob, n_fits: int) -> list[str]:
    """The `eirnn ensemble` command line of one worker of the lead's ensemble: it takes waiting
    fits from the storage until none is left."""
    return [
        sys.executable,
        "-m",
        "eirnn.cli",
        "ensemble",
        f"--parent-run-id={job.parent_run_id}",
        f"--storage={job.storage}",
        f"--n-fits={n_fits}",
        "--n-workers=1",
        f"--heartbeat-seconds={job.heartbeat_s}",
        *job.config.command_line(),
    ]


def submit_ensemble_workers(
    job: EnsembleJob, n_fits: int, n_workers: int, slurm: SlurmSettings
) -> tuple[SlurmWorkers, Callable[[int], list[list[str]]]]:
    """Submit `n_workers` SLURM workers (at most one per fit); returns the workers and the
    commands of as many workers as `n` missing fits need (at most `n_workers`), for
    `SlurmWorkers.top_up`."""
    workers = SlurmWorkers(slurm, job_name=f"eirnn-ensemble-{job.parent_run_id}")
    command = ensemble_worker_command(job, n_fits)

    def commands_for(missing: int) -> list[list[str]]:
        return [command] * min(missing, n_workers)

    workers.submit(commands_for(n_fits), env=worker_environment())
    return workers, commands_for


def keep_workers(
    study: optuna.Study,
    n_tasks: int,
    workers: SlurmWorkers,
    commands_for: Callable[[int], list[list[str]]],
    task: str = "trial",
) -> Callable[[int], None]:
    """The lead's check on every poll, given the `finished` tasks (trials, fits) of its `n_tasks`:
    top up the workers once none is alive and no trial runs (a trial of a dead worker stays
    RUNNING until its heartbeats are missed)."""

    def check(finished: int) -> None:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running and workers.top_up(n_tasks - finished, finished, commands_for):
            print(f"submitted SLURM workers for the {n_tasks - finished} {task}(s) still missing", flush=True)

    return check


def worker_environment() -> dict[str, str]:
    """This process's environment (sbatch exports it to the jobs) with the tracking store named,
    and without `mlflow run`'s launcher run, which the trials must not attach to."""
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_RUN_ID"}
    env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    return env
