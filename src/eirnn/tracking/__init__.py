"""MLflow shell around the science core: runs, artifacts, registry, loading by name.

Internal, except `load_model` (also `eirnn.load_model`); train through `eirnn.train`.
"""

from __future__ import annotations

from typing import Any


def load_model(name: str = "eirnn", *, alias: str | None = None, version: int | str | None = None) -> Any:
    from eirnn.tracking.model_registry import load_model as _load_model

    return _load_model(name, alias=alias, version=version)


__all__ = ["load_model"]
