"""report.md and figures inside a real MLflow run, and `eirnn report RUN_ID` rebuilding them."""

import struct
import subprocess
import sys

import mlflow
from conftest import small_config
from mlflow.tracking import MlflowClient

from eirnn.figures import FIGURES
from eirnn.report import format_metric, parse_report_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# a data file without a true circuit, a shared-state run without held-out neurons
NOT_DRAWN = {"recovery.png", "perturbations.png", "heldout_single_trials.png", "inferred_states.png"}


def _png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, path
    return struct.unpack(">II", header[16:24])


def test_run_report_matches_logged_metrics_and_eirnn_report_rebuilds_it(tracking_store, tiny_recording_file):
    from eirnn.tracking.mlflow_run import train_and_log

    config = small_config(data=str(tiny_recording_file), max_epochs=6, checkpoint_every=1000, log_figures=True)
    run_id = train_and_log(config).run_id
    client = MlflowClient()
    run = client.get_run(run_id)
    logged = run.data.metrics
    folder = tracking_store / "logged"
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="report.md", dst_path=str(folder))
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="figures", dst_path=str(folder))
    report = (folder / "report.md").read_text(encoding="utf-8")

    printed = parse_report_metrics(report)
    assert len(printed) >= 14  # the scores; epochs, flags and times are eirnn.fit.* tags
    for key, text in printed.items():
        assert text == format_metric(logged[key]), key
    assert f"| Epochs trained | {run.data.tags['eirnn.fit.total_epochs']} |" in report
    # a data file carries no ground-truth circuit: that figure is listed as not drawn, with why
    assert "recovery.png: the data carries no ground-truth circuit" in report
    for spec in (spec for spec in FIGURES if spec.name not in NOT_DRAWN):
        width, height = _png_size(folder / "figures" / spec.name)
        assert width >= 400 and height >= 300, spec.name
        assert (folder / "figures" / spec.name).stat().st_size > 10_000, spec.name
        assert f"figures/{spec.name}" in report

    out = tracking_store / "rebuilt"
    result = subprocess.run(
        [sys.executable, "-m", "eirnn.cli", "report", run_id, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "report.md").read_text(encoding="utf-8") == report
    drawn = sorted(spec.name for spec in FIGURES if spec.name not in NOT_DRAWN)
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == drawn
