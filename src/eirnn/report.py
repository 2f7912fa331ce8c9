"""report.md: a training run described from its run folder alone (`RunArtifacts`).

Every number the report prints that is also an MLflow metric stands in a table row whose
"MLflow metric" column holds the logged metric name (`eirnn.tracking.metric_names.final_metric`
of the metrics.json key), formatted by `format_metric`: the tracking layer logs metrics.json
"final" and "fit" values under those names, so `parse_report_metrics(text)[name] ==
format_metric(logged value)` holds for each of them. report.html beside it is the same page with
the figures embedded (`eirnn.report_html`). The report carries no timestamps: the same
artifacts give a byte-identical file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from eirnn.artifacts import RUN_FOLDERS, RunArtifacts
from eirnn.figures import FIGURE_TITLES, FigureSet
from eirnn.report_html import write_html_report
from eirnn.tracking.metric_names import FIT_TAGS, final_metric

METRIC_COLUMN = "MLflow metric"
NOT_AVAILABLE = "n/a"

FIT_ROWS = {
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
}


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


def final_metrics(artifacts: RunArtifacts) -> str:
    missing = artifacts.summary.get("not_available", {})
    rows = []
    for key, value in artifacts.summary.get("final", {}).items():
        definition = FINAL_METRIC_DEFINITIONS.get(key, "")
        if value is None:
            reason = missing.get(key, "the value is not finite")
            definition = f"{NOT_AVAILABLE}: {reason}. {definition}".strip()
        rows.append([key, format_metric(value), f"`{final_metric(key)}`", definition])
    return _table(["Metric", "Value", METRIC_COLUMN, "Definition and unit"], rows)


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
    run = run_id or "<RUN_ID>"
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
