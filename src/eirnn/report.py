"""report.md: a training run described from its run folder alone (`RunArtifacts`).

Every number the report prints that is also an MLflow metric stands in a table row whose
"MLflow metric" column holds the logged metric name (`eirnn.logged_names.final_metric`
of the metrics.json key), formatted by `format_metric`: the tracking layer logs metrics.json
"final" and "fit" values under those names, so `parse_report_metrics(text)[name] ==
format_metric(logged value)` holds for each of them. report.html beside it is the same page with
the figures embedded (`eirnn.report_html`). The report carries no timestamps: the same
artifacts give a byte-identical file.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from eirnn.artifacts import RUN_FILES, RUN_FOLDERS, RunArtifacts
from eirnn.figures import FIGURE_TITLES, FigureSet
from eirnn.logged_names import FIT_TAGS, final_metric
from eirnn.metrics import NOISE_CEILING_OF
from eirnn.report_html import write_html_report

METRIC_COLUMN = "MLflow metric"
NOT_AVAILABLE = "n/a"

FIT_ROWS = {
    "best_selection_score": "Best validation selection score (the run's selection_metric, kept checkpoint)",
    "final_selection_score": "Final validation selection score",
    "total_epochs": "Epochs trained",
    "best_epoch": "Best epoch (counted from 0, as logged)",
    "best_val_psth_corr": "Best validation PSTH correlation",
    "final_val_psth_corr": "Final validation PSTH correlation",
    "early_stopped": "Early stopping (1 = stopped for lack of improvement, 0 = not)",
    "training_seconds": "Training time (s)",
}

_FANO_DEFINITION = (
    "across-trial variance / mean of spike counts per bin, per condition and bin, averaged over "
    "neurons; dimensionless, 1 for Poisson spiking"
)
FINAL_METRIC_DEFINITIONS = {
    "psth_corr": "PSTH correlation: Pearson r over time bins of model and data trial-averaged rates "
    "(conditions pooled), mean over neurons; dimensionless, -1 to 1",
    "psth_corr_E": "PSTH correlation, mean over E neurons (over all neurons when the data has no E/I labels)",
    "psth_corr_I": "PSTH correlation, mean over I neurons",
    "cond_psth_corr": "Condition PSTH correlation: r over the per-condition PSTHs stacked conditions x time, "
    "mean over neurons; dimensionless",
    "psth_r2": "PSTH R² (Neural Latents Benchmark), conditions x time, mean over neurons; dimensionless, <= 1",
    "bits_per_spike": "co-bps: Poisson log-likelihood gain over each neuron's mean rate, in bits/spike",
    "fano_model": f"Fano factor of the model (Poisson counts drawn from its rates, noise on): {_FANO_DEFINITION}",
    "fano_data": f"Fano factor of the data: {_FANO_DEFINITION}",
    "noise_ceiling": "Noise ceiling of psth_corr: sqrt of the split-half (Spearman-Brown) reliability of the "
    "data PSTH, mean over neurons; dimensionless",
    "normalized_psth_corr": "psth_corr / noise_ceiling (1 = as good as the data's noise allows)",
    "cond_noise_ceiling": "Noise ceiling of cond_psth_corr (PSTHs stacked conditions x time)",
    "normalized_cond_psth_corr": "cond_psth_corr / cond_noise_ceiling",
    "noise_ceiling_sem": "Standard error of noise_ceiling over its random split-halves (seeded by the split seed)",
    "noise_ceiling_n_excluded": "Neurons whose ceiling is undefined or below 0.1, left out of the ceiling and of "
    "normalised means",
    "cond_noise_ceiling_sem": "Standard error of cond_noise_ceiling over its random split-halves",
    "cond_noise_ceiling_n_excluded": "Neurons left out of cond_noise_ceiling and normalized_cond_psth_corr",
}
# what the prefixed metrics are: the same score on the held-out test trials, or a ground-truth comparison
TEST_PREFIX, TRUTH_PREFIX = "test_", "gt_"
RECOVERY_FIGURE = "recovery.png"
RECOVERY_DEFINITIONS = {
    "gt_weight_corr": "Pearson r of fitted vs true effective weights (W[post, pre] / presynaptic gain, drive "
    "per Hz) over ordered pairs of recorded neurons; Dale's signs alone make it positive, compare with the null",
    "gt_sign_agreement": "share of pairs whose fitted weight has the true sign (1 by construction with true labels)",
    "gt_perturbation_corr": "mean over the four perturbations of the r between predicted and true changes of "
    "the other neurons' condition PSTHs (Hz)",
    "gt_perturbation_sign_agreement": "share of the other neurons whose mean change has the true sign, mean "
    "over the four perturbations",
}
CEILING_PAIRS = tuple((f"normalized_{score}", score, ceiling) for score, ceiling in NOISE_CEILING_OF.items())


def format_metric(value: Any) -> str:
    """The one way a metric is printed: 'n/a' for a missing or NaN value, an integral value
    (epochs, flags, a logged 12.0) as an integer, anything else with 4 decimals."""
    if value is None:
        return NOT_AVAILABLE
    number = float(value)
    if math.isnan(number):
        return NOT_AVAILABLE
    if number.is_integer():
        return str(int(number))
    return f"{number:.4f}"


def parse_report_metrics(text: str) -> dict[str, str]:
    """{MLflow metric key: value as printed} from every table of `text` with an 'MLflow metric' column."""
    found: dict[str, str] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif METRIC_COLUMN in header and "Value" in header and not set(line) <= set("|-: "):
            key = cells[header.index(METRIC_COLUMN)].strip("`")
            if key:
                found[key] = cells[header.index("Value")]
    return found


def _table(headers: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *(line(row) for row in rows)])


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return "(empty)"
    return f"`{value}`" if isinstance(value, str) else str(value)


def training_summary(artifacts: RunArtifacts) -> str:
    fit = artifacts.summary.get("fit", {})
    # counts, flags and times are the run's eirnn.fit.* tags, not metrics: no metric name
    rows = [
        [label, format_metric(fit[key]), "" if key in FIT_TAGS else f"`{final_metric(key)}`"]
        for key, label in FIT_ROWS.items()
        if key in fit
    ]
    # what the tracking layer does not log as a metric (the stop reason, a tag) is shown as text
    rows += [
        [key.replace("_", " ").capitalize(), _setting_text(value), ""]
        for key, value in fit.items()
        if key not in FIT_ROWS
    ]
    return _table(["Quantity", "Value", METRIC_COLUMN], rows)


def _metric_rows(artifacts: RunArtifacts, keep, definitions: dict[str, str]) -> str:
    missing = artifacts.summary.get("not_available", {})
    rows = []
    for key, value in artifacts.summary.get("final", {}).items():
        if not keep(key):
            continue
        definition = definitions.get(key, "")
        if value is None:
            reason = missing.get(key, "the value is not finite")
            definition = f"{NOT_AVAILABLE}: {reason}. {definition}".strip()
        rows.append([key, format_metric(value), f"`{final_metric(key)}`", definition])
    return _table(["Metric", "Value", METRIC_COLUMN, "Definition and unit"], rows)


def final_metrics(artifacts: RunArtifacts) -> str:
    table = _metric_rows(
        artifacts, lambda key: not key.startswith((TEST_PREFIX, TRUTH_PREFIX)), FINAL_METRIC_DEFINITIONS
    )
    notes = ceiling_notes(artifacts.final_metrics)
    return "\n\n".join([table, *notes])


def ceiling_notes(final: dict[str, float]) -> list[str]:
    """Why a normalised correlation above 1 is (or is not) within the ceiling's uncertainty."""
    notes = []
    for normalized, correlation, ceiling in CEILING_PAIRS:
        value, sem = final.get(normalized, math.nan), final.get(f"{ceiling}_sem", math.nan)
        excluded = final.get(f"{ceiling}_n_excluded", math.nan)
        if math.isfinite(excluded) and excluded > 0:
            notes.append(
                f"`{ceiling}` and `{normalized}` leave out {int(excluded)} neuron(s) whose ceiling is undefined "
                "or below 0.1 (no reproducible PSTH to normalise by)."
            )
        if not (math.isfinite(value) and value > 1):
            continue
        gap = final[correlation] - final[ceiling]
        within = math.isfinite(sem) and gap <= 2 * sem
        notes.append(
            f"`{normalized}` = {format_metric(value)} > 1: the model's mean r exceeds the ceiling by "
            f"{format_metric(gap)}, "
            + (
                f"within twice the ceiling's standard error ({format_metric(sem)}); a model at the ceiling "
                "scores 1 on average, and estimation noise puts it above 1 about half the time."
                if within
                else f"more than twice its standard error over splits ({format_metric(sem)}). That error only "
                "covers the random halving; with few trials per condition the split-half ceiling itself is "
                "biased low (each half has half the trials, and sqrt of a noisy reliability is low on "
                "average), so values somewhat above 1 mean 'at the ceiling', not better than the data allow."
            )
        )
    return notes


def held_out_test_metrics(artifacts: RunArtifacts) -> str | None:
    if not any(key.startswith(TEST_PREFIX) for key in artifacts.summary.get("final", {})):
        return None
    definitions = {f"{TEST_PREFIX}{k}": f"as {k}, on the test trials" for k in FINAL_METRIC_DEFINITIONS}
    return (
        f"On the {artifacts.data_facts.get('n_test_trials', '?')} test trials, held out before training: no "
        "training step, early stopping, pruning or champion choice saw them, so these are the honest "
        "estimates when many runs were compared on validation.\n\n"
        + _metric_rows(artifacts, lambda key: key.startswith(TEST_PREFIX), definitions)
    )


def recovery_section(artifacts: RunArtifacts, figures: FigureSet, report_dir: Path) -> str | None:
    if not any(key.startswith(TRUTH_PREFIX) for key in artifacts.summary.get("final", {})):
        return None
    return (
        "The data came from a known E/I network (`eirnn.data.synthetic`), so the fit can be compared with "
        "the truth among the recorded neurons (`eirnn.recovery`, docs/metrics.md): effective weights, and "
        "the effect on the other neurons of silencing (x0) or boosting (x2) a group of truly I, then truly E "
        "neurons, simulated in both networks on the validation inputs. `gt_null_*`: the same for the fitted "
        "weights shuffled within E/I blocks. A good PSTH fit does not imply recovered connectivity; read "
        "these numbers against the null.\n\n"
        + _metric_rows(artifacts, lambda key: key.startswith(TRUTH_PREFIX), RECOVERY_DEFINITIONS)
        + (
            f"\n\n![{FIGURE_TITLES[RECOVERY_FIGURE]}]"
            f"({Path(os.path.relpath(figures.written[RECOVERY_FIGURE], report_dir)).as_posix()})"
            if RECOVERY_FIGURE in figures.written
            else ""
        )
    )


def settings_table(settings: dict[str, Any], what: str) -> str:
    return _table([what, "Value"], [[f"`{key}`", _setting_text(value)] for key, value in settings.items()])


def saved_files(artifacts: RunArtifacts, exclude: Path) -> str:
    """The run folder's files, without the report itself (`exclude`: report.md; report.html beside it)."""
    arrays = {
        f"{folder}/{name}.npy": array for folder in RUN_FOLDERS for name, array in getattr(artifacts, folder).items()
    }
    lines = []
    skipped = {exclude.resolve(), exclude.with_suffix(".html").resolve()}
    for path in sorted(p for p in artifacts.root.rglob("*") if p.is_file() and p.resolve() not in skipped):
        relative = path.relative_to(artifacts.root).as_posix()
        array = arrays.get(relative)
        shape = f" ({array.dtype} [{', '.join(str(n) for n in array.shape)}])" if array is not None else ""
        lines.append(f"- `{relative}`{shape}")
    return "\n".join(lines)


def loading_snippets(run_id: str | None, model_name: str) -> str:
    """How to load the model and the run's files: from MLflow for a tracked run (`run_id`), from
    the folder itself for a run kept in a plain folder (`run_id` None)."""
    if run_id is None:
        return _folder_loading_snippets()
    run = run_id
    return f"""The registered model, by name:

```python
import eirnn

model = eirnn.load_model("{model_name}")
```

One artifact of this run, e.g. the model's validation rates [trials, time, neurons] in Hz:

```python
import mlflow
import numpy as np

path = mlflow.artifacts.download_artifacts(run_id="{run}", artifact_path="outputs/val_model_rates.npy")
val_model_rates = np.load(path)
```

The whole run folder, to redraw these figures or this report:

```python
import mlflow
from eirnn.artifacts import RunArtifacts

folder = mlflow.artifacts.download_artifacts(run_id="{run}")
artifacts = RunArtifacts.load(folder)
```"""


def _folder_loading_snippets() -> str:
    return """The model, from this folder's model/ (state dict and constructor arguments, no pickle):

```python
from eirnn.model.network_files import find_network_files, load_network

model = load_network(*find_network_files("model"))
```

One file of this run, e.g. the model's validation rates [trials, time, neurons] in Hz:

```python
import numpy as np

val_model_rates = np.load("outputs/val_model_rates.npy")
```

The whole run folder, to redraw these figures or this report (`eirnn report FOLDER` does it):

```python
from eirnn.artifacts import RunArtifacts

artifacts = RunArtifacts.load(".")
```"""


def figure_section(figures: FigureSet, report_dir: Path) -> str:
    parts = []
    for name, path in figures.written.items():
        title = FIGURE_TITLES.get(name, name)
        relative = Path(os.path.relpath(path, report_dir)).as_posix()
        parts.append(f"### {title}\n\n![{title}]({relative})")
    if figures.skipped:
        skipped = "\n".join(f"- {line}" for line in figures.skip_lines())
        parts.append(f"### Figures not drawn\n\n{skipped}")
    return "\n\n".join(parts)


def _optional_section(heading: str, body: str | None) -> list[str]:
    return [] if body is None else [heading, body]


def write_report(
    artifacts: RunArtifacts,
    figures: FigureSet,
    out_path: str | Path,
    *,
    run_id: str | None = None,
    model_name: str | None = None,
) -> str:
    """Write report.md to `out_path` and report.html beside it; return the Markdown text."""
    out_path = Path(out_path)
    model_name = model_name or str(artifacts.config.get("registered_model_name", "eirnn"))
    heading = f"# Training report: run {run_id}" if run_id else "# Training report"
    sections = [
        heading,
        f"Registered model: `{model_name}`",
        "## Training Summary",
        training_summary(artifacts),
        "## Final Metrics",
        "On the validation trials, model noise off. "
        f"{NOT_AVAILABLE} marks a number the data cannot support, with the reason.",
        final_metrics(artifacts),
        *_optional_section("## Held-out Test Trials", held_out_test_metrics(artifacts)),
        *_optional_section("## What the fit recovers", recovery_section(artifacts, figures, out_path.parent)),
        "## Model Configuration",
        settings_table(artifacts.config, "Setting"),
        "## Data Configuration",
        settings_table(artifacts.data_facts, "Fact"),
        "## Saved Files",
        saved_files(artifacts, exclude=out_path),
        "## Code Snippets for Loading",
        loading_snippets(run_id, model_name),
        "## Figures",
        figure_section(figures, out_path.parent),
    ]
    text = "\n\n".join(sections) + "\n"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    write_html_report(out_path)
    return text


def rebuild_report(
    source: str | Path, out: str | Path, *, run_id: str | None = None, model_name: str | None = None
) -> Path:
    """Copy a run folder's arrays and JSON files (`RUN_FOLDERS`, `RUN_FILES`) from `source` into
    `out` (nothing to copy when they are the same folder) and write figures/, report.md and
    report.html there, as the run wrote them; returns the path of report.md."""
    from eirnn.figures import write_figures

    source, out = Path(source), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if source.resolve() != out.resolve():
        for name in RUN_FOLDERS:
            shutil.copytree(source / name, out / name, dirs_exist_ok=True)
        for name in RUN_FILES:
            shutil.copy2(source / name, out / name)
    artifacts = RunArtifacts.load(out)
    write_report(
        artifacts, write_figures(artifacts, out / "figures"), out / "report.md", run_id=run_id, model_name=model_name
    )
    return out / "report.md"
