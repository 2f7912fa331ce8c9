"""`eirnn ui`: the MLflow UI on the store that runs are logged to, opened on the experiment in its
model-training view (MLflow 3 opens experiments as GenAI unless the address says otherwise)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import webbrowser

import mlflow
from mlflow.tracking import MlflowClient

from eirnn.tracking.run_summary import MODEL_TRAINING_VIEW, experiment_url

READY_TIMEOUT_S = 120


def free_port(host: str, preferred: int) -> int:
    """`preferred` if nothing listens there, else a free port the system picks."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError(f"no free port on {host}")


def ui_command(host: str, port: int, backend_uri: str | None = None) -> list[str]:
    """`mlflow ui` on `backend_uri` (default: the tracking URI the runs use)."""
    uri = backend_uri or mlflow.get_tracking_uri()
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]


def start_ui(host: str, port: int, backend_uri: str | None = None, **popen_args) -> subprocess.Popen:
    """`mlflow ui` in its own process group: it starts server workers, and stop_server ends them all.
    MLflow's GenAI job runner stays off unless the environment turns it on: eirnn runs no GenAI
    jobs, and its two extra processes double the server's start on a small machine."""
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **popen_args.pop("env", os.environ)}
    return subprocess.Popen(ui_command(host, port, backend_uri), start_new_session=True, env=env, **popen_args)


def stop_server(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """End a server started in its own session (`mlflow ui`, `mlflow server`, `mlflow models
    serve`) with every worker it forked: SIGTERM to the group, SIGKILL after `timeout_s`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_ready(address: str, process: subprocess.Popen | None = None, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"mlflow ui exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{address}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow ui did not answer at {address} within {timeout_s:g} s")


def experiment_address(base: str, experiment_name: str) -> str:
    """The experiment's model-training view, or the experiment list when it does not exist yet."""
    experiment = MlflowClient().get_experiment_by_name(experiment_name)
    if experiment is None:
        return f"{base}/#/experiments?{MODEL_TRAINING_VIEW}"
    return experiment_url(experiment.experiment_id, base)


def serve_ui(experiment_name: str, *, host: str = "127.0.0.1", port: int = 5000, open_browser: bool = False) -> int:
    """Start `mlflow ui`, print (and optionally open) the experiment's address, serve until Ctrl-C."""
    port = free_port(host, port)
    base = f"http://{host}:{port}"
    # the server's request log goes to stderr: stdout carries the address, for scripts to read
    process = start_ui(host, port, stdout=sys.stderr)
    # a terminated `eirnn ui` takes its server down with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        wait_until_ready(base, process)
        address = experiment_address(base, experiment_name)
        print(f"MLflow UI on {mlflow.get_tracking_uri()}\n  open {address}\n  (Ctrl-C stops it)", flush=True)
        if open_browser:
            webbrowser.open(address)
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(process)
