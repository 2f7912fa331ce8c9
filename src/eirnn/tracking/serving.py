"""The logged MLflow model: tensors and JSON, no pickle.

A logged model holds the network's state dict (`network_state.pt`, tensors only) and its
constructor arguments (`network_hparams.json`). `eirnn.load_model` rebuilds the network from
those two files with the installed `eirnn` code; `mlflow.pyfunc.load_model` and `mlflow models
serve` do the same through `RatePredictor`, a pyfunc model logged as code
(`eirnn/tracking/model_code.py`, MLflow's models-from-code). Loading never unpickles anything,
and a model logged before a change to the model classes still loads as long as the constructor
arguments and parameter names it stores are still understood.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import torch

WEIGHTS_FILE = "network_state.pt"
HPARAMS_FILE = "network_hparams.json"
WEIGHTS_ARTIFACT = "network_state"
HPARAMS_ARTIFACT = "network_hparams"
MODEL_CODE = Path(__file__).with_name("model_code.py")


def save_network_files(network: torch.nn.Module, folder: str | Path) -> dict[str, str]:
    """Write the two files of a logged model; returns the pyfunc `artifacts` mapping."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: value.detach().cpu().clone() for name, value in network.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
    (folder / HPARAMS_FILE).write_text(json.dumps({**network.hparams, "device": "cpu"}, indent=2))
    return {WEIGHTS_ARTIFACT: str(folder / WEIGHTS_FILE), HPARAMS_ARTIFACT: str(folder / HPARAMS_FILE)}


def load_network(weights_path: str | Path, hparams_path: str | Path) -> Any:
    """The network, in eval mode on the CPU, from a state dict (loaded with weights_only=True)
    and its constructor arguments (JSON)."""
    from eirnn.model import EIRNN

    network = EIRNN(**json.loads(Path(hparams_path).read_text()))
    network.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return network.eval()


def find_network_files(model_dir: str | Path) -> tuple[Path, Path]:
    """The two files inside a downloaded MLflow model folder."""
    found = {path.name: path for path in Path(model_dir).rglob("*") if path.name in (WEIGHTS_FILE, HPARAMS_FILE)}
    missing = {WEIGHTS_FILE, HPARAMS_FILE} - set(found)
    if missing:
        raise FileNotFoundError(
            f"{model_dir}: not an eirnn model of this version (no {', '.join(sorted(missing))}); models logged "
            "before eirnn stored state dicts were pickles: retrain, or load them with an older eirnn"
        )
    return found[WEIGHTS_FILE], found[HPARAMS_FILE]


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
