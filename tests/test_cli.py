"""What `eirnn` prints: grouped help with choices and true defaults, suggestions for mistakes,
the data summary and the closing block of a real `eirnn train` against a real SQLite store, and
the lineage that run records (datasets, code version)."""

import os
import re
import subprocess
import sys
from dataclasses import fields

import pytest
from conftest import REPO, small_flags, tracking_env
from mlflow.tracking import MlflowClient

from eirnn.config import GROUP_STARTS, TrainConfig, flag_name, mlproject_default
from eirnn.logged_names import SELECTION_METRIC
from eirnn.tracking.model_registry import CHAMPION


def eirnn(*args: str, env: dict | None = None, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eirnn.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or os.environ.copy(),
        cwd=cwd,
    )


def help_defaults(text: str) -> dict[str, str]:
    """{flag: default as printed} from argparse help (wrapped lines joined)."""
    flat = re.sub(r"\s+", " ", text)
    return dict(re.findall(r"(--[a-z0-9-]+) (?:\{[^}]*\}|[A-Z_]+) .*?\(default: ([^)]*)\)", flat))


@pytest.mark.parametrize("command", ["train", "tune"])
def test_help_is_grouped_with_choices_and_the_real_defaults(command):
    from eirnn.cli import build_parser

    result = eirnn(command, "--help")
    assert result.returncode == 0
    for group in GROUP_STARTS:
        assert f"{group} settings:" in result.stdout
    assert ("tuning settings:" in result.stdout) == (command == "tune")
    for choices in ("{attention,linear,mlp}", "{mse,poisson}", "{softplus,relu}", "{cpu,cuda,auto}"):
        assert choices in result.stdout
    printed = help_defaults(result.stdout)
    parsed = vars(build_parser().parse_args([command]))
    for spec in fields(TrainConfig):
        default = parsed[spec.name]
        assert printed[flag_name(spec.name)] == (mlproject_default(default) if default != "" else '""'), spec.name
    if command == "tune":
        assert printed["--log-figures"] == "false" and parsed["log_figures"] is False


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["train", "--tua", "20"], "did you mean --tau?"),
        (["trian"], "did you mean train?"),
        (["train", "--loss", "poison"], "did you mean poisson?"),
        (["tune", "--n-trail", "3"], "did you mean --n-trials?"),
    ],
)
def test_a_mistake_gets_a_suggestion(args, hint):
    result = eirnn(*args)
    assert result.returncode == 2
    assert hint in result.stderr


def test_abbreviated_flags_are_refused():
    result = eirnn("train", "--max-ep", "3")
    assert result.returncode == 2
    assert "unrecognized arguments: --max-ep" in result.stderr


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_recording_file):
    """One real `eirnn train` on the tiny recording, started from a folder outside the checkout."""
    folder = tmp_path_factory.mktemp("cli-run")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = tracking_env(uri, PYTHONPATH=str(REPO / "src"))
    result = eirnn("train", *small_flags(data=str(tiny_recording_file), max_epochs=4), env=env, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = re.search(r"run\s+\S+\s+\(id ([0-9a-f]{32})\)", result.stdout).group(1)
    return result, MlflowClient(tracking_uri=uri), run_id


def test_train_prints_the_data_then_a_closing_block(cli_run):
    result, client, run_id = cli_run
    out = result.stdout
    run = client.get_run(run_id)
    summary_at, closing_at = out.index("neurons    11 (8 E, 3 I)"), out.index("eirnn train: done")
    assert summary_at < closing_at
    assert "77 training / 19 validation trials" in out and "40 bins x 25 ms" in out
    closing = out[closing_at:]
    assert f"{run.info.run_name}  (id {run_id})" in closing
    assert f"eirnn  (id {run.info.experiment_id})" in closing
    score, ceiling = run.data.metrics[SELECTION_METRIC], run.data.metrics["final/cond_noise_ceiling"]
    assert f"validation cond_psth_corr {score:.3f} vs noise ceiling {ceiling:.3f}" in closing
    assert "4 of 4 epochs" in closing and "reached max_epochs" in closing
    assert f"report.html in the run's artifacts; locally: eirnn report {run_id}" in closing
    assert "mlflow ui --backend-store-uri sqlite:///" in closing
    assert f"/#/experiments/{run.info.experiment_id}/runs/{run_id}?workflowType=machine_learning" in closing
    champion = client.get_model_version_by_alias("eirnn", CHAMPION)
    assert f"eirnn version {champion.version}, now the champion" in closing
    assert "alembic" not in result.stderr  # the store's migration chatter is silenced


def test_run_logs_its_datasets_and_code_version(cli_run, tiny_recording_file):
    import mlflow

    _, client, run_id = cli_run
    mlflow.set_tracking_uri(client.tracking_uri)
    run = mlflow.get_run(run_id)
    inputs = {
        {tag.key: tag.value for tag in item.tags}["mlflow.data.context"]: item for item in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "validation"}
    assert run.data.params["bin_ms"] == "25.0"  # read from the file, not the 0 that means "from the file"
    sha256 = run.data.params["data.sha256"]
    assert len(sha256) == 64
    for item in inputs.values():
        assert item.dataset.name == "tiny.npz"
        assert str(tiny_recording_file) in item.dataset.source
        assert "inputs" in item.dataset.schema and item.dataset.digest
        assert {tag.key: tag.value for tag in item.tags}["eirnn.sha256"] == sha256
    assert inputs["training"].dataset.digest != inputs["validation"].dataset.digest
    git_head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert run.data.tags["eirnn.git_commit"] == git_head.stdout.strip()
    version = client.get_model_version_by_alias("eirnn", CHAMPION)
    assert version.tags["data_sha256"] == sha256


def test_builtin_recording_has_a_name_a_hash_and_its_bin():
    from eirnn.data.binned_files import arrays_sha256
    from eirnn.pipeline import BUILTIN_DATA_NAME, load_configured_data

    dataset = load_configured_data(TrainConfig())
    facts = dataset.facts()
    assert facts["data_file"] == BUILTIN_DATA_NAME
    assert facts["data_sha256"] == arrays_sha256(dataset) and len(facts["data_sha256"]) == 64
    assert facts["bin_ms"] == 25.0
    assert load_configured_data(TrainConfig()).facts()["data_sha256"] == facts["data_sha256"]


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_when_piped():
    import io

    from eirnn.training.progress import ProgressDisplay

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    piped, terminal = io.StringIO(), Terminal()
    for stream in (piped, terminal):
        display = ProgressDisplay(100, stream=stream)
        for epoch in range(100):
            # the score rises, then falls: the best shown stays at its peak
            display.on_epoch_end(epoch, {"train_loss": 0.5, "selection_score": min(epoch, 150 - epoch) / 200})
        display.close()
    lines = piped.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1/100", *(f"{n}/100" for n in range(5, 101, 5))]
    assert "loss 0.5000  val cond_psth_corr 0.255  best 0.375" in lines[-1] and "ETA 0:00" in lines[-1]
    drawn = terminal.getvalue()
    assert drawn.count("\r") == 100 and drawn.endswith("\n")
    assert "[" + "#" * 24 + "] epoch 100/100" in drawn


def test_train_output_shows_progress_when_piped(cli_run):
    result, _, _ = cli_run
    assert "epoch 1/4" in result.stderr and "epoch 4/4" in result.stderr


def test_eirnn_ui_serves_the_store_and_prints_the_model_training_address(cli_run):
    import urllib.request

    from eirnn.tracking.ui import free_port

    _, client, run_id = cli_run
    experiment_id = client.get_run(run_id).info.experiment_id
    port = free_port("127.0.0.1", 0)
    env = tracking_env(client.tracking_uri, PYTHONPATH=str(REPO / "src"))
    server = subprocess.Popen(
        [sys.executable, "-m", "eirnn.cli", "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines = [server.stdout.readline() for _ in range(2)]
        address = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"
        assert lines[0].startswith(f"MLflow UI on {client.tracking_uri}")
        assert lines[1].split() == ["open", address]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert response.status == 200
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_simulate_writes_the_fully_observed_strong_recurrence_teacher(tmp_path):
    import numpy as np

    from eirnn.data import load_dataset
    from eirnn.data.synthetic import make_recording

    sizes = dict(n_e=6, n_i=2, n_trials=16, n_bins=20)
    out = tmp_path / "teacher.npz"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in sizes.items()]
    result = eirnn("simulate", "--out", str(out), "--fully-observed", "--spectral-radius", "1.5", *flags)
    assert result.returncode == 0, result.stderr
    expected, _ = make_recording(seed=0, **sizes, fully_observed=True, spectral_radius=1.5)
    assert np.array_equal(load_dataset(out).counts, expected.counts)
