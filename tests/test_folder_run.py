"""The whole pipeline with no tracking: `eirnn.train(..., tracking=False)` in a process where
mlflow cannot be imported, `eirnn train --no-tracking`, and `eirnn report FOLDER`."""

import json
import os
import subprocess
import sys

import numpy as np
from conftest import REPO, SMALL_MODEL

from eirnn.figures import FIGURES
from eirnn.report import parse_report_metrics

SETTINGS = {**SMALL_MODEL, "max_epochs": 3}
# what a run folder holds once a run has finished, whichever sink keeps it
RUN_FOLDER_FILES = ("metrics.json", "config.json", "data.json", "training_log.json", "report.md", "report.html")

TRAIN_WITHOUT_MLFLOW = """
import json, sys
sys.modules["mlflow"] = None  # `import mlflow` now raises ImportError
import eirnn

result = eirnn.train(sys.argv[1], tracking=False, out=sys.argv[2], **json.loads(sys.argv[3]))
assert "mlflow" not in {name.split(".")[0] for name, module in sys.modules.items() if module is not None}
import os
assert os.environ.get("THP_MEM_ALLOC_ENABLE") == "1"  # the run applied its memory settings when it started
print(json.dumps({"run_id": result.run_id, "folder": str(result.folder), "metrics": result.metrics}))
"""


def _environment_without_tracking() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}


def test_train_without_mlflow_writes_metrics_figures_and_report(tmp_path, tiny_recording_file):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_WITHOUT_MLFLOW, str(tiny_recording_file), str(out), json.dumps(SETTINGS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_environment_without_tracking(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["run_id"] is None and answer["folder"] == str(out)
    # no tracking store anywhere: neither MLflow's default folder nor a database
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]

    for name in RUN_FOLDER_FILES:
        assert (out / name).is_file(), name
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["fit"]["total_epochs"] == SETTINGS["max_epochs"]
    assert summary["final"]["cond_psth_corr"] == answer["metrics"]["cond_psth_corr"]
    drawn = {spec.name for spec in FIGURES} - {"recovery.png"}  # a file has no ground-truth circuit
    assert drawn <= {path.name for path in (out / "figures").glob("*.png")}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# Training report\n")
    # loading snippets for this folder, not for an MLflow run
    assert 'load_network(*find_network_files("model"))' in report and "mlflow.artifacts" not in report
    assert float(parse_report_metrics(report)["final/cond_psth_corr"]) == round(answer["metrics"]["cond_psth_corr"], 4)
    split = json.loads((out / "split.json").read_text())
    assert not set(split["train"]) & set(split["val"])
    assert {path.name for path in (out / "model").iterdir()} == {"network_state.pt", "network_hparams.json"}
    assert (out / "checkpoints" / "model_best.pt").is_file()


def test_cli_trains_into_a_folder_and_report_redraws_it(tmp_path, tiny_recording_file):
    from eirnn.model.network_files import load_network

    out = tmp_path / "run"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in SETTINGS.items()]
    env = _environment_without_tracking()
    command = [sys.executable, "-m", "eirnn.cli"]
    trained = subprocess.run(
        [*command, "train", "--no-tracking", "--out", str(out), "--data", str(tiny_recording_file), *flags],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "eirnn train: done (not tracked)" in trained.stdout and str(out) in trained.stdout
    assert "neurons" in trained.stdout  # the data summary printed before training
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]

    rebuilt = tmp_path / "rebuilt"
    redrawn = subprocess.run(
        [*command, "report", str(out), "--out", str(rebuilt)], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert redrawn.returncode == 0, redrawn.stderr[-3000:]
    original = parse_report_metrics((out / "report.md").read_text(encoding="utf-8"))
    assert parse_report_metrics((rebuilt / "report.md").read_text(encoding="utf-8")) == original
    assert {path.name for path in (rebuilt / "figures").iterdir()} == {
        path.name for path in (out / "figures").iterdir()
    }

    network = load_network(out / "model" / "network_state.pt", out / "model" / "network_hparams.json")
    rates = np.load(out / "outputs" / "val_model_rates.npy")
    inputs = np.load(out / "outputs" / "val_condition_inputs.npy")
    assert network.recorded_units.numel() == rates.shape[-1] and inputs.ndim == 3
