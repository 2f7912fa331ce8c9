"""nlb_tools' own values of co-bps, fp-bps, vel R^2 and PSTH R^2 on fixed arrays (with NaN padding),
for tests/test_single_trial_metrics.py.

nlb_tools pins pandas<=1.3.4, so it never enters eirnn's requirements; run this in a side
environment (its evaluation module needs numpy, scipy, scikit-learn and h5py only):

    python3 -m venv /tmp/nlbenv
    /tmp/nlbenv/bin/pip install --no-deps nlb_tools==0.0.3
    /tmp/nlbenv/bin/pip install numpy scipy scikit-learn h5py
    /tmp/nlbenv/bin/python tests/data/nlb_reference/make_reference.py

It writes arrays.npz (the inputs) and reference.json (nlb_tools' values and versions) beside it.
"""

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
from nlb_tools.evaluation import bits_per_spike, eval_psth, velocity_decoding

HERE = Path(__file__).parent
rng = np.random.default_rng(20240601)
n_trials, n_bins, n_neurons, forward_bins = 24, 30, 10, 6
heldout = np.array([2, 5, 7])

# rates per bin: a latent per trial drives every neuron, so that rates predict spikes and behaviour
latent = np.cumsum(rng.normal(size=(n_trials, n_bins, 2)), axis=1) / 4
loading = rng.normal(size=(2, n_neurons))
true_rates = np.exp(latent @ loading * 0.5 - 1.0)
spikes = rng.poisson(true_rates).astype(float)
model_rates = true_rates * rng.lognormal(0.0, 0.3, size=true_rates.shape)
model_rates[0, 0, 0] = 0.0  # a zero prediction: nlb_tools replaces it by 1e-9
# NaN padding: shorter trials end early
for trial, length in ((3, 22), (9, 27), (17, 25)):
    spikes[trial, length:] = np.nan
behavior = latent @ rng.normal(size=(2, 2)) + rng.normal(scale=0.3, size=(n_trials, n_bins, 2))
behavior[3, 22:] = np.nan
train, evaluation = np.arange(16), np.arange(16, 24)
conditions = np.arange(n_trials) % 4
psth = np.stack([true_rates[conditions == c].mean(axis=0) for c in range(4)])
psth[1, -3:] = np.nan  # NLB drops PSTH rows whose first neuron is NaN

observed = n_bins - forward_bins
eval_rates, eval_spikes = model_rates[evaluation], spikes[evaluation]
reference = {
    "co_bps": float(
        bits_per_spike(eval_rates[:, :observed][..., heldout].copy(), eval_spikes[:, :observed][..., heldout])
    ),
    "fp_bps": float(bits_per_spike(eval_rates[:, observed:].copy(), eval_spikes[:, observed:])),
    "bits_per_spike_all": float(bits_per_spike(model_rates.copy(), spikes)),
    "vel_r2": float(
        velocity_decoding(
            model_rates[train],
            behavior[train],
            np.full((len(train), 1), True),
            model_rates[evaluation],
            behavior[evaluation],
            np.full((len(evaluation), 1), True),
        )
    ),
    "psth_r2": float(eval_psth(psth, model_rates, [np.flatnonzero(conditions == c) for c in range(4)])),
    "versions": {name: version(name) for name in ("nlb_tools", "scikit-learn", "numpy", "scipy")},
}
np.savez(
    HERE / "arrays.npz",
    model_rates=model_rates,
    spikes=spikes,
    behavior=behavior,
    psth=psth,
    conditions=conditions,
    heldout=heldout,
    train=train,
    evaluation=evaluation,
    forward_bins=forward_bins,
)
(HERE / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")
print(json.dumps(reference, indent=2))
