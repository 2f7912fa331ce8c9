"""How an epoch's time and memory grow with recorded neurons, trials and threads.

For recorded neurons 54 / 200 / 500 (the built-in recording's E share, 41 of 54; hidden units
added to the default E:I ratio of 4, as `eirnn train` does: 65 / 240 / 600 units) x trials
835 / 5000 x 219 bins of 25 ms, at 1 and 2 torch threads: seconds per full-batch training epoch
(`eirnn.training.train_epoch` with the defaults: process noise, normalised MSE plus behaviour
loss, gradient clipping, Adam), wall and CPU time (`time.process_time`, all threads of the
process), median of `--epochs` epochs after one warm-up epoch (fewer for the largest cases),
and the peak resident memory of the process (`ru_maxrss`, which includes the ~0.8 GB of
Python, torch and the built-in recording). Each case runs in a fresh process, so that its peak
is its own. The inputs are the built-in recording's (piecewise constant, 14 channels), drawn
with replacement to the trial count; the targets are random rates of the right shape (an
epoch's cost does not depend on their values).

Then it fits a cost model to the 1-thread CPU times,

    seconds = a * trials * steps * units^2 + b * trials * steps * units + c,

(the recurrent matmuls forward and backward, then the per-element passes), shows its residuals,
fits memory = m0 + m1 * trials * steps * units, says where a full batch runs out of a 24 GiB
machine, and trains the largest case in minibatches (`batch_size`, the TrainConfig setting)
to show what that costs and saves.

    python benchmarks/bench_scaling.py                  # the table (about 15 minutes here)
    python benchmarks/bench_scaling.py --quick          # the two small sizes only
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_scaling.json"
E_SHARE = 41 / 54  # the built-in recording's share of E neurons
STEPS = 219
MEMORY_GIB = 24
MARGIN_GIB = 2  # left to the other processes of a shared machine


def available_gib() -> float:
    """MemAvailable of /proc/meminfo: what a new process can take without pushing others out."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("inf")


def predicted_peak_gib(rows: list[dict], n_recorded: int, n_trials: int) -> float | None:
    """The memory model's peak for a case, from the cases measured so far (None before two sizes)."""
    if len({r["trials"] * r["units"] for r in rows}) < 2:
        return None
    memory = fit_memory_model(rows)
    units = units_for(n_recorded)
    return memory["m0_gib"] + memory["m1_bytes_per_trial_step_unit"] / 2**30 * n_trials * STEPS * units


def units_for(n_recorded: int) -> int:
    from eirnn.model import count_units

    n_e = round(E_SHARE * n_recorded)
    return sum(count_units(n_e, n_recorded - n_e, True, 4.0))


def one_case(n_recorded: int, n_trials: int, threads: int, batch_size: int, epochs: int) -> dict:
    """Runs in its own process: builds the case, times its epochs, reports its peak memory."""
    import torch

    import eirnn  # noqa: F401  (its process memory settings, as for any user)
    from eirnn.config import TrainConfig
    from eirnn.data.synthetic import make_recording
    from eirnn.losses import NormalizedMSE, Targets
    from eirnn.model import create_model_from_data
    from eirnn.training import train_epoch

    torch.set_num_threads(threads)
    recording, _ = make_recording(seed=0)
    rng = np.random.default_rng(0)
    trials = rng.integers(0, recording.n_trials, n_trials)
    inputs = torch.as_tensor(np.asarray(recording.inputs, dtype=np.float32)[trials])
    n_e = round(E_SHARE * n_recorded)
    n_outputs = recording.behavior.shape[-1]
    baseline_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    # time-major like `make_targets` makes them, drawn in place: no transient copies in the peak
    rates = torch.empty(STEPS, n_trials, n_recorded).uniform_(0.0, 20.0).transpose(0, 1)
    behavior = torch.empty(STEPS, n_trials, n_outputs).uniform_().transpose(0, 1)
    targets = Targets(rates, None, behavior)
    model = create_model_from_data(n_e, n_recorded - n_e, recording.n_inputs, n_outputs=n_outputs, seed=0)
    defaults = TrainConfig()
    optimizer = torch.optim.Adam(model.parameters(), lr=defaults.learning_rate)
    generator = torch.Generator().manual_seed(0)
    loss_fn = NormalizedMSE(rates)
    prepared = model.prepare_inputs(inputs)
    times, cpu_times = [], []
    for _ in range(1 + epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        train_epoch(
            model,
            prepared,
            targets,
            loss_fn,
            optimizer,
            generator,
            batch_size=batch_size or n_trials,
            grad_clip=defaults.grad_clip,
            behavior_weight=defaults.behavior_weight,
        )
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    return {
        "recorded": n_recorded,
        "units": model.n_units,
        "trials": n_trials,
        "threads": threads,
        "batch_size": batch_size or "full",
        "epochs_timed": epochs,
        "seconds": statistics.median(times[1:]),
        "seconds_all": times,
        "cpu_seconds": statistics.median(cpu_times[1:]),
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "baseline_gib": baseline_gib,
    }


def run_case(n_recorded: int, n_trials: int, threads: int, batch_size: int, epochs: int) -> dict:
    command = [sys.executable, __file__, "--case", str(n_recorded), str(n_trials), str(threads), str(batch_size)]
    done = subprocess.run([*command, str(epochs)], capture_output=True, text=True, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["load_average"] = [round(value, 2) for value in __import__("os").getloadavg()]
    return row


def fit_cost_model(rows: list[dict]) -> dict:
    """Least squares of CPU seconds on (trials*steps*units^2, trials*steps*units, 1); residuals
    in %. CPU time, not wall time: on one thread it is the work done, which a machine shared
    with other processes stretches in wall time but not in CPU time."""
    design = np.array([[r["trials"] * STEPS * r["units"] ** 2, r["trials"] * STEPS * r["units"], 1.0] for r in rows])
    seconds = np.array([r["cpu_seconds"] for r in rows])
    # relative least squares: each case weighs by its own size, not the largest one's
    weights = 1.0 / seconds
    coefficients, *_ = np.linalg.lstsq(design * weights[:, None], seconds * weights, rcond=None)
    predicted = design @ coefficients
    return {
        "a_s_per_trial_step_unit2": coefficients[0],
        "b_s_per_trial_step_unit": coefficients[1],
        "c_s": coefficients[2],
        "residual_percent": [100 * (s - p) / s for s, p in zip(seconds, predicted)],
        "predicted": predicted.tolist(),
    }


def fit_memory_model(rows: list[dict]) -> dict:
    """peak GiB = m0 + m1 * trials * steps * units (least squares), and the trial count at which
    a full batch reaches `MEMORY_GIB` for each size."""
    size = np.array([r["trials"] * STEPS * r["units"] for r in rows], dtype=float)
    peak = np.array([r["peak_gib"] for r in rows])
    m1, m0 = np.polyfit(size, peak, 1)
    units = sorted({r["units"] for r in rows})
    return {
        "m0_gib": m0,
        "m1_bytes_per_trial_step_unit": m1 * 2**30,
        "residual_gib": (peak - (m0 + m1 * size)).tolist(),
        "full_batch_trials_at_limit": {str(u): math.floor((MEMORY_GIB - m0) / (m1 * STEPS * u)) for u in units},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=5, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--recorded", type=int, nargs="+", default=[54, 200, 500])
    parser.add_argument("--trials", type=int, nargs="+", default=[835, 5000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs of the small cases (median)")
    parser.add_argument("--large-epochs", type=int, default=2, help="timed epochs when trials x units^2 is large")
    parser.add_argument("--minibatch", type=int, default=500, help="batch size for the largest case's minibatch run")
    parser.add_argument("--quick", action="store_true", help="only 54 and 200 recorded neurons")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--resume", default="", help="a JSON of this script's: its measured cases are not run again")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_case(*args.case)))
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe_machine, load_average

    recorded = [n for n in args.recorded if n <= 200] if args.quick else args.recorded
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    print(f"CPU {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']}, load {load_average()}")
    print(
        f"{'recorded':>8} {'units':>5} {'trials':>6} {'threads':>7} {'batch':>6} {'wall s':>8} {'CPU s':>8} "
        f"{'peak GiB':>8} load"
    )
    cases = sorted(
        ((n, t, threads) for n in recorded for t in args.trials for threads in args.threads),
        key=lambda case: (case[1] * case[0] ** 2, case[2]),
    )
    out = Path(args.out)
    done = json.loads(Path(args.resume).read_text()) if args.resume else {}
    rows, skipped = done.get("rows", []), []
    measured = {(r["recorded"], r["trials"], r["threads"]) for r in rows}
    for n_recorded, n_trials, threads in cases:
        if (n_recorded, n_trials, threads) in measured:
            continue
        large = n_trials * n_recorded**2 > 5000 * 200**2
        predicted = predicted_peak_gib(rows, n_recorded, n_trials)
        if predicted is not None and predicted > available_gib() - MARGIN_GIB:
            skipped.append({"recorded": n_recorded, "trials": n_trials, "threads": threads, "predicted_gib": predicted})
            print(
                f"{n_recorded:>8} {'':>5} {n_trials:>6} {threads:>7}   full: not run, predicted peak "
                f"{predicted:.1f} GiB > {available_gib():.1f} GiB available now - {MARGIN_GIB} GiB",
                flush=True,
            )
            continue
        row = run_case(n_recorded, n_trials, threads, 0, args.large_epochs if large else args.epochs)
        rows.append(row)
        print(format_row(row), flush=True)
        out.write_text(json.dumps({"rows": rows}, indent=2))  # kept if a later case fails
    largest = max(cases, key=lambda case: (case[1] * case[0] ** 2, -case[2]))
    minibatch = run_case(largest[0], largest[1], largest[2], args.minibatch, args.large_epochs)
    print(format_row(minibatch), "(minibatches)", flush=True)

    single = [r for r in rows if r["threads"] == 1]
    cost = fit_cost_model(single)
    memory = fit_memory_model(rows)
    print(
        f"\ncost model, 1 thread: s = {cost['a_s_per_trial_step_unit2']:.3g} * trials*steps*units^2 "
        f"+ {cost['b_s_per_trial_step_unit']:.3g} * trials*steps*units + {cost['c_s']:.3g}"
    )
    for r, p, e in zip(single, cost["predicted"], cost["residual_percent"]):
        print(
            f"  {r['units']:>4} units x {r['trials']:>5} trials: {r['cpu_seconds']:.3f} s, model {p:.3f} s ({e:+.1f}%)"
        )
    print(
        f"memory: peak GiB = {memory['m0_gib']:.2f} + {memory['m1_bytes_per_trial_step_unit']:.1f} bytes "
        f"* trials*steps*units; a full batch fills {MEMORY_GIB} GiB at "
        + ", ".join(f"{t} trials ({u} units)" for u, t in memory["full_batch_trials_at_limit"].items())
    )
    report = {
        "date": date.today().isoformat(),
        "machine": machine,
        "steps": STEPS,
        "memory_measure": "ru_maxrss of a fresh process per case (peak resident set, GiB)",
        "rows": rows,
        "skipped_for_memory": skipped,
        "minibatch": minibatch,
        "cost_model_1_thread": cost,
        "memory_model": memory,
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


def format_row(row: dict) -> str:
    return (
        f"{row['recorded']:>8} {row['units']:>5} {row['trials']:>6} {row['threads']:>7} {row['batch_size']!s:>6} "
        f"{row['seconds']:>8.3f} {row['cpu_seconds']:>8.3f} {row['peak_gib']:>8.2f} {row['load_average'][0]}"
    )


if __name__ == "__main__":
    main()
