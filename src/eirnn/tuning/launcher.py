"""Worker processes as SLURM jobs: one `sbatch` job array per submission, task i running the i-th
worker command, with the partition, wall time, CPUs and memory of `SlurmSettings`.

Reusable by any command whose workers share their work through a database (a study's trials,
an ensemble's fits): the caller builds one command line per worker, submits them, and while it
waits calls `SlurmWorkers.top_up` with the work still missing; once every job has ended (done,
killed at its wall time, cancelled, its node lost) and work is missing, `top_up` submits new
workers for it. A worker killed mid-task leaves that task for the database's own recovery (for
studies: heartbeats, `eirnn.tuning.dead_trials`), so the caller passes `top_up` the work
missing once that recovery has run. Kept free of optuna and mlflow: `eirnn --help` imports it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LAUNCHERS = ("local", "slurm")
DEFAULT_LOG_DIR = "eirnn-slurm"
#: submissions in a row that end without any new work done before the caller is told to stop
MAX_FRUITLESS_SUBMISSIONS = 3


class LauncherError(RuntimeError):
    """SLURM refused a submission, or its workers keep ending without doing any work."""


@dataclass(frozen=True)
class SlurmSettings:
    """Resources of each worker job. `time_limit` in SLURM's format (minutes, or
    [days-]hours:minutes:seconds); `memory` as sbatch's --mem (4G, 500M); `partition` empty: the
    cluster's default; `log_dir`: where job scripts and worker output go, on a file system the
    nodes share (empty: ./eirnn-slurm)."""

    partition: str = ""
    time_limit: str = "02:00:00"
    cpus_per_worker: int = 1
    memory: str = "4G"
    log_dir: str = ""

    def __post_init__(self) -> None:
        if self.cpus_per_worker < 1:
            raise ValueError(f"slurm-cpus-per-worker: must be >= 1, found {self.cpus_per_worker}")

    def sbatch_options(self) -> list[str]:
        options = [f"--time={self.time_limit}", f"--cpus-per-task={self.cpus_per_worker}", f"--mem={self.memory}"]
        return options + ([f"--partition={self.partition}"] if self.partition else [])


@dataclass
class SlurmWorkers:
    """The worker jobs of one invocation: submitted, counted while alive, topped up, cancelled.
    `job_name` must be unique to the invocation (its jobs are found by it)."""

    settings: SlurmSettings
    job_name: str
    job_ids: list[str] = field(default_factory=list)
    fruitless: int = 0
    done_at_last_submission: int = 0

    @property
    def log_dir(self) -> Path:
        return Path(self.settings.log_dir or DEFAULT_LOG_DIR).resolve()

    def submit(self, commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None) -> str:
        """Submit one job array whose task i runs `commands[i]` (replacing the job's shell, so
        that SLURM's SIGTERM reaches the worker); returns the job id. `env` is the workers'
        environment (default: this process's)."""
        if not commands:
            raise ValueError("no worker commands to submit")
        require_slurm()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        script = self.log_dir / f"{self.job_name}-{len(self.job_ids)}.sh"
        cases = "\n".join(f"    {index}) exec {shlex.join(command)} ;;" for index, command in enumerate(commands))
        script.write_text(f'#!/bin/bash\ncase "$SLURM_ARRAY_TASK_ID" in\n{cases}\nesac\n')
        arguments = [
            "sbatch",
            "--parsable",
            f"--job-name={self.job_name}",
            f"--array=0-{len(commands) - 1}",
            f"--output={self.log_dir / '%x-%A_%a.out'}",
            f"--chdir={Path.cwd()}",
            "--export=ALL",
            *self.settings.sbatch_options(),
            str(script),
        ]
        result = subprocess.run(arguments, capture_output=True, text=True, env=dict(env or os.environ))
        if result.returncode != 0:
            raise LauncherError(f"sbatch refused the workers ({shlex.join(arguments)}): {result.stderr.strip()}")
        job_id = result.stdout.strip().split(";")[0]
        self.job_ids.append(job_id)
        return job_id

    def alive(self) -> int:
        """Tasks of this invocation's jobs that are pending, running or requeued."""
        if not self.job_ids:
            return 0
        # by name, not by id: squeue refuses a list of ids when it has forgotten one of them
        result = subprocess.run(
            ["squeue", "--noheader", "--array", "--format=%i", f"--name={self.job_name}"],
            capture_output=True,
            text=True,
            check=True,
        )
        return len(result.stdout.split())

    def top_up(self, missing: int, done: int, commands_for: Callable[[int], list[list[str]]]) -> str | None:
        """Once no job is alive and `missing` work remains, submit `commands_for(missing)`.

        `done` counts the work finished so far; workers that end three times in a row without
        adding to it (a command that fails at once, a wall time too short for one task) raise
        LauncherError naming the log folder instead of being submitted forever."""
        if missing <= 0 or self.alive():
            return None
        if done > self.done_at_last_submission:
            self.fruitless = 0
        self.fruitless += 1
        if self.fruitless > MAX_FRUITLESS_SUBMISSIONS:
            raise LauncherError(
                f"SLURM workers ended {MAX_FRUITLESS_SUBMISSIONS} times in a row without finishing any work; "
                f"see their output in {self.log_dir}"
            )
        self.done_at_last_submission = done
        return self.submit(commands_for(missing))

    def cancel(self) -> None:
        if self.job_ids:
            subprocess.run(["scancel", *self.job_ids], capture_output=True, check=False)


def require_slurm() -> None:
    missing = [name for name in ("sbatch", "squeue", "scancel") if shutil.which(name) is None]
    if missing:
        raise LauncherError(f"launcher slurm: {', '.join(missing)} not found on PATH; is this a SLURM login node?")


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """`--launcher` and the SLURM resources of each worker job (see `slurm_settings_from_args`)."""
    group = parser.add_argument_group("launcher settings")
    defaults = SlurmSettings()
    group.add_argument(
        "--launcher",
        default="local",
        choices=LAUNCHERS,
        help="where workers run: local processes, or SLURM jobs (one sbatch job array; "
        "needs a database storage and a tracking server the nodes reach) (default: %(default)s)",
    )
    group.add_argument("--slurm-partition", default="", help='partition (default: "", the cluster\'s default)')
    group.add_argument(
        "--slurm-time", default=defaults.time_limit, help="wall time of each worker job (default: %(default)s)"
    )
    group.add_argument(
        "--slurm-cpus-per-worker",
        type=int,
        default=defaults.cpus_per_worker,
        help="CPUs of each worker job, its torch threads unless --threads is set (default: %(default)s)",
    )
    group.add_argument(
        "--slurm-memory", default=defaults.memory, help="memory of each worker job (default: %(default)s)"
    )
    group.add_argument(
        "--slurm-log-dir",
        default="",
        help=f'job scripts and worker output, on a shared file system (default: "", ./{DEFAULT_LOG_DIR})',
    )


def slurm_settings_from_args(args: argparse.Namespace) -> SlurmSettings:
    return SlurmSettings(
        partition=args.slurm_partition,
        time_limit=args.slurm_time,
        cpus_per_worker=args.slurm_cpus_per_worker,
        memory=args.slurm_memory,
        log_dir=args.slurm_log_dir,
    )
