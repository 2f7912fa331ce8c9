"""The logged MLflow model: tensors and JSON, no pickle.

A logged model holds the network's two files (`eirnn.model.network_files`: state dict and
constructor arguments). `eirnn.load_model` rebuilds the network from them with the installed
`eirnn` code; `mlflow.pyfunc.load_model` and `mlflow models serve` do the same through
`RatePredictor`, a pyfunc model logged as code (`eirnn/tracking/model_code.py`, MLflow's
models-from-code). Loading never unpickles anything.
"""

from __future__ import annotations

import json
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


ENSEMBLE_FILE = "ensemble.json"  # in an ensemble model: the artifact names of each fit's two files
ENSEMBLE_ARTIFACT = "ensemble"
ENSEMBLE_MODEL_CODE = Path(__file__).with_name("ensemble_model_code.py")


class NetworkEnsemble(torch.nn.Module):
    """Several fitted networks of one ensemble: `predict(inputs) -> (mean, spread)` of their rates
    (Hz, [trials, time, neurons], noise off; spread = standard deviation across fits)."""

    def __init__(self, networks: list[torch.nn.Module]) -> None:
        super().__init__()
        self.networks = torch.nn.ModuleList(networks)

    def predict(self, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
        inputs = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        with torch.no_grad():
            rates = torch.stack([network(inputs, noise=False).rates for network in self.networks])
        return rates.mean(0).numpy(), rates.std(0, correction=0).numpy()


def save_ensemble_files(networks: list[torch.nn.Module], folder: str | Path) -> dict[str, str]:
    """Each fit's two files, named `fitN.<file>` (MLflow keeps a model's artifact files side by
    side), and ensemble.json listing them per fit; returns the pyfunc `artifacts` mapping."""
    folder = Path(folder)
    artifacts: dict[str, str] = {}
    listing = []
    for index, network in enumerate(networks):
        files = pyfunc_artifacts(network, folder / f"fit{index}")
        entry = {}
        for kind, path in files.items():
            unique = folder / f"fit{index}.{Path(path).name}"
            Path(path).replace(unique)
            artifacts[f"fit{index}_{kind}"] = str(unique)
            entry[kind] = unique.name
        (folder / f"fit{index}").rmdir()
        listing.append(entry)
    (folder / ENSEMBLE_FILE).write_text(json.dumps(listing, indent=2))
    artifacts[ENSEMBLE_ARTIFACT] = str(folder / ENSEMBLE_FILE)
    return artifacts


def load_ensemble(model_dir: str | Path) -> NetworkEnsemble | None:
    """The ensemble in a downloaded model folder, or None when it holds a single network."""
    listing_path = next(iter(Path(model_dir).rglob(ENSEMBLE_FILE)), None)
    if listing_path is None:
        return None
    files = {path.name: path for path in Path(model_dir).rglob("fit*.*")}
    listing = json.loads(listing_path.read_text())
    networks = [load_network(files[entry[WEIGHTS_ARTIFACT]], files[entry[HPARAMS_ARTIFACT]]) for entry in listing]
    return NetworkEnsemble(networks).eval()


class EnsemblePredictor(mlflow.pyfunc.PythonModel):
    """Float inputs [trials, time, n_inputs] -> {"mean_rates_hz", "spread_hz"}: the fits' mean
    rates and their standard deviation across fits, [trials, time, neurons] each."""

    def load_context(self, context: Any) -> None:
        n_fits = len(json.loads(Path(context.artifacts[ENSEMBLE_ARTIFACT]).read_text()))
        paths = context.artifacts
        self.ensemble = NetworkEnsemble(
            [
                load_network(paths[f"fit{k}_{WEIGHTS_ARTIFACT}"], paths[f"fit{k}_{HPARAMS_ARTIFACT}"])
                for k in range(n_fits)
            ]
        )

    def predict(self, context, model_input: np.ndarray, params=None):  # the hint: see RatePredictor
        mean, spread = self.ensemble.predict(model_input)
        return {"mean_rates_hz": mean, "spread_hz": spread}
