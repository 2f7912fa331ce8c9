"""Figures and report.md rebuilt from the run folders of real (short) trainings: the built-in
synthetic recording (every figure applies) and the real M1 example (rates only, no E/I labels,
one pseudo-trial per condition: several figures and metrics do not apply)."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import struct
import threading
import time
from pathlib import Path

import pytest
from conftest import small_settings

from eirnn.artifacts import RunArtifacts
from eirnn.config import TrainConfig
from eirnn.data import DatasetError
from eirnn.data.examples import load_m1_reach
from eirnn.data.synthetic import make_recording
from eirnn.figures import FIGURES, FigureSet, write_figures
from eirnn.logged_names import FIT_TAGS, final_metric
from eirnn.report import format_metric, parse_report_metrics, write_report
from eirnn.training_run import TrainingRun

SMALL_RUN = small_settings(
    max_epochs=5,
    patience=5,
    input_embed_dim=16,
    checkpoint_every=0,
    log_figures=True,
    registered_model_name="eirnn-test",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_ID = "0123456789abcdef"
MODEL_NAME = SMALL_RUN["registered_model_name"]
# what the M1 example cannot show: its run uses a linear embedding, and condition-averaged rates
# have neither spike counts nor a second trial per condition
M1_SKIPPED = {
    "attention_patterns.png",
    "fano_factor_comparison.png",
    "correlation_vs_noise_ceiling.png",
    "recovery.png",  # real data: no ground-truth circuit to compare with
    "heldout_single_trials.png",  # a shared-state run without held-out neurons
    "inferred_states.png",
    "perturbations.png",  # no perturbation trials and no ground-truth circuit
}


def _train_into(folder: Path, dataset, config: TrainConfig, truth=None) -> Path:
    """The run folder of a whole run (the run object of the core, no tracking)."""
    run = TrainingRun(config, dataset, truth, run_id=RUN_ID)
    return run.execute(folder, folder.parent / f"{folder.name}-checkpoints").folder


def _draw(folder: Path) -> tuple[FigureSet, str]:
    """Figures and report.md from the folder alone, as `eirnn report RUN_ID` draws them."""
    artifacts = RunArtifacts.load(folder)
    figures = write_figures(artifacts, folder / "figures")
    return figures, write_report(artifacts, figures, folder / "report.md", run_id=RUN_ID, model_name=MODEL_NAME)


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> tuple[Path, FigureSet, str]:
    dataset, truth = make_recording(seed=0, n_trials=120, n_bins=60)
    # inferred states and held-out neurons, so that every figure applies
    config = TrainConfig(**SMALL_RUN, initial_state="inferred", heldout_neurons="0.2")
    folder = _train_into(tmp_path_factory.mktemp("synthetic"), dataset, config, truth)
    return (folder, *_draw(folder))


@pytest.fixture(scope="session")
def m1_run(tmp_path_factory) -> tuple[Path, FigureSet, str]:
    try:
        dataset = load_m1_reach()
    except DatasetError as error:
        pytest.skip(f"M1 example data not available: {error}")
    config = TrainConfig(**SMALL_RUN, input_embed_type="linear", validate_on_train=True)
    folder = _train_into(tmp_path_factory.mktemp("m1"), dataset, config)
    return (folder, *_draw(folder))


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name}: not a PNG"
    assert data[12:16] == b"IHDR", f"{path.name}: no IHDR chunk first"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 400, f"{path.name}: {width} x {height} px"
    assert len(data) > 10_000, f"{path.name}: only {len(data)} bytes"


def logged_metrics(folder: Path) -> dict[str, object]:
    """The values the tracking layer logs as MLflow metrics: metrics.json "final" and the "fit"
    scores (its counts, flags and times are tags)."""
    summary = RunArtifacts.load(folder).summary
    fit_values = {k: v for k, v in summary["fit"].items() if k not in FIT_TAGS}
    return {final_metric(key): value for key, value in {**summary["final"], **fit_values}.items()}


def test_every_figure_is_written_as_a_png(synthetic_run):
    _, figures, _ = synthetic_run
    assert figures.skipped == {}
    assert list(figures.written) == [spec.name for spec in FIGURES]
    for path in figures.written.values():
        assert_png(path)


@pytest.mark.parametrize("run", ["synthetic_run", "m1_run"])
def test_figures_drawn_by_three_processes_are_the_same_files(run, request, tmp_path):
    folder, figures, _ = request.getfixturevalue(run)
    shared = write_figures(RunArtifacts.load(folder), tmp_path, processes=3)
    assert shared.skipped == figures.skipped
    assert list(shared.written) == list(figures.written)
    for name, path in shared.written.items():
        assert path.read_bytes() == figures.written[name].read_bytes(), name


def test_figures_a_killed_child_took_are_drawn_by_the_caller(synthetic_run, tmp_path):
    folder, figures, _ = synthetic_run

    def kill_the_child() -> None:
        while not multiprocessing.active_children():
            time.sleep(0.01)
        time.sleep(0.5)  # into its first figure, past the counter's lock
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_child)
    killer.start()
    shared = write_figures(RunArtifacts.load(folder), tmp_path, processes=2)
    killer.join()
    assert list(shared.written) == list(figures.written)
    for name, path in shared.written.items():
        assert path.read_bytes() == figures.written[name].read_bytes(), name


def test_report_prints_each_metric_as_logged(synthetic_run):
    folder, _, text = synthetic_run
    printed = parse_report_metrics(text)
    for key, value in logged_metrics(folder).items():
        assert printed[key] == format_metric(value), key
        # MLflow hands every metric back as a float (an epoch as 12.0, a flag as 1.0)
        logged = math.nan if value is None else float(value)
        assert printed[key] == format_metric(logged), key
        assert f"| {format_metric(value)} | `{key}` |" in text


def test_report_embeds_figures_beside_it(synthetic_run):
    _folder, figures, text = synthetic_run
    for name in figures.written:
        assert f"](figures/{name})" in text
    assert f'eirnn.load_model("{MODEL_NAME}")' in text
    assert f'download_artifacts(run_id="{RUN_ID}", artifact_path="outputs/val_model_rates.npy")' in text
    assert "`weights/W_rec.npy`" in text and "`metrics.json`" in text


def test_report_is_identical_when_rebuilt_from_the_folder(synthetic_run):
    folder, _, text = synthetic_run
    _, rebuilt = _draw(folder)
    assert rebuilt == text
    assert (folder / "report.md").read_text(encoding="utf-8") == text


def test_report_lists_every_figure_as_skipped_when_figures_are_off(synthetic_run, tmp_path):
    folder, _, _ = synthetic_run
    text = write_report(RunArtifacts.load(folder), FigureSet.empty("figures are off"), tmp_path / "report.md")
    assert "](figures/" not in text
    for spec in FIGURES:
        assert f"- {spec.name}: figures are off" in text


def test_m1_example_draws_what_applies_and_says_why_not_the_rest(m1_run):
    folder, figures, text = m1_run
    assert set(figures.skipped) == M1_SKIPPED
    assert set(figures.written) == {spec.name for spec in FIGURES} - M1_SKIPPED
    for path in figures.written.values():
        assert_png(path)
    for line in figures.skip_lines():
        assert f"- {line}" in text
    missing = RunArtifacts.load(folder).summary["not_available"]
    assert {"bits_per_spike", "fano_data", "noise_ceiling", "psth_corr_I"} <= set(missing)
    printed = parse_report_metrics(text)
    for key, reason in missing.items():
        assert printed[final_metric(key)] == "n/a"
        assert reason in text


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "n/a"),
        (math.nan, "n/a"),
        (12, "12"),
        (12.0, "12"),
        (True, "1"),
        (False, "0"),
        (0.123456, "0.1235"),
        (-0.5, "-0.5000"),
    ],
)
def test_format_metric(value, text):
    assert format_metric(value) == text


def test_report_says_what_the_fit_recovers_of_a_known_circuit(synthetic_run, m1_run):
    _, _, text = synthetic_run
    section = text.split("## What the fit recovers", 1)[1].split("\n## ", 1)[0]
    metrics = ("gt_weight_corr", "gt_weight_corr_EI", "gt_perturbation_corr", "gt_null_perturbation_corr")
    for metric in (*metrics, "gt_least_squares_weight_corr", "gt_least_squares_weight_corr_II"):
        assert f"`final/{metric}`" in section
    assert "![What the fit recovers of the true circuit](figures/recovery.png)" in section
    assert "## What the fit recovers" not in m1_run[2]
