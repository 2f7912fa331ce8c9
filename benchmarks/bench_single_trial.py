"""Single-trial prediction (Neural Latents Benchmark scores) of eirnn with shared and inferred
initial states, beside NLB's spike-smoothing baseline and GPFA, on the same splits.

Data: the trial-varying teacher (`make_recording(trial_state_spread=2.0)`, small) and a trial
subset of the built-in recording. Per data set: one train/validation split (split seed 0), 20 %
of the neurons held out (`heldout_neuron_index(..., "0.2", 0)`) and the last 10 % of bins as
forward-prediction bins. Every method is scored on the validation trials with `eirnn.metrics`
(co_bps on held-out neurons over the observed bins, fp_bps over the forward bins, vel_r2 from a
ridge decoder fitted on the training trials, psth_r2 against the validation condition PSTHs).

- smoothing (NLB `run_smoothing.py`): held-in spikes convolved with a Gaussian (sd 50 ms),
  log(x + 1e-4), Poisson GLM (sklearn `PoissonRegressor`, alpha 0.01) to each held-out neuron on
  the training trials; no forward prediction (fp_bps n/a, as in NLB's script).
- GPFA (NLB `run_gpfa.py`, elephant, the `gpfa` extra): latents from held-in spikes, ridge to
  held-in spikes (rectified), Poisson GLM to held-out neurons; fp_bps n/a.
- eirnn shared / inferred: TrainConfig defaults except the settings below (Poisson loss,
  selection on val co_bps), seeds as given.

Run: `python benchmarks/bench_single_trial.py --out benchmarks/results/single_trial.json`
(one torch thread; `--data teacher` or `builtin` for one data set).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe_machine
from scipy.signal.windows import gaussian

from eirnn import metrics
from eirnn.config import TrainConfig
from eirnn.data.split import heldout_neuron_index
from eirnn.data.synthetic import make_recording
from eirnn.evaluation import evaluate, predict_rates
from eirnn.pipeline import prepare
from eirnn.training import fit

HELDOUT, FORWARD_FRACTION, SMOOTH_SD_MS, GLM_ALPHA, LOG_OFFSET = "0.2", 0.1, 50.0, 0.01, 1e-4
GPFA_DIM = 8
EIRNN_SETTINGS = dict(
    threads=1, loss="poisson", selection_metric="co_bps", heldout_neurons=HELDOUT, patience=60, learning_rate=0.003
)


def datasets(which: str) -> dict:
    found = {}
    if which in ("teacher", "all"):
        found["teacher"] = make_recording(seed=0, n_e=20, n_i=6, n_trials=320, n_bins=60, trial_state_spread=2.0)[0]
    if which in ("builtin", "all"):
        builtin = make_recording(seed=0)[0]
        found["builtin[:320]"] = builtin.subset(np.arange(320))
    if which == "builtin-full":
        found["builtin"] = make_recording(seed=0)[0]
    return found


def scores(dataset, train, val, rates_hz_val, rates_hz_train, heldout, forward_bins) -> dict:
    """NLB scores of predicted rates (Hz) on the validation trials."""
    observed = dataset.n_bins - forward_bins
    per_bin = rates_hz_val * val.bin_s
    result = {
        "co_bps": metrics.co_bps(per_bin[:, :observed], val.counts[:, :observed], heldout),
        "psth_r2": metrics.psth_r2(
            metrics.condition_psths(rates_hz_val[:, :observed], val.conditions),
            metrics.condition_psths(val.rates_hz[:, :observed], val.conditions),
        ),
    }
    if dataset.behavior is not None:
        result["vel_r2"] = metrics.vel_r2(
            rates_hz_train[:, :observed] * train.bin_s,
            train.behavior[:, :observed],
            per_bin[:, :observed],
            val.behavior[:, :observed],
        )
    return {name: metrics.to_float(value) for name, value in result.items()}


def fit_poisson(train_x: np.ndarray, eval_x: np.ndarray, train_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import PoissonRegressor

    train_pred, eval_pred = [], []
    for column in range(train_counts.shape[1]):
        glm = PoissonRegressor(alpha=GLM_ALPHA, max_iter=500).fit(train_x, train_counts[:, column])
        train_pred.append(glm.predict(train_x))
        eval_pred.append(glm.predict(eval_x))
    return np.clip(np.stack(train_pred, 1), 1e-9, 1e20), np.clip(np.stack(eval_pred, 1), 1e-9, 1e20)


def readout_baseline(dataset, train, val, heldout, forward_bins, features) -> dict:
    """Held-in rates from `features(train_held_in, val_held_in)`, a Poisson GLM to the held-out
    neurons; all fitted on the observed bins of the training trials."""
    observed = dataset.n_bins - forward_bins
    held_in = [i for i in range(dataset.n_neurons) if i not in heldout]
    train_in, val_in = (part.counts[:, :observed][..., held_in].astype(float) for part in (train, val))
    train_rates_in, val_rates_in = features(
        train_in, val_in, dataset.bin_ms
    )  # counts per bin, [trials, observed, held-in]
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    train_out, val_out = fit_poisson(
        np.log(flat(train_rates_in) + LOG_OFFSET),
        np.log(flat(val_rates_in) + LOG_OFFSET),
        flat(train.counts[:, :observed][..., heldout].astype(float)),
    )

    def full(rates_in, rates_out, n_trials):
        rates = np.zeros((n_trials, dataset.n_bins, dataset.n_neurons))
        rates[:, :observed, held_in] = rates_in
        rates[:, :observed, heldout] = rates_out.reshape(n_trials, observed, -1)
        rates[:, observed:] = rates[:, observed - 1 : observed]  # no forecast: the last observed bin
        return rates / dataset.bin_s

    val_hz = full(val_rates_in, val_out, val.n_trials)
    train_hz = full(train_rates_in, train_out, train.n_trials)
    return {**scores(dataset, train, val, val_hz, train_hz, heldout, forward_bins), "fp_bps": float("nan")}


def smoothed(train_in: np.ndarray, val_in: np.ndarray, bin_ms: float) -> tuple[np.ndarray, np.ndarray]:
    sd_bins = SMOOTH_SD_MS / bin_ms
    window = gaussian(max(int(6 * sd_bins), 1), sd_bins, sym=True)
    window /= window.sum()
    smooth = lambda x: np.apply_along_axis(lambda trace: np.convolve(trace, window, "same"), 1, x)  # noqa: E731
    return smooth(train_in), smooth(val_in)


def gpfa_rates(train_in: np.ndarray, val_in: np.ndarray, bin_ms: float) -> tuple[np.ndarray, np.ndarray]:
    import neo
    import quantities as pq
    from elephant.gpfa import GPFA
    from sklearn.linear_model import Ridge

    def spike_trains(counts):
        trials = []
        for trial in counts:
            trains = []
            for column in trial.T:
                times = np.repeat(np.flatnonzero(column), column[column > 0].astype(int))
                trains.append(neo.SpikeTrain(times * bin_ms * pq.ms, t_stop=len(column) * bin_ms * pq.ms))
            trials.append(trains)
        return trials

    gpfa = GPFA(bin_size=bin_ms * pq.ms, x_dim=min(GPFA_DIM, train_in.shape[-1] - 1))
    train_factors = gpfa.fit_transform(spike_trains(train_in))
    val_factors = gpfa.transform(spike_trains(val_in))
    stack = lambda factors: np.vstack([f.T for f in factors])  # noqa: E731
    ridge = Ridge(alpha=0.0).fit(
        np.vstack([stack(train_factors), stack(val_factors)]),
        np.vstack([train_in.reshape(-1, train_in.shape[-1]), val_in.reshape(-1, val_in.shape[-1])]),
    )
    rectified = lambda factors, like: np.clip(ridge.predict(stack(factors)), 1e-10, None).reshape(like.shape)  # noqa: E731
    return rectified(train_factors, train_in), rectified(val_factors, val_in)


def eirnn_fit(dataset, initial_state: str, seed: int, max_epochs: int, forward_bins: int, **settings) -> dict:
    config = TrainConfig(
        **settings,
        **EIRNN_SETTINGS,
        initial_state=initial_state,
        seed=seed,
        split_seed=0,
        max_epochs=max_epochs,
        forward_bins=forward_bins,
    )
    prepared, result = fitted(config, dataset)
    evaluation = evaluate(prepared.model, prepared.val, seed=seed, train=prepared.train)
    values = evaluation.scalar_metrics()
    return {
        **{name: values[name] for name in ("co_bps", "fp_bps", "vel_r2", "psth_r2")},
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "epoch_seconds_median": statistics.median(h["epoch_seconds"] for h in result.history),
    }


def fitted(config: TrainConfig, dataset):
    """(prepared data and model, fit result), the model holding its best epoch's weights."""
    prepared = prepare(config, dataset=dataset)
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    prepared.model.load_state_dict(result.best_state)
    return prepared, result


def shuffle_control(dataset, seed: int, max_epochs: int, forward_bins: int) -> dict:
    """co_bps of one inferred-state fit (penalty 0) scored with each validation trial's own spikes
    and with the spikes of another trial of the same condition (a seeded permutation within
    conditions): what the trial's own spikes add beyond its condition."""
    config = TrainConfig(
        **EIRNN_SETTINGS,
        initial_state="inferred",
        initial_state_penalty=0.0,
        seed=seed,
        split_seed=0,
        max_epochs=max_epochs,
        forward_bins=forward_bins,
    )
    prepared, _ = fitted(config, dataset)
    val, rng = prepared.val, np.random.default_rng(seed)
    other = np.arange(val.n_trials)
    for code in np.unique(val.conditions):
        trials = np.flatnonzero(val.conditions == code)
        other[trials] = rng.permutation(trials)
    heldout, observed = prepared.model.hparams["heldout_neurons"], dataset.n_bins - forward_bins
    scores = {}
    for name, order in (("own_spikes", np.arange(val.n_trials)), ("other_trial_spikes", other)):
        spikes = val.counts[order].astype(np.float32)
        rates = predict_rates(prepared.model, val.inputs, spikes=spikes).rates.numpy() * val.bin_s
        scores[name] = float(metrics.co_bps(rates[:, :observed], val.counts[:, :observed], heldout))
    return scores


def epoch_times(dataset, epochs: int = 7) -> dict:
    """Median seconds per training epoch (validation included) of shared and inferred models on
    `dataset`, epochs alternating between the two in one process so that both see the same load."""
    from eirnn.training.loop import _Training

    runs = {}
    for initial_state in ("shared", "inferred"):
        config = TrainConfig(**EIRNN_SETTINGS, initial_state=initial_state, split_seed=0)
        prepared = prepare(config, dataset=dataset)
        runs[initial_state] = _Training(prepared.model, prepared.train, prepared.val, config.section("training"))
        runs[initial_state].start(prepared.train, None)
    seconds = {name: [] for name in runs}
    for epoch in range(epochs):
        for name, training in runs.items():
            seconds[name].append(training.run_epoch(epoch)["epoch_seconds"])
    return {name: statistics.median(values) for name, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="all", choices=("teacher", "builtin", "builtin-full", "all"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument("--skip", nargs="*", default=[], help="methods to skip: smoothing gpfa shared inferred")
    parser.add_argument("--penalty", type=float, default=None, help="initial_state_penalty (default: the config's)")
    parser.add_argument("--shuffle-control", action="store_true", help="only the within-condition spike shuffle")
    parser.add_argument("--epoch-time", action="store_true", help="only time epochs, shared against inferred")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/single_trial.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = describe_machine()
    for name, dataset in datasets(args.data).items():
        if args.shuffle_control:
            forward_bins = max(1, round(FORWARD_FRACTION * dataset.n_bins))
            control = {seed: shuffle_control(dataset, seed, args.max_epochs, forward_bins) for seed in args.seeds}
            results.setdefault("shuffle_control", {})[name] = control
            print(name, control, flush=True)
            args.out.write_text(json.dumps(results, indent=2))
            continue
        if args.epoch_time:
            results.setdefault("epoch_seconds", {})[name] = epoch_times(dataset)
            results["epoch_seconds"]["machine_after"] = describe_machine()
            print(name, results["epoch_seconds"][name], flush=True)
            args.out.write_text(json.dumps(results, indent=2))
            continue
        forward_bins = max(1, round(FORWARD_FRACTION * dataset.n_bins))
        config = TrainConfig(**EIRNN_SETTINGS, split_seed=0, forward_bins=forward_bins)
        split = prepare(config, dataset=dataset)
        heldout = heldout_neuron_index(dataset, HELDOUT, 0)
        rows = results.setdefault(name, {})
        for method, features in (("smoothing", smoothed), ("gpfa", gpfa_rates)):
            if method not in args.skip:
                started = time.perf_counter()
                row = readout_baseline(dataset, split.train, split.val, heldout, forward_bins, features)
                rows[method] = {**row, "seconds": time.perf_counter() - started}
                print(name, method, rows[method], flush=True)
        for initial_state in ("shared", "inferred"):
            if initial_state in args.skip:
                continue
            for seed in args.seeds:
                started = time.perf_counter()
                penalty = {} if args.penalty is None else {"initial_state_penalty": args.penalty}
                row = eirnn_fit(dataset, initial_state, seed, args.max_epochs, forward_bins, **penalty)
                method = f"eirnn-{initial_state}"
                if initial_state == "inferred":
                    method += f"-penalty{TrainConfig(**penalty).initial_state_penalty:g}"
                rows[f"{method}-seed{seed}"] = {**row, "seconds": time.perf_counter() - started}
                print(name, initial_state, seed, row, flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=2))
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
