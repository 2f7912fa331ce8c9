"""Inactivation as a hyperpolarising drive against an output gain of 0, in the true network of the
built-in recording (docs/perturbations.md): how far the targeted group's rate falls, and how the
effect on the other recorded neurons compares with silencing the group's output.

    python benchmarks/measure_inactivation.py
"""

from __future__ import annotations

import numpy as np
import torch

from eirnn.data.perturbations import Channel, PerturbationSteps
from eirnn.data.synthetic import make_recording
from eirnn.evaluation import predict_rates
from eirnn.metrics import condition_psths, pearson_r
from eirnn.recovery import ground_truth_model, perturbation_effect, perturbation_groups

STRENGTHS = (1, 2, 3, 5, 8)
N_TRIALS = 200


def main() -> None:
    torch.set_num_threads(1)
    dataset, truth = make_recording(seed=0)
    trials = dataset.subset(np.arange(N_TRIALS))
    twin = ground_truth_model(truth, dataset.bin_ms, trials.inputs[:, 0])
    n = dataset.n_neurons
    base = predict_rates(twin, trials.inputs).rates.numpy()[..., :n].astype(float)
    for name, neurons in perturbation_groups(truth.unit_is_inhibitory[truth.recorded_units], 0).items():
        silenced = perturbation_effect(twin, trials.inputs, trials.conditions, neurons, 0.0).change
        others = np.setdiff1d(np.arange(n), neurons)
        for strength in STRENGTHS:
            channel = Channel("neurons", tuple(neurons.tolist()), "inactivation")
            values = np.full((trials.n_trials, trials.n_bins, 1), strength, np.float32)
            after = predict_rates(twin, trials.inputs, perturbation=PerturbationSteps((channel,), values))
            after = after.rates.numpy()[..., :n].astype(float)
            change = condition_psths(after, trials.conditions) - condition_psths(base, trials.conditions)
            gain_zero, drive = silenced[..., others].ravel(), change[..., others].ravel()
            slope = drive @ gain_zero / (gain_zero @ gain_zero)
            print(
                f"true {name} group ({len(neurons)} neurons), drive -{strength}: targeted rate "
                f"{after[..., neurons].mean() / base[..., neurons].mean():.3f} of control; effect on the others "
                f"r = {pearson_r(drive, gain_zero):.3f} with output gain 0, slope {slope:.2f}"
            )


if __name__ == "__main__":
    main()
