"""What a fit recovers of a known circuit: teacher x method x E/I labels x model seed.

Teachers (`make_recording(seed=0, ...)`, the same train/validation split for every fit: split_seed 0):
`builtin` (the built-in recording, half of the units recorded), `fully_observed` (a small network,
every unit recorded: 16 E + 4 I, 300 trials x 80 bins) and `strong_recurrence` (the same small
size, half recorded, spectral radius 1.5). Methods: `free_running` (the objective before the
least-squares initialisation: random W_rec), `least_squares_init` (the default: W_rec among recorded
neurons from the Dale's-law next-step regression, then the free-running fit), `teacher_forced`
(that plus the teacher-forced term, weight 1), `least_squares` (the regression's estimate itself,
no fit: weights only) and `ablated` (W_rec held at zero). Labels: true, shuffled, none. Each fit
is scored against the true network with `eirnn.recovery.recover` on the validation trials:
effective-weight correlations (overall, per block), sign agreement, perturbation effects, and the
null (the fitted weights shuffled within E/I blocks). The small teachers fit the true time
constant (100 ms) without added hidden units; the built-in one the defaults (tau 50 ms).

    python benchmarks/bench_recovery.py run --teacher builtin --method free_running --labels true --seed 0
    python benchmarks/bench_recovery.py summary     # table + results/bench_recovery_methods.json

Perturbation trials (`perturbed` rows): each teacher with a share of optogenetic trials (0, 10 or
25 %: I and E activation, E- and I-group inactivation; the built-in teacher at the smaller size
PERTURBED_SIZES), fitted with today's defaults (least-squares start) and each trial's perturbation
as an input; scored on control and perturbed validation trials, per block against the null, and
on the true circuit's perturbation types, trained on and held out (E-group activation, I
inactivation: never in the recording).

    python benchmarks/bench_recovery.py perturbed --teacher fully_observed --fraction 0.25 --seed 0 --max-epochs 300
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
from machine import describe_machine

from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.data.synthetic_perturbations import PROTOCOLS, RECORDED_TYPES
from eirnn.evaluation import evaluate
from eirnn.pipeline import prepare
from eirnn.recovery import effective_weights, recover, shuffled_within_blocks, weight_recovery
from eirnn.training import fit
from eirnn.training.next_step import single_trial_rates
from eirnn.training.teacher_forcing import initialise_from_regression

RESULTS = Path(__file__).parent / "results"
FOLDER = RESULTS / "bench_recovery_methods"
LABELLINGS = ("true", "shuffled", "none")
SMALL = dict(n_e=16, n_i=4, n_trials=300, n_bins=80)
TEACHERS = {
    "builtin": ({}, {}),
    "fully_observed": ({**SMALL, "fully_observed": True}, {"tau": 100.0, "enforce_ratio": False}),
    "strong_recurrence": ({**SMALL, "spectral_radius": 1.5}, {"tau": 100.0, "enforce_ratio": False}),
}
METHODS = {
    "free_running": {"recurrent_init": "random"},
    "least_squares_init": {"recurrent_init": "least_squares"},
    "teacher_forced": {"recurrent_init": "least_squares", "objective": "teacher_forced"},
    "least_squares": {"recurrent_init": "least_squares"},
    "ablated": {"recurrent": False},
}


def labelled(dataset, labelling: str, seed: int):
    if labelling == "true":
        return dataset
    if labelling == "shuffled":
        shuffled = np.random.default_rng([seed, 99]).permutation(dataset.ei_labels)
        return dataclasses.replace(dataset, ei_labels=shuffled)
    return dataclasses.replace(dataset, ei_labels=None)


def run_one(teacher: str, method: str, labelling: str, seed: int, max_epochs: int) -> dict:
    torch.set_num_threads(1)
    sizes, fitting = TEACHERS[teacher]
    dataset, truth = make_recording(seed=0, **sizes)
    settings = {"max_epochs": max_epochs, **fitting, **METHODS[method]}
    config = TrainConfig(seed=seed, split_seed=0, threads=1, **settings)
    prepared = prepare(config, labelled(dataset, labelling, seed), truth)
    started = time.perf_counter()
    row = {"teacher": teacher, "method": method, "labels": labelling, "seed": seed, "max_epochs": max_epochs}
    if method == "least_squares":
        return {**row, **least_squares_scores(prepared, truth), "training_seconds": time.perf_counter() - started}
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    prepared.model.load_state_dict(result.best_state)
    scores = evaluate(prepared.model, prepared.val, seed=seed, ceiling_seed=0).scalar_metrics()
    recovery = recover(prepared.model, truth, prepared.val, seed=0)
    return {
        **row,
        "epochs": result.total_epochs,
        "best_epoch": result.best_epoch + 1,
        "stop_reason": result.stop_reason,
        "training_seconds": time.perf_counter() - started,
        **{k: scores[k] for k in ("cond_psth_corr", "psth_corr", "cond_noise_ceiling")},
        **recovery.metrics,
        "machine": describe_machine(),
    }


def least_squares_scores(prepared, truth) -> dict:
    """The regression's weights among recorded neurons, scored like a fit's (no dynamics run)."""
    model, train = prepared.model, prepared.train
    model.set_rate_scale(torch.as_tensor(train.rates_hz.mean(axis=(0, 1)), dtype=torch.float32))
    estimate = initialise_from_regression(model, single_trial_rates(train, 1.0), train.inputs, train.ei_labels)
    twin_labels = truth.unit_is_inhibitory[truth.recorded_units]
    true_weights = truth.w_rec[np.ix_(truth.recorded_units, truth.recorded_units)] / truth.rate_gain_hz
    scores = weight_recovery(estimate.effective_weights(), true_weights, twin_labels)
    return {**{f"gt_{k}": v for k, v in scores.items()}, "machine": describe_machine()}


def _cell(rows: list[dict], column: str) -> dict | None:
    values = [r[column] for r in rows if column in r and r[column] is not None and np.isfinite(r[column])]
    return {"mean": float(np.mean(values)), "sd": float(np.std(values)), "n": len(values)} if values else None


def summary() -> dict:
    rows = [json.loads(p.read_text()) for p in sorted(FOLDER.glob("*.json"))]
    table = {}
    for row in rows:
        key = f"{row['teacher']} / {row['method']} / {row['labels']}"
        table.setdefault(key, []).append(row)
    shown = (
        "cond_psth_corr",
        *(f"gt_weight_corr_{b}" for b in ("EE", "EI", "IE", "II")),
        "gt_sign_agreement",
        "gt_perturbation_corr",
        "gt_null_perturbation_corr",
        "training_seconds",
        "epochs",
    )
    print("| teacher / method / labels | seeds | " + " | ".join(shown) + " |")
    print("| --- | --- |" + " --- |" * len(shown))
    out = {}
    for key in sorted(table):
        chosen = table[key]
        cells = {c: _cell(chosen, c) for c in shown}
        out[key] = {"seeds": sorted(r["seed"] for r in chosen), **cells}
        text = [f"{v['mean']:.3f} ± {v['sd']:.3f}" if v else "—" for v in cells.values()]
        print(f"| {key} | {len(chosen)} | " + " | ".join(text) + " |")
    (RESULTS / "bench_recovery_methods.json").write_text(json.dumps({"runs": rows, "summary": out}, indent=1))
    return out


#: the built-in teacher's perturbed recording is shortened to fit a benchmark session
PERTURBED_SIZES = {"builtin": dict(n_trials=400, n_bins=120)}
BLOCK_COLUMNS = tuple(f"gt{null}_weight_corr_{b}" for b in ("EE", "EI", "IE", "II") for null in ("", "_null"))
PERTURBED_COLUMNS = (
    "cond_psth_corr",
    "control_cond_psth_corr",
    "perturbed_cond_psth_corr",
    "gt_weight_corr",
    "gt_null_weight_corr",
    *BLOCK_COLUMNS,
    "gt_trained_perturbation_corr",
    "gt_null_trained_perturbation_corr",
    "gt_heldout_perturbation_corr",
    "gt_null_heldout_perturbation_corr",
    "gt_heldout_perturbation_sign_agreement",
    "training_seconds",
    "epochs",
)


def null_block_corrs(model, recovery, seed: int) -> dict[str, float]:
    """Per-block weight correlation of the null `recover` scores (same shuffle seed)."""
    null = effective_weights(shuffled_within_blocks(model, seed), len(recovery.true_weights))
    scores = weight_recovery(null, recovery.true_weights, recovery.true_is_inhibitory)
    return {f"gt_null_{k}": v for k, v in scores.items() if k.startswith("weight_corr_")}


def run_perturbed(teacher: str, fraction: float, seed: int, max_epochs: int, labelling: str = "true") -> dict:
    from eirnn.data.perturbations import trial_types

    torch.set_num_threads(1)
    sizes, fitting = TEACHERS[teacher]
    dataset, truth = make_recording(seed=0, perturbation_fraction=fraction, **sizes, **PERTURBED_SIZES.get(teacher, {}))
    config = TrainConfig(seed=seed, split_seed=0, threads=1, max_epochs=max_epochs, **fitting)
    prepared = prepare(config, labelled(dataset, labelling, seed), truth)
    machine = describe_machine()
    started = time.perf_counter()
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    seconds = time.perf_counter() - started
    prepared.model.load_state_dict(result.best_state)
    scores = evaluate(prepared.model, prepared.val, seed=seed, ceiling_seed=0).scalar_metrics()
    trained = set(trial_types(prepared.train).tolist())
    recovery = recover(prepared.model, truth, prepared.val, seed=0, trained_types=trained)
    return {
        "teacher": teacher,
        "fraction": fraction,
        "labels": labelling,
        "seed": seed,
        "max_epochs": max_epochs,
        "recurrent_init": config.recurrent_init,
        "epochs": result.total_epochs,
        "training_seconds": seconds,
        "trained_types": sorted(trained),
        **scores,
        **recovery.metrics,
        **null_block_corrs(prepared.model, recovery, seed=0),
        **{f"type_corr/{label}": effect.corr for label, effect in recovery.type_effects.items()},
        "machine": machine,
    }


def with_type_means(row: dict) -> dict:
    """`row` plus the mean correlation over the recorded types (held out at 0 %, trained on
    otherwise) and over the types never recorded (held out at every share): the same types at
    every share, unlike gt_heldout_perturbation_corr (all six types at 0 %, two otherwise)."""
    never = [label for label in PROTOCOLS if label not in RECORDED_TYPES]
    return {
        **row,
        "recorded_types_corr": float(np.mean([row[f"type_corr/{label}"] for label in RECORDED_TYPES])),
        "never_recorded_types_corr": float(np.mean([row[f"type_corr/{label}"] for label in never])),
    }


def _mean_sd_text(cell: dict | None, digits: int) -> str:
    return "—" if cell is None else f"{cell['mean']:.{digits}f} ± {cell['sd']:.{digits}f}"


def print_table(table: dict, columns: tuple[str, ...]) -> None:
    """One markdown row per score, its null's mean ± sd beside it in brackets."""
    print("| score (null) | " + " | ".join(f"{k} (n={len(v['seeds'])})" for k, v in table.items()) + " |")
    print("| --- |" + " --- |" * len(table))
    for column in columns:
        if column.startswith("gt_null_"):
            continue
        null = f"gt_null_{column.removeprefix('gt_')}"
        digits = 0 if column in ("training_seconds", "epochs") else 2
        cells = []
        for cell in table.values():
            text = _mean_sd_text(cell[column], digits)
            cells.append(text + (f" ({_mean_sd_text(cell[null], digits)})" if null in cell and text != "—" else ""))
        print(f"| {column} | " + " | ".join(cells) + " |")


def perturbed_summary() -> dict:
    folder = RESULTS / "bench_recovery_perturbed"
    rows = [with_type_means(json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
    # per perturbation type of the true circuit: trained on with 10/25 %, held out with 0 % (and
    # E-group activation, I inactivation held out always)
    types = tuple(sorted({key for row in rows for key in row if key.startswith("type_corr/")}))
    columns = (*PERTURBED_COLUMNS, "recorded_types_corr", "never_recorded_types_corr", *types)
    out = {"runs": rows, "summary": {}}
    for teacher in TEACHERS:
        cells = sorted(
            {(r["fraction"], r["labels"]) for r in rows if r["teacher"] == teacher},
            key=lambda c: (c[1] != "true", c[0]),
        )
        table = {}
        for fraction, labelling in cells:
            chosen = [r for r in rows if (r["teacher"], r["fraction"], r["labels"]) == (teacher, fraction, labelling)]
            name = f"{fraction:.0%}" + ("" if labelling == "true" else f", {labelling} labels")
            table[name] = {"seeds": sorted(r["seed"] for r in chosen), **{c: _cell(chosen, c) for c in columns}}
        if not table:
            continue
        out["summary"][teacher] = table
        print(f"\n{teacher}\n")
        print_table(table, columns)
    (RESULTS / "bench_recovery_perturbed.json").write_text(json.dumps(out, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run")
    one.add_argument("--teacher", choices=tuple(TEACHERS), required=True)
    one.add_argument("--method", choices=tuple(METHODS), required=True)
    one.add_argument("--labels", choices=LABELLINGS, required=True)
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--max-epochs", type=int, default=TrainConfig().max_epochs)
    commands.add_parser("summary")
    perturbed = commands.add_parser("perturbed")
    perturbed.add_argument("--teacher", choices=tuple(TEACHERS), default="builtin")
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
        row = run_perturbed(args.teacher, args.fraction, args.seed, args.max_epochs, args.labels)
        labels = "" if args.labels == "true" else f"_{args.labels}"
        (folder / f"{args.teacher}_fraction{args.fraction:g}{labels}_seed{args.seed}.json").write_text(
            json.dumps(row, indent=1)
        )
        print(json.dumps(row))
        return
    FOLDER.mkdir(parents=True, exist_ok=True)
    row = run_one(args.teacher, args.method, args.labels, args.seed, args.max_epochs)
    name = f"{args.teacher}_{args.method}_{args.labels}_seed{args.seed}.json"
    (FOLDER / name).write_text(json.dumps(row, indent=1))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
