"""Every notebook runs top to bottom (nbclient, a real ipykernel on this interpreter) with small
parameters, in a temp folder with a temp SQLite tracking store, and writes nothing into the
repository. Notebooks are stored without outputs."""

import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

NOTEBOOKS = REPO / "notebooks"
CELL_TIMEOUT_S = 300
SMALL_MODEL = dict(INPUT_EMBED_DIM=8, ATTENTION_HEADS=2, THREADS=1)
TINY_RECORDING = dict(n_e=8, n_i=3, n_trials=96, n_bins=40)

# per notebook: the values that replace its parameters cell's (TRACKING_URI and WORK_DIR are added)
OVERRIDES = {
    # the built-in recording at its full size, a few epochs
    "01_quickstart.ipynb": dict(MAX_EPOCHS=3, LOG_FIGURES=False, **SMALL_MODEL),
    "02_compare_runs.ipynb": dict(
        RECORDING=TINY_RECORDING, TAUS=[30.0, 100.0], MAX_EPOCHS=3, N_STUDY_TRIALS=2, LOG_FIGURES=False, **SMALL_MODEL
    ),
    "03_real_m1_data.ipynb": dict(MAX_EPOCHS=5, LOG_FIGURES=False, **SMALL_MODEL),
    # the built-in recording at its full size: silencing I runs away within its 219 bins
    "04_perturbation.ipynb": dict(MAX_EPOCHS=3, LOG_FIGURES=False, **SMALL_MODEL),
    # the M1 example: two fits of a few epochs, in-process
    "06_ensemble_m1.ipynb": dict(N_FITS=2, N_WORKERS=1, MAX_EPOCHS=3, **SMALL_MODEL),
    "05_nwb_recording.ipynb": dict(
        N_UNITS=12, N_TRIALS=48, N_DIRECTIONS=4, MAX_EPOCHS=3, LOG_FIGURES=False, **SMALL_MODEL
    ),
}
NOTEBOOK_FILES = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))


def _parameters_cell(notebook) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "expected exactly one cell tagged 'parameters'"
    return tagged[0]


def _assigned_names(source: str) -> set[str]:
    import ast

    return {
        target.id
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _inject(notebook, values: dict) -> None:
    """Papermill-style: a cell right after the parameters cell assigns the new values."""
    index = _parameters_cell(notebook)
    unknown = set(values) - _assigned_names(notebook.cells[index].source)
    assert not unknown, f"not parameters of this notebook: {sorted(unknown)}"
    lines = [
        "# injected by tests/test_notebooks.py",
        *(f"{name} = {value!r}" for name, value in values.items()),
        "import sys as _sys",
        f"assert _sys.executable == {sys.executable!r}, f'kernel runs {{_sys.executable}}'",
    ]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["injected-parameters"]
    cell.pop("id", None)
    notebook.cells.insert(index + 1, cell)
    for position, each in enumerate(notebook.cells):
        each["id"] = f"test-{position:02d}"


def _check_nothing_written_into_repo(uri: str, work: Path, notebooks_before: set[str]) -> None:
    """The runs the notebook made live in the given store, with their artifacts under `work`.

    Other work in a shared checkout may write ./mlruns in the repository at the same time, so
    the check looks for this notebook's own runs there rather than at the folder as a whole."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert runs, "the notebook made no run in the given tracking store"
    for run in runs:
        location = run.info.artifact_uri.removeprefix("file://")
        assert Path(location).resolve().is_relative_to(work.resolve()), f"artifacts outside {work}: {location}"
    ids = {run.info.run_id for run in runs}
    leaked = [str(path) for path in REPO.glob("mlruns/*/*") if path.name in ids]
    assert not leaked, f"runs written into the repository: {leaked}"
    assert {path.name for path in NOTEBOOKS.iterdir()} == notebooks_before, "files written beside the notebooks"


def test_every_notebook_has_small_test_parameters():
    assert sorted(OVERRIDES) == NOTEBOOK_FILES


@pytest.mark.parametrize("name", NOTEBOOK_FILES)
def test_notebook_is_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    index = _parameters_cell(notebook)
    assert index == min(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"), (
        "the parameters cell must be the first code cell"
    )
    assert {"TRACKING_URI", "WORK_DIR"} <= _assigned_names(notebook.cells[index].source)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"outputs left in {name}"
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("name", NOTEBOOK_FILES)
def test_notebook_runs(name, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    work = tmp_path / "work"
    work.mkdir()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    # the kernel inherits this environment: the temp store, one thread, no launcher run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.chdir(work)

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    _inject(notebook, {"TRACKING_URI": uri, "WORK_DIR": str(work), **OVERRIDES[name]})
    notebooks_before = {path.name for path in NOTEBOOKS.iterdir()}
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    _check_nothing_written_into_repo(uri, work, notebooks_before)
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("output_type") == "error"
    ]
    assert not errors
