"""What a fit recovers of the built-in recording's true circuit, with true, shuffled or no E/I labels.

For each model seed and labelling, fits the default model (TrainConfig defaults, one torch thread)
to the built-in recording (make_recording(seed=0), the same train/validation split for every fit:
split_seed 0), then scores it against the true network with `eirnn.recovery.recover` on the
validation trials: effective-weight correlations (overall, per block), sign agreement,
perturbation effects (silence/boost a group of truly I, then truly E recorded neurons), and the
same for the null (the fitted weights shuffled within E/I blocks).

    python benchmarks/bench_recovery.py run --labels true --seed 0      # one fit -> results/bench_recovery/
    python benchmarks/bench_recovery.py summary                         # table + results/bench_recovery.json

Perturbation trials (`perturbed` rows): a smaller recording (PERTURBED_SIZES) with a share of
optogenetic trials (0, 10 or 25 %: I and E activation, E- and I-group inactivation), fitted with
each trial's perturbation as an input; scored on control and perturbed validation trials, and on
the true circuit's perturbation types, trained on and held out (E-group activation, I
inactivation: never in the recording).

    python benchmarks/bench_recovery.py perturbed --fraction 0.25 --seed 0 --max-epochs 100
    python benchmarks/bench_recovery.py perturbed-summary
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.evaluation import evaluate
from eirnn.pipeline import prepare
from eirnn.recovery import recover
from eirnn.training import fit

RESULTS = Path(__file__).parent / "results"
LABELLINGS = ("true", "shuffled", "none")
COLUMNS = (
    "cond_psth_corr",
    "psth_corr",
    "gt_weight_corr",
    "gt_weight_corr_EE",
    "gt_weight_corr_EI",
    "gt_weight_corr_IE",
    "gt_weight_corr_II",
    "gt_sign_agreement",
    "gt_perturbation_corr",
    "gt_perturbation_corr_silence_I",
    "gt_perturbation_corr_boost_I",
    "gt_perturbation_corr_silence_E",
    "gt_perturbation_corr_boost_E",
    "gt_perturbation_sign_agreement",
    "gt_null_weight_corr",
    "gt_null_sign_agreement",
    "gt_null_perturbation_corr",
    "gt_null_perturbation_sign_agreement",
)


def labelled(dataset, labelling: str, seed: int):
    if labelling == "true":
        return dataset
    if labelling == "shuffled":
        shuffled = np.random.default_rng([seed, 99]).permutation(dataset.ei_labels)
        return dataclasses.replace(dataset, ei_labels=shuffled)
    return dataclasses.replace(dataset, ei_labels=None)


def run_one(labelling: str, seed: int, max_epochs: int) -> dict:
    torch.set_num_threads(1)
    dataset, truth = make_recording(seed=0)
    config = TrainConfig(seed=seed, split_seed=0, threads=1, max_epochs=max_epochs)
    prepared = prepare(config, labelled(dataset, labelling, seed), truth)
    started = time.perf_counter()
    result = fit(prepared.model, prepared.train, prepared.val, config, progress=False)
    prepared.model.load_state_dict(result.best_state)
    scores = evaluate(prepared.model, prepared.val, seed=seed, ceiling_seed=0).scalar_metrics()
    recovery = recover(prepared.model, truth, prepared.val, seed=0)
    return {
        "labels": labelling,
        "seed": seed,
        "max_epochs": max_epochs,
        "epochs": result.total_epochs,
        "best_epoch": result.best_epoch + 1,
        "stop_reason": result.stop_reason,
        "training_seconds": time.perf_counter() - started,
        **{k: scores[k] for k in ("cond_psth_corr", "psth_corr", "cond_noise_ceiling")},
        **recovery.metrics,
    }


def summary() -> dict:
    rows = [json.loads(p.read_text()) for p in sorted((RESULTS / "bench_recovery").glob("*.json"))]
    table = {}
    for labelling in LABELLINGS:
        chosen = [r for r in rows if r["labels"] == labelling]
        if chosen:
            table[labelling] = {
                "n_seeds": len(chosen),
                "seeds": [r["seed"] for r in chosen],
                **{
                    c: {"mean": float(np.mean([r[c] for r in chosen])), "sd": float(np.std([r[c] for r in chosen]))}
                    for c in COLUMNS
                },
            }
    print("| score | " + " | ".join(f"{k} labels (n={v['n_seeds']})" for k, v in table.items()) + " |")
    print("| --- |" + " --- |" * len(table))
    for column in COLUMNS:
        cells = [f"{v[column]['mean']:.3f} ± {v[column]['sd']:.3f}" for v in table.values()]
        print(f"| {column} | " + " | ".join(cells) + " |")
    out = {"runs": rows, "summary": table}
    (RESULTS / "bench_recovery.json").write_text(json.dumps(out, indent=1))
    return out


PERTURBED_SIZES = dict(n_trials=400, n_bins=120)
PERTURBED_COLUMNS = (
    "cond_psth_corr",
    "control_cond_psth_corr",
    "perturbed_cond_psth_corr",
    "gt_weight_corr",
    "gt_weight_corr_EE",
    "gt_weight_corr_EI",
    "gt_weight_corr_IE",
    "gt_weight_corr_II",
    "gt_null_weight_corr",
    "gt_trained_perturbation_corr",
    "gt_null_trained_perturbation_corr",
    "gt_heldout_perturbation_corr",
    "gt_null_heldout_perturbation_corr",
    "gt_heldout_perturbation_sign_agreement",
    "training_seconds",
)


def run_perturbed(fraction: float, seed: int, max_epochs: int, labelling: str = "true") -> dict:
    from eirnn.data.perturbations import trial_types

    torch.set_num_threads(1)
    dataset, truth = make_recording(seed=0, perturbation_fraction=fraction, **PERTURBED_SIZES)
    config = TrainConfig(seed=seed, split_seed=0, threads=1, max_epochs=max_epochs)
    prepared = prepare(config, labelled(dataset, labelling, seed), truth)
    started = time.perf_counter()
    result = fit(prepared.model, prepared.train, prepared.val, config, progress=False)
    seconds = time.perf_counter() - started
    prepared.model.load_state_dict(result.best_state)
    scores = evaluate(prepared.model, prepared.val, seed=seed, ceiling_seed=0).scalar_metrics()
    trained = set(trial_types(prepared.train).tolist())
    recovery = recover(prepared.model, truth, prepared.val, seed=0, trained_types=trained)
    return {
        "fraction": fraction,
        "labels": labelling,
        "seed": seed,
        "max_epochs": max_epochs,
        "epochs": result.total_epochs,
        "training_seconds": seconds,
        "trained_types": sorted(trained),
        **scores,
        **recovery.metrics,
        **{f"type_corr/{label}": effect.corr for label, effect in recovery.type_effects.items()},
    }


def perturbed_summary() -> dict:
    rows = [json.loads(p.read_text()) for p in sorted((RESULTS / "bench_recovery_perturbed").glob("*.json"))]
    table = {}
    # per perturbation type of the true circuit: trained on with 10/25 %, held out with 0 % (and
    # E-group activation, I inactivation held out always)
    columns = PERTURBED_COLUMNS + tuple(sorted({key for row in rows for key in row if key.startswith("type_corr/")}))
    for fraction, labelling in sorted({(row["fraction"], row.get("labels", "true")) for row in rows}):
        chosen = [row for row in rows if (row["fraction"], row.get("labels", "true")) == (fraction, labelling)]
        table[f"{fraction:.0%}" + ("" if labelling == "true" else f", {labelling} labels")] = {
            "n_seeds": len(chosen),
            **{
                c: {"mean": float(np.mean([r[c] for r in chosen])), "sd": float(np.std([r[c] for r in chosen]))}
                for c in columns
            },
        }
    print("| score | " + " | ".join(f"{k} perturbation trials (n={v['n_seeds']})" for k, v in table.items()) + " |")
    print("| --- |" + " --- |" * len(table))
    for column in columns:
        cells = [f"{v[column]['mean']:.3f} ± {v[column]['sd']:.3f}" for v in table.values()]
        print(f"| {column} | " + " | ".join(cells) + " |")
    out = {"runs": rows, "summary": table}
    (RESULTS / "bench_recovery_perturbed.json").write_text(json.dumps(out, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run")
    one.add_argument("--labels", choices=LABELLINGS, required=True)
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--max-epochs", type=int, default=TrainConfig().max_epochs)
    commands.add_parser("summary")
    perturbed = commands.add_parser("perturbed")
    perturbed.add_argument("--fraction", type=float, required=True)
    perturbed.add_argument("--seed", type=int, required=True)
    perturbed.add_argument("--max-epochs", type=int, default=TrainConfig().max_epochs)
    perturbed.add_argument("--labels", choices=LABELLINGS, default="true")
    commands.add_parser("perturbed-summary")
    args = parser.parse_args()
    if args.command == "summary":
        summary()
        return
    if args.command == "perturbed-summary":
        perturbed_summary()
        return
    if args.command == "perturbed":
        folder = RESULTS / "bench_recovery_perturbed"
        folder.mkdir(parents=True, exist_ok=True)
        row = run_perturbed(args.fraction, args.seed, args.max_epochs, args.labels)
        labels = "" if args.labels == "true" else f"_{args.labels}"
        (folder / f"fraction{args.fraction:g}{labels}_seed{args.seed}.json").write_text(json.dumps(row, indent=1))
        print(json.dumps(row))
        return
    folder = RESULTS / "bench_recovery"
    folder.mkdir(parents=True, exist_ok=True)
    row = run_one(args.labels, args.seed, args.max_epochs)
    (folder / f"{args.labels}_seed{args.seed}.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
