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
from types import SimpleNamespace
from typing import Any

import mlflow.pyfunc
import numpy as np
import torch

from eirnn.data.perturbations import PerturbationSteps, checked_table
from eirnn.model.network_files import load_network, save_network_files

WEIGHTS_ARTIFACT = "network_state"
HPARAMS_ARTIFACT = "network_hparams"
MODEL_CODE = Path(__file__).with_name("model_code.py")
#: the pyfunc's params: the trials' perturbations, one entry per perturbation, named as the data
#: format's variables (docs/data-format.md), and the bins' times; all empty = no perturbation
PERTURBATION_PARAMS = {
    "perturbation_trial": "long",  # the trial's index in the model input
    "perturbation_target": "string",  # E, I or neurons
    "perturbation_neurons": "string",  # a neurons row's neuron indices "3,7" (model order); else ""
    "perturbation_onset_ms": "double",
    "perturbation_offset_ms": "double",
    "perturbation_kind": "string",  # activation or inactivation
    "perturbation_strength": "double",
    "time_ms": "double",  # the bins' times, for the windows (default 0, bin_ms, ...)
}


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


def perturbation_params_schema() -> Any:
    """The logged signature's params: PERTURBATION_PARAMS, lists defaulting to empty."""
    from mlflow.types import ParamSchema, ParamSpec

    return ParamSchema([ParamSpec(name, kind, [], (-1,)) for name, kind in PERTURBATION_PARAMS.items()])


def _params_error(variable: str, expected: str, found: str) -> None:
    raise ValueError(f"params '{variable}': expected {expected}; found {found}")


def _neuron_matrix(texts: np.ndarray, n_neurons: int) -> np.ndarray | None:
    """[perturbations, neurons] 0/1 from each row's "3,7" (None when no row lists neurons)."""
    if not any(str(text).strip() for text in texts):
        return None
    matrix = np.zeros((len(texts), n_neurons), dtype=np.uint8)
    for row, text in enumerate(texts):
        try:
            listed = [int(item) for item in str(text).split(",") if item.strip()]
        except ValueError:
            _params_error(
                "perturbation_neurons", "neuron indices such as '3,7', one entry per perturbation", repr(text)
            )
        if any(not 0 <= neuron < n_neurons for neuron in listed):
            _params_error("perturbation_neurons", f"neuron indices 0..{n_neurons - 1}", repr(text))
        matrix[row, listed] = 1
    return matrix


def perturbation_from_params(network: Any, params: dict | None, n_trials: int, n_bins: int) -> PerturbationSteps | None:
    """The trials' perturbations given as pyfunc params (PERTURBATION_PARAMS), as the model applies
    them; None without any. Checked as a data file's are: a bad entry is a one-line ValueError."""
    given = {name: np.asarray(value).ravel() for name, value in (params or {}).items() if name in PERTURBATION_PARAMS}
    if not len(given.get("perturbation_target", ())):
        return None
    n_neurons, bin_ms = int(network.n_recorded), float(network.hparams["dt"])
    time_ms = given.get("time_ms")
    if time_ms is None or not len(time_ms):
        time_ms = np.arange(n_bins) * bin_ms
    elif len(time_ms) != n_bins:
        _params_error("time_ms", f"{n_bins} bin times (one per bin of the input)", f"{len(time_ms)}")
    columns = {name.removeprefix("perturbation_"): value for name, value in given.items() if name != "time_ms"}
    columns["neurons"] = _neuron_matrix(columns.pop("neurons", np.array([])), n_neurons)
    trials = SimpleNamespace(
        n_trials=n_trials,
        trial_ids=np.arange(n_trials),
        neuron_ids=np.arange(n_neurons),
        time_ms=np.asarray(time_ms, dtype=float),
        n_bins=n_bins,
        bin_ms=bin_ms,
    )
    table = checked_table(columns, trials, _params_error)
    return None if table is None else table.steps(n_trials, trials.time_ms)


class RatePredictor(mlflow.pyfunc.PythonModel):
    """Rates in, rates out: float inputs [trials, time, n_inputs] -> firing rates in Hz
    [trials, time, neurons], deterministic (process noise off), any number of trials and bins.
    An inferred-state model (`initial_state="inferred"`) takes [trials, time, n_inputs + n_neurons]:
    each trial's inputs and then its spike counts (`predict_input`), and predicts each trial
    from its own inferred initial state. The trials' perturbations, if any, are params
    (PERTURBATION_PARAMS), applied as in training; without them every trial is a control."""

    def load_context(self, context: Any) -> None:
        self.network = load_network(context.artifacts[WEIGHTS_ARTIFACT], context.artifacts[HPARAMS_ARTIFACT])

    # `np.ndarray` is the one input hint MLflow neither validates nor infers a schema from (the
    # logged signature gives it); without a hint MLflow warns at every model logging
    def predict(self, context, model_input: np.ndarray, params=None):
        values = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        n_inputs = self.network.n_inputs
        spikes = values[..., n_inputs:] if self.network.infers_initial_state else None
        steps = perturbation_from_params(self.network, params, values.shape[0], values.shape[1])
        with torch.no_grad():
            prepared = self.network.prepare_inputs(values[..., :n_inputs], spikes, steps)
            return self.network(prepared, noise=False).rates.numpy()


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
