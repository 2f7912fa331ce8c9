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


def predict_input(network: Any, inputs: np.ndarray, spikes: np.ndarray | None = None) -> np.ndarray:
    """The pyfunc's input for these trials: the task inputs [trials, time, n_inputs], followed,
    for an inferred-state model, by the trials' spike counts of every recorded neuron
    [trials, time, n_neurons] in the data's neuron order (held-out neurons' and forward bins'
    columns are never read: any value, NaN included, will do there)."""
    inputs = np.asarray(inputs, dtype=np.float32)
    if not network.infers_initial_state:
        return inputs
    if spikes is None:
        raise ValueError("an inferred-state model predicts single trials from their spikes: pass spikes")
    return np.concatenate([inputs, np.asarray(spikes, dtype=np.float32)], axis=-1)


class RatePredictor(mlflow.pyfunc.PythonModel):
    """Rates in, rates out: float inputs [trials, time, n_inputs] -> firing rates in Hz
    [trials, time, neurons], deterministic (process noise off), any number of trials and bins.
    An inferred-state model (`initial_state="inferred"`) takes [trials, time, n_inputs + n_neurons]:
    each trial's inputs and then its spike counts (`predict_input`), and predicts each trial
    from its own inferred initial state."""

    def load_context(self, context: Any) -> None:
        self.network = load_network(context.artifacts[WEIGHTS_ARTIFACT], context.artifacts[HPARAMS_ARTIFACT])

    # `np.ndarray` is the one input hint MLflow neither validates nor infers a schema from (the
    # logged signature gives it); without a hint MLflow warns at every model logging
    def predict(self, context, model_input: np.ndarray, params=None):
        values = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        n_inputs = self.network.n_inputs
        spikes = values[..., n_inputs:] if self.network.infers_initial_state else None
        with torch.no_grad():
            prepared = self.network.prepare_inputs(values[..., :n_inputs], spikes)
            return self.network(prepared, noise=False).rates.numpy()
