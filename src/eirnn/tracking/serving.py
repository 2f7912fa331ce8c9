"""The logged MLflow model: tensors and JSON, no pickle.

A logged model holds the network's two files (`eirnn.model.network_files`: state dict and
constructor arguments). `eirnn.load_model` rebuilds the network from them with the installed
`eirnn` code; `mlflow.pyfunc.load_model` and `mlflow models serve` do the same through
`RatePredictor`, a pyfunc model logged as code (`eirnn/tracking/model_code.py`, MLflow's
models-from-code). Loading never unpickles anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import torch

from eirnn.model.network_files import load_network, save_network_files

WEIGHTS_ARTIFACT = "network_state"
HPARAMS_ARTIFACT = "network_hparams"
MODEL_CODE = Path(__file__).with_name("model_code.py")


def pyfunc_artifacts(network: torch.nn.Module, folder: str | Path) -> dict[str, str]:
    """Write the network's two files into `folder`; returns the pyfunc `artifacts` mapping."""
    weights, hparams = save_network_files(network, folder)
    return {WEIGHTS_ARTIFACT: str(weights), HPARAMS_ARTIFACT: str(hparams)}


class RatePredictor(mlflow.pyfunc.PythonModel):
    """Rates in, rates out: float inputs [trials, time, n_inputs] -> firing rates in Hz
    [trials, time, neurons], deterministic (process noise off), any number of trials and bins."""

    def load_context(self, context: Any) -> None:
        self.network = load_network(context.artifacts[WEIGHTS_ARTIFACT], context.artifacts[HPARAMS_ARTIFACT])

    # `np.ndarray` is the one input hint MLflow neither validates nor infers a schema from (the
    # logged signature gives it); without a hint MLflow warns at every model logging
    def predict(self, context, model_input: np.ndarray, params=None):
        inputs = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.network(inputs, noise=False).rates.numpy()
