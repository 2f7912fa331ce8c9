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

    # no type hints: MLflow would read them as the input schema, which the logged signature gives
    def predict(self, context, model_input, params=None):
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
        files = save_network_files(network, folder / f"fit{index}")
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

    def predict(self, context, model_input, params=None):
        mean, spread = self.ensemble.predict(model_input)
        return {"mean_rates_hz": mean, "spread_hz": spread}
