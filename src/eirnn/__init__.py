"""eirnn: fit excitatory/inhibitory (Dale's-law) recurrent networks to recorded neural populations.

Public API: `train` (fit and track one MLflow run; returns a `TrainingResult`), `ensemble`
(several fits and what they agree on; returns an `EnsembleResult`), `load_model`
(a registered model by name), `evaluate`, `split`, `load_dataset`, `NeuralDataset`,
`TrainConfig`. Heavy modules (torch models, MLflow) load on first use so that `eirnn --help`
and data tools start fast. Importing eirnn changes nothing in the process: a run applies its
memory settings (`eirnn.memory_allocator`) when it starts.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "train": "eirnn.api",
    "TrainingResult": "eirnn.api",
    "split": "eirnn.api",
    "ensemble": "eirnn.api",
    "load_model": "eirnn.tracking",
    "evaluate": "eirnn.evaluation",
    "TrainConfig": "eirnn.config",
    "load_dataset": "eirnn.data",
    "NeuralDataset": "eirnn.data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'eirnn' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
