"""Real example data: monkey M1 during centre-out reaching (Hatsopoulos lab, 2007).

The shared file holds condition-averaged rates (one pseudo-trial per reach direction), so it
has no spike counts, no E/I labels and no task inputs; the inputs are built here from the task:

- cue channels ``cue_<direction>`` (one-hot by direction): on from the start of the window
  (-800 ms) until ``CUE_OFF_MS`` = -100 ms, so the last 100 ms before movement onset are
  driven by the network alone;
- a ``go`` pulse from ``GO_ON_MS`` = -300 ms to ``GO_OFF_MS`` = -200 ms: a go cue about one
  reaction time (~300 ms) before movement onset.

Hand velocity is the behaviour (``hand_vx``, ``hand_vy``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .binned_files import file_sha256, read_variables
from .dataset import DatasetError, NeuralDataset
from .task_inputs import cue_go

M1_REACH_FILE = Path("data/hatsopoulos2007_m1/m1_reach_condition_averaged.npz")
CUE_OFF_MS = -100.0
GO_ON_MS = -300.0
GO_OFF_MS = -200.0


def shared_data_file(relative: str | Path) -> Path:
    """A file of the shared data folder: $EIRNN_SHARED_DIR, else ``shared/`` beside the working
    directory's project (or any folder above it), else beside this package's project."""
    relative = Path(relative)
    roots = [Path(os.environ["EIRNN_SHARED_DIR"])] if os.environ.get("EIRNN_SHARED_DIR") else []
    cwd = Path.cwd().resolve()
    roots += [folder / "shared" for folder in (cwd, *cwd.parents)]
    roots.append(Path(__file__).resolve().parents[4] / "shared")
    for root in roots:
        if (root / relative).is_file():
            return root / relative
    raise DatasetError(
        f"{relative}: expected the shared data file in $EIRNN_SHARED_DIR or a 'shared/' folder beside the "
        f"project; found it in none of: {', '.join(str(root) for root in roots)} (pass path=...)"
    )


def load_m1_reach(path: str | Path | None = None) -> NeuralDataset:
    """The M1 reach example: 8 directions x 121 bins of 10 ms x 141 neurons, rates in Hz, unlabeled."""
    contents = read_variables(path if path is not None else shared_data_file(M1_REACH_FILE))
    for name in ("rates", "time_ms", "bin_ms", "conditions", "hand_velocity"):
        if name not in contents.variables:
            found = f"no such variable; variables present: {contents.listing()}"
            contents.fail(name, "the M1 reach example's variables", found)
    variables = contents.variables
    time_ms = variables["time_ms"].astype(np.float64)
    directions, codes = np.unique(variables["conditions"], return_inverse=True)

    labels = [int(direction) for direction in directions]
    inputs, input_names = cue_go(time_ms, codes, labels, -np.inf, CUE_OFF_MS, GO_ON_MS, GO_OFF_MS)

    return NeuralDataset(
        rates=variables["rates"],
        inputs=inputs,
        input_names=input_names,
        conditions=codes,
        condition_labels=labels,
        bin_ms=float(variables["bin_ms"]),
        behavior=variables["hand_velocity"],
        behavior_names=["hand_vx", "hand_vy"],
        time_ms=time_ms,
        meta={
            "name": "m1_reach",
            "source_file": str(contents.path),
            "sha256": file_sha256(contents.path),
            "area": "M1",
            "source": "Hatsopoulos lab M1 reaching (Dryad doi:10.5061/dryad.xsj3tx9cm, CC0), condition-averaged",
            "inputs": f"cue one-hot until {CUE_OFF_MS:g} ms, go pulse {GO_ON_MS:g}..{GO_OFF_MS:g} ms "
            "(movement onset = 0)",
        },
    )
