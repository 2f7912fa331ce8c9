"""A fitted network on disk as tensors and JSON, no pickle: its state dict
(`network_state.pt`, tensors only) and its constructor arguments (`network_hparams.json`).

The logged MLflow model (`eirnn.tracking.serving`) and a plain run folder (`model/`) hold these
two files; `load_network` rebuilds the network from them with the installed `eirnn` code, so a
model saved before a change to the model classes still loads as long as the constructor
arguments and parameter names it stores are still understood.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

WEIGHTS_FILE = "network_state.pt"
HPARAMS_FILE = "network_hparams.json"


def save_network_files(network: torch.nn.Module, folder: str | Path) -> tuple[Path, Path]:
    """Write the network's two files into `folder`; returns (weights path, hparams path)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: value.detach().cpu().clone() for name, value in network.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
    (folder / HPARAMS_FILE).write_text(json.dumps({**network.hparams, "device": "cpu"}, indent=2))
    return folder / WEIGHTS_FILE, folder / HPARAMS_FILE


def load_network(weights_path: str | Path, hparams_path: str | Path) -> Any:
    """The network, in eval mode on the CPU, from a state dict (loaded with weights_only=True)
    and its constructor arguments (JSON)."""
    from eirnn.model import EIRNN

    network = EIRNN(**json.loads(Path(hparams_path).read_text()))
    network.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return network.eval()


def find_network_files(model_dir: str | Path) -> tuple[Path, Path]:
    """The two files anywhere inside `model_dir` (a downloaded MLflow model, a run folder)."""
    found = {path.name: path for path in Path(model_dir).rglob("*") if path.name in (WEIGHTS_FILE, HPARAMS_FILE)}
    missing = {WEIGHTS_FILE, HPARAMS_FILE} - set(found)
    if missing:
        raise FileNotFoundError(
            f"{model_dir}: not an eirnn model of this version (no {', '.join(sorted(missing))}); models logged "
            "before eirnn stored state dicts were pickles: retrain, or load them with an older eirnn"
        )
    return found[WEIGHTS_FILE], found[HPARAMS_FILE]
