"""Calibration of ensemble agreement against ground truth (issue 21).

For each teacher network (`eirnn.data.synthetic.make_recording`) and each label variant (the
true E/I labels, labels shuffled across neurons, no labels), `--n-fits` short fits with model
seeds 0.. are trained on one thread (core pipeline, no tracking), each fit's circuit answers and
those of its block-shuffled null are computed on the validation trials, and the true network's
answers too. Everything is stored per (teacher, labels) in `--out` (answers.npz + timing.json),
so that verdict rules can be scored afterwards without refitting:

    python benchmarks/bench_ensemble.py fit --teachers builtin,wide,mixed        # the table's teachers
    python benchmarks/bench_ensemble.py fit --teachers heldout1,heldout2         # for choosing the rule
    python benchmarks/bench_ensemble.py select --teachers heldout1,heldout2      # the rule, held-out only
    python benchmarks/bench_ensemble.py table --teachers builtin,wide,mixed       # calibration table

The verdict rule is chosen on the held-out teachers (true labels) only: among the candidate
rules, the one with the highest coverage whose pooled precision of agreed answers is at least
TARGET_PRECISION; it is then reported on the other teachers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from eirnn.agreement import VerdictRule, aggregate, calibrate
from eirnn.circuit_answers import CircuitAnswers, ask_circuit, load_answers, save_answers
from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.pipeline import prepare
from eirnn.recovery import ground_truth_model, shuffled_within_blocks
from eirnn.training import fit

TEACHERS = {
    # the built-in recording's network, with the first 240 of its 1043 trials (time on 2 cores)
    "builtin": dict(seed=0, trials=240),
    "wide": dict(seed=1, n_e=24, n_i=12, n_trials=160, n_bins=40),
    "mixed": dict(seed=2, n_e=10, n_i=10, n_trials=160, n_bins=60, n_conditions=4, n_inputs=8),
    # held out: only these choose the verdict rule
    "heldout1": dict(seed=100, n_e=16, n_i=4, n_trials=160, n_bins=50),
    "heldout2": dict(seed=101, n_e=12, n_i=8, n_trials=160, n_bins=40, n_conditions=6, n_inputs=10),
}
LABELS = ("true", "shuffled", "none")
CANDIDATE_RULES = [VerdictRule(fraction, ratio) for fraction in (0.75, 0.875, 1.0) for ratio in (0.0, 0.5, 1.0, 2.0)]
TARGET_PRECISION = 0.95


def teacher_data(name: str):
    sizes = dict(TEACHERS[name])
    seed, trials = sizes.pop("seed"), sizes.pop("trials", None)
    dataset, truth = make_recording(seed=seed, **sizes)
    return (dataset.subset(np.arange(trials)) if trials else dataset), truth


def with_labels(dataset, variant: str, seed: int):
    if variant == "true":
        return dataset
    if variant == "none":
        return dataclasses.replace(dataset, ei_labels=None)
    return dataclasses.replace(dataset, ei_labels=np.random.default_rng([seed, 5]).permutation(dataset.ei_labels))


def fit_one(dataset, seed: int, epochs: int):
    config = TrainConfig(
        max_epochs=epochs,
        patience=epochs,
        input_embed_type="linear",
        input_embed_dim=16,
        threads=1,
        seed=seed,
        log_figures=False,
    )
    prepared = prepare(config, dataset=dataset)
    result = fit(prepared.model, prepared.train, prepared.val, config.section("training"), progress=False)
    prepared.model.load_state_dict(result.best_state)
    return prepared.model.eval(), prepared.val, result


def run_fits(teacher: str, variant: str, n_fits: int, epochs: int, out: Path) -> None:
    folder = out / teacher / variant
    if (folder / "timing.json").exists():
        print(f"{teacher}/{variant}: done before, skipped", flush=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    dataset, truth = teacher_data(teacher)
    labelled = with_labels(dataset, variant, seed=TEACHERS[teacher]["seed"])
    timing = {"fit_seconds": [], "answer_seconds": [], "best_scores": []}
    val = None
    for seed in range(n_fits):
        started = time.perf_counter()
        model, val, result = fit_one(labelled, seed, epochs)
        timing["fit_seconds"].append(time.perf_counter() - started)
        timing["best_scores"].append(float(result.best_selection_score))
        started = time.perf_counter()
        save_answers(ask_circuit(model, val), folder / f"fit{seed}.npz")
        save_answers(ask_circuit(shuffled_within_blocks(model, seed), val), folder / f"null{seed}.npz")
        timing["answer_seconds"].append(time.perf_counter() - started)
        print(
            f"{teacher}/{variant} fit {seed}: {timing['fit_seconds'][-1]:.0f} s, score {timing['best_scores'][-1]:.3f}",
            flush=True,
        )
    twin = ground_truth_model(truth, float(val.bin_ms), np.asarray(val.inputs[:, 0], dtype=np.float64))
    save_answers(ask_circuit(twin, val), folder / "truth.npz")
    (folder / "timing.json").write_text(json.dumps(timing, indent=2))


def stored(
    out: Path, teacher: str, variant: str
) -> tuple[list[CircuitAnswers], list[CircuitAnswers], CircuitAnswers, dict]:
    folder = out / teacher / variant
    fits = [load_answers(path) for path in sorted(folder.glob("fit*.npz"))]
    nulls = [load_answers(path) for path in sorted(folder.glob("null*.npz"))]
    return fits, nulls, load_answers(folder / "truth.npz"), json.loads((folder / "timing.json").read_text())


#: answer families scored apart: population effects have signs that Dale's law fixes; the seeded
#: groups' effects on each other neuron are where the fitted connectivity has to decide
FAMILIES = {
    "all": None,
    "groups": ["silence_group1", "boost_group1", "silence_group2", "boost_group2"],
}


def score(out: Path, teacher: str, variant: str, rule: VerdictRule, family: str = "all") -> dict[str, float]:
    fits, nulls, truth, timing = stored(out, teacher, variant)
    names = FAMILIES[family]
    result = calibrate(aggregate(fits, rule), truth, names, null=aggregate(nulls, rule))
    # a single fit's sign precision over the same answers, for the "signs alone are easy" bar
    single = [calibrate(aggregate([fit], VerdictRule(1.0, 0.0)), truth, names)["precision_all"] for fit in fits]
    result.update(
        single_fit_precision=float(np.mean(single)),
        n_fits=len(fits),
        fit_minutes=float(np.sum(timing["fit_seconds"]) / 60),
        answer_minutes=float(np.sum(timing["answer_seconds"]) / 60),
        score_mean=float(np.mean(timing["best_scores"])),
        score_sd=float(np.std(timing["best_scores"])),
    )
    return result


def select_rule(out: Path, teachers: list[str]) -> VerdictRule:
    best = None
    for rule in CANDIDATE_RULES:
        scores = [score(out, teacher, "true", rule) for teacher in teachers]
        precision = float(np.nanmean([s["precision_agreed"] for s in scores]))
        coverage = float(np.nanmean([s["coverage"] for s in scores]))
        print(f"{rule}: coverage {coverage:.3f}, precision of agreed {precision:.3f}")
        if precision >= TARGET_PRECISION and (best is None or coverage > best[0]):
            best = (coverage, rule)
    print(f"chosen: {best[1] if best else 'none reaches the target precision'}")
    return best[1] if best else VerdictRule()


COLUMNS = (
    "coverage",
    "precision_agreed",
    "null_precision_on_agreed",
    "precision_not_agreed",
    "single_fit_precision",
    "agreement_auroc",
    "within_2x_agreed",
    "ensemble_mean_corr",
    "single_fit_corr",
    "fit_minutes",
    "answer_minutes",
)


def table(out: Path, teachers: list[str], rule: VerdictRule) -> str:
    header = "| teacher | labels | answers | fits | n | " + " | ".join(COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (len(COLUMNS) + 5)]
    for teacher in teachers:
        for variant in LABELS:
            if not (out / teacher / variant / "timing.json").exists():
                continue
            for family in FAMILIES:
                result = score(out, teacher, variant, rule, family)
                cells = [f"{result[name]:.3f}" if name in result else "n/a" for name in COLUMNS]
                prefix = f"| {teacher} | {variant} | {family} | {result['n_fits']} | {int(result['n_answers'])} | "
                lines.append(prefix + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("fit", "select", "table"))
    parser.add_argument("--teachers", default="builtin,wide,mixed")
    parser.add_argument("--labels", default=",".join(LABELS))
    parser.add_argument("--n-fits", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path("bench_ensemble_out"))
    parser.add_argument("--rule", default="", help="min_sign_fraction,min_mean_over_spread (default: chosen by select)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    teachers = args.teachers.split(",")
    if args.step == "fit":
        for teacher in teachers:
            for variant in args.labels.split(","):
                run_fits(teacher, variant, args.n_fits, args.epochs, args.out)
    elif args.step == "select":
        select_rule(args.out, teachers)
    else:
        rule = VerdictRule(*map(float, args.rule.split(","))) if args.rule else VerdictRule()
        print(f"rule: {rule}")
        print(table(args.out, teachers, rule))
    return 0


if __name__ == "__main__":
    sys.exit(main())
