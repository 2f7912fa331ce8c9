"""Which `initial_state_penalty` (weight of the mean squared offset of the inferred x[0] from the
shared h0) to default to: validation co-bps of inferred-state fits for each penalty, on a
trial-varying teacher that the single-trial table does NOT report on (make_recording seed 1;
bench_single_trial.py reports seed 0), so that the choice is not made on the reported data.

Run: `python benchmarks/bench_initial_state_penalty.py` (one torch thread).
"""

import json
from pathlib import Path

import torch
from bench_single_trial import FORWARD_FRACTION, eirnn_fit
from machine import describe_machine

from eirnn.data.synthetic import make_recording

PENALTIES = (0.0, 0.01, 0.1, 1.0)
OUT = Path(__file__).parent / "results" / "initial_state_penalty.json"

torch.set_num_threads(1)
dataset = make_recording(seed=1, n_e=20, n_i=6, n_trials=320, n_bins=60, trial_state_spread=2.0)[0]
forward_bins = max(1, round(FORWARD_FRACTION * dataset.n_bins))
results = {"machine": describe_machine(), "data": "make_recording(seed=1, 20 E, 6 I, 320 trials, 60 bins, spread 2)"}
for penalty in PENALTIES:
    row = eirnn_fit(dataset, "inferred", 0, 400, forward_bins, initial_state_penalty=penalty)
    results[str(penalty)] = row
    print(penalty, row, flush=True)
    OUT.write_text(json.dumps(results, indent=2))
