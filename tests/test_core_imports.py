"""The science core imports neither mlflow nor optuna, nor the shells around them (tracking,
tuning), anywhere in its source, not even inside a function."""

import ast

import pytest
from conftest import REPO

PACKAGE = REPO / "src" / "eirnn"
CORE = [
    "data",
    "model",
    "training",
    "metrics",
    "figures",
    "losses.py",
    "evaluation.py",
    "analysis.py",
    "recovery.py",
    "pipeline.py",
    "training_run.py",
    "artifacts.py",
    "report.py",
    "report_html.py",
    "logged_names.py",
    "choices.py",
    "config.py",
    "config_sections.py",
    "value_ranges.py",
    "runtime.py",
]
SHELLS = ("mlflow", "optuna", "eirnn.tracking", "eirnn.tuning")


def _imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


@pytest.mark.parametrize("part", CORE)
def test_core_module_imports_no_tracking_or_tuning(part):
    files = sorted((PACKAGE / part).rglob("*.py")) if (PACKAGE / part).is_dir() else [PACKAGE / part]
    assert files
    for path in files:
        shells = [name for name in _imported_modules(path) if name.split(".")[0] in SHELLS or name.startswith(SHELLS)]
        assert not shells, f"{path.relative_to(PACKAGE)} imports {shells}"
